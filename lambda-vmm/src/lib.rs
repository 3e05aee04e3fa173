//! One execution environment per KVM micro-VM.
//!
//! The function's own x86-64 ELF (static, or dynamic with its `ld.so` from a base image)
//! runs at CPL3 in 64-bit long mode in a 47-bit virtual address space whose page tables the VMM keeps (mappings cost nothing until
//! touched; protections are enforced; a vDSO answers the clocks without an exit), and the
//! VMM is its kernel: `syscall` lands on a two-byte
//! ring-0 stub that exits to the VMM, which performs the call against the environment's state
//! and returns with an emulated SYSRET. Each `syscall` instruction seen this way is then
//! rewritten in the VM's copy-on-write memory to `out 0x80, al` (also two bytes), which exits
//! from ring 3 directly: on nested hosts, where ring 0 is emulated, that saves a third of
//! every syscall's cost. CPU exceptions reach an IDT whose stubs report the vector: a page
//! fault the program's mappings allow is resolved and the program goes on; any other is a
//! crash, reported with its signal and address. On hosts where ring-0 guest code is emulated
//! (nested PVM clouds) this is the only design that runs the guest at native speed.
//!
//! The entry point is [`MicroVmBackend`], a [`lambda_core::Backend`]. [`HostProcessBackend`]
//! keeps the same micro-VMs in several VM host processes (the crate's `lambda-vmm-host`
//! binary), so no one process holds thousands of them. [`ProcessBackend`] runs the same
//! programs as child processes for hosts without `/dev/kvm` (no isolation).
//!
//! An invocation's path through the source, top to bottom: `backend.rs` (the backend makes
//! environments) -> `env/` (the two contracts side by side: `runtime_api.rs`, `stdio.rs`) ->
//! `machine/` (a booted program: the vCPU run loop joined to the kernel, and the threads
//! that share the vCPU) -> `vm/` (KVM: the VM, the kernel area, the vCPU, the deadline kick, spare VMs, teardown), `kernel/`
//! (the guest's syscalls) and `mm/` (the guest's memory: its address space, page tables and
//! the one checked accessor for guest pointers) -> the Runtime API of `lambda-core`.
//! `snapshot.rs` is a function frozen after Init, which `machine/snapshot.rs` takes and
//! restores into new VMs.
//! `program/` turns a package into a checked, staged image (with its interpreter, for a
//! dynamic program) and its initial stack; `base_image.rs` is the read-only `/` a function
//! may have; `vdso/` is
//! the guest's vDSO; `host.rs` holds the few host syscalls made outside KVM; `process/` is
//! the development backend; `host_process/` forwards a backend's calls to VM host processes
//! (`mod.rs` the backend, `process.rs` one process, `wire.rs` the messages, `serve.rs` the
//! host's side).

#![deny(missing_docs)]
// `unsafe` lives only in the KVM (`vm/`), guest-memory (`mm/physical.rs`,
// `mm/kernel_area.rs`) and host-syscall (`host.rs`) modules, each block with a `// SAFETY:`
// line.
#![deny(unsafe_code, clippy::undocumented_unsafe_blocks)]

mod backend;
mod base_image;
mod code_scan;
mod env;
mod error;
mod file_forms;
#[cfg(test)]
mod forged_state;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[allow(unsafe_code)]
mod host;
pub mod host_process;
mod kernel;
mod machine;
mod mm;
mod process;
mod program;
mod snap_start;
mod snapshot;
mod sync;
mod trace;
mod vdso;
#[allow(unsafe_code)]
mod vm;

pub use backend::MicroVmBackend;
pub use env::{RunStats, RuntimeApiEnvironment, StdioEnvironment};
pub use error::VmmError;
pub use host_process::{HostProcessBackend, HostProcessError};
pub use kernel::{MAX_THREADS, RUNTIME_API_ENDPOINT};
pub use process::ProcessBackend;
pub use program::LoadError;
pub use snap_start::MAX_SNAPSHOTS;
pub use snapshot::{QUIESCE_TIMEOUT, Snapshot, SnapshotError};
pub use vm::recycle::release_kept_vms;
pub use vm::teardown::wait_for_teardown;
pub use vm::{AllocError, KickError, KvmUnavailable, VmError};

/// Reads a function's code as an environment will (a zip must hold a `bootstrap`; the
/// limits on unzipped code apply), so a front end can refuse a bad package when it is
/// uploaded instead of at its first invocation.
pub fn check_package(code: &lambda_core::CodeLocation) -> Result<(), LoadError> {
    program::read_package(code).map(|_| ())
}

/// Whether KVM can be used on this host, and if not, why.
pub fn kvm_available() -> Result<(), KvmUnavailable> {
    vm::kvm::context().map(|_| ())
}
