//! KVM plumbing: one VM with its vCPUs and its memory, set up for a CPL3 program.

pub mod cpu;
mod error;
pub mod exception;
pub mod kick;
pub mod kvm;
pub mod layout;
pub mod recycle;
mod shadow;
pub mod spare;
pub mod teardown;
pub mod vcpu;
pub mod xsave;

pub use crate::mm::physical::AllocError;
pub use error::VmError;
pub use kick::KickError;
pub use kvm::KvmUnavailable;
pub use vcpu::{Exit, Vcpu};

use std::sync::Arc;

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;

use crate::mm::GuestMemory;
use crate::mm::physical::{PhysicalMemory, Slot};

/// A micro-VM: a KVM VM, its memory and its vCPUs, ready to run a program.
pub struct MicroVm {
    /// The vCPUs, the first one made with the VM, the others by [`MicroVm::add_vcpu`]
    /// (declared before `vm` so they are closed first). A running machine takes them out and
    /// puts them back before the VM is torn down.
    pub vcpus: Vec<Vcpu>,
    /// The VM; its memory holds the other handle, to register slots as the guest's use of
    /// memory grows (`mm/slots.rs`), and drops it before it unmaps anything.
    vm: Arc<VmFd>,
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
    let kernel = write_kernel_area(&physical)?;
    Ok(GuestMemory::new(physical, kernel)?)
}

/// Writes the VMM's kernel area into `physical`: descriptor tables, stubs, the kernel's page
/// tables, the vDSO and its data page.
fn write_kernel_area(physical: &PhysicalMemory) -> Result<crate::mm::KernelPages, VmError> {
    let vdso = crate::vdso::image().map_err(VmError::Vdso)?;
    let kernel = cpu::write_kernel_structures(physical, vdso.pages());
    physical.write(kernel.vdso, vdso.bytes());
    crate::vdso::write_vvar(physical, kernel.vvar, None, 0);
    Ok(kernel)
}

/// A CRC-32 of the kernel area as this build writes it into a new VM: its page tables,
/// descriptor tables, stubs, and the vDSO's code and data page. A snapshot file records it,
/// since a restored VM gets this build's kernel area while its programs hold addresses
/// into the one they ran with (glibc keeps the vDSO functions' addresses, the guest's
/// tables and stubs are where its threads enter and return): a file whose area differs
/// was taken by a build whose guests cannot go on in this one's. Worked out once per
/// process, in memory of its own; no KVM is needed.
pub fn kernel_area_identity() -> Result<u32, VmError> {
    static IDENTITY: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    if let Some(&identity) = IDENTITY.get() {
        return Ok(identity);
    }
    let physical = PhysicalMemory::new(2 << 20)?;
    write_kernel_area(&physical)?;
    let mut area = vec![0u8; usize::try_from(crate::mm::physical::KERNEL_USED).unwrap_or(0)];
    physical.read(crate::mm::physical::KERNEL_BASE, &mut area);
    Ok(*IDENTITY.get_or_init(|| crc32fast::hash(&area)))
}

/// The pages of the kernel area a new guest's page tables map, with their entries
/// ([`GuestMemory::kernel_area_leaves`]): all a snapshot file's tables may map of the
/// kernel area, and with no more access. Worked out once per process, in memory of its own;
/// no KVM is needed.
pub fn kernel_area_leaves() -> Result<&'static crate::mm::KernelLeaves, VmError> {
    static LEAVES: std::sync::OnceLock<crate::mm::KernelLeaves> = std::sync::OnceLock::new();
    if let Some(leaves) = LEAVES.get() {
        return Ok(leaves);
    }
    let leaves = guest_memory(2 << 20)?.kernel_area_leaves();
    Ok(LEAVES.get_or_init(|| leaves))
}

impl MicroVm {
    /// Creates a VM with `memory_bytes` of memory and one vCPU, with the kernel area in place.
    /// No in-kernel irqchip: the process model needs no interrupts, and one would make memory
    /// registration ~100x slower here (`docs/platform.md`).
    pub fn new(memory_bytes: u64) -> Result<MicroVm, VmError> {
        MicroVm::with_memory(|| guest_memory(memory_bytes))
    }

    /// Creates a VM, then its memory with `make`, registered as its slots, and one vCPU.
    fn with_memory(
        make: impl FnOnce() -> Result<GuestMemory, VmError>,
    ) -> Result<MicroVm, VmError> {
        let context = kvm::context()?;
        let vm = kvm::retry_interrupted(|| context.kvm.create_vm())
            .map_err(VmError::kvm("KVM_CREATE_VM"))?;
        let vm = Arc::new(vm);
        let memory = make()?;
        register_memory(&vm, memory.physical())?;
        let vcpu = new_vcpu(&vm, 0)?;
        Ok(MicroVm {
            vcpus: vec![vcpu],
            vm,
            memory,
        })
    }

    /// Creates a VM whose memory is restored from a snapshot at once: its function memory
    /// maps `file` (the snapshot's memory, `memory_bytes` long) copy-on-write from the
    /// start, its address space is `saved`. What [`MicroVm::new`] followed by
    /// [`GuestMemory::restore`] leaves, with one change fewer to the process's memory map,
    /// which every VM in the process hears of (`docs/platform.md`, "Many VMs in one
    /// process"). The first vCPU is made but not set up.
    pub fn restored(
        memory_bytes: u64,
        file: &std::fs::File,
        saved: &crate::mm::SavedSpace,
    ) -> Result<MicroVm, VmError> {
        MicroVm::with_memory(|| {
            let physical = PhysicalMemory::over_file(memory_bytes, file)?;
            write_kernel_area(&physical)?;
            Ok(GuestMemory::restored(physical, saved))
        })
    }

    /// The VM made as good as new for another program, instead of torn down
    /// (`recycle.rs`): the host memory under its slots replaced by fresh memory, KVM made to
    /// drop every shadow page table it built (not only the translations into the old
    /// memory: `docs/platform.md`, "Recycling a VM that ran"), the kernel area written and
    /// the address space made again, and every vCPU reset ([`Vcpu::reset`]).
    ///
    /// Memory on a 2 MiB boundary of the host is replaced in place and keeps the slots a new
    /// VM starts with (the kernel area's and the first piece of function memory); the slots
    /// of the pieces it grew are deleted, which drops the shadow pages, or, if it grew none,
    /// a slot added and deleted does (`shadow.rs`). Memory that [`MicroVm::restored`] made
    /// off that boundary has all its slots deleted and is replaced by new memory, which
    /// starts again from a new VM's slots. The VM must not be running. On an error it is
    /// torn down.
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
            if let Some(extra) = physical.renew_keeping_slots()? {
                // The slots a new VM starts with stay. Deleting any slot drops every shadow
                // page (`vm/shadow.rs`): the pieces the memory grew do it if there are any,
                // else one slot added and deleted.
                if extra.is_empty() {
                    shadow::drop_shadow_pages(&vm)?;
                } else {
                    delete_slots(&vm, extra)?;
                }
                return Ok(physical);
            }
            delete_slots(&vm, physical.detach())?;
            let physical = if physical.renewable() {
                physical.renew()?;
                physical
            } else {
                // Memory made over a snapshot file sits where the kernel put the file, maybe
                // off the 2 MiB boundary huge pages need: new memory replaces it.
                let size = physical.user_size();
                drop(physical);
                PhysicalMemory::new(size)?
            };
            register_memory(&vm, &physical)?;
            Ok(physical)
        })();
        match renewed.and_then(furnish) {
            Ok(memory) => Ok(MicroVm { vcpus, vm, memory }),
            Err(error) => {
                // The vCPUs and the VM go first, then the memory at the end of this function.
                // If the renewal or `furnish` failed, the memory is gone already while its
                // slots are still registered, until the VM closes right here. Nothing reaches
                // it meanwhile: KVM touches guest memory only for a running vCPU, and these
                // never run again; so not even a kernel area already handed to another VM
                // (`mm/kernel_area.rs`).
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

/// Attaches `physical` to the VM: its slots planned so far are registered now, and each
/// piece of function memory it covers later when it covers it (`mm/slots.rs`).
fn register_memory(vm: &Arc<VmFd>, physical: &PhysicalMemory) -> Result<(), VmError> {
    let vm = Arc::clone(vm);
    physical
        .attach(Box::new(move |number, slot| {
            register_slot(&vm, number, slot)
        }))
        .map_err(|error| {
            VmError::kvm("KVM_SET_USER_MEMORY_REGION")(kvm_ioctls::Error::new(
                error.raw_os_error().unwrap_or(libc::EIO),
            ))
        })
}

/// Makes memory slot `number` of `vm` hold `slot` (`KVM_SET_USER_MEMORY_REGION`); a size of 0
/// deletes the slot.
///
/// # Safety
///
/// The host range `[slot.host, slot.host + slot.size)` must stay mapped for as long as the
/// slot exists (nothing is owed when deleting).
unsafe fn set_slot(vm: &VmFd, number: u32, slot: Slot) -> Result<(), kvm_ioctls::Error> {
    let region = kvm_userspace_memory_region {
        slot: number,
        flags: 0,
        guest_phys_addr: slot.guest_phys,
        memory_size: slot.size,
        userspace_addr: slot.host as u64,
    };
    // SAFETY: the caller keeps the host range mapped while the slot exists (the contract
    // above), which is all KVM needs of it.
    unsafe { vm.set_user_memory_region(region) }
}

/// Registers `slot` of a VM's memory as memory slot `number`.
fn register_slot(vm: &VmFd, number: u32, slot: Slot) -> std::io::Result<()> {
    // SAFETY: the region is part of the host mappings of the `PhysicalMemory` that calls
    // this (its registrar), and they outlive the slot: that memory drops its registrar, the
    // VM's last handle but one, before it unmaps anything, and `MicroVm` closes its vCPUs and
    // its own handle before it drops the memory; `MicroVm::renew` deletes the slots before
    // it gives the memory up.
    unsafe { set_slot(vm, number, slot) }
        .map_err(|error| std::io::Error::from_raw_os_error(error.errno()))
}

/// Deletes `slots` from the VM (size 0, by number), which drops every shadow page KVM built
/// (`shadow.rs`).
fn delete_slots(vm: &VmFd, slots: Vec<(u32, Slot)>) -> Result<(), VmError> {
    for (number, slot) in slots {
        // SAFETY: deleting a slot makes KVM stop using its memory; no host memory is handed
        // over.
        unsafe { set_slot(vm, number, Slot { size: 0, ..slot }) }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::vm::kick::Deadline;

    /// `mov rax, [rip + 0xf9]` (the quadword at the page's offset 0x100), then `syscall`.
    const LOAD_AND_CALL: [u8; 9] = [0x48, 0x8b, 0x05, 0xf9, 0, 0, 0, 0x0f, 0x05];

    /// Runs the code at `entry` on the first vCPU until its first exit.
    fn run_from(vm: &mut MicroVm, entry: u64) -> Exit {
        let physical = vm.memory.physical();
        let vcpu = &mut vm.vcpus[0];
        vcpu.start(entry, 0).expect("start");
        let deadline = Deadline::arm(Instant::now() + Duration::from_secs(10));
        vcpu.run(physical, &deadline, None, &AtomicBool::new(false))
            .expect("run")
    }

    /// Runs the code at `entry` until its first syscall; returns the syscall's number.
    fn first_syscall(vm: &mut MicroVm, entry: u64) -> u64 {
        assert_eq!(run_from(vm, entry), Exit::Syscall);
        vm.vcpus[0].syscall().number
    }

    /// Bytes of function memory KVM holds as slots (all but the kernel area's slot).
    fn registered_bytes(vm: &MicroVm) -> u64 {
        let slots = vm.memory.physical().planned_slots();
        assert_eq!(slots[0].1.guest_phys, crate::mm::physical::KERNEL_BASE);
        slots[1..].iter().map(|(_, slot)| slot.size).sum()
    }

    /// Whether KVM holds no slot of `vm` at guest-physical `at`: a 4 KiB slot can be made
    /// there (it is deleted again), where one over a slot KVM holds is refused (`EEXIST`).
    fn no_slot_at(vm: &MicroVm, at: u64) -> bool {
        let slot = Slot {
            guest_phys: at,
            host: shadow::page().expect("the page") as *mut u8,
            size: crate::mm::physical::PAGE,
        };
        // SAFETY: the slot is made over the process-wide page `shadow.rs` never unmaps, and
        // deleted right below.
        match unsafe { set_slot(&vm.vm, 4_001, slot) } {
            Ok(()) => {
                delete_slots(&vm.vm, vec![(4_001, slot)]).expect("deleted");
                true
            }
            Err(error) if error.errno() == libc::EEXIST => false,
            Err(error) => panic!("KVM_SET_USER_MEMORY_REGION at {at:#x}: {error}"),
        }
    }

    /// Writes `LOAD_AND_CALL` (loading `number`) into a fresh stretch of the guest that gets
    /// a whole chunk of its own, after taking `stretches` chunks below it; returns its
    /// address and the chunk's guest-physical address.
    fn code_in_a_high_chunk(vm: &MicroVm, stretches: u64, number: u64) -> (u64, u64) {
        const RWX: u64 = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64;
        const ANON: u64 = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        const CHUNK: u64 = 2 << 20;
        let len = (stretches + 1) * CHUNK;
        let start = vm.memory.mmap(0, len + CHUNK, RWX, ANON).expect("mmap");
        let start = start.next_multiple_of(CHUNK);
        for stretch in 0..stretches {
            vm.memory
                .write(start + stretch * CHUNK, &[1])
                .expect("touch");
        }
        let code = start + stretches * CHUNK;
        vm.memory.write(code, &LOAD_AND_CALL).expect("code");
        vm.memory
            .write(code + 0x100, &number.to_le_bytes())
            .expect("data");
        let frame = vm.memory.translate(code).expect("a frame");
        (code, frame)
    }

    /// KVM is told of the function memory as the guest comes to use it (`mm/slots.rs`): a
    /// new VM of 128 MiB registers 8 MiB of it, and code the guest runs from a chunk near the
    /// top of its memory, handed out later, is memory to KVM, not an MMIO exit. So it is
    /// after the VM is renewed (which keeps the first 8 MiB and deletes the other slots,
    /// however the memory grows next), and in a VM restored from a
    /// snapshot taken there, either way a restore is made.
    #[test]
    #[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
    fn memory_high_in_the_guest_is_in_a_slot_before_the_guest_runs_there() {
        let mut vm = MicroVm::new(128 << 20).expect("a VM (needs /dev/kvm)");
        assert_eq!(registered_bytes(&vm), 8 << 20, "a new VM");
        let (code, frame) = code_in_a_high_chunk(&vm, 50, 231);
        assert!(frame >= 100 << 20, "the code's frame {frame:#x} is high");
        assert!(registered_bytes(&vm) > frame);
        assert!(registered_bytes(&vm) <= 128 << 20);
        assert_eq!(first_syscall(&mut vm, code), 231);

        let file = crate::host::sealable_memory_file(c"slot-growth-test").expect("memfd");
        let saved = vm.memory.save(&file).expect("save");

        assert!(!no_slot_at(&vm, 100 << 20));

        let mut vm = vm.renew().expect("renewed");
        assert_eq!(registered_bytes(&vm), 8 << 20, "a renewed VM");
        assert!(!no_slot_at(&vm, 0), "it keeps the first piece's slot");
        assert!(no_slot_at(&vm, 100 << 20), "KVM holds no other");
        // It grows otherwise than before: its second piece is not the last program's, which
        // KVM would refuse to have over a slot of that number still there.
        let (low, _) = code_in_a_high_chunk(&vm, 3, 61);
        assert_eq!(registered_bytes(&vm), 16 << 20);
        assert_eq!(first_syscall(&mut vm, low), 61);
        let (again, _) = code_in_a_high_chunk(&vm, 50, 60);
        assert_eq!(first_syscall(&mut vm, again), 60);

        let mut restored = MicroVm::restored(128 << 20, &file, &saved).expect("restored VM");
        assert!(registered_bytes(&restored) > frame);
        assert_eq!(first_syscall(&mut restored, code), 231);

        let spare = MicroVm::new(128 << 20).expect("a VM");
        spare.memory.restore(&file, &saved).expect("restore");
        let mut spare = spare;
        assert!(registered_bytes(&spare) > frame);
        assert_eq!(first_syscall(&mut spare, code), 231);
    }

    /// A memory size that is not a whole number of chunks (129 MiB): the short last chunk,
    /// which the frame pool cuts into frames first (the first page tables are there), is a
    /// slot of its own, and the whole chunks below it come as the guest uses them.
    #[test]
    #[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
    fn the_short_last_chunk_is_a_slot_of_its_own() {
        let mut vm = MicroVm::new(129 << 20).expect("a VM (needs /dev/kvm)");
        let pieces: Vec<(u64, u64)> = vm.memory.physical().planned_slots()[1..]
            .iter()
            .map(|(_, slot)| (slot.guest_phys, slot.size))
            .collect();
        assert_eq!(pieces, [(128 << 20, 1 << 20)]);
        let (code, frame) = code_in_a_high_chunk(&vm, 10, 231);
        assert!((20 << 20..128 << 20).contains(&frame));
        assert_eq!(first_syscall(&mut vm, code), 231);
        assert_eq!(registered_bytes(&vm), (1 << 20) + (32 << 20));
    }

    /// A renewed VM's guest sees only its own page tables, also where KVM's shadow of the
    /// last program's tables would lead elsewhere: the page-table frame that mapped the last
    /// program's data serves another stretch now, and the address it mapped is not mapped
    /// at all. KVM keeps the links between shadow tables when only the memory under them is
    /// replaced, so without every shadow page dropped the read below would land in the new
    /// stretch (`docs/platform.md`, "Recycling a VM that ran"). Both ways a VM is renewed:
    /// with its slots kept (`shadow.rs`), and with the slots its memory grew deleted.
    #[test]
    #[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
    fn a_renewed_vm_follows_only_its_own_page_tables() {
        renewed_vm_follows_only_its_own_page_tables(false);
        renewed_vm_follows_only_its_own_page_tables(true);
    }

    /// The test above; with `grown`, the last program also used memory high enough for more
    /// slots than a new VM has.
    fn renewed_vm_follows_only_its_own_page_tables(grown: bool) {
        const RW: u64 = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        const RWX: u64 = RW | libc::PROT_EXEC as u64;
        const ANON: u64 = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        const FIXED: u64 = ANON | libc::MAP_FIXED as u64;
        // Two stretches under one page directory, each in 4 KiB pages.
        const OLD: u64 = 0x1000_0000;
        const NEW: u64 = 0x2000_0000;
        const AT: u64 = 0x5008;
        /// `mov rax, [address]` (absolute, 64-bit).
        fn load(address: u64) -> Vec<u8> {
            let mut code = vec![0x48, 0xa1];
            code.extend_from_slice(&address.to_le_bytes());
            code
        }
        const SYSCALL: [u8; 2] = [0x0f, 0x05];

        let mut vm = MicroVm::new(128 << 20).expect("a VM (needs /dev/kvm)");
        let code = vm.memory.mmap(0, 4096, RWX, ANON).expect("mmap");
        vm.memory
            .write(code, &[load(OLD + AT), SYSCALL.to_vec()].concat())
            .expect("code");
        assert_eq!(vm.memory.mmap(OLD, 0x10000, RW, FIXED), Ok(OLD));
        vm.memory
            .write(OLD + AT, &0x1111u64.to_le_bytes())
            .expect("data");
        assert_eq!(first_syscall(&mut vm, code), 0x1111);
        let table = vm.memory.table_of(OLD + AT).expect("a page table");
        if grown {
            let (high, _) = code_in_a_high_chunk(&vm, 50, 231);
            assert_eq!(first_syscall(&mut vm, high), 231);
        }
        let slots = vm.memory.physical().planned_slots().len();
        assert_eq!(
            slots > 2,
            grown,
            "the memory has more slots than a new VM's (the kernel area's and one piece) \
             only if it grew; else nothing but `shadow.rs` drops the shadow pages"
        );

        let mut vm = vm.renew().expect("renewed");
        assert_eq!(vm.memory.physical().planned_slots().len(), 2);
        let code = vm.memory.mmap(0, 4096, RWX, ANON).expect("mmap");
        let program = [load(NEW + AT), load(OLD + AT), SYSCALL.to_vec()].concat();
        vm.memory.write(code, &program).expect("code");
        assert_eq!(vm.memory.mmap(NEW, 0x10000, RW, FIXED), Ok(NEW));
        vm.memory
            .write(NEW + AT, &0x2222u64.to_le_bytes())
            .expect("data");
        assert_eq!(
            vm.memory.table_of(NEW + AT),
            Some(table),
            "the new stretch's page table is the frame that served the old one"
        );
        assert_eq!(
            vm.memory.table_of(OLD + AT),
            None,
            "nothing maps the old one"
        );
        match run_from(&mut vm, code) {
            Exit::Exception(fault) => {
                assert_eq!(fault.vector, 14);
                assert_eq!(fault.fault_address, Some(OLD + AT));
            }
            Exit::Syscall => panic!(
                "read {:#x} through a page table the new program does not have (grown: {grown})",
                vm.vcpus[0].syscall().number
            ),
            other => panic!("unexpected exit {other:?}"),
        }
    }

    /// A VM made for a restore (its memory mapped from the snapshot file from the start) runs
    /// what the file holds, and what it writes stays its own.
    #[test]
    #[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
    fn a_vm_made_over_a_snapshot_file_runs_what_the_file_holds() {
        const RWX: u64 = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64;
        const ANON: u64 = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        let mut original = MicroVm::new(16 << 20).expect("a VM (needs /dev/kvm)");
        let code = original.memory.mmap(0, 4096, RWX, ANON).expect("mmap");
        original.memory.write(code, &LOAD_AND_CALL).expect("code");
        original
            .memory
            .write(code + 0x100, &231u64.to_le_bytes())
            .expect("data");
        assert_eq!(first_syscall(&mut original, code), 231);
        let file = crate::host::sealable_memory_file(c"restored-vm-test").expect("memfd");
        let saved = original.memory.save(&file).expect("save");

        let mut restored = MicroVm::restored(16 << 20, &file, &saved).expect("restored VM");
        assert!(
            restored.memory.physical().regions()[0].host
                != original.memory.physical().regions()[0].host
        );
        assert_eq!(first_syscall(&mut restored, code), 231);
        restored
            .memory
            .write(code + 0x100, &60u64.to_le_bytes())
            .expect("data");
        assert_eq!(first_syscall(&mut restored, code), 60);

        let mut other = MicroVm::restored(16 << 20, &file, &saved).expect("restored VM");
        assert_eq!(
            first_syscall(&mut other, code),
            231,
            "the write stayed in its VM"
        );

        // Renewed for reuse, it holds fresh memory on a 2 MiB boundary, not the file's.
        let mut renewed = restored.renew().expect("renewed");
        assert!(renewed.memory.physical().renewable());
        assert!(
            renewed.memory.read_vec(code, 1).is_err(),
            "nothing mapped there now"
        );
        let code = renewed.memory.mmap(0, 4096, RWX, ANON).expect("mmap");
        assert_eq!(renewed.memory.read_vec(code + 0x100, 8).unwrap(), [0; 8]);
        renewed.memory.write(code, &LOAD_AND_CALL).expect("code");
        assert_eq!(first_syscall(&mut renewed, code), 0);
    }
}
