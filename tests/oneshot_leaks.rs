//! 1,000 one-shot invocations leave no file descriptors, threads or memory behind. A test
//! binary of its own, so no other test's VMs are alive while it counts.

mod common;

use common::{kvm_backend, stdio_config};
use lambda::core::Invocation;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_thousand_invocations_leave_nothing_behind() {
    let backend = kvm_backend();
    let mut env = backend.create_stdio(&stdio_config("echo")).unwrap();
    // Warm up the process-wide pieces (KVM handle, watchdog and teardown threads).
    for _ in 0..20 {
        env.run(Invocation::new("warm-up")).unwrap();
    }
    // VMs are torn down (or kept for reuse) on a background thread: count without them.
    lambda::vmm::wait_for_teardown();
    lambda::vmm::release_kept_vms();
    let (fds, threads_before, rss) = (open_fds(), threads(), resident_kib());
    for i in 0..1000 {
        let payload = format!("invocation {i}");
        let result = env.run(Invocation::new(payload.clone())).unwrap();
        assert_eq!(result.outcome.response(), Some(payload.as_bytes()));
    }
    lambda::vmm::wait_for_teardown();
    lambda::vmm::release_kept_vms();
    assert_eq!(open_fds(), fds, "file descriptors leaked");
    assert_eq!(threads(), threads_before, "threads leaked");
    let grown = resident_kib().saturating_sub(rss);
    assert!(grown < 32 * 1024, "resident memory grew by {grown} KiB");
}
