//! Making KVM drop every shadow page table it built for a VM, with its memory slots kept.
//!
//! Replacing a VM's memory under its slots is not enough to make the VM new: KVM's mmu
//! notifier drops every shadow entry *into* the old memory, but the links between shadow
//! tables stay, and KVM follows a present link without checking it against the guest's
//! tables. Deleting a memory slot, any slot, drops every shadow page of the VM (x86 KVM's
//! default, `KVM_X86_QUIRK_SLOT_ZAP_ALL`, which this VMM never turns off). So instead of
//! deleting the VM's own slots and registering them again, [`drop_shadow_pages`] adds a
//! 4 KiB slot of its own and deletes it: one registration and one deletion, however many
//! slots the memory has (`pt_update_probe e`, `docs/platform.md`, "Recycling a VM that ran").
//! A VM whose memory grew more slots than a new VM's has no need of it: deleting those does
//! the same (`MicroVm::renew`).

use std::sync::Mutex;

use kvm_ioctls::VmFd;

use super::{VmError, delete_slots, set_slot};
use crate::mm::physical::{AllocError, KERNEL_BASE, KERNEL_SIZE, PAGE, Slot};
use crate::sync::lock;

/// The slot's number: above every number the memory's own slots take (the kernel area's,
/// then one per piece of function memory, a few dozen at most: `mm/slots.rs`), and below
/// KVM's limit on x86 (32,764).
const SLOT: u32 = 4_000;

/// Where the slot sits in guest-physical memory: just above the kernel area, where no slot
/// is and no page table of the guest's points.
const GUEST_PHYS: u64 = KERNEL_BASE + KERNEL_SIZE;

/// One read-only page of zeros, mapped once for the process (retried if mapping it failed)
/// and never unmapped, that every VM's passing slot is made over. No vCPU runs while the slot
/// exists and nothing maps it for the guest, so KVM never reads or writes it.
pub(super) fn page() -> Result<u64, AllocError> {
    static PAGE_AT: Mutex<Option<u64>> = Mutex::new(None);
    let mut page = lock(&PAGE_AT);
    if let Some(at) = *page {
        return Ok(at);
    }
    // SAFETY: a new private anonymous mapping at an address the kernel picks; nothing else
    // refers to it, and it is never unmapped, so the address stays valid for every slot made
    // over it.
    let at = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE as usize,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if at == libc::MAP_FAILED {
        return Err(AllocError::host(PAGE, std::io::Error::last_os_error()));
    }
    *page = Some(at as u64);
    Ok(at as u64)
}

/// Drops every shadow page table KVM holds for `vm` by adding a 4 KiB slot and deleting it.
/// No vCPU of `vm` may be running.
pub(super) fn drop_shadow_pages(vm: &VmFd) -> Result<(), VmError> {
    let slot = Slot {
        guest_phys: GUEST_PHYS,
        host: page()? as *mut u8,
        size: PAGE,
    };
    // SAFETY: the slot is made over `page()`, mapped for the life of the process, so its
    // host memory outlives it; it is deleted right below.
    unsafe { set_slot(vm, SLOT, slot) }.map_err(VmError::kvm("KVM_SET_USER_MEMORY_REGION"))?;
    delete_slots(vm, vec![(SLOT, slot)])
}
