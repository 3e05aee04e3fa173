//! 1,000 environments restored from one snapshot, each invoked and shut down, leave no
//! descriptor or thread behind. Alone in its own test binary, so no other test's VMs blur
//! the count.

mod kvm_gate;
mod scenarios;
mod snapshotting;

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_thousand_restores_leak_nothing() {
    // No spare VMs: their refill thread would open and close descriptors while the count is
    // taken. Each restore makes its VM, and shutdown tears it down on this thread.
    let backend = snapshotting::Restoring::new(kvm_gate::kvm_backend());
    scenarios::no_leaks(&backend, &scenarios::Functions::locate(), 1000);
    assert_eq!(backend.restored(), 1001);
}
