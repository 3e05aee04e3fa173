//! The lifecycle scenarios on the KVM micro-VM backend: Runtime API functions warm in their
//! own VM, with the filesystem and network the VMM emulates.

mod kvm_gate;
mod scenarios;

use lambda_core::ExecutionEnvironment;
use lambda_vmm::MicroVmBackend;
use scenarios::Functions;

/// The backend (or a failure naming the opt-out) and the guest programs.
fn setup() -> (MicroVmBackend, Functions) {
    (kvm_gate::kvm_backend(), Functions::locate())
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
scenario!(runtime_rust);
scenario!(runtime_rust_streams);
scenario!(runtime_c);
scenario!(address_space);
scenario!(threads);
scenario!(signals);
scenario!(threads_on_two_vcpus);

/// Runs `threads-c` with `event` once in a fresh one-shot environment of `memory_mb` and
/// `timeout_s` seconds on `backend`: the result and the run's stats.
fn threads_c_run(
    backend: &MicroVmBackend,
    functions: &Functions,
    memory_mb: u32,
    timeout_s: u64,
    event: &str,
) -> (lambda_core::InvokeResult, lambda_vmm::RunStats) {
    let config = functions
        .stdio("threads", "threads-c")
        .with_memory_mb(memory_mb)
        .with_timeout(std::time::Duration::from_secs(timeout_s));
    let mut environment = backend.create_stdio(&config).expect("create");
    let result = environment
        .run(lambda_core::Invocation::new(event))
        .expect("run");
    (result, environment.last_stats().clone())
}

/// A function's threads get the vCPUs its memory buys: at 3,538 MB the second vCPU is made
/// (the first time two threads are ready) and runs one of the two threads; at 128 MB there
/// is one.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn threads_get_the_vcpus_their_memory_buys() {
    let (backend, functions) = setup();
    for (memory_mb, vcpus) in [(128, 1), (scenarios::TWO_VCPUS_MB, 2)] {
        let (result, stats) =
            threads_c_run(&backend, &functions, memory_mb, 30, r#""parallel 20""#);
        assert!(result.outcome.response().is_some(), "{result:?}");
        assert_eq!(stats.vcpus, vcpus, "at {memory_mb} MB");
    }
}

/// A spare VM comes with the vCPUs its memory size buys, and a threaded program uses them.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn spare_vms_carry_their_vcpus() {
    let (backend, functions) = setup();
    let backend = backend.with_spare_vms(1);
    assert_eq!(backend.wait_for_spare_vms(scenarios::TWO_VCPUS_MB), 1);
    let (result, stats) = threads_c_run(
        &backend,
        &functions,
        scenarios::TWO_VCPUS_MB,
        30,
        r#""parallel 20""#,
    );
    assert!(result.outcome.response().is_some(), "{result:?}");
    assert!(stats.spare_vm, "{stats:?}");
    assert_eq!(stats.vcpus, 2, "{stats:?}");
}

/// A timeout stops every vCPU: two threads that never make a syscall, each spinning on its
/// own vCPU, end at the timeout as `Sandbox.Timedout`, and the environment can be created
/// again.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_timeout_stops_every_vcpu() {
    let (backend, functions) = setup();
    for _ in 0..2 {
        let (result, stats) = threads_c_run(
            &backend,
            &functions,
            scenarios::TWO_VCPUS_MB,
            1,
            r#""parallel 100000000""#,
        );
        let error = scenarios::error_of(&result);
        assert_eq!(
            error.error_type,
            lambda_core::ErrorType::SandboxTimedout,
            "{error}"
        );
        assert_eq!(stats.vcpus, 2);
    }
}

/// A read blocked on a pipe is restarted after an `SA_RESTART` handler and interrupted
/// (`EINTR`) without one. Only here: the check sends its signal 20 ms after the reader
/// started, and only one CPU shared as the micro-VM shares it makes sure the reader is in its
/// read by then (a loaded host may not run a process's thread that soon).
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn signals_restart_blocked_reads() {
    let (backend, functions) = setup();
    let result = scenarios::signals_check(&backend, &functions, "restart");
    assert_eq!(
        scenarios::memory_response(&result),
        r#"{"sa_restart":1,"plain":"EINTR","handled":2}"#
    );
}

scenario!(
    #[cfg_attr(skip_go_tests, ignore = "LAMBDA_SKIP_GO_TESTS=1")]
    go_goroutines
);
scenario!(
    #[cfg_attr(skip_go_tests, ignore = "LAMBDA_SKIP_GO_TESTS=1")]
    go_runtime
);

/// A program may have [`lambda_vmm::MAX_THREADS`] threads; the next `pthread_create` fails
/// with EAGAIN, and the program goes on.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn thread_limit() {
    let (backend, functions) = setup();
    let result = scenarios::threads_check(&backend, &functions, "limit", 128);
    assert_eq!(
        scenarios::memory_response(&result),
        format!(
            r#"{{"made":{},"error":"EAGAIN"}}"#,
            lambda_vmm::MAX_THREADS - 1
        )
    );
}

/// The address-space checks that move memory around most, on 4 KiB host pages only: the
/// paths a host without transparent huge pages takes, where KVM maps the guest's 2 MiB pages
/// with shadow tables of their own (see `lambda-vmm/src/mm/homes.rs`).
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn address_space_without_huge_pages() {
    let (backend, functions) = setup();
    scenarios::address_space_churn(&backend.without_huge_pages(), &functions);
}

scenario!(zip_code);

/// A runtime parked in `next` costs nothing between invocations: a warm invocation is a
/// handful of exits (the event read, the response written, the next `next`), whatever the
/// time between invocations.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_parked_runtime_does_not_spin() {
    let (backend, functions) = setup();
    let mut environment = backend
        .create_runtime_api(&functions.runtime("parked", "runtime-loop"))
        .expect("create");
    let event = lambda_core::Invocation::new(r#"{"action":"echo"}"#);
    environment.run(event).expect("first");
    std::thread::sleep(std::time::Duration::from_millis(50));
    let result = environment
        .run(lambda_core::Invocation::new(r#"{"action":"echo"}"#))
        .expect("second");
    assert!(result.outcome.response().is_some());
    let stats = environment.last_stats();
    assert!(stats.exits <= 8, "{stats:?}");
    assert_eq!(
        stats.exits, stats.syscalls,
        "every exit is a syscall: {stats:?}"
    );
}

/// The second environment of a function maps the program its first one checked and staged,
/// with the syscall sites the first one learned: every syscall of its Init enters the VMM
/// directly (which also shows that the sites the first one met are all found by decoding
/// the program's file), and every other exit is a page fault.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn later_environments_reuse_the_checked_program_and_its_sites() {
    let (backend, functions) = setup();
    let config = functions.runtime("reuse", "runtime-loop");
    let first = backend.create_runtime_api(&config).expect("first");
    let second = backend.create_runtime_api(&config).expect("second");
    let (one, two) = (first.init_stats(), second.init_stats());
    assert!(one.direct_syscalls < one.syscalls, "{one:?}");
    assert_eq!(two.direct_syscalls, two.syscalls, "{two:?}");
    assert_eq!(
        two.exits,
        two.syscalls + two.page_faults,
        "every exit is a syscall or a page fault: {two:?}"
    );
    Box::new(first).shutdown();
    Box::new(second).shutdown();
}
