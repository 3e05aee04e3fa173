//! Environments made, invoked and shut down through host processes leave no descriptors or
//! threads behind in the engine's process (pipes, reply threads, calls). A test binary of its
//! own, so no other test's processes come and go while it counts.

mod kvm_gate;
mod scenarios;

use lambda_vmm::HostProcessBackend;
use lambda_vmm::host_process::HostOptions;

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn host_process_environments_leave_nothing_behind() {
    kvm_gate::kvm_backend();
    let backend = HostProcessBackend::start(
        env!("CARGO_BIN_EXE_lambda-vmm-host"),
        2,
        HostOptions::default(),
    )
    .expect("start the host processes");
    scenarios::no_leaks(&backend, &scenarios::Functions::locate(), 200);
}
