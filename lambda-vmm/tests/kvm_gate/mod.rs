//! The gate in front of every test that needs KVM, shared by this crate's tests and the root
//! package's (which include this file by path).
//!
//! A KVM test runs for real, and fails when `/dev/kvm` cannot be used, with a message that
//! names the opt-out. Whoever runs the tests can opt out explicitly by building them with
//! `LAMBDA_SKIP_KVM_TESTS=1`: the build scripts of `lambda-vmm` and of the root package then
//! set `cfg(skip_kvm_tests)`, every KVM test carries
//! `#[cfg_attr(skip_kvm_tests, ignore = ...)]`, and each test binary's summary line counts
//! them as ignored (`test result: ok. 0 passed; 0 failed; 18 ignored`). `.ci/run` never opts
//! out.

#![allow(dead_code)] // Each test crate uses what it needs.

use lambda_vmm::MicroVmBackend;

/// The environment variable that opts out of the KVM tests when set to `1` at build time.
pub const OPT_OUT: &str = "LAMBDA_SKIP_KVM_TESTS";

/// The micro-VM backend. Panics, naming the opt-out, when KVM cannot be used.
pub fn kvm_backend() -> MicroVmBackend {
    MicroVmBackend::new().unwrap_or_else(|error| {
        panic!(
            "this test needs KVM, and KVM is unusable here: {error}. Give the user running the \
             tests read and write access to /dev/kvm, or skip the KVM tests explicitly with \
             {OPT_OUT}=1 (they are then reported as ignored)"
        )
    })
}
