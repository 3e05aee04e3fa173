//! 1,000 environments of a one-shot function that starts threads, each restored from a
//! snapshot, invoked and shut down, leave no descriptor, host thread or memory behind (every
//! other one runs its threads on two vCPUs). Alone in its own test binary, so no other test's
//! VMs blur the count.

mod kvm_gate;
mod scenarios;
mod snapshotting;

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_thousand_restored_threaded_cycles_leak_nothing() {
    // No spare VMs: their refill thread would open and close descriptors while the count is
    // taken.
    let backend = snapshotting::Restoring::new(kvm_gate::kvm_backend());
    scenarios::threaded_no_leaks(&backend, &scenarios::Functions::locate(), 1000);
    assert_eq!(backend.restored(), 1002);
}
