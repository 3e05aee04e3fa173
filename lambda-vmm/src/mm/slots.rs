//! The memory slots KVM knows the guest's memory by, grown as the guest comes to use its
//! function memory.
//!
//! KVM keeps metadata for every 4 KiB page of a memory slot from the moment the slot is
//! registered, used or not; under shadow paging (PVM) that is a reverse-map entry (8 bytes)
//! and write tracking (2 bytes) a page, and large-page information. A slot of 128 MiB costs
//! 340 KiB of the host's vmalloc and 0.08-0.17 ms to register, one of 3,008 MiB 7.4 MiB and
//! 1.7-2.8 ms, one of 8 MiB 40 KiB and 0.03-0.05 ms (`slot_growth_probe`, `docs/platform.md`,
//! "Memory slots that grow with use"). An idle environment uses a few MiB of its memory, so
//! the function memory is registered in pieces instead of whole:
//!
//! - slot 0 is the kernel area;
//! - the function memory from its start is covered by pieces that grow as frames of higher
//!   chunks are handed out: the first at least [`MIN_PIECE`], each later one at least
//!   doubling what is covered, up to the last whole chunk;
//! - the short last chunk of a memory size that is not a whole number of chunks, which the
//!   frame pool hands out frames from first, is a piece of its own.
//!
//! A guest access to guest-physical memory that no slot covers is not memory but an MMIO
//! exit. So a frame is covered before the VMM hands it out (`PhysicalMemory::cover`), which is
//! before any page-table entry points at it, and a vCPU running on another thread can never
//! reach an uncovered frame. Pieces are only added while the memory lives. Renewing the
//! memory for another program in place keeps the kernel area's slot and the first piece's,
//! what a new memory starts with, and the VM deletes the others; memory that cannot be
//! renewed in place starts again from nothing.

#![deny(clippy::arithmetic_side_effects)]

use super::layout::CHUNK;

/// One piece of host memory to register with KVM as a memory slot.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// Its guest-physical address.
    pub guest_phys: u64,
    /// Where the host mapped it.
    pub host: *mut u8,
    /// Its size in bytes.
    pub size: u64,
}

/// Registers one memory slot (its number, and what it holds) with the VM that owns the
/// memory; set by that VM ([`crate::vm::MicroVm`]), so `mm` needs no KVM.
pub type Registrar = Box<dyn Fn(u32, Slot) -> std::io::Result<()> + Send + Sync>;

/// The slot number of the kernel area; the function memory's pieces follow it in the order
/// they were added.
pub const KERNEL_SLOT: u32 = 0;

/// The slot number of the first piece of function memory; each later piece takes the next.
pub const FIRST_PIECE_SLOT: u32 = 1;

/// The memory's slots: what is planned, and the VM that registers it, once attached.
pub struct Slots {
    /// The pieces of function memory covered.
    pub plan: Plan,
    /// The VM's registrar, while the memory is attached to one.
    pub registrar: Option<Registrar>,
}

/// The smallest first piece of function memory: 8 MiB, which holds what restored `hello`
/// and `runtime-loop` use (a snapshot of the Rust `lambda_runtime` function needs 16).
pub const MIN_PIECE: u64 = 8 << 20;

/// Which pieces of the function memory (`[0, size)` guest-physical) are covered by slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    size: u64,
    /// Bytes covered from the start, a whole number of chunks.
    prefix: u64,
    /// Whether the short last chunk is covered.
    tail: bool,
    /// The pieces covered, in the order they were added: (guest-physical start, length).
    pieces: Vec<(u64, u64)>,
}

impl Plan {
    /// Nothing covered yet of `size` bytes of function memory.
    pub fn new(size: u64) -> Plan {
        Plan {
            size,
            prefix: 0,
            tail: false,
            pieces: Vec::new(),
        }
    }

    /// The pieces covered, in the order they were added.
    pub fn pieces(&self) -> &[(u64, u64)] {
        &self.pieces
    }

    /// Where the whole chunks end (and the short last chunk, if any, starts).
    fn whole_end(&self) -> u64 {
        self.size.saturating_sub(self.size % CHUNK)
    }

    /// The pieces to add so that `[addr, addr + len)` (inside the function memory) is
    /// covered, lowest first: none if it is already. A range past the memory yields none
    /// (nothing can hand out a frame there).
    pub fn needed(&self, addr: u64, len: u64) -> Vec<(u64, u64)> {
        let Some(end) = addr
            .checked_add(len)
            .filter(|&end| end <= self.size && len > 0)
        else {
            return Vec::new();
        };
        let whole_end = self.whole_end();
        let mut pieces = Vec::new();
        if addr < whole_end {
            let want = end.min(whole_end);
            if want > self.prefix {
                // Round up to a chunk, at least double the prefix, at least the first piece.
                let rounded = want.div_ceil(CHUNK).saturating_mul(CHUNK);
                let grown = rounded
                    .max(self.prefix.saturating_mul(2))
                    .max(MIN_PIECE)
                    .min(whole_end);
                pieces.push((self.prefix, grown.saturating_sub(self.prefix)));
            }
        }
        if end > whole_end && !self.tail {
            pieces.push((whole_end, self.size.saturating_sub(whole_end)));
        }
        pieces
    }

    /// Records `piece` (one [`Plan::needed`] returned) as covered.
    pub fn add(&mut self, piece: (u64, u64)) {
        let (start, len) = piece;
        // A piece of the prefix starts below the whole chunks' end; the short chunk at it.
        if start == self.whole_end() {
            self.tail = true;
        } else {
            self.prefix = self.prefix.max(start.saturating_add(len));
        }
        self.pieces.push(piece);
    }

    /// Forgets every piece but the first, as when the slots of the others are deleted:
    /// what is left is what a new memory of this size may start with.
    pub fn keep_first(&mut self) {
        self.pieces.truncate(1);
        self.prefix = 0;
        self.tail = false;
        if let Some(&(start, len)) = self.pieces.first() {
            if start == self.whole_end() {
                self.tail = true;
            } else {
                self.prefix = start.saturating_add(len);
            }
        }
    }

    /// Whether `[addr, addr + len)` is covered.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn covers(&self, addr: u64, len: u64) -> bool {
        self.needed(addr, len).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn cover(plan: &mut Plan, addr: u64, len: u64) -> Vec<(u64, u64)> {
        let pieces = plan.needed(addr, len);
        for &piece in &pieces {
            plan.add(piece);
        }
        assert!(plan.covers(addr, len));
        pieces
    }

    #[test]
    fn pieces_start_at_eight_mib_and_double() {
        let mut plan = Plan::new(128 * MIB);
        assert_eq!(cover(&mut plan, 0, 4096), [(0, 8 * MIB)]);
        assert!(cover(&mut plan, 8 * MIB - 4096, 4096).is_empty());
        assert_eq!(cover(&mut plan, 8 * MIB, 4096), [(8 * MIB, 8 * MIB)]);
        assert_eq!(cover(&mut plan, 20 * MIB, CHUNK), [(16 * MIB, 16 * MIB)]);
        // A chunk far above what is covered is covered at once, with everything below it.
        assert_eq!(cover(&mut plan, 100 * MIB, CHUNK), [(32 * MIB, 70 * MIB)]);
        assert_eq!(cover(&mut plan, 127 * MIB, 4096), [(102 * MIB, 26 * MIB)]);
        assert!(cover(&mut plan, 0, 128 * MIB).is_empty());
        let total: u64 = plan.pieces().iter().map(|&(_, len)| len).sum();
        assert_eq!(total, 128 * MIB);
    }

    #[test]
    fn the_short_last_chunk_is_a_piece_of_its_own() {
        let mut plan = Plan::new(129 * MIB);
        assert_eq!(cover(&mut plan, 128 * MIB, 4096), [(128 * MIB, MIB)]);
        assert!(
            !plan.covers(0, 4096),
            "the whole chunks are not covered by it"
        );
        assert_eq!(cover(&mut plan, 0, 4096), [(0, 8 * MIB)]);
        assert!(cover(&mut plan, 128 * MIB + 4096, 4096).is_empty());
        // Growing the prefix to the last whole chunk leaves the short one as it was.
        assert_eq!(cover(&mut plan, 126 * MIB, CHUNK), [(8 * MIB, 120 * MIB)]);
        assert!(plan.covers(0, 129 * MIB));
    }

    #[test]
    fn a_range_across_both_gets_both() {
        let mut plan = Plan::new(11 * MIB);
        assert_eq!(
            cover(&mut plan, 9 * MIB, 2 * MIB),
            [(0, 10 * MIB), (10 * MIB, MIB)]
        );
    }

    #[test]
    fn a_memory_smaller_than_one_chunk_is_one_piece() {
        let mut plan = Plan::new(MIB);
        assert_eq!(cover(&mut plan, 0, 4096), [(0, MIB)]);
        assert!(cover(&mut plan, MIB - 4096, 4096).is_empty());
    }

    #[test]
    fn the_first_piece_is_never_past_the_memory() {
        let mut plan = Plan::new(4 * MIB);
        assert_eq!(cover(&mut plan, 0, 4096), [(0, 4 * MIB)]);
    }

    #[test]
    fn keeping_the_first_piece_forgets_the_others() {
        let mut plan = Plan::new(128 * MIB);
        cover(&mut plan, 0, 4096);
        let first = plan.clone();
        cover(&mut plan, 100 * MIB, CHUNK);
        plan.keep_first();
        assert_eq!(plan, first);
        assert_eq!(cover(&mut plan, 8 * MIB, 4096), [(8 * MIB, 8 * MIB)]);

        let mut plan = Plan::new(129 * MIB);
        cover(&mut plan, 128 * MIB, 4096);
        let first = plan.clone();
        cover(&mut plan, 0, 4096);
        plan.keep_first();
        assert_eq!(plan, first);
        assert!(plan.covers(128 * MIB, MIB));
        assert!(!plan.covers(0, 4096));

        let mut plan = Plan::new(16 * MIB);
        plan.keep_first();
        assert_eq!(plan, Plan::new(16 * MIB));
    }

    #[test]
    fn nothing_outside_the_memory_is_ever_covered() {
        let plan = Plan::new(16 * MIB);
        assert!(plan.needed(16 * MIB, 4096).is_empty());
        assert!(plan.needed(u64::MAX, 2).is_empty());
        assert!(plan.needed(0, 0).is_empty());
    }
}
