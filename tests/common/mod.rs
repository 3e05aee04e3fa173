//! Shared helpers for the integration tests: where the guest programs are, and the KVM gate.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use lambda::core::{CodeLocation, Contract, FunctionConfig};
use lambda::vmm::MicroVmBackend;

/// The directory the build script compiled `functions/` into.
pub fn functions_dir() -> PathBuf {
    PathBuf::from(env!("LAMBDA_FUNCTIONS_DIR"))
}

/// The path of one guest program.
pub fn function(name: &str) -> PathBuf {
    functions_dir().join(name)
}

/// The micro-VM backend, or `None` (with a note) when KVM is unusable outside CI.
/// Under CI (`CI` set) an unusable `/dev/kvm` fails the test loudly.
pub fn kvm_backend() -> Option<MicroVmBackend> {
    match MicroVmBackend::new() {
        Ok(backend) => Some(backend),
        Err(error) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but KVM is unusable: {error}")
        }
        Err(error) => {
            eprintln!("skipped: /dev/kvm unusable ({error})");
            None
        }
    }
}

/// A one-shot stdio configuration for guest program `name`.
pub fn stdio_config(name: &str) -> FunctionConfig {
    FunctionConfig::new(
        name.replace(['.'], "-"),
        CodeLocation::Executable(function(name)),
    )
    .with_contract(Contract::Stdio)
    .with_timeout(Duration::from_secs(10))
}
