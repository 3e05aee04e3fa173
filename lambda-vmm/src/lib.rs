//! One execution environment per KVM micro-VM.
//!
//! The function's own static x86-64 ELF runs at CPL3 in 64-bit long mode on an
//! identity-mapped address space, and the VMM is its kernel: `syscall` lands on a two-byte
//! ring-0 stub that exits to the VMM, which performs the call against the environment's state
//! (see [`kernel`]) and returns with an emulated SYSRET. Each `syscall` instruction seen this
//! way is then rewritten in the VM's copy-on-write memory to `out 0x80, al` (also two bytes),
//! which exits from ring 3 directly: on nested hosts, where ring 0 is emulated, that saves a
//! third of every syscall's cost. Sites are remembered per program and applied to new VMs. CPU exceptions reach an IDT whose
//! stubs report the vector, so a crash is reported with its signal and address. On hosts
//! where ring-0 guest code is emulated (nested PVM clouds) this is the only design that runs
//! the guest at native speed.
//!
//! The entry point is [`MicroVmBackend`], a [`lambda_core::Backend`]. [`ProcessBackend`] runs
//! the same programs as child processes for hosts without `/dev/kvm` (no isolation).

#![deny(missing_docs)]

mod backend;
mod code;
mod environment;
mod error;
pub mod kernel;
pub mod loader;
mod machine;
mod oneshot;
pub mod process;
mod syscall_sites;
pub mod vm;

pub use backend::{MicroVmBackend, StdioEnvironment};
pub use code::CodePackage;
pub use environment::{RUNTIME_API_ENDPOINT, RuntimeApiEnvironment};
pub use error::VmmError;
pub use loader::{LoadError, ProgramImage};
pub use oneshot::RunStats;
pub use process::ProcessBackend;
pub use vm::teardown::wait_for_teardown;

/// Whether KVM can be used on this host, and if not, why.
pub fn kvm_available() -> Result<(), String> {
    vm::kvm::context().map(|_| ())
}
