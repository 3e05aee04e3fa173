//! The function service (`lambda-sched`) over the host-process backend: what a host
//! application gets when its micro-VMs live in `lambda-vmm-host` processes. Warm reuse and
//! REPORTs as on the in-process backend, SnapStart versions restored across the processes,
//! a killed host process costing the service only the environments it held, and a service
//! that ends leaving no environment in any process.
//!
//! Fails when KVM cannot be used, unless built with `LAMBDA_SKIP_KVM_TESTS=1` (then ignored).

mod host_processes;
mod kvm_gate;
mod scenarios;

use std::sync::Arc;
use std::time::Duration;

use lambda_core::FunctionConfig;
use lambda_sched::{InvokeRequest, InvokeResponse, Service, StartKind};
use scenarios::Functions;

const COUNT: &str = r#"{"action":"count"}"#;

/// `runtime-loop` as a Runtime API function named `name`.
fn runtime_loop(functions: &Functions, name: &str) -> FunctionConfig {
    functions
        .runtime(name, "runtime-loop")
        .with_timeout(Duration::from_secs(10))
}

/// N of a successful `{"count":N,...}` response: invocations its environment has served.
fn count(response: &InvokeResponse) -> u64 {
    assert!(response.is_success(), "{response:?}");
    let body: serde_json::Value =
        serde_json::from_slice(&response.payload).expect("a JSON response");
    body["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("not a count: {body}"))
}

/// Invocation after invocation reuses one environment in one host process, with the REPORT
/// a Lambda user reads; ending the service ends the environment in its process.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn the_service_reuses_an_environment_in_a_host_process() {
    let (backend, functions) = host_processes::start(2);
    let service = Service::builder(Arc::new(backend.clone())).build().unwrap();
    service
        .create_function(runtime_loop(&functions, "echo-loop"))
        .unwrap();
    for n in 1..=10 {
        let response = service
            .invoke(InvokeRequest::new("echo-loop", COUNT))
            .unwrap();
        assert_eq!(response.status_code, 200);
        assert_eq!(count(&response), n, "{response:?}");
        let report = response.report.as_ref().expect("a report").to_string();
        assert!(report.starts_with("REPORT RequestId: "), "{report}");
        assert!(report.contains("\tMax Memory Used: "), "{report}");
        if n == 1 {
            assert_eq!(response.start, Some(StartKind::Cold));
            assert!(report.contains("\tInit Duration: "), "{report}");
        } else {
            assert_eq!(response.start, Some(StartKind::Warm), "invocation {n}");
            assert!(!report.contains("Init Duration"), "{report}");
        }
    }
    assert_eq!(service.environment_counts("echo-loop").unwrap(), (1, 0));
    let mut held = backend.environments_per_process();
    held.sort_unstable();
    assert_eq!(held, [0, 1]);
    service.shutdown();
    assert_eq!(backend.environments_per_process(), [0, 0]);
}

/// A SnapStart version's provisioned environments are spread over the processes: the first
/// runs the Init and its snapshot file serves the others, which are restored, and each
/// restored environment starts from the snapshot's state.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn snap_start_versions_are_restored_across_the_processes() {
    let (backend, functions) = host_processes::start(3);
    let service = Service::builder(Arc::new(backend.clone()))
        .manual()
        .build()
        .unwrap();
    service
        .create_function(runtime_loop(&functions, "snap").with_snap_start(true))
        .unwrap();
    service.publish_version("snap", "").unwrap();
    service.put_provisioned_concurrency("snap", "1", 3).unwrap();
    assert_eq!(service.run_pending().environments_created, 3);
    let m = service.metrics();
    assert_eq!(
        (
            m.environments_created,
            m.environments_restored,
            m.snapshots_refused
        ),
        (3, 2, 0),
        "{m}"
    );
    assert_eq!(backend.environments_per_process(), [1, 1, 1]);
    let files = std::fs::read_dir(backend.snapshot_dir()).expect("the snapshot directory");
    assert_eq!(files.count(), 1, "one snapshot file for the version");
    let response = service.invoke(InvokeRequest::new("snap:1", COUNT)).unwrap();
    assert_eq!(response.start, Some(StartKind::Provisioned));
    assert_eq!(
        count(&response),
        1,
        "the snapshot's state, no invocation yet"
    );
    service.shutdown();
    assert_eq!(backend.environments_per_process(), [0, 0, 0]);
}

/// A host process killed under the service fails the invocation that finds its environment
/// gone (`Sandbox.Failure`, as for any environment that broke, naming the process) and takes
/// nothing else: the environment in the other process still serves, and the next cold start
/// runs in a new process in the dead one's place.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_killed_host_process_costs_the_service_only_its_environments() {
    let (backend, functions) = host_processes::start(2);
    let service = Service::builder(Arc::new(backend.clone())).build().unwrap();
    // Each new environment goes to the process holding the fewest, the first of them on a
    // tie: `doomed` to the first process, `survivor` to the second.
    for (name, held) in [("doomed", [1, 0]), ("survivor", [1, 1])] {
        service
            .create_function(runtime_loop(&functions, name))
            .unwrap();
        let response = service.invoke(InvokeRequest::new(name, COUNT)).unwrap();
        assert_eq!(count(&response), 1);
        assert_eq!(backend.environments_per_process(), held, "after {name}");
    }
    let victim = host_processes::kill_and_wait(&backend, 0);

    let response = service.invoke(InvokeRequest::new("doomed", COUNT)).unwrap();
    assert!(!response.is_success(), "{response:?}");
    let error = response.function_error.as_ref().expect("a function error");
    assert_eq!(error.error_type.to_string(), "Sandbox.Failure", "{error:?}");
    assert!(
        error
            .message
            .contains(&format!("VM host process {victim} ended")),
        "{error:?}"
    );
    assert_eq!(service.environment_counts("doomed").unwrap(), (0, 0));

    let response = service
        .invoke(InvokeRequest::new("survivor", COUNT))
        .unwrap();
    assert_eq!(response.start, Some(StartKind::Warm));
    assert_eq!(
        count(&response),
        2,
        "the other process's environment serves on"
    );

    let response = service.invoke(InvokeRequest::new("doomed", COUNT)).unwrap();
    assert_eq!(response.start, Some(StartKind::Cold));
    assert_eq!(count(&response), 1, "a new environment");
    let replacement = backend.pids()[0].expect("a new process in the dead one's place");
    assert_ne!(replacement, victim);
    assert_eq!(backend.environments_per_process(), [1, 1]);
    let m = service.metrics();
    assert_eq!(
        (m.environments_created, m.invocations.errors),
        (3, 1),
        "{m}"
    );
    service.shutdown();
    assert_eq!(backend.environments_per_process(), [0, 0]);
}
