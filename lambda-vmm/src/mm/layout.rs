//! The guest's virtual address space, as a program on Linux x86-64 sees it: 47 bits of user
//! addresses, the program image low, the brk heap after it, mappings placed top-down below
//! the stack, and the vDSO above the stack. The VMM's own structures (descriptor tables,
//! stubs, kernel stack) sit in the last 2 MiB below 2^47, which no mapping may reach.
//!
//! ```text
//! 0x0000_0000_0000  not mappable (below MIN_MAP_ADDRESS, as Linux's vm.mmap_min_addr)
//! 0x0000_0040_0000  program image (a static-pie program is loaded here), then the heap
//!       ...         anything a program maps with MAP_FIXED or a hint (Go: 0xc0_0000_0000)
//! MMAP_TOP          mappings without an address, placed top-down from here
//!       ...         128 MiB gap
//! STACK_TOP - 8 MiB the initial thread's stack (8 MiB, Linux's default RLIMIT_STACK)
//! VVAR, VDSO        the vDSO's data page and code
//! KERNEL_TOP        descriptor tables, stubs, kernel stack (see `vm::layout`)
//! 0x8000_0000_0000  end of the lower half
//! ```

/// A small page: the granularity of mappings and protections.
pub const PAGE: u64 = 4096;
/// A large page, and the unit in which the function's memory is handed out whole.
pub const CHUNK: u64 = 2 << 20;

/// Lowest address a mapping may start at (Linux's default `vm.mmap_min_addr`).
pub const MIN_MAP_ADDRESS: u64 = 0x1_0000;
/// Where a position-independent program is loaded.
pub const PIE_LOAD_BASE: u64 = 0x40_0000;
/// Where a dynamic program's interpreter (`ld.so`) is loaded: high in the mmap area, as
/// Linux places it, with the area's top-down allocations above and below it.
pub const INTERP_BASE: u64 = 0x7f00_0000_0000;
/// Start of the VMM's area (descriptor tables, stubs, kernel stack), the last 2 MiB below
/// 2^47: every user address lies below it.
pub const KERNEL_VIRT: u64 = (1 << 47) - CHUNK;
/// End of the addresses a program may map.
pub const USER_END: u64 = KERNEL_VIRT;
/// The vDSO's data page (read-only to the program).
pub const VVAR: u64 = USER_END - CHUNK;
/// The vDSO's code, right above its data page.
pub const VDSO: u64 = VVAR + PAGE;
/// Top of the initial thread's stack (exclusive).
pub const STACK_TOP: u64 = VVAR - CHUNK;
/// Size of the initial thread's stack.
pub const STACK_SIZE: u64 = 8 << 20;
/// Lowest address of the stack.
pub const STACK_BOTTOM: u64 = STACK_TOP - STACK_SIZE;
/// Where mappings without an address are placed from, downwards: below the stack, with a
/// gap for it as Linux leaves one.
pub const MMAP_TOP: u64 = STACK_BOTTOM - (128 << 20);

/// Rounds `len` up to whole pages; `None` past the end of the address space.
pub fn page_align(len: u64) -> Option<u64> {
    len.checked_add(PAGE - 1).map(|l| l & !(PAGE - 1))
}

/// The 2 MiB-aligned stretch holding `addr`.
pub fn chunk_of(addr: u64) -> u64 {
    addr & !(CHUNK - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_ordered_and_aligned() {
        const {
            assert!(MIN_MAP_ADDRESS < PIE_LOAD_BASE);
            assert!(PIE_LOAD_BASE < MMAP_TOP);
            assert!(INTERP_BASE % CHUNK == 0 && INTERP_BASE + (64 << 20) < MMAP_TOP);
            assert!(MMAP_TOP < STACK_BOTTOM);
            assert!(STACK_TOP < VVAR);
            assert!(VDSO + PAGE <= USER_END);
            assert!(USER_END <= 1 << 47);
            assert!(STACK_TOP % CHUNK == 0 && STACK_BOTTOM % CHUNK == 0);
        }
        assert_eq!(page_align(1), Some(PAGE));
        assert_eq!(page_align(u64::MAX), None);
        assert_eq!(chunk_of(CHUNK + 5), CHUNK);
    }
}
