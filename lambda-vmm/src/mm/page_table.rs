//! The guest's x86-64 page tables (4 levels), which the VMM alone writes: they live in
//! frames the guest never maps, so the program cannot see or change them.
//!
//! A table frame, once made, serves the same stretch of the address space for the life of
//! the VM: it is never freed, never given another stretch and never reused as data. That is
//! what keeps KVM's shadow page tables honest on a PVM host, where KVM keys its shadow of a
//! guest table by the table's frame and never learns of the VMM's writes to it: a frame
//! reused for another stretch could bring back translations of the old one (see
//! `docs/platform.md`). A 2 MiB stretch mapped with a large page keeps its page table,
//! detached, for when it is split again.

use super::frames::{Became, FramePool};
use super::layout::{CHUNK, PAGE};
use super::physical::PhysicalMemory;

/// The entry maps something (or points to a table).
pub const PRESENT: u64 = 1 << 0;
/// Writes are allowed.
pub const WRITABLE: u64 = 1 << 1;
/// CPL3 may use it.
pub const USER: u64 = 1 << 2;
/// The CPU has used it (preset, so KVM maps neighbours ahead: see `docs/platform.md`).
pub const ACCESSED: u64 = 1 << 5;
/// The CPU has written through it (preset, likewise).
pub const DIRTY: u64 = 1 << 6;
/// A page-directory entry maps a 2 MiB page.
pub const LARGE: u64 = 1 << 7;
/// Software bit: the entry holds a frame even while not present (a `PROT_NONE` page keeps
/// its contents). The CPU ignores it.
pub const KEPT: u64 = 1 << 9;
/// Instruction fetches fault (needs EFER.NXE).
pub const NO_EXECUTE: u64 = 1 << 63;
/// The frame address bits of an entry.
pub const ADDRESS: u64 = 0x000f_ffff_ffff_f000;

/// Flags of the entries that point to tables: everything is decided at the last level.
const TABLE: u64 = PRESENT | WRITABLE | USER | ACCESSED;

/// Bytes in a table, as a host size.
pub(super) const TABLE_BYTES: usize = 4096;

/// Where the entry for `va` lies in the table at `table`, at `level` (4 = PML4 ... 1 = page
/// table): 9 bits of the address per level above the 12 of the page offset.
fn entry_at(table: u64, va: u64, level: usize) -> u64 {
    const SHIFT: [u32; 5] = [0, 12, 21, 30, 39];
    let shift = SHIFT.get(level).copied().unwrap_or(39);
    table | (((va >> shift) & 0x1ff) << 3)
}

/// The 512 entries of the table at `table`.
fn read_table(physical: &PhysicalMemory, table: u64) -> [u64; 512] {
    let mut bytes = [0u8; TABLE_BYTES];
    physical.read(table, &mut bytes);
    table_entries(&bytes)
}

/// The 512 entries a table's bytes hold (little-endian words).
pub(super) fn table_entries(bytes: &[u8; TABLE_BYTES]) -> [u64; 512] {
    let mut entries = [0u64; 512];
    for (entry, word) in entries.iter_mut().zip(bytes.chunks_exact(8)) {
        *entry = word.try_into().map_or(0, u64::from_le_bytes);
    }
    entries
}

/// The pool has no frame left for a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFrame;

/// A frame from `pool` for the guest, in a memory slot (`PhysicalMemory::cover`) before
/// anything can point at it; a chunk it cut is backed by small host pages from then on.
/// `None` when the pool is empty, or when the VM could not register the slot (the frame is
/// given back).
pub(super) fn take_frame(physical: &PhysicalMemory, pool: &mut FramePool) -> Option<u64> {
    let (frame, became) = pool.take_frame()?;
    if physical.cover(frame, PAGE).is_err() {
        pool.give_frame(frame);
        return None;
    }
    if let Some(Became::Frames(chunk)) = became {
        physical.prefer_huge(chunk, CHUNK, false);
    }
    Some(frame)
}

/// The entry that maps a page, where it lies and what it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// A 4 KiB page-table entry (present or not).
    Small { at: u64, entry: u64 },
    /// A page-directory entry mapping a 2 MiB page.
    Large { at: u64, entry: u64 },
}

/// The page tables of one address space.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PageTables {
    root: u64,
    /// Page tables of 2 MiB stretches now mapped with a large page, by stretch.
    detached: std::collections::BTreeMap<u64, u64>,
    /// Frames holding tables (they count against the function's memory).
    tables: u64,
}

impl PageTables {
    /// The guest-physical address of the root table (PML4).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Tables rooted at the PML4 in frame `root` (already written, zero or holding the
    /// kernel area's entries).
    pub fn new(root: u64) -> PageTables {
        PageTables {
            root,
            detached: std::collections::BTreeMap::new(),
            tables: 0,
        }
    }

    /// Frames of the function's memory used for tables.
    #[cfg(test)]
    pub fn table_frames(&self) -> u64 {
        self.tables
    }

    /// The frames of the tables kept detached from 2 MiB stretches now mapped with a large
    /// page.
    pub fn detached_tables(&self) -> impl Iterator<Item = &u64> {
        self.detached.values()
    }

    /// The entry mapping `va`, if the tables above it exist.
    pub fn leaf(&self, physical: &PhysicalMemory, va: u64) -> Option<Leaf> {
        let mut table = self.root;
        for level in (2..=4).rev() {
            let at = entry_at(table, va, level);
            let entry = physical.read_u64(at);
            if entry & PRESENT == 0 {
                return None;
            }
            if level == 2 && entry & LARGE != 0 {
                return Some(Leaf::Large { at, entry });
            }
            table = entry & ADDRESS;
        }
        let at = entry_at(table, va, 1);
        Some(Leaf::Small {
            at,
            entry: physical.read_u64(at),
        })
    }

    /// Calls `each(addr, len)` for what every present entry under the root points at: each
    /// table below the root (4 KiB) and each page the tables map (4 KiB, 2 MiB or 1 GiB).
    /// Everything the guest's MMU can reach through these tables.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn for_each_target(&self, physical: &PhysicalMemory, mut each: impl FnMut(u64, u64)) {
        const SIZES: [u64; 4] = [1 << 39, 1 << 30, 1 << 21, 1 << 12];
        let mut tables = vec![(self.root, 0usize)];
        while let Some((table, depth)) = tables.pop() {
            for entry in read_table(physical, table) {
                if entry & PRESENT == 0 {
                    continue;
                }
                let target = entry & ADDRESS;
                let leaf = depth == 3 || (depth >= 1 && entry & LARGE != 0);
                if leaf {
                    each(target, SIZES[depth]);
                } else {
                    each(target, PAGE);
                    tables.push((target, depth.saturating_add(1)));
                }
            }
        }
    }

    /// Calls `each(va, entry, large)` for every present entry that maps a page (`large`: a
    /// 2 MiB page) at a virtual address below `end`, in address order.
    pub fn for_each_leaf(
        &self,
        physical: &PhysicalMemory,
        end: u64,
        mut each: impl FnMut(u64, u64, bool),
    ) {
        let read = |table: u64| read_table(physical, table);
        let present = |entries: [u64; 512], base: u64, size: u64| {
            (0u64..)
                .zip(entries)
                .filter(|&(_, entry)| entry & PRESENT != 0)
                .map(move |(index, entry)| (base.saturating_add(index.saturating_mul(size)), entry))
                .take_while(move |&(va, _)| va < end)
        };
        const GIB: u64 = 1 << 30;
        for (va4, pml4e) in present(read(self.root), 0, 512 * GIB) {
            for (va3, pdpte) in present(read(pml4e & ADDRESS), va4, GIB) {
                if pdpte & LARGE != 0 {
                    continue;
                }
                for (va2, pde) in present(read(pdpte & ADDRESS), va3, CHUNK) {
                    if pde & LARGE != 0 {
                        each(va2, pde, true);
                        continue;
                    }
                    for (va1, pte) in present(read(pde & ADDRESS), va2, PAGE) {
                        each(va1, pte, false);
                    }
                }
            }
        }
    }

    /// A zeroed frame for a new table.
    fn new_table(
        &mut self,
        physical: &PhysicalMemory,
        pool: &mut FramePool,
    ) -> Result<u64, NoFrame> {
        let frame = take_frame(physical, pool).ok_or(NoFrame)?;
        self.tables = self.tables.saturating_add(1);
        Ok(frame)
    }

    /// Where the page-directory entry for `va` lies, making the tables above it as needed.
    pub fn directory_entry(
        &mut self,
        physical: &PhysicalMemory,
        pool: &mut FramePool,
        va: u64,
    ) -> Result<u64, NoFrame> {
        let mut table = self.root;
        for level in (3..=4).rev() {
            let at = entry_at(table, va, level);
            let entry = physical.read_u64(at);
            table = if entry & PRESENT != 0 {
                entry & ADDRESS
            } else {
                let frame = self.new_table(physical, pool)?;
                physical.write_u64(at, frame | TABLE);
                frame
            };
        }
        Ok(entry_at(table, va, 2))
    }

    /// Where the page-table entry for `va` lies, making the tables above it as needed. A
    /// stretch mapped with a large page must be split first ([`PageTables::split`]).
    pub fn table_entry(
        &mut self,
        physical: &PhysicalMemory,
        pool: &mut FramePool,
        va: u64,
    ) -> Result<u64, NoFrame> {
        let at = self.directory_entry(physical, pool, va)?;
        let entry = physical.read_u64(at);
        let table = if entry & PRESENT != 0 {
            debug_assert!(
                entry & LARGE == 0,
                "split a large page before mapping in it"
            );
            entry & ADDRESS
        } else {
            let stretch = va & !(CHUNK - 1);
            let frame = match self.detached.remove(&stretch) {
                Some(frame) => frame,
                None => self.new_table(physical, pool)?,
            };
            physical.write_u64(at, frame | TABLE);
            frame
        };
        Ok(entry_at(table, va, 1))
    }

    /// Maps the 2 MiB stretch holding `va` with one large page of `frame` and `flags`
    /// (without [`LARGE`], which this adds). The stretch's page table, if it had one, is
    /// kept for a later split; its entries must have mapped the same frames (they are then
    /// the same translations) or nothing.
    pub fn map_large(
        &mut self,
        physical: &PhysicalMemory,
        pool: &mut FramePool,
        va: u64,
        frame: u64,
        flags: u64,
    ) -> Result<(), NoFrame> {
        let at = self.directory_entry(physical, pool, va)?;
        let entry = physical.read_u64(at);
        if entry & PRESENT != 0 && entry & LARGE == 0 {
            let table = entry & ADDRESS;
            // Clear the detached table, so a later split starts from nothing stale.
            physical.write(table, &[0u8; TABLE_BYTES]);
            self.detached.insert(va & !(CHUNK - 1), table);
        }
        physical.write_u64(at, (frame & ADDRESS) | flags | LARGE);
        Ok(())
    }

    /// Replaces the large page mapping the stretch holding `va` with a page table mapping
    /// the same frames with the same flags: the same translations, so nothing needs
    /// forgetting. Nothing to do if the stretch has no large page.
    pub fn split(
        &mut self,
        physical: &PhysicalMemory,
        pool: &mut FramePool,
        va: u64,
    ) -> Result<(), NoFrame> {
        let Some(Leaf::Large { at, entry }) = self.leaf(physical, va) else {
            return Ok(());
        };
        let stretch = va & !(CHUNK - 1);
        let table = match self.detached.remove(&stretch) {
            Some(table) => table,
            None => self.new_table(physical, pool)?,
        };
        let base = entry & ADDRESS;
        let flags = entry & !ADDRESS & !LARGE;
        let mut entries = Vec::with_capacity(TABLE_BYTES);
        for page in 0..CHUNK / PAGE {
            let pte = base.saturating_add(page.saturating_mul(PAGE)) | flags;
            entries.extend_from_slice(&pte.to_le_bytes());
        }
        physical.write(table, &entries);
        physical.write_u64(at, table | TABLE);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::mm::physical::KERNEL_BASE;

    fn setup() -> (PhysicalMemory, FramePool, PageTables) {
        let physical = PhysicalMemory::new(16 << 20).unwrap();
        let pool = FramePool::new(0, 16 << 20);
        (physical, pool, PageTables::new(KERNEL_BASE))
    }

    #[test]
    fn small_pages_make_their_tables() {
        let (physical, mut pool, mut tables) = setup();
        let va = 0x7fff_0000_3000;
        assert_eq!(tables.leaf(&physical, va), None);
        let at = tables.table_entry(&physical, &mut pool, va).unwrap();
        physical.write_u64(at, 0x5000 | PRESENT | USER);
        assert_eq!(
            tables.leaf(&physical, va),
            Some(Leaf::Small {
                at,
                entry: 0x5000 | PRESENT | USER
            })
        );
        assert_eq!(tables.table_frames(), 3);
        // A neighbour shares the tables.
        tables.table_entry(&physical, &mut pool, va + PAGE).unwrap();
        assert_eq!(tables.table_frames(), 3);
    }

    #[test]
    fn large_pages_split_into_the_same_frames_and_keep_their_table() {
        let (physical, mut pool, mut tables) = setup();
        let va = 0x4000_0000;
        let frame = 2 << 20;
        tables
            .map_large(&physical, &mut pool, va, frame, PRESENT | USER | WRITABLE)
            .unwrap();
        assert!(matches!(
            tables.leaf(&physical, va + 5 * PAGE),
            Some(Leaf::Large { .. })
        ));
        tables.split(&physical, &mut pool, va).unwrap();
        let Some(Leaf::Small { entry, .. }) = tables.leaf(&physical, va + 5 * PAGE) else {
            panic!("split into small pages");
        };
        assert_eq!(entry, (frame + 5 * PAGE) | PRESENT | USER | WRITABLE);
        let frames = tables.table_frames();
        tables
            .map_large(&physical, &mut pool, va, frame, PRESENT | USER)
            .unwrap();
        tables.split(&physical, &mut pool, va).unwrap();
        assert_eq!(
            tables.table_frames(),
            frames,
            "the detached table is reused"
        );
    }
}
