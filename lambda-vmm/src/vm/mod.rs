//! KVM plumbing: one VM with its vCPUs and its memory, set up for a CPL3 program.

pub mod cpu;
mod error;
pub mod exception;
pub mod kick;
pub mod kvm;
pub mod layout;
pub mod recycle;
pub mod spare;
pub mod teardown;
pub mod vcpu;

pub use crate::mm::physical::AllocError;
pub use error::VmError;
pub use kick::KickError;
pub use kvm::KvmUnavailable;
pub use vcpu::{Exit, Vcpu};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;

use crate::mm::GuestMemory;
use crate::mm::physical::PhysicalMemory;

/// A micro-VM: a KVM VM, its memory and its vCPUs, ready to run a program.
pub struct MicroVm {
    /// The vCPUs, the first one made with the VM, the others by [`MicroVm::add_vcpu`]
    /// (declared before `vm` so they are closed first). A running machine takes them out and
    /// puts them back before the VM is torn down.
    pub vcpus: Vec<Vcpu>,
    vm: VmFd,
    /// The guest's memory (dropped last: KVM must no longer use it).
    pub memory: GuestMemory,
}

/// The memory of a new guest of `memory_bytes`: the kernel area written (descriptor tables,
/// stubs, the vDSO) and an address space holding the stack and the vDSO. No KVM is needed
/// to make it (the kernel's tests and fuzz target use it alone).
pub fn guest_memory(memory_bytes: u64) -> Result<GuestMemory, VmError> {
    furnish(PhysicalMemory::new(memory_bytes)?)
}

/// `physical` (all zero) with the kernel area written and a new address space over it.
fn furnish(physical: PhysicalMemory) -> Result<GuestMemory, VmError> {
    let vdso = crate::vdso::image().map_err(VmError::Vdso)?;
    let kernel = cpu::write_kernel_structures(&physical, vdso.pages());
    physical.write(kernel.vdso, vdso.bytes());
    crate::vdso::write_vvar(&physical, kernel.vvar, None, 0);
    Ok(GuestMemory::new(physical, kernel)?)
}

impl MicroVm {
    /// Creates a VM with `memory_bytes` of memory and one vCPU, with the kernel area in place.
    /// No in-kernel irqchip: the process model needs no interrupts, and one would make memory
    /// registration ~100x slower here (`docs/platform.md`).
    pub fn new(memory_bytes: u64) -> Result<MicroVm, VmError> {
        let context = kvm::context()?;
        let vm = kvm::retry_interrupted(|| context.kvm.create_vm())
            .map_err(VmError::kvm("KVM_CREATE_VM"))?;
        let memory = guest_memory(memory_bytes)?;
        register_memory(&vm, memory.physical())?;
        let vcpu = new_vcpu(&vm, 0)?;
        Ok(MicroVm {
            vcpus: vec![vcpu],
            vm,
            memory,
        })
    }

    /// The VM made as good as new for another program, instead of torn down
    /// (`recycle.rs`): both memory slots' host memory replaced by fresh memory, the slots
    /// deleted and registered again (which makes KVM drop every shadow page table it built,
    /// not only the translations into the old memory: `docs/platform.md`, "Recycling a VM
    /// that ran"), the kernel area written and the address space made again, and every vCPU
    /// reset ([`Vcpu::reset`]). The VM must not be running. On an error it is torn down.
    pub fn renew(self) -> Result<MicroVm, VmError> {
        let MicroVm {
            mut vcpus,
            vm,
            memory,
        } = self;
        let physical = memory.into_physical();
        let renewed = (|| {
            for vcpu in &mut vcpus {
                vcpu.reset()?;
            }
            physical.renew()?;
            unregister_memory(&vm, &physical)?;
            register_memory(&vm, &physical)?;
            Ok(())
        })();
        match renewed.and_then(|()| furnish(physical)) {
            Ok(memory) => Ok(MicroVm { vcpus, vm, memory }),
            Err(error) => {
                // The vCPUs and the VM go first, then the memory at the end of this function;
                // if `furnish` failed it has dropped the memory already, which KVM copes with
                // for the moment until the VM closes, right here.
                drop(vcpus);
                drop(vm);
                Err(error)
            }
        }
    }

    /// Makes vCPU `slot` (below [`layout::MAX_VCPUS`], not made before), at ring 3 and ready
    /// for [`Vcpu::resume`]. About 0.2 ms (`docs/platform.md`, "vCPUs").
    pub fn add_vcpu(&self, slot: usize) -> Result<Vcpu, VmError> {
        let mut vcpu = new_vcpu(&self.vm, slot)?;
        vcpu.start(0, 0)?;
        Ok(vcpu)
    }
}

/// Registers `physical`'s slots with the VM, in order from slot 0.
fn register_memory(vm: &VmFd, physical: &PhysicalMemory) -> Result<(), VmError> {
    for (slot, region) in (0u32..).zip(physical.slots()) {
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: region.guest_phys,
            memory_size: region.size,
            userspace_addr: region.host as u64,
        };
        // SAFETY: the region describes one of `physical`'s host mappings, which live as long
        // as the VM: `MicroVm` drops its memory after the VM and vCPU fds are closed, and
        // `MicroVm::renew` tears the VM down first when it gives the memory up.
        unsafe { vm.set_user_memory_region(region) }
            .map_err(VmError::kvm("KVM_SET_USER_MEMORY_REGION"))?;
    }
    Ok(())
}

/// Deletes `physical`'s slots from the VM (size 0): KVM drops every shadow page it built.
fn unregister_memory(vm: &VmFd, physical: &PhysicalMemory) -> Result<(), VmError> {
    for (slot, region) in (0u32..).zip(physical.slots()) {
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: region.guest_phys,
            memory_size: 0,
            userspace_addr: region.host as u64,
        };
        // SAFETY: deleting a slot makes KVM stop using its memory; no host memory is handed
        // over.
        unsafe { vm.set_user_memory_region(region) }
            .map_err(VmError::kvm("KVM_SET_USER_MEMORY_REGION"))?;
    }
    Ok(())
}

fn new_vcpu(vm: &VmFd, slot: usize) -> Result<Vcpu, VmError> {
    let context = kvm::context()?;
    if slot >= layout::MAX_VCPUS {
        return Err(VmError::kvm("KVM_CREATE_VCPU")(kvm_ioctls::Error::new(
            libc::EINVAL,
        )));
    }
    let fd = vm
        .create_vcpu(slot as u64)
        .map_err(VmError::kvm("KVM_CREATE_VCPU"))?;
    fd.set_cpuid2(&context.cpuid)
        .map_err(VmError::kvm("KVM_SET_CPUID2"))?;
    Vcpu::new(fd, slot)
}
