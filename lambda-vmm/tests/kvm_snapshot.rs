//! Environments restored from snapshots taken after Init: they answer as warm ones do (the
//! lifecycle scenarios, run on a backend whose every environment is restored, from a
//! snapshot file written and loaded back), and they share nothing they write.

mod kvm_gate;
mod scenarios;
mod snapshotting;

use lambda_core::{EnvironmentStart, ExecutionEnvironment, Invocation};
use lambda_vmm::{MicroVmBackend, SnapshotError};
use scenarios::{Functions, count, invoke, response_json};
use serde_json::json;
use snapshotting::Restoring;

/// A backend whose environments are restored from snapshots, and the guest programs.
fn setup() -> (Restoring, Functions) {
    (
        Restoring::new(kvm_gate::kvm_backend().with_spare_vms(1)),
        Functions::locate(),
    )
}

macro_rules! scenario {
    ($(#[$attr:meta])* $name:ident $(, $arg:expr)*) => {
        #[test]
        #[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
        $(#[$attr])*
        fn $name() {
            let (backend, functions) = setup();
            scenarios::$name(&backend, &functions $(, $arg)*);
            assert!(backend.restored() > 0, "no environment of the scenario was restored");
        }
    };
}

// Every scenario of `scenarios` that applies to a restored environment, with
// `address_space_without_huge_pages` and `init_failures_are_reported_as_without_snapshots`
// below. Left out: `output_outside_invocations_is_logged` (what Init prints goes to the log
// of the environment the snapshot was taken in, as with SnapStart), and the leak scenarios,
// which count the process's descriptors and threads in binaries of their own
// (`kvm_snapshot_leaks.rs`, `kvm_snapshot_thread_leaks.rs`).
scenario!(warm_reuse, 200);
scenario!(function_error);
scenario!(crash_then_recovery);
scenario!(exit_then_recovery);
scenario!(timeout_then_recovery);
scenario!(response_too_large);
scenario!(tmp_persists_and_is_private);
scenario!(reads_outside_task_and_tmp_fail);
scenario!(environments_share_nothing);
scenario!(logs_are_per_invocation);
scenario!(stdio_echo);
scenario!(stdio_failures);
scenario!(runtime_rust);
scenario!(runtime_c);
scenario!(address_space);
scenario!(threads);
scenario!(signals);
scenario!(threads_on_two_vcpus);
scenario!(streamed_response);
scenario!(runtime_rust_streams);
scenario!(
    #[cfg_attr(skip_go_tests, ignore = "LAMBDA_SKIP_GO_TESTS=1")]
    go_goroutines
);
scenario!(
    #[cfg_attr(skip_go_tests, ignore = "LAMBDA_SKIP_GO_TESTS=1")]
    go_runtime
);
scenario!(zip_code);

/// The address-space checks that move memory around most, restored onto 4 KiB host pages
/// only (the paths a host without transparent huge pages takes).
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn address_space_without_huge_pages() {
    let backend = Restoring::new(
        kvm_gate::kvm_backend()
            .without_huge_pages()
            .with_spare_vms(1),
    );
    scenarios::address_space_churn(&backend, &Functions::locate());
    assert!(
        backend.restored() > 0,
        "no environment of the scenario was restored"
    );
}

/// The same scenarios on environments that start from machines restored ahead and warmed
/// with the pages a restored run touched (`Snapshot::keep_restored`): the touches ahead
/// change nothing the program sees.
macro_rules! warmed_scenario {
    ($(#[$attr:meta])* $test:ident, $name:ident $(, $arg:expr)*) => {
        #[test]
        #[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
        $(#[$attr])*
        fn $test() {
            let backend = Restoring::warmed(kvm_gate::kvm_backend().with_spare_vms(1));
            scenarios::$name(&backend, &Functions::locate() $(, $arg)*);
            assert!(backend.warmed_count() > 0, "no environment started warmed");
        }
    };
}

warmed_scenario!(warmed_warm_reuse, warm_reuse, 50);
warmed_scenario!(warmed_crash_then_recovery, crash_then_recovery);
warmed_scenario!(warmed_timeout_then_recovery, timeout_then_recovery);
warmed_scenario!(
    warmed_tmp_persists_and_is_private,
    tmp_persists_and_is_private
);
warmed_scenario!(
    warmed_environments_share_nothing,
    environments_share_nothing
);
warmed_scenario!(warmed_runtime_rust, runtime_rust);
warmed_scenario!(warmed_runtime_c, runtime_c);
warmed_scenario!(warmed_address_space, address_space);
warmed_scenario!(warmed_threads, threads);
warmed_scenario!(warmed_signals, signals);
warmed_scenario!(warmed_threads_on_two_vcpus, threads_on_two_vcpus);
warmed_scenario!(warmed_streamed_response, streamed_response);
warmed_scenario!(
    #[cfg_attr(skip_go_tests, ignore = "LAMBDA_SKIP_GO_TESTS=1")]
    warmed_go_runtime,
    go_runtime
);

/// An Init that fails or crashes is reported as it is without snapshots.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn init_failures_are_reported_as_without_snapshots() {
    let (backend, functions) = setup();
    scenarios::init_error(&backend, &functions);
    scenarios::init_crash(&backend, &functions);
}

/// Runs `hello` in `environment` for `name`, checking its greeting.
fn greet(environment: &mut lambda_vmm::StdioEnvironment, name: &str) -> lambda_core::InvokeResult {
    let result = environment
        .run(Invocation::new(
            format!("{{\"name\":\"{name}\"}}").into_bytes(),
        ))
        .expect("invoke");
    assert_eq!(
        response_json(&result),
        json!({"message": format!("Hello, {name}!")})
    );
    result
}

fn restore(
    backend: &MicroVmBackend,
    snapshot: &lambda_vmm::Snapshot,
) -> Box<dyn ExecutionEnvironment> {
    backend.restore(snapshot).expect("restore")
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn writes_in_one_restored_environment_are_seen_by_no_other() {
    let backend = kvm_gate::kvm_backend();
    let functions = Functions::locate();
    let config = functions
        .runtime("isolated", "runtime-loop")
        .with_env("INIT_TMP", "written during Init");
    let snapshot = backend.snapshot(&config).expect("snapshot");
    let mut first = restore(&backend, &snapshot);
    let mut second = restore(&backend, &snapshot);
    let read_tmp = |environment: &mut dyn ExecutionEnvironment| {
        response_json(&invoke(environment, json!({"action": "read-tmp"})))["data"].clone()
    };
    // What Init wrote to /tmp is in each.
    assert_eq!(read_tmp(&mut *first), json!("written during Init"));
    assert_eq!(read_tmp(&mut *second), json!("written during Init"));
    // The first writes /tmp and its memory (the invocation counter); the second sees neither.
    invoke(&mut *first, json!({"action": "write-tmp", "data": "first"}));
    assert_eq!(read_tmp(&mut *first), json!("first"));
    assert_eq!(count(&mut *first), 4);
    assert_eq!(read_tmp(&mut *second), json!("written during Init"));
    assert_eq!(count(&mut *second), 3);
    // Nor does an environment restored afterwards: the snapshot did not change.
    let mut third = restore(&backend, &snapshot);
    assert_eq!(count(&mut *third), 1);
    assert_eq!(read_tmp(&mut *third), json!("written during Init"));
    for environment in [first, second, third] {
        environment.shutdown();
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn getrandom_differs_across_restores() {
    let backend = kvm_gate::kvm_backend();
    let functions = Functions::locate();
    let snapshot = backend
        .snapshot(&functions.runtime("random", "runtime-loop"))
        .expect("snapshot");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let mut environment = restore(&backend, &snapshot);
        let answer = response_json(&invoke(&mut *environment, json!({"action": "random"})));
        let random = answer["random"].as_str().expect("hex").to_string();
        assert_eq!(random.len(), 32, "{answer}");
        assert!(seen.insert(random), "the same random bytes in two restores");
        environment.shutdown();
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn restored_reports_say_restore_duration() {
    let backend = kvm_gate::kvm_backend().with_spare_vms(1);
    let functions = Functions::locate();
    // A Runtime API function: its first invocation's REPORT, then none.
    let snapshot = backend
        .snapshot(&functions.runtime("report", "runtime-loop"))
        .expect("snapshot");
    assert_eq!(snapshot.threads(), 1);
    assert!(snapshot.stored_bytes() > 0);
    let mut environment = restore(&backend, &snapshot);
    let first = invoke(&mut *environment, json!({}));
    assert!(first.report.restore_duration.is_some());
    assert_eq!(first.report.init_duration, None);
    let text = first.report.to_string();
    assert!(text.contains("\tRestore Duration: "), "{text}");
    assert!(!text.contains("Init Duration"), "{text}");
    let second = invoke(&mut *environment, json!({}));
    assert_eq!(second.report.restore_duration, None);
    environment.shutdown();

    // A one-shot function: every invocation is restored, and costs a handful of exits.
    let config = functions.stdio("hello", "hello");
    let snapshot = backend.snapshot(&config).expect("snapshot");
    let mut environment = backend.restore_stdio(&snapshot).expect("restore");
    for name in ["Ada", "Grace"] {
        let result = greet(&mut environment, name);
        assert!(result.report.restore_duration.is_some());
        assert_eq!(result.report.init_duration, None);
        let stats = environment.last_stats();
        assert!(stats.exits <= 10, "{} exits", stats.exits);
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn functions_that_never_wait_cannot_be_snapshotted() {
    let backend = kvm_gate::kvm_backend();
    let functions = Functions::locate();
    // A one-shot program that ends without reading stdin (runtime-loop, without its API).
    let config = functions.stdio("exits", "runtime-loop");
    match backend.snapshot(&config) {
        Err(SnapshotError::NotQuiescent(why)) => {
            assert!(why.contains("ended before reading stdin"), "{why}")
        }
        other => panic!("expected NotQuiescent, got {other:?}"),
    }
    // A snapshot of one contract is refused by the other's restore.
    let snapshot = backend
        .snapshot(&functions.stdio("hello", "hello"))
        .expect("snapshot");
    let error = backend
        .restore_runtime_api(&snapshot)
        .err()
        .expect("refused");
    assert!(error.to_string().contains("one-shot"), "{error}");
}

/// A scratch directory of one test's own, removed with what it holds when the test ends,
/// failed or not (its snapshot files are megabytes).
struct Scratch(std::path::PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // A failure to remove it must not hide the test's own panic.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new scratch directory named `name` for this test process.
fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("lambda-snapshot-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    Scratch(dir)
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn snapshot_files_load_back_and_damaged_ones_are_refused() {
    let backend = kvm_gate::kvm_backend();
    let functions = Functions::locate();
    let dir = scratch("files");
    // The function's code is a copy of its own, so the test can change it afterwards.
    let code = dir.join("bootstrap");
    std::fs::copy(functions.path("runtime-loop"), &code).expect("copy the program");
    let config = functions
        .runtime("filed", "runtime-loop")
        .with_code(lambda_core::CodeLocation::Executable(code.clone()))
        .with_env("INIT_TMP", "from the file's Init");
    let snapshot = backend.snapshot(&config).expect("snapshot");
    let path = dir.join("filed.snap");
    snapshot.write_to(&path).expect("write");

    // Loaded back, it restores environments as the snapshot itself does.
    let loaded = backend.load_snapshot(&path).expect("load");
    assert_eq!(loaded.config(), snapshot.config());
    assert_eq!(loaded.stored_bytes(), snapshot.stored_bytes());
    for _ in 0..2 {
        let mut environment = restore(&backend, &loaded);
        let answer = response_json(&invoke(&mut *environment, json!({"action": "read-tmp"})));
        assert_eq!(answer["data"], json!("from the file's Init"));
        let answer = response_json(&invoke(&mut *environment, json!({"action": "count"})));
        assert_eq!(answer["count"], json!(2));
        environment.shutdown();
    }

    // Loaded as a file of a known configuration: refused when it was taken of another one,
    // whose code, base image and layers it would otherwise read and show to the guest.
    let expected = backend.load_snapshot_of(&path, &config).expect("load");
    assert_eq!(expected.config(), &config);
    for other in [
        config.clone().with_base_image("/"),
        config.clone().with_memory_mb(256),
        config.clone().with_env("INIT_TMP", "another"),
    ] {
        let error = backend
            .load_snapshot_of(&path, &other)
            .expect_err("refused");
        assert!(
            matches!(&error, SnapshotError::Foreign(why) if why.contains("another configuration")),
            "{error}"
        );
    }

    let good = std::fs::read(&path).expect("read");
    let refused = |bytes: &[u8]| {
        let damaged = dir.join("damaged.snap");
        std::fs::write(&damaged, bytes).expect("write");
        backend.load_snapshot(&damaged).expect_err("refused")
    };
    // A byte changed anywhere after the header: the checksum.
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    assert!(matches!(refused(&flipped), SnapshotError::Corrupt(why) if why.contains("checksum")));
    // Cut short, or with its header's state length lying.
    let error = refused(&good[..good.len() - 4096]);
    assert!(matches!(error, SnapshotError::Corrupt(_)), "{error}");
    let mut lying = good.clone();
    lying[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(refused(&lying), SnapshotError::Corrupt(_)));
    // State that a checksum holds over but the VMM could not have made: `change` made to
    // the state, then the checksum made again. The state is postcard: an integer is a
    // varint, a byte string its length and bytes.
    let state_end = 24
        + usize::try_from(u64::from_le_bytes(good[16..24].try_into().unwrap()))
            .expect("state length");
    let forged = |change: &dyn Fn(&mut [u8])| {
        let mut forged = good.clone();
        change(&mut forged[24..state_end]);
        let checksum = crc32fast::hash(&forged[24..]);
        forged[12..16].copy_from_slice(&checksum.to_le_bytes());
        refused(&forged)
    };
    // Page tables: the root's entry for the kernel area's next table (at 16 GiB + 4 KiB,
    // flags present, writable, user, accessed) made to point past the function's memory.
    let error = forged(&|state| {
        let kernel_entry = ((16u64 << 30) + 0x1000 + 0x27).to_le_bytes();
        let at = state
            .windows(8)
            .position(|entry| entry == kernel_entry)
            .expect("the root's entry for the kernel area");
        state[at..at + 8].copy_from_slice(&((1u64 << 40) + 0x27).to_le_bytes());
    });
    assert!(
        matches!(&error, SnapshotError::Corrupt(why) if why.contains("page tables")
            && why.contains("outside the function's memory")),
        "{error}"
    );
    // `/tmp`'s quota (the function's 512 MB of ephemeral storage, 2^29 bytes) made 32 GiB:
    // the guest could then fill the host's memory through `/tmp`.
    let quota = [0x80, 0x80, 0x80, 0x80, 0x02];
    let error = forged(&|state| {
        let mut places = (0..state.len() - 5).filter(|&at| state[at..at + 5] == quota);
        let at = places.next().expect("the /tmp quota");
        assert_eq!(places.next(), None, "one place holds 2^29");
        state[at..at + 5].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x7f]);
    });
    assert!(
        matches!(&error, SnapshotError::Corrupt(why) if why.contains("/tmp quota is 34359738367")),
        "{error}"
    );
    // The thread's saved FPU state (written as 1 for `Some`, the length 4,096 as 0x80 0x20,
    // the XSAVE region) with a reserved byte of its header set: KVM_SET_XSAVE refuses it,
    // which failed the first environment restored from such a file.
    let error = forged(&|state| {
        let region = (0..state.len() - 4099)
            .rev()
            .find(|&at| {
                let region = &state[at + 3..at + 4099];
                state[at..at + 3] == [1, 0x80, 0x20]
                    && region[24..28] == 0x1f80u32.to_le_bytes()
                    && region[512] & 0b11 != 0
                    && region[520..576].iter().all(|&byte| byte == 0)
            })
            .expect("the thread's FPU state")
            + 3;
        state[region + 528] = 1;
    });
    assert!(
        matches!(&error, SnapshotError::Corrupt(why) if why.contains("FPU state")
            && why.contains("standard form")),
        "{error}"
    );
    // Taken on another CPU. The record follows the configuration and the code's identity:
    // the vendor string of this host's CPU, then the feature words, leaf 1's ECX first. A
    // program may have chosen instructions by them during Init, so a file of another vendor
    // or with a feature this host lacks is refused.
    let vendor = std::fs::read_to_string("/proc/cpuinfo")
        .expect("/proc/cpuinfo")
        .lines()
        .find_map(|line| {
            Some(
                line.strip_prefix("vendor_id")?
                    .trim_start_matches([' ', '\t', ':'])
                    .to_string(),
            )
        })
        .expect("the CPU's vendor");
    let vendor_at = good[24..state_end]
        .windows(12)
        .position(|bytes| bytes == vendor.as_bytes())
        .expect("the file's record of the CPU");
    let error = forged(&|state| state[vendor_at..vendor_at + 12].copy_from_slice(b"OtherVendor!"));
    assert!(
        matches!(&error, SnapshotError::Foreign(why) if why.contains("of vendor OtherVendor!")),
        "{error}"
    );
    let ecx_at = vendor_at + 12;
    let ecx = u32::from_le_bytes(good[24 + ecx_at..24 + ecx_at + 4].try_into().unwrap());
    let lacking = (0..32)
        .find(|bit| ecx & (1 << bit) == 0)
        .expect("a feature this CPU lacks");
    let error = forged(&|state| {
        state[ecx_at..ecx_at + 4].copy_from_slice(&(ecx | 1 << lacking).to_le_bytes());
    });
    assert!(
        matches!(&error, SnapshotError::Foreign(why)
            if why.contains(&format!("CPUID leaf 0x1.0 ECX bit {lacking})"))),
        "{error}"
    );
    // Taken by a build of the VMM that writes another kernel area into its VMs (another
    // vDSO, say): its CRC-32 follows the CPU's 11 feature words.
    let error = forged(&|state| state[vendor_at + 12 + 44] ^= 1);
    assert!(
        matches!(&error, SnapshotError::Foreign(why) if why.contains("another kernel area")),
        "{error}"
    );
    // Another format version, another kind of file, an empty file.
    let written = u32::from_le_bytes(good[8..12].try_into().unwrap());
    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    assert!(matches!(
        refused(&newer),
        SnapshotError::Version {
            found: 99,
            expected,
        } if expected == written
    ));
    assert!(matches!(
        refused(b"PK\x03\x04 a zip"),
        SnapshotError::NotASnapshot(_)
    ));
    assert!(matches!(refused(b""), SnapshotError::NotASnapshot(_)));
    // A device is not read (`/dev/zero` would never end).
    let device = backend.load_snapshot("/dev/null").expect_err("refused");
    assert!(
        matches!(&device, SnapshotError::File { source, .. }
            if source.to_string().contains("not a regular file")),
        "{device:?}"
    );
    // A file that does not exist.
    let missing = backend
        .load_snapshot(dir.join("missing.snap"))
        .expect_err("refused");
    assert!(missing.to_string().contains("missing.snap"), "{missing}");
    // The function's code changed since the snapshot.
    let mut changed = std::fs::read(&code).expect("code");
    changed.push(0);
    std::fs::write(&code, changed).expect("change the code");
    let error = backend.load_snapshot(&path).expect_err("refused");
    assert!(
        matches!(&error, SnapshotError::Foreign(why) if why.contains("not the code")),
        "{error}"
    );
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_one_shot_snapshot_file_loads_back() {
    let backend = kvm_gate::kvm_backend();
    let functions = Functions::locate();
    let dir = scratch("one-shot");
    let path = dir.join("hello.snap");
    backend
        .snapshot(&functions.stdio("hello", "hello"))
        .expect("snapshot")
        .write_to(&path)
        .expect("write");
    let loaded = backend.load_snapshot(&path).expect("load");
    let mut environment = backend.restore_stdio(&loaded).expect("restore");
    let result = environment
        .run(Invocation::new(&br#"{"name":"file"}"#[..]))
        .expect("invoke");
    assert_eq!(response_json(&result), json!({"message": "Hello, file!"}));
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn machines_restored_ahead_serve_and_share_nothing() {
    // No spare VMs: only a machine restored ahead comes ready-made.
    let backend = kvm_gate::kvm_backend();
    let functions = Functions::locate();
    let snapshot = backend
        .snapshot(&functions.runtime("ahead", "runtime-loop"))
        .expect("snapshot");
    snapshot.keep_restored(2);
    assert_eq!(snapshot.wait_for_restored(), 2);
    let mut first = backend.restore_runtime_api(&snapshot).expect("restore");
    let mut second = backend.restore_runtime_api(&snapshot).expect("restore");
    assert!(first.init_stats().spare_vm && second.init_stats().spare_vm);
    assert_eq!(count(&mut first), 1);
    assert_eq!(count(&mut first), 2);
    assert_eq!(count(&mut second), 1);
    invoke(&mut first, json!({"action": "write-tmp", "data": "first"}));
    let tmp = response_json(&invoke(&mut second, json!({"action": "read-tmp"})));
    assert_eq!(tmp["data"], json!(null));
    // The thread restores more; asking for none empties the stock.
    assert_eq!(snapshot.wait_for_restored(), 2);
    snapshot.keep_restored(0);
    assert_eq!(snapshot.restored_ready(), 0);
    let third = backend.restore_runtime_api(&snapshot).expect("restore");
    assert!(!third.init_stats().spare_vm, "restored on the spot");
    for environment in [first, second, third] {
        Box::new(environment).shutdown();
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn plain_restores_copy_in_the_frames_a_restored_run_touched() {
    let backend = kvm_gate::kvm_backend();
    let functions = Functions::locate();
    let snapshot = backend
        .snapshot(&functions.runtime("copied", "runtime-loop"))
        .expect("snapshot");
    // The first restore has nothing to go by: it teaches.
    let mut teacher = backend.restore_runtime_api(&snapshot).expect("restore");
    assert_eq!(teacher.init_stats().copied_pages, 0);
    assert_eq!(count(&mut teacher), 1);
    assert!(snapshot.pages_learnt().is_some());
    // Later ones start with the frames it touched copied in, and see the snapshot's state,
    // not the teacher's.
    let mut taught = backend.restore_runtime_api(&snapshot).expect("restore");
    let copied = taught.init_stats().copied_pages;
    assert!((1..=4096).contains(&copied), "{copied} pages");
    assert_eq!(taught.init_stats().warmed_pages, 0);
    // Lean restores copy in only the frames it wrote: fewer (its code, only read, is not).
    let mut lean = kvm_gate::kvm_backend()
        .with_lean_restores(true)
        .restore_runtime_api(&snapshot)
        .expect("restore");
    let written = lean.init_stats().copied_pages;
    assert!(
        (1..copied).contains(&written),
        "{written} pages written of {copied} touched"
    );
    assert_eq!(count(&mut taught), 1);
    assert_eq!(count(&mut teacher), 2);
    assert_eq!(count(&mut lean), 1);
    assert_eq!(count(&mut taught), 2);
    for environment in [teacher, taught, lean] {
        Box::new(environment).shutdown();
    }

    // A one-shot function restores a machine for each run.
    let snapshot = backend
        .snapshot(&functions.stdio("hello", "hello"))
        .expect("snapshot");
    let mut environment = backend.restore_stdio(&snapshot).expect("restore");
    greet(&mut environment, "Ada");
    assert_eq!(environment.last_stats().copied_pages, 0);
    greet(&mut environment, "Grace");
    assert!(environment.last_stats().copied_pages > 0);
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn machines_restored_ahead_are_warmed_once_a_restored_run_has_taught_them() {
    let backend = kvm_gate::kvm_backend();
    let functions = Functions::locate();
    let config = functions
        .runtime("taught", "runtime-loop")
        .with_env("INIT_TMP", "written during Init");
    let snapshot = backend.snapshot(&config).expect("snapshot");
    assert_eq!(snapshot.pages_learnt(), None);
    snapshot.keep_restored(1);
    assert_eq!(snapshot.wait_for_restored(), 1);
    // Nothing learnt yet: the machine restored ahead is a plain restore, and its first
    // invocation teaches.
    let mut teacher = backend.restore_runtime_api(&snapshot).expect("restore");
    assert_eq!(teacher.init_stats().warmed_pages, 0);
    assert_eq!(count(&mut teacher), 1);
    let learnt = snapshot
        .pages_learnt()
        .expect("learnt from the first invocation");
    assert!((1..=4096).contains(&learnt), "{learnt} pages");
    // The machine the thread restored while the teacher ran may be a plain one; the one it
    // restores once that is taken is warmed.
    assert_eq!(snapshot.wait_for_restored(), 1);
    let meanwhile = backend.restore_runtime_api(&snapshot).expect("restore");
    assert_eq!(snapshot.wait_for_restored(), 1);
    let mut warmed = backend.restore_runtime_api(&snapshot).expect("restore");
    let touched = warmed.init_stats().warmed_pages;
    assert!(
        (1..=learnt).contains(&touched),
        "{touched} of {learnt} pages"
    );
    // The touches ahead (reads, and writes of what was there) changed nothing it sees.
    assert_eq!(count(&mut warmed), 1);
    assert_eq!(count(&mut warmed), 2);
    let tmp = response_json(&invoke(&mut warmed, json!({"action": "read-tmp"})));
    assert_eq!(tmp["data"], json!("written during Init"));
    assert_eq!(count(&mut teacher), 2);
    snapshot.keep_restored(0);
    for environment in [teacher, meanwhile, warmed] {
        Box::new(environment).shutdown();
    }

    // A one-shot function: its first run teaches, later runs start warmed.
    let snapshot = backend
        .snapshot(&functions.stdio("hello", "hello"))
        .expect("snapshot");
    snapshot.keep_restored(1);
    let mut environment = backend.restore_stdio(&snapshot).expect("restore");
    assert_eq!(snapshot.wait_for_restored(), 1);
    greet(&mut environment, "Ada");
    assert_eq!(environment.last_stats().warmed_pages, 0);
    assert!(snapshot.pages_learnt().is_some());
    let mut warmed = Vec::new();
    for name in ["Grace", "Barbara", "Frances"] {
        assert_eq!(snapshot.wait_for_restored(), 1);
        greet(&mut environment, name);
        assert!(environment.last_stats().spare_vm, "each run takes one");
        warmed.push(environment.last_stats().warmed_pages);
    }
    // The first of these may have been restored while the teacher ran; the others were not.
    assert!(warmed[1..].iter().all(|&pages| pages > 0), "{warmed:?}");
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn snap_start_versions_keep_warmed_machines_ahead_when_asked() {
    let backend = kvm_gate::kvm_backend().with_restored_ahead(1);
    let functions = Functions::locate();
    let config = functions
        .runtime("snapstart-ahead", "runtime-loop")
        .with_snap_start(true);
    assert!(backend.snap_start_snapshot(&config).is_none());
    // The version's first environment runs Init and is snapshotted.
    let first = backend.create_runtime_api(&config).expect("create");
    assert_eq!(first.start(), EnvironmentStart::Init);
    let snapshot = backend.snap_start_snapshot(&config).expect("snapshotted");
    assert_eq!(snapshot.wait_for_restored(), 1);
    // The next starts from the machine restored ahead, and its invocation teaches.
    let mut teacher = backend.create_runtime_api(&config).expect("create");
    assert_eq!(teacher.start(), EnvironmentStart::Restored);
    assert!(
        teacher.init_stats().spare_vm,
        "taken from the snapshot's stock"
    );
    assert_eq!(count(&mut teacher), 1);
    assert!(snapshot.pages_learnt().is_some());
    // The machine restored while it ran may be a plain one; the one after is warmed.
    assert_eq!(snapshot.wait_for_restored(), 1);
    let meanwhile = backend.create_runtime_api(&config).expect("create");
    assert_eq!(snapshot.wait_for_restored(), 1);
    let mut warmed = backend.create_runtime_api(&config).expect("create");
    assert_eq!(warmed.start(), EnvironmentStart::Restored);
    assert!(warmed.init_stats().warmed_pages > 0);
    assert_eq!(count(&mut warmed), 1);
    for environment in [first, teacher, meanwhile, warmed] {
        Box::new(environment).shutdown();
    }
}
