//! 200 create / invoke / shutdown cycles of warm micro-VM environments leave no descriptor or
//! thread behind. Alone in its own test binary, so no other test's VMs blur the count.

mod scenarios;

#[test]
fn two_hundred_cycles_leak_nothing() {
    let backend = match lambda_vmm::MicroVmBackend::new() {
        Ok(backend) => backend,
        Err(error) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but KVM is unusable: {error}")
        }
        Err(error) => {
            eprintln!("skipped: /dev/kvm unusable ({error})");
            return;
        }
    };
    scenarios::no_leaks(&backend, &scenarios::Functions::locate(), 200);
}
