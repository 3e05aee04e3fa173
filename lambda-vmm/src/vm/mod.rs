//! KVM plumbing: one VM with one vCPU and its memory, set up for a CPL3 program.

pub mod cpu;
mod error;
pub mod exception;
pub mod kick;
pub mod kvm;
pub mod layout;
pub mod memory;
pub mod spare;
pub mod teardown;
pub mod vcpu;

pub use error::VmError;
pub use kick::KickError;
pub use kvm::KvmUnavailable;
pub use memory::AllocError;
pub use memory::{Fault, GuestMemory};
pub use vcpu::{Exit, Vcpu};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;

/// A micro-VM: a KVM VM, its memory and its one vCPU, ready to run a program.
pub struct MicroVm {
    /// The vCPU (declared before `vm` so it is closed first).
    pub vcpu: Vcpu,
    _vm: VmFd,
    /// The guest's memory (dropped last: KVM must no longer use it).
    pub memory: GuestMemory,
}

impl MicroVm {
    /// Creates a VM with `memory_bytes` of memory and one vCPU, with page tables, descriptor
    /// tables and stubs in place. No in-kernel irqchip: the process model needs no interrupts,
    /// and one would make memory registration ~100x slower here (PLATFORM.md).
    pub fn new(memory_bytes: u64) -> Result<MicroVm, VmError> {
        let context = kvm::context()?;
        let vm = context
            .kvm
            .create_vm()
            .map_err(VmError::kvm("KVM_CREATE_VM"))?;
        let memory = GuestMemory::new(memory_bytes)?;
        let (host, size) = memory.host_mapping();
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: size,
            userspace_addr: host as u64,
        };
        // SAFETY: the region describes `memory`'s mapping, which lives as long as the VM:
        // `MicroVm` drops `memory` after the VM and vCPU fds are closed.
        unsafe { vm.set_user_memory_region(region) }
            .map_err(VmError::kvm("KVM_SET_USER_MEMORY_REGION"))?;
        cpu::write_kernel_structures(&memory);
        let vcpu_fd = vm.create_vcpu(0).map_err(VmError::kvm("KVM_CREATE_VCPU"))?;
        vcpu_fd
            .set_cpuid2(&context.cpuid)
            .map_err(VmError::kvm("KVM_SET_CPUID2"))?;
        Ok(MicroVm {
            vcpu: Vcpu::new(vcpu_fd),
            _vm: vm,
            memory,
        })
    }
}
