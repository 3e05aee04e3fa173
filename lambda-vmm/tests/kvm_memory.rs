//! The micro-VM's address space where only the VMM can say what happened: the memory limit
//! (`Runtime.OutOfMemory`), the fault's address in the error, the exits memory and clocks
//! cost, and that the VMM's own page-table changes reach the vCPU. (What every backend
//! shares is `scenarios::address_space`.)

mod kvm_gate;
mod scenarios;

use lambda_core::{ErrorType, Invocation, ResetReason};
use scenarios::{Functions, error_of, memory_check, memory_response};

/// The address the program logged just before the access that must fault.
fn touched(log_tail: &[u8]) -> String {
    let log = String::from_utf8_lossy(log_tail);
    log.lines()
        .find_map(|line| line.strip_prefix("touching "))
        .unwrap_or_else(|| panic!("no address logged in {log}"))
        .trim()
        .to_string()
}

/// At 128 MB: a 64 GiB reservation and a 1 GiB commit with 20 MiB used work, and cost
/// about what is used; using more than 128 MB is `Runtime.OutOfMemory`.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn overcommit_works_until_the_memory_is_used() {
    let backend = kvm_gate::kvm_backend();
    let functions = Functions::locate();
    let reserved = memory_check(&backend, &functions, "reserve", 128);
    assert_eq!(memory_response(&reserved), "reserved 64 GiB");
    assert!(
        reserved.report.max_memory_used_mb < 16,
        "{}",
        reserved.report
    );
    let committed = memory_check(&backend, &functions, "commit", 128);
    assert_eq!(memory_response(&committed), "committed 1 GiB, wrote 20 MiB");
    let used = committed.report.max_memory_used_mb;
    assert!((20..40).contains(&used), "{}", committed.report);

    let exhausted = memory_check(&backend, &functions, "oom", 128);
    let error = error_of(&exhausted);
    assert_eq!(error.error_type, ErrorType::RuntimeOutOfMemory, "{error}");
    assert_eq!(exhausted.reset, Some(ResetReason::OutOfMemory));
    assert!(
        exhausted.report.max_memory_used_mb <= 128,
        "{}",
        exhausted.report
    );
    let log = String::from_utf8_lossy(&exhausted.log_tail);
    assert!(log.contains("97 MiB written"), "it got far first: {log}");
    // Twice the memory, twice as far.
    let larger = memory_check(&backend, &functions, "oom", 256);
    let log = String::from_utf8_lossy(&larger.log_tail);
    assert!(log.contains("225 MiB written"), "{log}");
    assert_eq!(error_of(&larger).error_type, ErrorType::RuntimeOutOfMemory);
}

/// A write to a read-only page, a read of an unmapped one and a call into a non-executable
/// one are `SIGSEGV`, named with the address as the program knew it. Each page had been used
/// before its protection was taken away, so each also shows that the VMM's page-table change
/// reached the vCPU (on PVM hosts KVM never sees those writes: see docs/platform.md).
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn faults_name_the_signal_the_address_and_the_access() {
    let backend = kvm_gate::kvm_backend();
    let functions = Functions::locate();
    for (check, access, why) in [
        (
            "readonly",
            "(a write)",
            "the mapping does not allow writing",
        ),
        ("unmapped", "(a read)", "no mapping holds the address"),
        (
            "noexec",
            "(an instruction fetch)",
            "the mapping does not allow executing",
        ),
    ] {
        let result = memory_check(&backend, &functions, check, 128);
        let error = error_of(&result);
        assert_eq!(error.error_type, ErrorType::RuntimeExitError, "{error}");
        let address = touched(&result.log_tail);
        assert!(
            error.message.contains(&format!(
                "signal: segmentation fault (SIGSEGV): page fault at address {address} {access}"
            )),
            "{check}: {error}"
        );
        assert!(error.message.ends_with(why), "{check}: {error}");
    }
}

/// Memory costs few exits: 20 MiB touched is about one page fault per 2 MiB.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn touching_memory_costs_a_fault_per_large_page() {
    let backend = kvm_gate::kvm_backend();
    let functions = Functions::locate();
    let mut environment = backend
        .create_stdio(&functions.stdio("memory", "memory-c"))
        .unwrap();
    let result = environment.run(Invocation::new("\"commit\"")).unwrap();
    assert_eq!(memory_response(&result), "committed 1 GiB, wrote 20 MiB");
    let stats = environment.last_stats();
    assert!(stats.page_faults <= 20, "{stats:?}");
    assert_eq!(stats.exits, stats.syscalls + stats.page_faults, "{stats:?}");
}

/// The clocks are read in the guest: 1,000 `clock_gettime` calls cost no exit through the
/// vDSO, and one each without it.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn the_vdso_reads_the_clock_without_exits() {
    let functions = Functions::locate();
    let config = functions.stdio("clock", "memory-c");
    for (backend, expect_exits) in [
        (kvm_gate::kvm_backend(), 0..100),
        (kvm_gate::kvm_backend().without_vdso(), 1_000..1_100),
    ] {
        let mut environment = backend.create_stdio(&config).unwrap();
        let result = environment.run(Invocation::new("\"clock-1000\"")).unwrap();
        assert_eq!(memory_response(&result), "monotonic over 1000 reads");
        let stats = environment.last_stats();
        assert!(
            expect_exits.contains(&stats.exits),
            "{backend:?}: {stats:?}"
        );
    }
}
