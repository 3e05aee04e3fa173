//! Environments made, invoked and shut down through host processes leave no descriptors or
//! threads behind in the engine's process (pipes, reply threads, calls). A test binary of its
//! own, so no other test's processes come and go while it counts.

mod host_processes;
mod kvm_gate;
mod scenarios;

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn host_process_environments_leave_nothing_behind() {
    let (backend, functions) = host_processes::start(2);
    scenarios::no_leaks(&backend, &functions, 200);
}
