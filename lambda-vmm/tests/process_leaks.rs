//! 200 create / invoke / shutdown cycles on the process backend leave no descriptor or thread
//! behind. Alone in its own test binary, so no other test's threads blur the count.

mod scenarios;

#[test]
fn two_hundred_cycles_leak_nothing() {
    let backend = lambda_vmm::ProcessBackend::new();
    scenarios::no_leaks(&backend, &scenarios::Functions::locate(), 200);
}
