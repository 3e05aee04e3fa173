//! The lifecycle scenarios on the host-process backend (micro-VMs in `lambda-vmm-host`
//! processes, reached over pipes), and what only it does: spreading environments over its
//! processes, surviving the death of one, refusing a program that is not a VM host, and
//! stopping its processes when dropped.

mod host_processes;
mod kvm_gate;
mod scenarios;

use std::path::Path;
use std::time::{Duration, Instant};

use host_processes::HOST;
use lambda_core::{Backend, EnvironmentError, EnvironmentStart, Invocation, ResponseStream};
use lambda_vmm::host_process::{HostOptions, Patience};
use lambda_vmm::{HostProcessBackend, HostProcessError};
use scenarios::Functions;

/// Two host processes and the guest programs.
fn setup() -> (HostProcessBackend, Functions) {
    host_processes::start(2)
}

macro_rules! scenario {
    ($(#[$attr:meta])* $name:ident $(, $arg:expr)*) => {
        #[test]
        #[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
        $(#[$attr])*
        fn $name() {
            let (backend, functions) = setup();
            scenarios::$name(&backend, &functions $(, $arg)*);
        }
    };
}

scenario!(warm_reuse, 1000);
scenario!(init_error);
scenario!(init_crash);
scenario!(function_error);
scenario!(crash_then_recovery);
scenario!(exit_then_recovery);
scenario!(timeout_then_recovery);
scenario!(response_too_large);
scenario!(streamed_response);
scenario!(tmp_persists_and_is_private);
scenario!(reads_outside_task_and_tmp_fail);
scenario!(environments_share_nothing);
scenario!(logs_are_per_invocation);
scenario!(output_outside_invocations_is_logged);
scenario!(stdio_echo);
scenario!(stdio_failures);
scenario!(runtime_rust_streams);

/// New environments go to the process holding the fewest; each process is its own, neither
/// this one nor the other's.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn environments_spread_over_the_processes() {
    let (backend, functions) = setup();
    let pids = backend.pids();
    assert_eq!(pids.len(), 2);
    let (first, second) = (pids[0].unwrap(), pids[1].unwrap());
    assert_ne!(first, second);
    assert!(![first, second].contains(&std::process::id()));
    let config = functions.runtime("spread", "runtime-loop");
    let mut environments: Vec<_> = (0..4)
        .map(|_| backend.create(&config).expect("create"))
        .collect();
    assert_eq!(backend.environments_per_process(), [2, 2]);
    for (i, environment) in environments.iter_mut().enumerate() {
        let payload = format!("{{\"n\":{i}}}");
        let result = environment
            .invoke(Invocation::new(payload.clone()))
            .unwrap();
        assert_eq!(result.outcome.response(), Some(payload.as_bytes()));
    }
    environments.pop().unwrap().shutdown();
    drop(environments.pop());
    assert_eq!(backend.environments_per_process().iter().sum::<usize>(), 2);
    drop(environments);
    assert_eq!(backend.environments_per_process(), [0, 0]);
}

/// SnapStart works inside a host process: its first environment of a version runs the Init
/// and is snapshotted, the next is restored.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn snap_start_restores_inside_a_host_process() {
    let (backend, functions) = host_processes::start(1);
    let config = functions
        .runtime("snap", "runtime-loop")
        .with_snap_start(true);
    let first = backend.create(&config).expect("create");
    assert_eq!(first.start(), EnvironmentStart::Init);
    let mut second = backend.create(&config).expect("restore");
    assert_eq!(second.start(), EnvironmentStart::Restored);
    let result = second.invoke(Invocation::new(r#"{"x":1}"#)).unwrap();
    assert_eq!(result.outcome.response(), Some(&br#"{"x":1}"#[..]));
    assert!(result.report.restore_duration.is_some());
}

/// Under SnapStart a version's Init runs once for the backend, not once per process: its
/// process writes the snapshot to a file, and the others restore from it.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_versions_init_runs_once_across_the_processes() {
    let (backend, functions) = host_processes::start(3);
    let config = functions
        .runtime("shared", "runtime-loop")
        .with_env("INIT_TMP", "written during Init")
        .with_snap_start(true);
    let mut environments: Vec<_> = (0..6)
        .map(|_| backend.create(&config).expect("create"))
        .collect();
    assert_eq!(backend.environments_per_process(), [2, 2, 2]);
    let starts: Vec<EnvironmentStart> = environments.iter().map(|e| e.start()).collect();
    assert_eq!(starts[0], EnvironmentStart::Init, "{starts:?}");
    assert!(
        starts[1..]
            .iter()
            .all(|start| *start == EnvironmentStart::Restored),
        "{starts:?}"
    );
    let files: Vec<_> = std::fs::read_dir(backend.snapshot_dir())
        .expect("the snapshot directory")
        .collect();
    assert_eq!(files.len(), 1, "one file for the version");
    // Each restored environment answers, with what Init left in /tmp, its own count.
    for environment in &mut environments {
        assert_eq!(scenarios::count(environment.as_mut()), 1);
        let result = environment
            .invoke(Invocation::new(r#"{"action":"read-tmp"}"#))
            .expect("invoke");
        assert_eq!(
            result.outcome.response(),
            Some(&br#"{"data":"written during Init"}"#[..]),
            "{:?}",
            result.outcome
        );
    }
    let dir = backend.snapshot_dir().to_path_buf();
    drop(environments);
    drop(backend);
    assert!(!dir.exists(), "the files go with the backend");
}

/// A one-shot function's snapshot (taken at its first read of stdin) is shared the same way.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_one_shot_versions_snapshot_is_shared_too() {
    let (backend, functions) = host_processes::start(2);
    let config = functions.stdio("echo", "echo").with_snap_start(true);
    let mut environments: Vec<_> = (0..2)
        .map(|_| backend.create(&config).expect("create"))
        .collect();
    assert_eq!(backend.environments_per_process(), [1, 1]);
    let files = std::fs::read_dir(backend.snapshot_dir()).expect("the snapshot directory");
    assert_eq!(files.count(), 1, "one file for the version");
    for (i, environment) in environments.iter_mut().enumerate() {
        let payload = format!("{{\"n\":{i}}}");
        let result = environment
            .invoke(Invocation::new(payload.clone()))
            .expect("invoke");
        assert_eq!(result.outcome.response(), Some(payload.as_bytes()));
        assert!(result.report.restore_duration.is_some(), "restored");
    }
}

/// A snapshot file another process cannot use (here, damaged) is passed over: that process
/// snapshots the version itself, and its environments still start.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_snapshot_file_that_cannot_be_used_costs_only_an_init() {
    let (backend, functions) = host_processes::start(2);
    let config = functions
        .runtime("damaged", "runtime-loop")
        .with_snap_start(true);
    let first = backend.create(&config).expect("create");
    assert_eq!(first.start(), EnvironmentStart::Init);
    for file in std::fs::read_dir(backend.snapshot_dir()).expect("the snapshot directory") {
        std::fs::write(file.unwrap().path(), b"not a snapshot").unwrap();
    }
    let mut second = backend.create(&config).expect("create");
    assert_eq!(backend.environments_per_process(), [1, 1]);
    assert_eq!(second.start(), EnvironmentStart::Init, "its own snapshot");
    assert_eq!(scenarios::count(second.as_mut()), 1);
    let third = backend.create(&config).expect("create");
    assert_eq!(third.start(), EnvironmentStart::Restored);
}

/// A streamed response crosses the pipe piece by piece, to the caller's stream.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_streamed_response_arrives_in_pieces() {
    let (backend, functions) = host_processes::start(1);
    let mut environment = backend
        .create(&functions.runtime("stream", "runtime-loop"))
        .expect("create");
    let (sender, receiver) = std::sync::mpsc::channel();
    let invocation = Invocation::new(r#"{"action":"stream","chunks":3,"size":4}"#)
        .with_response_stream(ResponseStream::new(sender));
    let result = environment.invoke(invocation).unwrap();
    assert_eq!(result.outcome.response(), Some(&b""[..]));
    let pieces: Vec<u8> = receiver.try_iter().flatten().collect();
    assert_eq!(pieces, b"aaaabbbbcccc");
}

/// Killing one host process fails the calls of its environments, naming it, and nothing
/// else: the other process's environment still answers, and the next environment starts a
/// new process in its place.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_killed_host_process_takes_only_its_own_environments() {
    let (backend, functions) = setup();
    let config = functions.runtime("kill", "runtime-loop");
    let mut doomed = backend.create(&config).expect("create");
    let mut survivor = backend.create(&config).expect("create");
    let victim = host_processes::kill_and_wait(&backend, 0);
    let error = doomed.invoke(Invocation::new("{}")).unwrap_err();
    let EnvironmentError::Failed { message, .. } = &error else {
        panic!("expected a host-side failure, got {error}")
    };
    assert!(
        message.contains(&format!("VM host process {victim} ended")) && message.contains("9"),
        "{message}"
    );
    // Broken for good, like an environment whose invocation failed on the host side.
    assert!(doomed.invoke(Invocation::new("{}")).is_err());
    drop(doomed);
    let result = survivor.invoke(Invocation::new(r#"{"still":1}"#)).unwrap();
    assert_eq!(result.outcome.response(), Some(&br#"{"still":1}"#[..]));
    let mut replacement = backend.create(&config).expect("create after the kill");
    let result = replacement.invoke(Invocation::new(r#"{"new":1}"#)).unwrap();
    assert_eq!(result.outcome.response(), Some(&br#"{"new":1}"#[..]));
    let new_pid = backend.pids()[0].expect("a new process in the dead one's place");
    assert_ne!(new_pid, victim);
    assert_eq!(backend.environments_per_process(), [1, 1]);
}

/// A host process that stops answering (stopped here with SIGSTOP) is given the function's
/// timeout and the backend's patience, then killed: the call fails saying so, and the other
/// process's environment is untouched.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_host_process_that_stops_answering_is_killed() {
    let (backend, functions) = setup();
    backend.set_patience(Patience {
        invoke: Duration::from_millis(200),
        ..Patience::default()
    });
    let config = functions
        .runtime("stuck", "runtime-loop")
        .with_timeout(Duration::from_secs(1));
    let mut stuck = backend.create(&config).expect("create");
    let mut fine = backend.create(&config).expect("create");
    let victim = backend.pids()[0].unwrap();
    host_processes::signal(victim, "-STOP");
    let asked = Instant::now();
    let error = stuck.invoke(Invocation::new("{}")).unwrap_err();
    assert!(asked.elapsed() >= Duration::from_millis(1200));
    assert!(
        error.to_string().contains(&format!(
            "VM host process {victim} did not answer an invocation in time"
        )),
        "{error}"
    );
    host_processes::wait_until("the killed process is seen to end", || {
        backend.pids()[0].is_none()
    });
    let result = fine.invoke(Invocation::new(r#"{"ok":1}"#)).unwrap();
    assert_eq!(result.outcome.response(), Some(&br#"{"ok":1}"#[..]));
}

/// What cannot be a host is refused with an error that says so: no processes, a program
/// that does not exist, one that exits without speaking the protocol.
#[test]
fn what_is_not_a_host_is_refused() {
    let options = HostOptions::default();
    assert!(matches!(
        HostProcessBackend::start(HOST, 0, options.clone()),
        Err(HostProcessError::NoProcesses)
    ));
    let missing = Path::new("/nonexistent/lambda-vmm-host");
    let error = HostProcessBackend::start(missing, 1, options.clone()).unwrap_err();
    assert!(matches!(error, HostProcessError::Start { .. }), "{error}");
    assert!(error.to_string().contains("cargo build"), "{error}");
    let error = HostProcessBackend::start("/bin/true", 1, options.clone()).unwrap_err();
    assert!(
        matches!(error, HostProcessError::Protocol { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("serve_stdio"), "{error}");
    // `cat` answers the options with themselves, which are not a hello.
    let error = HostProcessBackend::start("/bin/cat", 1, options).unwrap_err();
    assert!(
        matches!(error, HostProcessError::Protocol { .. }),
        "{error}"
    );
}

/// A host that answers with another version of the protocol (a host program left from an
/// older build) is refused, naming both versions.
#[test]
fn a_host_of_another_protocol_is_refused() {
    let dir = std::env::temp_dir().join(format!("lambda-host-protocol-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The hello of protocol 0x4c564800 (a version before this one), framed: a 4-byte
    // length, then postcard's variant 0 and two varints.
    let body = postcard::to_stdvec(&(0u8, 0x4c56_4800u32, 7u32)).unwrap();
    let mut hello = u32::try_from(body.len()).unwrap().to_le_bytes().to_vec();
    hello.extend(body);
    std::fs::write(dir.join("hello.bin"), hello).unwrap();
    let script = dir.join("old-host");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat {}\nexec cat >/dev/null\n",
            dir.join("hello.bin").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let error = HostProcessBackend::start(&script, 1, HostOptions::default()).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        matches!(error, HostProcessError::Protocol { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("protocol 0x4c564800") && message.contains("0x4c564802"),
        "{message}"
    );
}

/// A test built by the same `cargo` as the host program finds it beside itself.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn the_host_program_is_found_beside_the_running_one() {
    kvm_gate::kvm_backend();
    let backend = HostProcessBackend::start_beside_current_exe(1, HostOptions::default())
        .expect("start the host program beside this test");
    assert_eq!(
        backend.program().canonicalize().unwrap(),
        Path::new(HOST).canonicalize().unwrap()
    );
    assert!(backend.pids()[0].is_some());
}

/// A configuration out of range is refused before any process hears of it.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_bad_configuration_is_refused_here() {
    let (backend, functions) = host_processes::start(1);
    let config = functions.runtime("bad", "runtime-loop").with_memory_mb(1);
    assert!(matches!(
        backend.create(&config),
        Err(EnvironmentError::Config(_))
    ));
    assert_eq!(backend.environments_per_process(), [0]);
}

/// Dropping the backend and its environments stops the host processes (and reaps them)
/// before the drop returns.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn dropping_the_backend_stops_its_processes() {
    let (backend, functions) = setup();
    let environment = backend
        .create(&functions.runtime("drop", "runtime-loop"))
        .expect("create");
    let pids: Vec<u32> = backend.pids().into_iter().map(Option::unwrap).collect();
    let clone = backend.clone();
    drop(backend);
    for pid in &pids {
        assert!(Path::new(&format!("/proc/{pid}")).exists());
    }
    drop(environment);
    drop(clone);
    for pid in &pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "host process {pid} is still there"
        );
    }
}
