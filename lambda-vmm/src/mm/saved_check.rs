//! Checks on the address space a snapshot file brings ([`SavedSpace`]): its page tables,
//! its frame pool, its mappings and the stretches' backings. The VMM walks and writes the
//! guest's tables trusting that they name only frames it placed, as the tables it builds
//! itself do (`page_table.rs`), indexes the pool by what the pool itself lists
//! (`frames.rs`), and gives frames back by what the backings count (`pages.rs`). What is
//! read back from a file is checked against the same rules before any VM uses it; the
//! file's checksum only tells accidental damage. The rest of the saved space (whether a
//! mapping of the program's memory is anonymous or its image, where large pages may go)
//! is taken as written.

use std::collections::{BTreeMap, BTreeSet};

use super::layout::{CHUNK, MIN_MAP_ADDRESS, PAGE, USER_END, VDSO, VVAR, chunk_of};
use super::page_table::{
    ADDRESS, KEPT, LARGE, NO_EXECUTE, PRESENT, TABLE_BYTES, WRITABLE, table_entries,
};
use super::physical::{KERNEL_BASE, KERNEL_SIZE, USER_BASE};
use super::space::{AddressSpace, Backing, MAX_LIBRARY_SITES, MAX_MAPPINGS};
use super::vma::Kind;
use super::{KERNEL_TABLE_PAGES, KernelLeaves, SavedSpace, host_size};

impl SavedSpace {
    /// Checks that the frame pool is one the VMM could have kept
    /// ([`super::frames::FramePool::check`]), and that the tables reach only what the VMM's
    /// own tables can reach; or says why not ("page tables ...", "frame pool ..."):
    ///
    /// - the root is the kernel area's first page, and the saved root tables are
    ///   [`KERNEL_TABLE_PAGES`] pages;
    /// - an entry pointing to a table names the kernel area's table for its level, or a frame
    ///   of the function's memory (below `memory_bytes`); no table is reached twice, and no
    ///   detached table is reached at all;
    /// - a page (4 KiB, or 2 MiB and aligned to it; never 1 GiB), present or kept while not
    ///   present, lies in the function's memory or in the kernel area past its tables (those
    ///   pages carry the user bit, as PVM needs: `vm/layout.rs`);
    /// - a page of the kernel area is mapped only where a new guest's tables map it
    ///   (`kernel_leaves`: the descriptor tables, stubs and kernel stacks at `KERNEL_VIRT`,
    ///   the vDSO), with a 4 KiB entry, and writable or executable only if it is there
    ///   (`mprotect` and `munmap` of the vDSO take access away, never add it): else the
    ///   program could write the stubs its syscalls and faults enter ring 0 through;
    /// - a 2 MiB page maps the whole chunk the address space backs its stretch with;
    /// - no page in the function's memory holds a table (whether the program may use it
    ///   now or only once its protection allows), and every table in the function's memory
    ///   (attached or detached) is a frame the pool has handed out, so it is never handed
    ///   out again;
    /// - the mappings are ones the syscalls could have made (`VmaMap::check`: none reaches
    ///   the VMM's area above the program's half), and the heap runs forwards inside it;
    /// - the stretches' backings account for the pages mapped (`check_backings`);
    /// - the vDSO's kinds of mapping lie only over the vDSO's pages, each one the tables
    ///   map (`check_vdso_mappings`);
    /// - no memory is stored in a frame the pool holds free (a frame comes back discarded,
    ///   so it reads as zero, and zero pages are not stored; one stored there would be
    ///   handed to a new mapping with its old bytes).
    ///
    /// `read_frame(addr, buf)` reads the 4 KiB frame of function memory at `addr`.
    pub fn check(
        &self,
        memory_bytes: u64,
        kernel_leaves: &KernelLeaves,
        mut read_frame: impl FnMut(u64, &mut [u8]) -> std::io::Result<()>,
    ) -> Result<(), String> {
        let pool = &self.space.pool;
        pool.check(USER_BASE, memory_bytes)
            .map_err(|why| format!("frame pool {why}"))?;
        self.space.check_mappings()?;
        let root = self.space.tables.root();
        let root_bytes = KERNEL_TABLE_PAGES.saturating_mul(PAGE);
        if root != KERNEL_BASE || self.root.len() != host_size(root_bytes) {
            return Err(format!(
                "page tables have their root at {root:#x} ({} bytes), not at {KERNEL_BASE:#x} \
                 ({root_bytes} bytes)",
                self.root.len()
            ));
        }
        let kernel_pages =
            KERNEL_BASE.saturating_add(root_bytes)..KERNEL_BASE.saturating_add(KERNEL_SIZE);
        let in_memory =
            |addr: u64, len: u64| addr.checked_add(len).is_some_and(|end| end <= memory_bytes);
        // Tables in the function's memory, and the pages the program may use there.
        let mut tables = BTreeSet::new();
        let mut program_pages = Vec::new();
        // Every page mapped in the function's memory: (virtual address, frame, bytes).
        let mut leaves = Vec::new();
        // Where the tables map the VMM's pages (each where a new guest's tables map it).
        let mut vmm_pages = BTreeSet::new();
        // (table, its level, the virtual address its first entry maps)
        let mut pending = vec![(root, 4u64, 0u64)];
        let mut bytes = [0u8; TABLE_BYTES];
        while let Some((table, level, base)) = pending.pop() {
            // Bytes each entry of this table maps: 4 KiB at level 1, 512 times more above.
            let span =
                PAGE << 9u32.saturating_mul(u32::try_from(level.saturating_sub(1)).unwrap_or(0));
            if table >= KERNEL_BASE {
                let offset = host_size(table.saturating_sub(KERNEL_BASE));
                let Some(saved) = self.root.get(offset..offset.saturating_add(TABLE_BYTES)) else {
                    return Err(format!(
                        "page tables name a table at {table:#x} past the saved ones"
                    ));
                };
                bytes.copy_from_slice(saved);
            } else {
                read_frame(table, &mut bytes).map_err(|error| {
                    format!("page tables cannot be read at {table:#x}: {error}")
                })?;
            }
            for (index, entry) in (0u64..).zip(table_entries(&bytes)) {
                let va = base.saturating_add(index.saturating_mul(span));
                // Bit 7 is the page size in a directory entry, PAT in a page-table entry.
                let large = level == 2 && entry & LARGE != 0;
                if entry & PRESENT == 0 && !(entry & KEPT != 0 && (level == 1 || large)) {
                    continue;
                }
                if level > 2 && entry & LARGE != 0 {
                    return Err(format!(
                        "page tables map a page larger than 2 MiB ({entry:#x})"
                    ));
                }
                if level == 1 || large {
                    let size = if large { CHUNK } else { PAGE };
                    // A 2 MiB page's address bits below 2 MiB are the CPU's reserved bits
                    // (and PAT); the VMM sets none and adds the offset in the page to them.
                    if entry & ADDRESS & (size.saturating_sub(1)) != 0 {
                        return Err(format!(
                            "page tables map a 2 MiB page at an address not aligned to it \
                             ({entry:#x})"
                        ));
                    }
                    let page = entry & ADDRESS;
                    let end = page.saturating_add(size);
                    // The VMM maps a stretch with a 2 MiB page only over the whole chunk its
                    // address space backs it with, and maps 4 KiB pages in any other.
                    if large
                        && !matches!(self.space.backings.get(&va),
                            Some(Backing::Whole { chunk, .. }) if *chunk == page)
                    {
                        return Err(format!(
                            "page tables map {va:#x} with a 2 MiB page at {page:#x}, not the \
                             chunk its address space backs it with"
                        ));
                    }
                    if in_memory(page, size) {
                        // The program's, whether it may use it now (`USER`) or once its
                        // protection allows (kept while not present, or not the user's).
                        leaves.push((va, page, size));
                        program_pages.push(page..end);
                    } else if kernel_pages.start <= page && end <= kernel_pages.end {
                        check_kernel_leaf(va, entry, large, kernel_leaves)?;
                        vmm_pages.insert(va);
                    } else {
                        return Err(format!(
                            "page tables map a page at {page:#x}, outside the function's memory"
                        ));
                    }
                    continue;
                }
                let next = entry & ADDRESS;
                // The kernel area's tables chain down from the root, one per level.
                let kernel_table =
                    KERNEL_BASE.saturating_add(5u64.saturating_sub(level).saturating_mul(PAGE));
                if next != kernel_table && !in_memory(next, PAGE) {
                    return Err(format!(
                        "page tables name a table at {next:#x}, outside the function's memory"
                    ));
                }
                if !tables.insert(next) {
                    return Err(format!("page tables reach the table at {next:#x} twice"));
                }
                pending.push((next, level.saturating_sub(1), va));
            }
        }
        for &detached in self.space.tables.detached_tables() {
            if !in_memory(detached, PAGE) || !tables.insert(detached) {
                return Err(format!(
                    "page tables keep a detached table at {detached:#x} that is in use or outside the \
                     function's memory"
                ));
            }
        }
        if let Some(table) = tables
            .iter()
            .find(|&&table| table < KERNEL_BASE && !pool.frame_in_use(table))
        {
            return Err(format!(
                "page tables hold a table at {table:#x}, a frame the pool has not handed out"
            ));
        }
        for page in program_pages {
            if let Some(table) = tables.range(page.clone()).next() {
                return Err(format!(
                    "page tables give the program the page at {:#x}, which holds the table \
                     at {table:#x}",
                    page.start
                ));
            }
        }
        self.check_backings(&leaves)?;
        self.check_vdso_mappings(&vmm_pages)?;
        for &(addr, len) in &self.stored {
            let mut page = addr;
            while page < addr.saturating_add(len) {
                if !pool.holds(page) {
                    return Err(format!(
                        "memory stored at {page:#x} is in a frame the frame pool holds free"
                    ));
                }
                page = page.saturating_add(PAGE);
            }
        }
        Ok(())
    }

    /// Checks that the mappings of the vDSO's kinds lie where the vDSO does, or says why not
    /// ("mappings ..."): a `Vvar` mapping only over the data page at [`VVAR`], a `Vdso` one
    /// only over the code pages from [`VDSO`], and each of their pages one the tables map
    /// (`vmm_pages`, each already found where a new guest's tables map it). A new guest's
    /// address space makes them so, `mprotect` keeps an entry for every page (present or
    /// kept), and `munmap` takes the mapping away with its entries.
    ///
    /// Such a mapping's pages are the VMM's, so a fault in it gives no frame: one of these
    /// kinds anywhere else, or past the vDSO's pages, would fault again on every access
    /// until the VMM gave up on the program ("the page fault kept coming back"), and a
    /// `fork`'s child would not get it.
    fn check_vdso_mappings(&self, vmm_pages: &BTreeSet<u64>) -> Result<(), String> {
        for (start, vma) in self.space.vmas.overlapping(0, USER_END) {
            let (from, to) = match vma.kind {
                Kind::Vvar => (VVAR, VDSO),
                Kind::Vdso => (VDSO, USER_END),
                Kind::Anonymous | Kind::Image => continue,
            };
            if start < from || vma.end > to {
                return Err(format!(
                    "mappings hold [{start:#x}, {:#x}) of the vDSO's kind {:?}, outside \
                     [{from:#x}, {to:#x})",
                    vma.end, vma.kind
                ));
            }
            let mut page = start;
            while page < vma.end {
                if !vmm_pages.contains(&page) {
                    return Err(format!(
                        "mappings hold the vDSO's kind {:?} at {page:#x}, where the page \
                         tables map none of the VMM's pages",
                        vma.kind
                    ));
                }
                page = page.saturating_add(PAGE);
            }
        }
        Ok(())
    }

    /// Checks that the stretches' backings are ones the address space could have made and
    /// that they account for `leaves` (each `(virtual address, frame, bytes)` the tables map
    /// in the function's memory), or says why not ("backings ..."):
    ///
    /// - a backing is of a 2 MiB-aligned stretch of the program's half;
    /// - a whole backing's chunk is one the pool holds whole, and no other stretch's; every
    ///   chunk the pool holds whole is a stretch's;
    /// - a page maps the frame of its own stretch's chunk at its offset in the stretch, or,
    ///   in a stretch backed frame by frame, a frame the pool has handed out that no other
    ///   page maps (an unmap gives each back);
    /// - a stretch counts exactly the pages it maps.
    ///
    /// A stretch that counts fewer would give its chunk back, or drop its backing, while the
    /// program still maps it, and the pool would then hand its frames out again: as a page
    /// table, for one, which the program could then write. One that counts more would keep
    /// its chunk, old contents and all, for whatever the program maps there next, which must
    /// read as zero.
    fn check_backings(&self, leaves: &[(u64, u64, u64)]) -> Result<(), String> {
        let pool = &self.space.pool;
        let mut mapped: BTreeMap<u64, u64> = BTreeMap::new();
        let mut frames = BTreeSet::new();
        for &(va, frame, size) in leaves {
            let stretch = chunk_of(va);
            let held = match self.space.backings.get(&stretch) {
                Some(Backing::Whole { chunk, .. }) => {
                    frame == chunk.saturating_add(va.saturating_sub(stretch))
                }
                Some(Backing::Frames { .. }) => {
                    size == PAGE && pool.frame_in_use(frame) && frames.insert(frame)
                }
                None => false,
            };
            if !held {
                return Err(format!(
                    "backings do not hold the frame at {frame:#x} that the page at {va:#x} maps"
                ));
            }
            let pages = mapped.entry(stretch).or_default();
            *pages = pages.saturating_add(size / PAGE);
        }
        let mut owned = BTreeSet::new();
        for (&stretch, backing) in &self.space.backings {
            let pages = match *backing {
                Backing::Whole { chunk, pages } => {
                    if chunk % CHUNK != 0 || !owned.insert(chunk) {
                        return Err(format!(
                            "backings give the stretch at {stretch:#x} the chunk at {chunk:#x}, \
                             which is not a chunk or another stretch's"
                        ));
                    }
                    pages
                }
                Backing::Frames { pages } => pages,
            };
            let maps = mapped.get(&stretch).copied().unwrap_or(0);
            if stretch % CHUNK != 0 || stretch >= USER_END || pages != maps {
                return Err(format!(
                    "backings count {pages} pages in the stretch at {stretch:#x}, which maps \
                     {maps}"
                ));
            }
        }
        if !pool.whole_chunks().eq(owned.iter().copied()) {
            return Err("backings and the frame pool do not agree on the chunks held whole".into());
        }
        Ok(())
    }
}

/// A saved address space to change and check: the ground of the unit tests below and of the
/// `saved_space` fuzz target (`crate::fuzzing::saved_space`). Its `save_and_check` also
/// serves the kernel's tests and the `kernel` fuzz target, on the states their calls reach.
#[cfg(any(test, feature = "fuzzing"))]
pub mod ground {
    #![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

    use std::fs::File;
    use std::os::unix::fs::FileExt;

    use super::super::layout::{CHUNK, PAGE};
    use super::super::page_table::ADDRESS;
    use super::super::physical::KERNEL_BASE;
    use super::super::vma::{READ, WRITE};
    use super::super::{GuestMemory, SavedSpace};

    /// The function memory of the ground.
    pub const MEMORY: u64 = 128 << 20;

    /// [`SavedSpace::check`] of `saved`, a memory of `memory_bytes` saved to `file`,
    /// against the kernel area of a new guest.
    pub fn check_saved(saved: &SavedSpace, file: &File, memory_bytes: u64) -> Result<(), String> {
        let kernel_leaves = crate::vm::kernel_area_leaves().expect("kernel area");
        saved.check(memory_bytes, kernel_leaves, |addr, frame| {
            file.read_exact_at(frame, addr)
        })
    }

    /// Saves `memory` as a snapshot does, then checks what it saved as loading the
    /// snapshot's file would: whether a snapshot taken now would be refused.
    pub fn save_and_check(memory: &GuestMemory) -> Result<(), String> {
        let file = crate::host::sealable_memory_file(c"saved-check").expect("memfd");
        let saved = memory.save(&file).expect("save");
        check_saved(&saved, &file, memory.size())
    }

    /// A memory of 128 MiB whose program wrote four small pages (`pages`) and 4 MiB of
    /// large ones, saved to a memory file as a snapshot saves it; and the tables to change.
    pub struct Saved {
        /// The memory that was saved (the tests find its tables through it).
        #[cfg_attr(not(test), allow(dead_code))]
        memory: GuestMemory,
        pub(in super::super) file: File,
        pub(in super::super) saved: SavedSpace,
        /// The first of the four small pages.
        pub pages: u64,
        /// The 4 MiB mapped with large pages.
        pub large: u64,
        /// The kernel area's four tables, then the program's down to the page table of
        /// `pages`.
        pub tables: Vec<u64>,
        /// The page directory whose entry maps the 2 MiB stretch of `pages`.
        pub directory: u64,
    }

    impl Saved {
        /// The ground, as the VMM left it.
        pub fn new() -> Saved {
            let memory = crate::vm::guest_memory(MEMORY).expect("guest memory");
            let anonymous = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
            let rw = u64::from(READ | WRITE);
            let pages = memory.mmap(0, 4 * PAGE, rw, anonymous).expect("mmap");
            let large = memory.mmap(0, 2 * CHUNK, rw, anonymous).expect("mmap");
            for page in (0..4)
                .map(|n| pages + n * PAGE)
                .chain((0..2).map(|n| large + n * CHUNK))
            {
                memory.write(page, &[0xa5]).expect("write");
            }
            assert_eq!(memory.table_of(large), None, "mapped with a 2 MiB page");
            let file = crate::host::sealable_memory_file(c"saved-check").expect("memfd");
            let saved = memory.save(&file).expect("save");
            let mut ground = Saved {
                memory,
                file,
                saved,
                pages,
                large,
                tables: (0..4).map(|n| KERNEL_BASE + n * PAGE).collect(),
                directory: 0,
            };
            let mut table = KERNEL_BASE;
            for level in (2..=4).rev() {
                if level == 2 {
                    ground.directory = table;
                }
                let index = (pages >> (12 + 9 * (level - 1))) & 0x1ff;
                table = ground.entry(table, index) & ADDRESS;
                if !ground.tables.contains(&table) {
                    ground.tables.push(table);
                }
            }
            ground
        }

        /// [`SavedSpace::check`] of the ground as it is now.
        pub fn check(&self) -> Result<(), String> {
            check_saved(&self.saved, &self.file, MEMORY)
        }

        /// Restores the ground into a new memory and walks its tables as the VMM does
        /// (what a restored run touched, every target, a read and a write through them),
        /// then unmaps what the ground mapped and maps as much again, as a program would:
        /// what [`Saved::check`] let through must not make any of that panic, and the
        /// memory mapped last must read as zero (a frame the pool handed out while a page
        /// still mapped it would not). An error is a walk or a fresh page that failed.
        pub fn restore_and_walk(&self) -> std::io::Result<()> {
            let restored = crate::vm::guest_memory(MEMORY).expect("guest memory");
            restored.restore(&self.file, &self.saved)?;
            restored.touched_pages()?;
            let _ = restored.uncovered();
            let _ = restored.read_vec(self.pages, 1);
            let _ = restored.write(self.pages + PAGE, &[1]);
            let _ = restored.write(self.large + CHUNK + PAGE, &[1]);
            let _ = restored.munmap(self.pages, 4 * PAGE);
            let _ = restored.munmap(self.large, 2 * CHUNK);
            let anonymous = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
            let rw = u64::from(READ | WRITE);
            for len in [4 * PAGE, 2 * CHUNK] {
                let Ok(fresh) = restored.mmap(0, len, rw, anonymous) else {
                    continue;
                };
                for page in (fresh..fresh + len).step_by(PAGE as usize) {
                    if restored
                        .read_vec(page, PAGE)
                        .is_ok_and(|bytes| bytes.iter().any(|&b| b != 0))
                    {
                        return Err(std::io::Error::other(format!(
                            "a page mapped after the restore, at {page:#x}, does not read as zero"
                        )));
                    }
                    let _ = restored.write(page, &[2]);
                }
            }
            Ok(())
        }

        /// Entry `index` of the table at `table` (a root table, or one in the memory file).
        pub fn entry(&self, table: u64, index: u64) -> u64 {
            let mut bytes = [0u8; 8];
            if table >= KERNEL_BASE {
                let at = (table - KERNEL_BASE + index * 8) as usize;
                bytes.copy_from_slice(&self.saved.root[at..at + 8]);
            } else {
                self.file
                    .read_exact_at(&mut bytes, table + index * 8)
                    .expect("read");
            }
            u64::from_le_bytes(bytes)
        }

        /// Sets entry `index` of the table at `table`.
        pub fn set_entry(&mut self, table: u64, index: u64, entry: u64) {
            if table >= KERNEL_BASE {
                let at = (table - KERNEL_BASE + index * 8) as usize;
                self.saved.root[at..at + 8].copy_from_slice(&entry.to_le_bytes());
            } else {
                self.file
                    .write_all_at(&entry.to_le_bytes(), table + index * 8)
                    .expect("write");
            }
        }

        /// The page table whose entry maps `va` with a small page, in the saved memory.
        #[cfg(test)]
        pub fn table_of(&self, va: u64) -> Option<u64> {
            self.memory.table_of(va)
        }

        /// Changes a backing as a fuzzer asked: bytes 1-2 pick a stretch (one the ground
        /// backs, else one of the program's half), byte 3 what it becomes (a whole chunk,
        /// frame by frame, or no backing), bytes 4-6 which chunk, byte 7 its page count.
        fn change_backing(&mut self, change: [u8; 8]) {
            use super::super::layout::USER_END;
            use super::super::space::Backing;
            let backed: Vec<u64> = self.saved.space.backings.keys().copied().collect();
            let pick = usize::from(u16::from_le_bytes([change[1], change[2]]));
            let which =
                u64::from(change[4]) | u64::from(change[5]) << 8 | u64::from(change[6]) << 16;
            let stretch = backed
                .get(pick % (backed.len() + 1))
                .copied()
                .unwrap_or(which % (USER_END / CHUNK) * CHUNK);
            let pages = u64::from(change[7]) * 2 % (CHUNK / PAGE + 1);
            let backings = &mut self.saved.space.backings;
            match change[3] % 3 {
                0 => {
                    let chunk = which % (MEMORY / CHUNK + 1) * CHUNK;
                    backings.insert(stretch, Backing::Whole { chunk, pages })
                }
                1 => backings.insert(stretch, Backing::Frames { pages }),
                _ => backings.remove(&stretch),
            };
        }

        /// Gives the frame at `addr` back to the saved frame pool.
        pub fn give_frame(&mut self, addr: u64) {
            self.saved.space.pool.give_frame(addr);
        }

        /// Applies one change that a fuzzer made: byte 0 picks one of [`Saved::tables`]
        /// (one past them: the frame pool, which is given the frame back; two past them:
        /// the backings, see [`Saved::change_backing`]), bytes 1-2 the
        /// entry, byte 3 what kind of frame it names (a table, a frame of the memory, one
        /// past it, a page of the kernel area, or any), bytes 4-6 which one, byte 7 the
        /// entry's flags (present, writable, user, accessed, dirty, large, kept,
        /// no-execute).
        pub fn apply(&mut self, change: [u8; 8]) {
            use super::super::page_table::{
                ACCESSED, DIRTY, KEPT, LARGE, NO_EXECUTE, PRESENT, USER, WRITABLE,
            };
            const FLAGS: [u64; 8] = [
                PRESENT, WRITABLE, USER, ACCESSED, DIRTY, LARGE, KEPT, NO_EXECUTE,
            ];
            let which =
                u64::from(change[4]) | u64::from(change[5]) << 8 | u64::from(change[6]) << 16;
            let frame = match change[3] % 5 {
                0 => self.tables[which as usize % self.tables.len()],
                1 => which % (MEMORY / PAGE) * PAGE,
                2 => MEMORY + which * PAGE,
                3 => KERNEL_BASE + which % 16 * PAGE,
                _ => which << 12,
            } & ADDRESS;
            let table = usize::from(change[0]) % (self.tables.len() + 2);
            if table == self.tables.len() + 1 {
                self.change_backing(change);
                return;
            }
            let Some(&table) = self.tables.get(table) else {
                self.give_frame(frame);
                return;
            };
            let index = u64::from(u16::from_le_bytes([change[1], change[2]])) % 512;
            let entry = (0..8)
                .filter(|bit| change[7] >> bit & 1 != 0)
                .fold(frame, |entry, bit| entry | FLAGS[bit]);
            self.set_entry(table, index, entry);
        }
    }
}

/// The part of [`SavedSpace::check`] for `entry`, which maps a page of the kernel area at
/// `va` (with a 2 MiB page if `large`): a new guest's tables map that page there too
/// (`kernel_leaves`), with a 4 KiB entry, and give it at least the access `entry` does.
/// Says what is wrong.
fn check_kernel_leaf(
    va: u64,
    entry: u64,
    large: bool,
    kernel_leaves: &KernelLeaves,
) -> Result<(), String> {
    let page = entry & ADDRESS;
    let Some(&fresh) = kernel_leaves
        .get(&va)
        .filter(|&&fresh| !large && fresh & ADDRESS == page)
    else {
        return Err(format!(
            "page tables map the VMM's page at {page:#x} at {va:#x}, where a new guest's \
             tables do not"
        ));
    };
    let writes = entry & WRITABLE != 0 && fresh & WRITABLE == 0;
    let runs = entry & PRESENT != 0 && entry & NO_EXECUTE == 0 && fresh & NO_EXECUTE != 0;
    if writes || runs {
        return Err(format!(
            "page tables let the program {} the VMM's page at {va:#x} ({entry:#x}), which a \
             new guest's tables do not ({fresh:#x})",
            if writes { "write" } else { "run" }
        ));
    }
    Ok(())
}

impl AddressSpace {
    /// The part of [`SavedSpace::check`] that holds of every address space the syscalls
    /// leave: its mappings as [`VmaMap::check`](super::vma::VmaMap::check) requires them
    /// inside the program's half, at most [`MAX_MAPPINGS`], a heap that runs forwards
    /// inside that half, and no more than [`MAX_LIBRARY_SITES`] library syscall sites, each
    /// inside a mapping (unmapping drops the sites it covered). Says what is wrong.
    pub(super) fn check_mappings(&self) -> Result<(), String> {
        self.vmas
            .check(MIN_MAP_ADDRESS, USER_END, MAX_MAPPINGS)
            .map_err(|why| format!("mappings {why}"))?;
        if self.brk_start > self.brk || self.brk > USER_END {
            return Err(format!(
                "heap runs from {:#x} to {:#x}, backwards or past the program's half",
                self.brk_start, self.brk
            ));
        }
        if self.library_sites.len() > MAX_LIBRARY_SITES {
            return Err(format!(
                "it notes {} library syscall sites, more than {MAX_LIBRARY_SITES}",
                self.library_sites.len()
            ));
        }
        match self
            .library_sites
            .iter()
            .find(|&&site| self.vmas.find(site).is_none())
        {
            Some(site) => Err(format!(
                "a library syscall site at {site:#x} lies in no mapping"
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

    use std::os::unix::fs::FileExt;

    use super::super::layout::PAGE;
    use super::super::page_table::{ADDRESS, LARGE, PRESENT, PageTables, USER, WRITABLE};
    use super::super::physical::KERNEL_BASE;
    use super::ground::Saved;

    const MIB: u64 = 1 << 20;
    /// Flags of an entry pointing to a table, or mapping a page for the program.
    const TABLE: u64 = PRESENT | WRITABLE | USER;

    fn saved() -> Saved {
        Saved::new()
    }

    trait Forge {
        fn set_root_entry(&mut self, index: usize, entry: u64);
        fn root_entry(&self, index: usize) -> u64;
        fn free_root_entry(&self) -> usize;
        fn set_leaf(&self, va: u64, entry: u64);
    }

    impl Forge for Saved {
        /// Sets entry `index` of the PML4 (in the saved root tables).
        fn set_root_entry(&mut self, index: usize, entry: u64) {
            self.saved.root[index * 8..index * 8 + 8].copy_from_slice(&entry.to_le_bytes());
        }

        fn root_entry(&self, index: usize) -> u64 {
            u64::from_le_bytes(
                self.saved.root[index * 8..index * 8 + 8]
                    .try_into()
                    .unwrap(),
            )
        }

        /// A PML4 entry nothing uses.
        fn free_root_entry(&self) -> usize {
            (0..512).find(|&index| self.root_entry(index) == 0).unwrap()
        }

        /// Sets the entry of the memory file's page table mapping `va` with a small page.
        fn set_leaf(&self, va: u64, entry: u64) {
            let table = self.table_of(va).expect("a small page");
            let at = table + ((va >> 12) & 0x1ff) * 8;
            self.file.write_all_at(&entry.to_le_bytes(), at).unwrap();
        }
    }

    /// Tables that pass the check are walked by the VMM without a panic. One to three
    /// random changes ([`Saved::apply`], the fuzz target's) to entries of the root tables,
    /// of the program's tables and to the frame pool, from a fixed seed (so every run
    /// tries the same), 2,000 times; whenever the check passes, the tables are restored
    /// into a new memory and walked as the VMM walks them.
    #[test]
    fn tables_that_pass_can_be_walked() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut passed, mut refused) = (0, 0);
        for _ in 0..2000 {
            let mut case = saved();
            for _ in 0..1 + random() % 3 {
                case.apply(random().to_le_bytes());
            }
            if case.check().is_ok() {
                passed += 1;
                case.restore_and_walk().expect("restore and walk");
            } else {
                refused += 1;
            }
        }
        assert!(
            passed > 100 && refused > 100,
            "{passed} passed, {refused} refused"
        );
    }

    #[test]
    fn the_tables_the_vmm_built_pass() {
        assert_eq!(saved().check(), Ok(()));
    }

    #[test]
    fn a_root_elsewhere_or_cut_short_is_refused() {
        let mut moved = saved();
        moved.saved.space.tables = PageTables::new(KERNEL_BASE + PAGE);
        assert!(moved.check().unwrap_err().contains("root"));
        let mut short = saved();
        short.saved.root.truncate(PAGE as usize);
        assert!(short.check().unwrap_err().contains("root"));
    }

    #[test]
    fn tables_and_pages_outside_the_memory_are_refused() {
        let mut table = saved();
        let free = table.free_root_entry();
        table.set_root_entry(free, (1 << 40) | TABLE);
        let why = table.check().unwrap_err();
        assert!(why.contains("table at 0x10000000000, outside"), "{why}");
        let page = saved();
        page.set_leaf(page.pages, (200 * MIB) | TABLE);
        let why = page.check().unwrap_err();
        assert!(why.contains("page at 0xc800000, outside"), "{why}");
    }

    /// The VMM's own pages (the kernel area's, past its tables) may be mapped only where a
    /// new guest's tables map them, and with no more access: a forged file that let the
    /// program write the stubs it enters ring 0 through would give it the guest's ring 0.
    #[test]
    fn the_vmms_pages_are_mapped_only_where_and_as_a_new_guest_maps_them() {
        use super::super::layout::VVAR;
        use super::super::page_table::{NO_EXECUTE, WRITABLE};
        use crate::vm::layout::{SYSCALL_ENTRY, virt};
        let slot = |va: u64| (va >> 12) & 0x1ff;

        // The stub page in the program's half, where a new guest maps none of the VMM's.
        let elsewhere = saved();
        elsewhere.set_leaf(elsewhere.pages, SYSCALL_ENTRY | TABLE);
        let why = elsewhere.check().unwrap_err();
        assert!(
            why.contains(&format!(
                "the VMM's page at {SYSCALL_ENTRY:#x} at {:#x}, where a new guest's tables do not",
                elsewhere.pages
            )),
            "{why}"
        );

        // The stub page where it belongs, but writable.
        let mut writable = saved();
        let stubs = virt(SYSCALL_ENTRY);
        let table = writable.table_of(stubs).expect("the stubs are mapped");
        let entry = writable.entry(table, slot(stubs));
        assert_eq!(
            entry & (ADDRESS | WRITABLE),
            SYSCALL_ENTRY,
            "read-only in a new guest"
        );
        writable.set_entry(table, slot(stubs), entry | WRITABLE);
        let why = writable.check().unwrap_err();
        assert!(
            why.contains(&format!(
                "let the program write the VMM's page at {stubs:#x}"
            )),
            "{why}"
        );

        // The vDSO's data page made executable.
        let mut runnable = saved();
        let table = runnable
            .table_of(VVAR)
            .expect("the vDSO's data page is mapped");
        let entry = runnable.entry(table, slot(VVAR));
        assert_ne!(entry & NO_EXECUTE, 0, "not executable in a new guest");
        runnable.set_entry(table, slot(VVAR), entry & !NO_EXECUTE);
        let why = runnable.check().unwrap_err();
        assert!(
            why.contains(&format!("let the program run the VMM's page at {VVAR:#x}")),
            "{why}"
        );
    }

    /// Taking access away from the vDSO's pages, as `mprotect` does, still passes.
    #[test]
    fn the_vdso_with_less_access_passes() {
        use super::super::layout::{VDSO, VVAR};
        let memory = crate::vm::guest_memory(MEMORY).expect("guest memory");
        memory.mprotect(VVAR, PAGE, 0).expect("mprotect");
        memory
            .mprotect(VDSO, PAGE, libc::PROT_READ as u64)
            .expect("mprotect");
        assert_eq!(super::ground::save_and_check(&memory), Ok(()));
    }

    /// The vDSO's kinds of mapping only over the vDSO's own pages: a fault in such a
    /// mapping gives no frame, so anywhere else it would only fault again.
    #[test]
    fn a_mapping_of_the_vdsos_kinds_away_from_its_pages_is_refused() {
        use super::super::layout::{VDSO, VVAR};
        use super::super::vma::{EXEC, Kind, READ, Vma};
        let slot = |va: u64| (va >> 12) & 0x1ff;
        // Replaces the mapping starting at `start` with `[start, end)` of `kind`.
        let remap = |ground: &mut Saved, start: u64, end: u64, kind: Kind| {
            let vmas = &mut ground.saved.space.vmas;
            let (at, vma) = vmas.find(start).expect("mapped");
            assert_eq!(at, start);
            vmas.remove(start, vma.end);
            let prot = kind.max_protection() & (READ | EXEC);
            vmas.insert(
                start,
                Vma {
                    end,
                    prot,
                    kind,
                    ..vma
                },
            );
        };

        // The program's small pages made the vDSO's code.
        let mut elsewhere = saved();
        let (start, vma) = elsewhere.saved.space.vmas.find(elsewhere.pages).unwrap();
        remap(&mut elsewhere, start, vma.end, Kind::Vdso);
        let why = elsewhere.check().unwrap_err();
        assert!(
            why.contains(&format!(
                "mappings hold [{start:#x}, {:#x}) of the vDSO's kind Vdso, outside",
                vma.end
            )),
            "{why}"
        );

        // The vDSO's code made its data page's kind.
        let mut swapped = saved();
        let (_, code) = swapped.saved.space.vmas.find(VDSO).unwrap();
        remap(&mut swapped, VDSO, code.end, Kind::Vvar);
        let why = swapped.check().unwrap_err();
        assert!(
            why.contains(&format!(
                "of the vDSO's kind Vvar, outside [{VVAR:#x}, {VDSO:#x})"
            )),
            "{why}"
        );

        // The vDSO's code mapping a page past its pages.
        let mut longer = saved();
        remap(&mut longer, VDSO, code.end + PAGE, Kind::Vdso);
        let why = longer.check().unwrap_err();
        assert!(
            why.contains(&format!(
                "the vDSO's kind Vdso at {:#x}, where the page tables map none",
                code.end
            )),
            "{why}"
        );

        // The data page's entry gone while its mapping stays.
        let mut unmapped = saved();
        let table = unmapped.table_of(VVAR).expect("the data page is mapped");
        unmapped.set_entry(table, slot(VVAR), 0);
        let why = unmapped.check().unwrap_err();
        assert!(
            why.contains(&format!("the vDSO's kind Vvar at {VVAR:#x}, where")),
            "{why}"
        );

        // As the VMM leaves them, the vDSO's mappings pass.
        assert_eq!(saved().check(), Ok(()));
    }

    /// Unmapping the vDSO, whole or in part, as `munmap` does, still passes.
    #[test]
    fn the_vdso_unmapped_passes() {
        use super::super::layout::{VDSO, VVAR};
        let memory = crate::vm::guest_memory(MEMORY).expect("guest memory");
        memory.munmap(VDSO, PAGE).expect("munmap");
        assert_eq!(super::ground::save_and_check(&memory), Ok(()));
        memory.munmap(VVAR, 2 * PAGE).expect("munmap");
        assert_eq!(super::ground::save_and_check(&memory), Ok(()));
    }

    #[test]
    fn a_table_reached_twice_or_given_to_the_program_is_refused() {
        let mut twice = saved();
        let used = (twice.pages >> 39) as usize & 0x1ff;
        let free = twice.free_root_entry();
        twice.set_root_entry(free, twice.root_entry(used));
        assert!(twice.check().unwrap_err().contains("twice"));
        let given = saved();
        let table = given.table_of(given.pages).unwrap();
        given.set_leaf(given.pages, table | TABLE);
        let why = given.check().unwrap_err();
        assert!(
            why.contains(&format!("holds the table at {table:#x}")),
            "{why}"
        );
    }

    #[test]
    fn memory_stored_in_a_frame_the_pool_holds_free_is_refused() {
        // Found by the saved_space fuzz target (2026-12-07): the page directory's entry for
        // the small pages' table made absent, their stretch's backing dropped so that the
        // counts agree, and the table's frame given back to the pool. The check passed, and
        // a new mapping then got that frame with the old table's entries in it.
        let mut ground = saved();
        let table = ground.table_of(ground.pages).unwrap();
        let changes: [[u8; 8]; 6] = [
            [0x48, 0xb8, 0x89, 0x00, 0x00, 0x00, 0x00, 0x00],
            [0x00, 0x00, 0x89, 0x89, 0x77, 0xf6, 0x76, 0x76],
            [0xfb, 0x76, 0x23, 0x23, 0x59, 0x59, 0x59, 0x59],
            [0x59, 0x59, 0x59, 0x59, 0x2a, 0x59, 0x59, 0x59],
            [0x59, 0x76, 0xfb, 0xff, 0x59, 0x59, 0x79, 0x59],
            [0x59, 0x76, 0xde, 0x2b, 0x3e, 0x00, 0x59, 0x00],
        ];
        for change in changes {
            ground.apply(change);
        }
        let why = ground.check().unwrap_err();
        assert!(
            why.contains(&format!(
                "memory stored at {table:#x} is in a frame the frame pool holds free"
            )),
            "{why}"
        );
    }

    #[test]
    fn a_table_the_pool_would_hand_out_again_or_a_forged_pool_is_refused() {
        let mut freed = saved();
        let table = freed.table_of(freed.pages).unwrap();
        freed.give_frame(table);
        let why = freed.check().unwrap_err();
        assert!(
            why.contains(&format!("table at {table:#x}, a frame the pool has not")),
            "{why}"
        );
        // The pool's own checks (`frames.rs` tests them one by one).
        let mut other = saved();
        other.saved.space.pool = super::super::frames::FramePool::new(0, 64 * MIB);
        assert!(other.check().unwrap_err().starts_with("frame pool"));
    }

    /// The fuzz target's second find: a stretch of 4 KiB pages mapped with a 2 MiB page, which
    /// the VMM, mapping a page there later, took for a page table.
    #[test]
    fn a_2_mib_page_over_a_stretch_of_small_pages_is_refused() {
        let mut large = saved();
        let index = (large.pages >> 21) & 0x1ff;
        large.set_entry(large.directory, index, (64 * MIB) | LARGE | TABLE);
        let why = large.check().unwrap_err();
        assert!(
            why.contains("not the chunk its address space backs it with"),
            "{why}"
        );
    }

    #[test]
    fn pages_larger_than_2_mib_are_refused() {
        let mut huge = saved();
        // A frame the memory never used, holding a directory-pointer entry for 1 GiB.
        let spare = 100 * MIB;
        huge.file
            .write_all_at(&(LARGE | TABLE).to_le_bytes(), spare)
            .unwrap();
        let free = huge.free_root_entry();
        huge.set_root_entry(free, (spare & ADDRESS) | TABLE);
        assert!(huge.check().unwrap_err().contains("larger than 2 MiB"));
        // A 2 MiB page whose address has bits below 2 MiB (the fuzz target's first find:
        // the VMM adds the offset in the page to them, and read past the memory's end).
        let mut unaligned = saved();
        let (directory_pointers, directory) = (100 * MIB, 102 * MIB);
        unaligned
            .file
            .write_all_at(&(directory | TABLE).to_le_bytes(), directory_pointers)
            .unwrap();
        let page = (126 * MIB + PAGE) | LARGE | TABLE;
        unaligned
            .file
            .write_all_at(&page.to_le_bytes(), directory)
            .unwrap();
        let free = unaligned.free_root_entry();
        unaligned.set_root_entry(free, directory_pointers | TABLE);
        let why = unaligned.check().unwrap_err();
        assert!(why.contains("not aligned"), "{why}");
    }

    // The backings' part of the check ([`SavedSpace::check_backings`]).

    use super::super::layout::{CHUNK, VVAR};
    use super::super::space::Backing;
    use super::ground::MEMORY;

    /// The ground with `change` made to its backings; what the check says.
    fn forged(change: impl FnOnce(&mut Saved)) -> String {
        let mut saved = Saved::new();
        saved.check().expect("the ground passes");
        change(&mut saved);
        saved.check().expect_err("refused")
    }

    /// The ground's stretches backed by a whole chunk, and their chunks.
    fn whole(saved: &Saved) -> Vec<(u64, u64)> {
        saved
            .saved
            .space
            .backings
            .iter()
            .filter_map(|(&stretch, backing)| match *backing {
                Backing::Whole { chunk, .. } => Some((stretch, chunk)),
                Backing::Frames { .. } => None,
            })
            .collect()
    }

    /// Asserts that the check said a stretch counts `counted` pages where it maps `maps`.
    fn says_counts(why: &str, counted: u64, maps: u64) {
        let says = why.contains(&format!("count {counted} pages"))
            && why.contains(&format!("which maps {maps}"));
        assert!(says, "{why}");
    }

    /// What the check says of the ground with the stretch of its four small pages counting
    /// `pages`.
    fn small_pages_counting(pages: u64) -> String {
        forged(|saved| {
            let stretch = saved.pages & !(CHUNK - 1);
            saved
                .saved
                .space
                .backings
                .insert(stretch, Backing::Frames { pages });
        })
    }

    /// The fuzz target's find (2026-12-07): the root's entry for the program's top 512 GiB
    /// made not present, so the tables map nothing there while the backings still count
    /// their pages. An unmap there then took nothing off, and memory mapped again over the
    /// stretch got its chunk back, with what the program had written in it.
    #[test]
    fn a_stretch_counting_more_pages_than_it_maps_is_refused() {
        let mut unmapped = saved();
        unmapped.apply([0xf5, 0xff, 0, 0, 6, 0, 0, 0]);
        let why = unmapped.check().unwrap_err();
        says_counts(&why, 512, 0);
        let why = small_pages_counting(5);
        says_counts(&why, 5, 4);
    }

    /// The fuzz target's next find (2026-12-07): a page-table entry kept while not present
    /// (no user bit) over the page table itself. The program could have had it back with
    /// `mprotect`, and an unmap gave the table's frame back to the pool, which handed it
    /// out again as memory. Both rules below refuse it; the input is
    /// `fuzz/corpus/saved_space/crash-2d56811ac4e6913483cae9652a40c3a96c1deb50`.
    #[test]
    fn a_kept_page_over_a_table_or_a_frame_mapped_twice_is_refused() {
        let mut kept = saved();
        kept.apply([0x20, 0xfd, 0xff, 0xba, 0x01, 0x00, 0x00, 0x40]);
        let why = kept.check().unwrap_err();
        assert!(why.contains("which holds the table"), "{why}");
        // The same frame at two pages of a stretch backed frame by frame.
        let twice = saved();
        let table = twice.table_of(twice.pages).unwrap();
        let first = twice.entry(table, (twice.pages >> 12) & 0x1ff);
        twice.set_leaf(twice.pages + PAGE, first);
        let why = twice.check().unwrap_err();
        assert!(why.contains("do not hold the frame"), "{why}");
    }

    #[test]
    fn a_stretch_counting_fewer_pages_than_it_maps_is_refused() {
        // It would give its chunk back at its next unmap while the program still maps it.
        let why = forged(|saved| {
            let (stretch, _) = whole(saved)[0];
            if let Some(Backing::Whole { pages, .. }) = saved.saved.space.backings.get_mut(&stretch)
            {
                *pages = 511;
            }
        });
        says_counts(&why, 511, 512);
        let why = small_pages_counting(3);
        says_counts(&why, 3, 4);
        let why = forged(|saved| {
            let stretch = saved.pages & !(CHUNK - 1);
            saved.saved.space.backings.remove(&stretch);
        });
        assert!(why.contains("do not hold the frame"), "{why}");
    }

    #[test]
    fn a_chunk_that_is_not_the_stretchs_own_is_refused() {
        // Another stretch's chunk, for a stretch that maps nothing yet: both would write it.
        let why = forged(|saved| {
            let (_, chunk) = whole(saved)[0];
            saved
                .saved
                .space
                .backings
                .insert(VVAR - 8 * CHUNK, Backing::Whole { chunk, pages: 0 });
        });
        assert!(why.contains("another stretch's"), "{why}");
        // A stretch mapped with a 2 MiB page given another chunk (the tables' own rule).
        let why = forged(|saved| {
            let (stretch, _) = whole(saved)[0];
            saved.saved.space.backings.insert(
                stretch,
                Backing::Whole {
                    chunk: MEMORY - CHUNK,
                    pages: 512,
                },
            );
        });
        assert!(
            why.contains("not the chunk its address space backs"),
            "{why}"
        );
        // A chunk the pool holds free, or no chunk at all.
        let why = forged(|saved| {
            saved.saved.space.backings.insert(
                VVAR - 8 * CHUNK,
                Backing::Whole {
                    chunk: MEMORY - CHUNK,
                    pages: 0,
                },
            );
        });
        assert!(why.contains("do not agree"), "{why}");
        let why = forged(|saved| {
            saved.saved.space.backings.insert(
                VVAR - 8 * CHUNK,
                Backing::Whole {
                    chunk: CHUNK + PAGE,
                    pages: 0,
                },
            );
        });
        assert!(why.contains("not a chunk"), "{why}");
    }

    #[test]
    fn a_page_on_a_frame_the_pool_has_not_handed_out_is_refused() {
        // The pool would hand it out again, as a page table for one.
        let why = forged(|saved| {
            let free = MEMORY - CHUNK;
            saved.set_leaf(saved.pages, free | PRESENT | WRITABLE | USER);
        });
        assert!(why.contains("do not hold the frame"), "{why}");
    }

    #[test]
    fn a_mapping_over_the_vmms_area_or_a_heap_running_backwards_is_refused() {
        use super::super::layout::USER_END;
        use super::super::vma::{Kind, READ, Vma};
        let why = forged(|saved| {
            let vma = Vma {
                end: USER_END + CHUNK,
                prot: READ,
                kind: Kind::Anonymous,
                dense: false,
                huge: false,
            };
            saved.saved.space.vmas.insert(USER_END, vma);
        });
        assert!(why.starts_with("mappings hold [0x7fffffe00000"), "{why}");
        let why = forged(|saved| {
            saved.saved.space.brk_start = saved.saved.space.brk + PAGE;
        });
        assert!(why.contains("backwards"), "{why}");
    }

    /// Unmapping the vDSO's pages (the VMM's frames, which no stretch counts) in a stretch
    /// that also holds a page of the program's must leave that page counted.
    #[test]
    fn unmapping_the_vdso_beside_a_page_keeps_the_page_counted() {
        let memory = crate::vm::guest_memory(MEMORY).expect("guest memory");
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED) as u64;
        let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let page = VVAR + CHUNK / 2;
        assert_eq!(memory.mmap(page, PAGE, rw, flags), Ok(page));
        memory.write(page, &[1]).expect("write");
        memory.munmap(VVAR, CHUNK / 2).expect("munmap");
        assert_eq!(super::ground::save_and_check(&memory), Ok(()));
    }
}
