//! What a hostile runtime can make the host hold is bounded per environment. The runtime
//! (`runtime-loop`'s `hoard`) takes every kind of state the kernel keeps for a guest, as
//! much as it will give: 63 Runtime API connections holding unfinished 6 MB requests, 8,192
//! epoll registrations, 16,384 `/tmp` entries with long names, thousands of separate
//! mappings, 1,023 more threads with 64 real-time signals pending on each, pipes holding
//! 4 MiB. The host's anonymous memory, less the guest's own memory (the function's memory
//! it touched, which the report's `Max Memory Used` counts and the memory size bounds), grows
//! by less than the bound the security notes promise, and the next invocation works. Alone in
//! its test binary, so no other test's allocations blur the count.

mod kvm_gate;
mod scenarios;

use std::time::Duration;

use lambda_core::{Backend, Invocation};

/// The bound `docs/security.md` states for the VMM-side state of one environment.
const BOUND_BYTES: u64 = 64 << 20;

/// The host's anonymous resident memory (`RssAnon`), in bytes.
fn rss_anon() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").parse().ok())
        .unwrap();
    kib * 1024
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_hoarding_runtime_makes_the_host_hold_less_than_the_bound() {
    let backend = kvm_gate::kvm_backend();
    let functions = scenarios::Functions::locate();
    let config = functions
        .runtime("hoard", "runtime-loop")
        .with_timeout(Duration::from_secs(60));
    // The process-wide pieces (KVM handle, threads, the staged program) first.
    let mut warm = backend.create(&config).unwrap();
    warm.invoke(Invocation::new(r#"{"action":"echo"}"#))
        .unwrap();
    warm.shutdown();
    lambda_vmm::wait_for_teardown();

    let before = rss_anon();
    let mut environment = backend.create(&config).unwrap();
    let hoarded = environment
        .invoke(Invocation::new(r#"{"action":"hoard"}"#))
        .unwrap();
    let grown = rss_anon().saturating_sub(before);
    let guest = u64::from(hoarded.report.max_memory_used_mb) << 20;
    let held = grown.saturating_sub(guest);
    let tail = String::from_utf8_lossy(&hoarded.log_tail).into_owned();
    let summary = tail
        .lines()
        .find(|line| line.starts_with("hoarded: "))
        .unwrap_or_else(|| panic!("no summary in {tail}"))
        .to_string();
    eprintln!(
        "{summary}; the host holds {} MiB more, {} MiB of it the guest's memory",
        grown >> 20,
        guest >> 20
    );
    assert!(summary.contains("63 connections"), "{summary}");
    assert!(summary.contains("8192 epoll registrations"), "{summary}");
    assert!(summary.contains("16384 /tmp entries"), "{summary}");
    let threads = lambda_vmm::MAX_THREADS - 1;
    assert!(
        summary.contains(&format!(
            "{threads} threads with {} pending signals",
            threads * 64
        )),
        "{summary}"
    );
    assert!(summary.contains("holding 4194304 bytes"), "{summary}");
    assert!(
        held < BOUND_BYTES,
        "{summary}: the host holds {held} bytes more"
    );

    // The hoard is let go at the next event, which is served as usual.
    let next = environment
        .invoke(Invocation::new(r#"{"action":"count"}"#))
        .unwrap();
    assert_eq!(next.outcome.response(), Some(&br#"{"count":2}"#[..]));
    environment.shutdown();
}
