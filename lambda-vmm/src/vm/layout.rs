//! The kernel area: the VMM's own pages in the guest, in their own memory slot above the
//! function's memory (guest-physical `KERNEL_BASE`), some of them also mapped at the top of
//! the lower half (`KERNEL_VIRT`), where no program mapping can reach.
//!
//! ```text
//! offset   what                                   mapped at
//! 0x0000   PML4 (CR3)                              nowhere
//! 0x1000   PDPT of the last 512 GiB                nowhere
//! 0x2000   page directory of the last GiB          nowhere
//! 0x3000   page table of the last 2 MiB            nowhere
//! 0x4000   GDT, a TSS + I/O bitmap per vCPU        KERNEL_VIRT + 0x4000, read-only
//! 0x5000   IDT                                     KERNEL_VIRT + 0x5000, read-only
//! 0x6000   syscall, exception and touch stubs      KERNEL_VIRT + 0x6000, read-only
//! 0x7000   kernel stacks, 1 KiB per vCPU (to 0x9000) KERNEL_VIRT + 0x7000, writable
//! 0x9000   vDSO data page (vvar)                   mm::layout::VVAR, read-only
//! 0xa000   vDSO code (up to 0xc000)                mm::layout::VDSO, read-only
//! 0xc000   unused (to 0x10000): never backed       nowhere
//! ```
//!
//! The page tables are reachable only by physical address: the program cannot see them.
//! The mapped pages carry the user bit because PVM runs the guest's ring 0 with user page
//! permissions (a supervisor-only stub page faults on fetch there); all but the kernel stack
//! are read-only, and the kernel stack holds nothing but the frames of the current entry.

use crate::mm::layout::{KERNEL_VIRT, PAGE};
use crate::mm::physical::{KERNEL_BASE, KERNEL_SIZE, KERNEL_USED};

/// The PML4.
pub const PML4: u64 = KERNEL_BASE;
/// The PDPT of the last 512 GiB (PML4 entry 255).
pub const KERNEL_PDPT: u64 = KERNEL_BASE + 0x1000;
/// The page directory of the last GiB (PDPT entry 511).
pub const KERNEL_PD: u64 = KERNEL_BASE + 0x2000;
/// The page table of the last 2 MiB, which maps the kernel area (PD entry 511).
pub const KERNEL_PT: u64 = KERNEL_BASE + 0x3000;
/// Most vCPUs an environment has (Lambda's CPU share tops out at 6 at 10,240 MB).
pub const MAX_VCPUS: usize = 6;
/// The GDT: null, kernel code, kernel data, user data, user code, then one TSS descriptor
/// (two slots) per vCPU.
pub const GDT: u64 = KERNEL_BASE + 0x4000;
/// Entries of the GDT.
pub const GDT_ENTRIES: u64 = 5 + 2 * MAX_VCPUS as u64;
/// The first vCPU's 64-bit TSS, which holds RSP0 for exception entry, and its I/O bitmap;
/// the others follow every [`TSS_STRIDE`] bytes.
pub const TSS: u64 = GDT + 0x100;
/// Bytes between two vCPUs' TSSs.
pub const TSS_STRIDE: u64 = 0x100;
/// The IDT: 32 gates for the CPU exceptions.
pub const IDT: u64 = KERNEL_BASE + 0x5000;
/// The `syscall` entry point (LSTAR): `out SYSCALL_PORT, al; iretq`.
pub const SYSCALL_ENTRY: u64 = KERNEL_BASE + 0x6000;
/// Where the syscall stub's `iretq` sits.
pub const SYSCALL_RETURN: u64 = SYSCALL_ENTRY + 2;
/// Exception stubs, 16 bytes each: `out EXCEPTION_PORTS + vector, al`, then (for a vector
/// with an error code) `add rsp, 8`, then `iretq`: a fault the VMM resolved returns to the
/// faulting instruction with every register as it was.
pub const EXCEPTION_STUBS: u64 = SYSCALL_ENTRY + 0x100;
/// Bytes per exception stub.
pub const EXCEPTION_STUB_SIZE: u64 = 16;
/// The touch stubs, used only to warm a machine restored ahead of time before it is handed
/// out (`machine/warm.rs`): each reads (the first) or writes (the second, a locked `or` of
/// zero, which leaves the byte as it was) the byte each of [`TOUCH_REGISTERS`] general
/// registers points at, then `out SYSCALL_PORT, al`. They run at ring 3 and touch only what
/// the program's own page tables let ring 3 touch, so a program that jumps to one gains
/// nothing it did not have.
pub const TOUCH_READ_STUB: u64 = SYSCALL_ENTRY + 0x400;
/// See [`TOUCH_READ_STUB`].
pub const TOUCH_WRITE_STUB: u64 = SYSCALL_ENTRY + 0x500;
/// Addresses one run of a touch stub touches: every general register but `rsp`.
pub const TOUCH_REGISTERS: usize = 15;
/// Bottom of the kernel stack.
pub const KERNEL_STACK_BOTTOM: u64 = KERNEL_BASE + 0x7000;
/// Top of the kernel stacks; the first vCPU's stack ends here, the others below it every
/// [`KERNEL_STACK_SIZE`] bytes.
pub const KERNEL_STACK_TOP: u64 = KERNEL_BASE + 0x9000;
/// Bytes of kernel stack per vCPU: an entry puts at most one exception frame (48 bytes) or
/// one return frame (40 bytes) there.
pub const KERNEL_STACK_SIZE: u64 = 0x400;

/// The TSS of vCPU `slot`.
pub const fn tss(slot: usize) -> u64 {
    TSS + slot as u64 * TSS_STRIDE
}

/// The kernel stack of vCPU `slot` (physical start and end): its TSS.RSP0 is the end.
pub const fn kernel_stack(slot: usize) -> (u64, u64) {
    let top = KERNEL_STACK_TOP - slot as u64 * KERNEL_STACK_SIZE;
    (top - KERNEL_STACK_SIZE, top)
}
/// The vDSO's data page.
pub const VVAR_FRAME: u64 = KERNEL_BASE + 0x9000;
/// The vDSO's code.
pub const VDSO_FRAMES: u64 = KERNEL_BASE + 0xa000;
/// Most pages of vDSO code.
pub const VDSO_MAX_PAGES: u64 = crate::vdso::MAX_PAGES;

/// The pages mapped at [`KERNEL_VIRT`] (physical start and end, and whether writable).
pub const MAPPED: [(u64, u64, bool); 4] = [
    (GDT, GDT + PAGE, false),
    (IDT, IDT + PAGE, false),
    (SYSCALL_ENTRY, SYSCALL_ENTRY + PAGE, false),
    (KERNEL_STACK_BOTTOM, KERNEL_STACK_TOP, true),
];

/// The virtual address of a mapped kernel-area page's byte at physical `addr`.
pub const fn virt(addr: u64) -> u64 {
    KERNEL_VIRT + (addr - KERNEL_BASE)
}

/// The physical address of a byte of a mapped kernel-area page at `addr` (the inverse of
/// [`virt`]).
pub const fn phys(addr: u64) -> u64 {
    addr - KERNEL_VIRT + KERNEL_BASE
}

/// Port the syscall stub writes to.
pub const SYSCALL_PORT: u16 = 0x80;
/// First of the 32 ports the exception stubs write to: the port is `EXCEPTION_PORTS +
/// vector`, so no register is spent saying which vector it was.
pub const EXCEPTION_PORTS: u16 = 0xa0;

/// Segment selectors (GDT index * 8 | RPL).
pub mod selector {
    /// Kernel code, ring 0.
    pub const KERNEL_CODE: u16 = 0x08;
    /// Kernel data, ring 0.
    pub const KERNEL_DATA: u16 = 0x10;
    /// User data, ring 3 (SYSRET's SS = STAR bits 63:48 + 8).
    pub const USER_DATA: u16 = 0x1b;
    /// User code, ring 3 (SYSRET's CS = STAR bits 63:48 + 16).
    pub const USER_CODE: u16 = 0x23;
    /// The TSS of vCPU `slot`.
    pub const fn tss(slot: usize) -> u16 {
        0x28 + 16 * slot as u16
    }
}

const _: () = {
    assert!(VDSO_FRAMES + VDSO_MAX_PAGES * PAGE <= KERNEL_BASE + KERNEL_USED);
    assert!(KERNEL_USED <= KERNEL_SIZE);
    assert!(KERNEL_VIRT % (2 << 20) == 0);
    assert!(GDT_ENTRIES * 8 <= TSS - GDT);
    assert!(tss(MAX_VCPUS) <= GDT + PAGE);
    assert!(kernel_stack(MAX_VCPUS - 1).0 >= KERNEL_STACK_BOTTOM);
    assert!(EXCEPTION_STUBS + 32 * EXCEPTION_STUB_SIZE <= TOUCH_READ_STUB);
};
