//! Sets `cfg(skip_kvm_tests)` when the tests are built with `LAMBDA_SKIP_KVM_TESTS=1`: the
//! explicit opt-out that turns the KVM tests into ignored ones (see `tests/kvm_gate`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(skip_kvm_tests)");
    println!("cargo::rerun-if-env-changed=LAMBDA_SKIP_KVM_TESTS");
    if std::env::var_os("LAMBDA_SKIP_KVM_TESTS").is_some_and(|value| value == "1") {
        println!("cargo::rustc-cfg=skip_kvm_tests");
    }
}
