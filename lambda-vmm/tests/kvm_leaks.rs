//! 200 create / invoke / shutdown cycles of warm micro-VM environments leave no descriptor or
//! thread behind. Alone in its own test binary, so no other test's VMs blur the count.

mod kvm_gate;
mod scenarios;

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn two_hundred_cycles_leak_nothing() {
    let backend = kvm_gate::kvm_backend();
    scenarios::no_leaks(&backend, &scenarios::Functions::locate(), 200);
}
