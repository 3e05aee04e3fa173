//! Where things live in guest memory. Guest physical and virtual addresses are the same
//! (identity mapping), so one set of constants serves the page tables and the kernel.
//!
//! ```text
//! 0x0000_0000  null page (not present)                     \
//! 0x0000_1000  PML4, PDPT, page directories, page table    |  first 2 MiB, 4 KiB pages:
//! 0x0000_e000  GDT, TSS + I/O bitmap, IDT                  |  read-only for the program
//! 0x0001_0000  syscall stub, exception stubs               |  except the kernel stack
//! 0x0002_0000  kernel stack (to 0x3_0000)                  /
//! 0x0003_0000  not present up to 2 MiB
//! 0x0020_0000  program image (ELF), then brk heap growing up
//!      ...     mmap area growing down
//!              2 MiB guard (not present)
//! top-8 MiB    initial thread stack, growing down to the guard
//! ```

/// Size of one large page; the identity map uses 2 MiB pages.
pub const LARGE_PAGE: u64 = 2 << 20;
/// Size of a small page, the granularity of mmap and brk.
pub const PAGE: u64 = 4096;

/// The PML4 table.
pub const PML4: u64 = 0x1000;
/// The single PDPT (covers 512 GiB, far beyond the 10 GiB limit).
pub const PDPT: u64 = 0x2000;
/// The first page directory; one follows per GiB of guest memory (at most 10).
pub const PAGE_DIRECTORIES: u64 = 0x3000;
/// The page table that maps the first 2 MiB with 4 KiB pages.
pub const LOW_PAGE_TABLE: u64 = 0xd000;
/// The GDT: null, kernel code, kernel data, user data, user code, TSS (two slots).
pub const GDT: u64 = 0xe000;
/// The 64-bit TSS, which holds RSP0 for exception entry.
pub const TSS: u64 = 0xe100;
/// The IDT: 32 gates for the CPU exceptions.
pub const IDT: u64 = 0xf000;
/// The `syscall` entry point (LSTAR): `out SYSCALL_PORT, al; iretq`.
pub const SYSCALL_ENTRY: u64 = 0x1_0000;
/// Where the syscall stub's `iretq` sits.
pub const SYSCALL_RETURN: u64 = SYSCALL_ENTRY + 2;
/// Exception stubs, 16 bytes each: `mov al, vector; out EXCEPTION_PORT, al; hlt`.
pub const EXCEPTION_STUBS: u64 = 0x1_0100;
/// Bytes per exception stub.
pub const EXCEPTION_STUB_SIZE: u64 = 16;
/// Bottom of the kernel stack.
pub const KERNEL_STACK_BOTTOM: u64 = 0x2_0000;
/// Top of the kernel stack (TSS.RSP0); exception frames and the sysret frame live below it.
pub const KERNEL_STACK_TOP: u64 = 0x3_0000;

/// First address the guest program may use.
pub const USER_START: u64 = LARGE_PAGE;
/// Where a position-independent (static-pie) program is loaded.
pub const PIE_LOAD_BASE: u64 = 0x40_0000;
/// Size of the initial thread's stack (Linux's default RLIMIT_STACK).
pub const STACK_SIZE: u64 = 8 << 20;
/// Size of the unmapped gap below the stack that turns an overflow into a fault.
pub const STACK_GUARD_SIZE: u64 = LARGE_PAGE;

/// Port the syscall stub writes to.
pub const SYSCALL_PORT: u16 = 0x80;
/// Port the exception stubs write to; the data byte is the vector.
pub const EXCEPTION_PORT: u16 = 0x81;

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
    /// The TSS.
    pub const TSS: u16 = 0x28;
}

/// The guest address map for one memory size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// End of mapped memory: the memory size rounded down to a large page.
    pub mapped_end: u64,
    /// Top of the initial stack (exclusive).
    pub stack_top: u64,
    /// Lowest address of the stack.
    pub stack_bottom: u64,
    /// Lowest address of the guard below the stack; the mmap area ends here.
    pub guard_start: u64,
}

impl Layout {
    /// The layout of a guest with `memory_bytes` of memory.
    pub fn new(memory_bytes: u64) -> Layout {
        let mapped_end = memory_bytes & !(LARGE_PAGE - 1);
        let stack_bottom = mapped_end - STACK_SIZE;
        Layout {
            mapped_end,
            stack_top: mapped_end,
            stack_bottom,
            guard_start: stack_bottom - STACK_GUARD_SIZE,
        }
    }

    /// Whether `[addr, addr + len)` is memory the guest program may use (and so may name in
    /// a syscall): above the kernel area, below the end, outside the stack guard.
    pub fn is_user_range(&self, addr: u64, len: u64) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        if addr < USER_START || end > self.mapped_end {
            return false;
        }
        end <= self.guard_start || addr >= self.stack_bottom
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ranges_exclude_kernel_guard_and_overflow() {
        let layout = Layout::new(128 << 20);
        assert_eq!(layout.stack_top, 128 << 20);
        assert!(layout.is_user_range(USER_START, 16));
        assert!(!layout.is_user_range(0, 8));
        assert!(!layout.is_user_range(USER_START - 1, 2));
        assert!(!layout.is_user_range(layout.guard_start, 1));
        assert!(!layout.is_user_range(layout.guard_start - 8, 16));
        assert!(layout.is_user_range(layout.stack_bottom, 8));
        assert!(!layout.is_user_range(layout.stack_top - 4, 8));
        assert!(!layout.is_user_range(u64::MAX - 2, 8));
        assert!(layout.is_user_range(USER_START, 0));
    }

    #[test]
    fn odd_sizes_map_whole_large_pages() {
        let layout = Layout::new(129 << 20);
        assert_eq!(layout.mapped_end, 128 << 20);
    }
}
