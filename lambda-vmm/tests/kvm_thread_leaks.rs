//! 1,000 create / invoke / shutdown cycles of a one-shot function that starts threads leave
//! no descriptor, host thread or memory behind. Alone in its own test binary, so no other
//! test's VMs blur the count.

mod kvm_gate;
mod scenarios;

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_thousand_threaded_cycles_leak_nothing() {
    let backend = kvm_gate::kvm_backend();
    scenarios::threaded_no_leaks(&backend, &scenarios::Functions::locate(), 1000);
}
