//! Shared helpers for the integration tests: where the guest programs are, and the KVM gate.

#![allow(dead_code)]

#[path = "../../lambda-vmm/tests/kvm_gate/mod.rs"]
mod kvm_gate;
pub use kvm_gate::kvm_backend;

use std::path::PathBuf;
use std::time::Duration;

use lambda::core::{CodeLocation, Contract, FunctionConfig};

/// The directory the build script compiled `functions/` into.
pub fn functions_dir() -> PathBuf {
    PathBuf::from(env!("LAMBDA_FUNCTIONS_DIR"))
}

/// The path of one guest program.
pub fn function(name: &str) -> PathBuf {
    functions_dir().join(name)
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
