//! One program's address space and the syscalls that shape it: `mmap`, `munmap`,
//! `mprotect`, `mremap`, `madvise` and `brk`, as Linux answers them. Mappings cost nothing
//! until touched (a reservation of any size is only an entry in the map); frames come from
//! the function's memory as pages are first used, and running out of it is the program's
//! out-of-memory end, never the host's.

use std::collections::{BTreeMap, BTreeSet};

use super::frames::FramePool;
use super::homes::LargePageHomes;
use super::layout::{
    CHUNK, MIN_MAP_ADDRESS, MMAP_TOP, PAGE, STACK_BOTTOM, STACK_TOP, USER_END, VDSO, VVAR,
    chunk_of, page_align,
};
use super::page_table::{ADDRESS, KEPT, Leaf, PRESENT, PageTables};
use super::pages::{Invalidations, OutOfMemory, entry_flags};
use super::physical::{PhysicalMemory, USER_BASE};
use super::vma::{EXEC, Kind, READ, Vma, VmaMap, WRITE};

/// Most separate mappings a program may hold (Linux's default `vm.max_map_count`).
pub const MAX_MAPPINGS: usize = 65_530;

/// `mmap`'s flags the kernel's file mappings look at too (`mm::MAP_*`).
pub const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
/// `MAP_SHARED_VALIDATE`.
pub const MAP_SHARED_VALIDATE: u64 = 0x03;
/// The bits of the mapping's type.
pub const MAP_TYPE: u64 = 0x0f;
const MAP_FIXED: u64 = 0x10;
/// `MAP_ANONYMOUS`.
pub const MAP_ANONYMOUS: u64 = 0x20;
const MAP_HUGETLB: u64 = 0x4_0000;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;
/// `PROT_SEM`, accepted and meaningless on x86.
const PROT_SEM: u64 = 0x8;
const PROT_GROWSDOWN: u64 = 0x0100_0000;
const PROT_GROWSUP: u64 = 0x0200_0000;
const MADV_DONTNEED: u64 = 4;
const MADV_FREE: u64 = 8;

/// Why a memory syscall failed, as Linux's errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// `EINVAL`: a malformed request.
    Invalid,
    /// `ENOMEM`: no room in the address space, a range not mapped, too many mappings.
    NoMemory,
    /// `EEXIST`: `MAP_FIXED_NOREPLACE` over a mapping.
    Exists,
    /// `EACCES`: a protection the mapping may never have.
    Access,
    /// `EPERM`: below the lowest mappable address.
    Permission,
    /// `EFAULT`: `mremap` of a range that is not one mapping.
    Fault,
    /// `ENODEV`: a kind of mapping this kernel does not make (files).
    NoDevice,
}

impl MapError {
    /// The errno.
    pub fn errno(self) -> i32 {
        match self {
            MapError::Invalid => libc::EINVAL,
            MapError::NoMemory => libc::ENOMEM,
            MapError::Exists => libc::EEXIST,
            MapError::Access => libc::EACCES,
            MapError::Permission => libc::EPERM,
            MapError::Fault => libc::EFAULT,
            MapError::NoDevice => libc::ENODEV,
        }
    }
}

impl From<OutOfMemory> for MapError {
    fn from(_: OutOfMemory) -> MapError {
        MapError::NoMemory
    }
}

/// How a 2 MiB stretch of the address space is backed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Backing {
    /// By one whole chunk at `chunk`: page `i` on frame `i`. `pages` have an entry.
    Whole { chunk: u64, pages: u64 },
    /// By frames taken one at a time; `pages` have one.
    Frames { pages: u64 },
}

/// Counters a user can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemoryStats {
    /// Page faults the VMM resolved (each one VM exit).
    pub page_faults: u64,
}

/// Where the kernel places a mapping whose address it chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Top-down from `MMAP_TOP`, as Linux places mappings.
    Anonymous,
    /// Top-down from [`FILE_MAP_TOP`]: mappings of frozen files packed together, in 2 MiB
    /// stretches that hold nothing else, so that those stretches can be backed by whole
    /// chunks with the files' pages mapped over them (shared, not copied).
    Files,
}

/// Where the file-mapping area starts, growing down: just below the interpreter.
pub const FILE_MAP_TOP: u64 = super::layout::INTERP_BASE;

/// One program's address space.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AddressSpace {
    pub(super) vmas: VmaMap,
    pub(super) tables: PageTables,
    pub(super) pool: FramePool,
    pub(super) backings: BTreeMap<u64, Backing>,
    /// Where each chunk may be a large page (`homes.rs` says why).
    pub(super) homes: LargePageHomes,
    pub(super) brk_start: u64,
    pub(super) brk: u64,
    out_of_memory: bool,
    pub(super) stats: MemoryStats,
    /// `syscall` instructions of mapped image libraries (found by decoding the file), which
    /// may be rewritten to enter the VMM directly in this address space; dropped with the
    /// mapping that holds them.
    pub(super) library_sites: BTreeSet<u64>,
}

/// The initial thread's stack, as every address space starts with it.
fn stack_mapping() -> Vma {
    Vma {
        end: STACK_TOP,
        prot: READ | WRITE,
        kind: Kind::Anonymous,
        dense: true,
        huge: false,
    }
}

/// Most library syscall sites one address space keeps (`glibc`'s `libc.so.6` has a few
/// hundred); past it, further ones are not rewritten.
pub const MAX_LIBRARY_SITES: usize = 65_536;

impl AddressSpace {
    /// An address space with the stack and the vDSO mapped (the vDSO's data page and code are
    /// the VMM's frames `vvar` and `vdso`, `vdso_pages` long), over the page tables rooted
    /// at `root`.
    pub fn new(
        physical: &PhysicalMemory,
        root: u64,
        vvar: u64,
        vdso: u64,
        vdso_pages: u64,
    ) -> Result<AddressSpace, OutOfMemory> {
        let mut space = AddressSpace {
            vmas: VmaMap::default(),
            tables: PageTables::new(root),
            pool: FramePool::new(USER_BASE, physical.user_size()),
            backings: BTreeMap::new(),
            homes: LargePageHomes::default(),
            brk_start: 0,
            brk: 0,
            out_of_memory: false,
            stats: MemoryStats::default(),
            library_sites: BTreeSet::new(),
        };
        space.vmas.insert(STACK_BOTTOM, stack_mapping());
        let specials = [
            (VVAR, vvar, 1, Kind::Vvar),
            (VDSO, vdso, vdso_pages, Kind::Vdso),
        ];
        for (va, frame, pages, kind) in specials {
            let end = va.saturating_add(pages.saturating_mul(PAGE));
            let prot = kind.max_protection();
            space.vmas.insert(
                va,
                Vma {
                    end,
                    prot,
                    kind,
                    dense: false,
                    huge: false,
                },
            );
            for page in 0..pages {
                let offset = page.saturating_mul(PAGE);
                let at = space.tables.table_entry(
                    physical,
                    &mut space.pool,
                    va.saturating_add(offset),
                )?;
                physical.write_u64(at, frame.saturating_add(offset) | entry_flags(prot));
            }
        }
        Ok(space)
    }

    /// Empties the address space for `execve`: every mapping below the vDSO goes (the
    /// stack's pages too), and a new, empty stack is mapped. The vDSO stays.
    pub fn reset_for_exec(&mut self, physical: &PhysicalMemory) -> Result<(), OutOfMemory> {
        self.unmap_range(physical, 0, VVAR)?;
        self.vmas.insert(STACK_BOTTOM, stack_mapping());
        self.brk_start = 0;
        self.brk = 0;
        Ok(())
    }

    /// Notes the `syscall` instructions of an image library just mapped executable at
    /// `start`: `offsets` are the file's, from `file_offset`, over `len` bytes.
    pub(super) fn add_library_sites(
        &mut self,
        start: u64,
        len: u64,
        file_offset: u64,
        offsets: &BTreeSet<u64>,
    ) {
        let end_offset = file_offset.saturating_add(len);
        for offset in offsets.range(file_offset..end_offset) {
            if self.library_sites.len() >= MAX_LIBRARY_SITES {
                return;
            }
            let site = start.saturating_add(offset.saturating_sub(file_offset));
            self.library_sites.insert(site);
        }
    }

    /// Whether `site` is a `syscall` instruction of a mapped image library.
    pub(super) fn is_library_site(&self, site: u64) -> bool {
        self.library_sites.contains(&site)
    }

    /// Where the heap starts: right after the program image, page-aligned.
    pub fn set_heap_start(&mut self, image_end: u64) {
        let start = page_align(image_end).unwrap_or(image_end);
        self.brk_start = start;
        self.brk = start;
    }

    /// Whether a page could not be given memory because the function's memory was used up.
    pub fn out_of_memory(&self) -> bool {
        self.out_of_memory
    }

    /// Notes that the function's memory ran out.
    pub(super) fn ran_out(&mut self) {
        self.out_of_memory = true;
    }

    /// Counters.
    pub fn stats(&self) -> MemoryStats {
        self.stats
    }

    /// Separate mappings.
    #[cfg(feature = "fuzzing")]
    pub fn mappings(&self) -> usize {
        self.vmas.len()
    }

    /// Bytes of the function's memory given to the program (frames, chunks, page tables).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn committed(&self) -> u64 {
        self.pool.in_use()
    }

    /// Guest-physical ranges where the program's memory may be resident.
    pub fn used_ranges(&self) -> Vec<(u64, u64)> {
        self.pool.used_ranges()
    }

    /// The mapping holding `addr`.
    pub fn find(&self, addr: u64) -> Option<(u64, Vma)> {
        self.vmas.find(addr)
    }

    /// Adds a mapping of the program image: `[start, end)` with `prot`, whose pages already
    /// have frames (placed by the loader).
    pub(super) fn add_image_mapping(&mut self, start: u64, end: u64, prot: u32) {
        self.vmas.insert(
            start,
            Vma {
                end,
                prot,
                kind: Kind::Image,
                dense: true,
                huge: false,
            },
        );
    }

    /// Makes sure the pages of `[start, end)` that lie in mappings have frames and entries
    /// (the loader's and the stack builder's writes).
    pub(super) fn populate_range(
        &mut self,
        physical: &PhysicalMemory,
        start: u64,
        end: u64,
    ) -> Result<(), OutOfMemory> {
        let mut page = start & !(PAGE - 1);
        while page < end {
            let present = match self.tables.leaf(physical, page) {
                Some(Leaf::Large { .. }) => true,
                Some(Leaf::Small { entry, .. }) => entry & (PRESENT | KEPT) != 0,
                None => false,
            };
            if !present {
                self.populate(physical, page)
                    .inspect_err(|_| self.ran_out())?;
            }
            page = page.saturating_add(PAGE);
        }
        Ok(())
    }

    /// Takes `[start, end)` out of the address space: its pages and its mappings.
    fn unmap_range(
        &mut self,
        physical: &PhysicalMemory,
        start: u64,
        end: u64,
    ) -> Result<(), OutOfMemory> {
        let mut invalidate = Invalidations::default();
        let result = self.unmap_pages(physical, start, end, false, &mut invalidate);
        invalidate.apply(physical);
        result?;
        self.vmas.remove(start, end);
        let gone: Vec<u64> = self.library_sites.range(start..end).copied().collect();
        for site in gone {
            self.library_sites.remove(&site);
        }
        Ok(())
    }

    /// Whether adding one mapping (and the up to two a change may split off) stays within
    /// [`MAX_MAPPINGS`].
    fn room_for_mapping(&self) -> Result<(), MapError> {
        if self.vmas.len().saturating_add(2) > MAX_MAPPINGS {
            return Err(MapError::NoMemory);
        }
        Ok(())
    }

    /// A free range of `len` bytes: top-down below the stack's gap, then anywhere.
    fn find_free(&self, len: u64) -> Option<u64> {
        let align = if len >= CHUNK { CHUNK } else { PAGE };
        [
            (MMAP_TOP, align),
            (MMAP_TOP, PAGE),
            (USER_END, align),
            (USER_END, PAGE),
        ]
        .into_iter()
        .find_map(|(ceiling, align)| self.vmas.highest_gap(MIN_MAP_ADDRESS, ceiling, len, align))
    }

    /// `mmap`: private or shared anonymous memory (a single program cannot tell them apart).
    pub fn mmap(
        &mut self,
        physical: &PhysicalMemory,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
    ) -> Result<u64, MapError> {
        self.mmap_in(physical, addr, len, prot, flags, Area::Anonymous)
    }

    /// `mmap` placing a mapping the kernel chooses the address of in `area`.
    pub fn mmap_in(
        &mut self,
        physical: &PhysicalMemory,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        area: Area,
    ) -> Result<u64, MapError> {
        if prot & !(u64::from(READ | WRITE | EXEC) | PROT_SEM) != 0 {
            return Err(MapError::Invalid);
        }
        if !matches!(
            flags & MAP_TYPE,
            MAP_SHARED | MAP_PRIVATE | MAP_SHARED_VALIDATE
        ) {
            return Err(MapError::Invalid);
        }
        if flags & MAP_ANONYMOUS == 0 {
            return Err(MapError::NoDevice);
        }
        if flags & MAP_HUGETLB != 0 {
            // No huge-page pool is configured, as on a Lambda host.
            return Err(MapError::NoMemory);
        }
        if len == 0 {
            return Err(MapError::Invalid);
        }
        let len = page_align(len).ok_or(MapError::NoMemory)?;
        if len > USER_END {
            return Err(MapError::NoMemory);
        }
        self.room_for_mapping()?;
        let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
        let start = if fixed {
            if addr % PAGE != 0 {
                return Err(MapError::Invalid);
            }
            if addr < MIN_MAP_ADDRESS {
                return Err(MapError::Permission);
            }
            let end = addr.checked_add(len).ok_or(MapError::NoMemory)?;
            if end > USER_END {
                return Err(MapError::NoMemory);
            }
            if self.vmas.any_in(addr, end) {
                if flags & MAP_FIXED == 0 {
                    return Err(MapError::Exists);
                }
                self.unmap_range(physical, addr, end)?;
            }
            addr
        } else {
            let hint = addr & !(PAGE - 1);
            let hint_fits = hint >= MIN_MAP_ADDRESS
                && hint
                    .checked_add(len)
                    .is_some_and(|end| end <= USER_END && !self.vmas.any_in(hint, end));
            let in_area = match area {
                Area::Anonymous => None,
                Area::Files => self
                    .vmas
                    .highest_gap(MIN_MAP_ADDRESS, FILE_MAP_TOP, len, PAGE),
            };
            match in_area {
                _ if hint_fits => hint,
                Some(start) => start,
                None => self.find_free(len).ok_or(MapError::NoMemory)?,
            }
        };
        let prot = u32::try_from(prot & u64::from(READ | WRITE | EXEC)).unwrap_or(0);
        self.vmas.insert(
            start,
            Vma {
                end: start.saturating_add(len),
                prot,
                kind: Kind::Anonymous,
                dense: len >= CHUNK,
                huge: len >= CHUNK,
            },
        );
        Ok(start)
    }

    /// `munmap`.
    pub fn munmap(
        &mut self,
        physical: &PhysicalMemory,
        addr: u64,
        len: u64,
    ) -> Result<u64, MapError> {
        if addr % PAGE != 0 || len == 0 {
            return Err(MapError::Invalid);
        }
        let len = page_align(len).ok_or(MapError::Invalid)?;
        let end = addr.checked_add(len).ok_or(MapError::Invalid)?;
        if end > USER_END {
            return Err(MapError::Invalid);
        }
        self.room_for_mapping()?;
        self.unmap_range(physical, addr, end)?;
        Ok(0)
    }

    /// `mprotect`: protections are enforced by the page tables.
    pub fn mprotect(
        &mut self,
        physical: &PhysicalMemory,
        addr: u64,
        len: u64,
        prot: u64,
    ) -> Result<u64, MapError> {
        if addr % PAGE != 0 {
            return Err(MapError::Invalid);
        }
        let known = u64::from(READ | WRITE | EXEC) | PROT_SEM | PROT_GROWSDOWN | PROT_GROWSUP;
        if prot & !known != 0 || prot & PROT_GROWSDOWN != 0 && prot & PROT_GROWSUP != 0 {
            return Err(MapError::Invalid);
        }
        let len = page_align(len).ok_or(MapError::NoMemory)?;
        let end = addr.checked_add(len).ok_or(MapError::NoMemory)?;
        if len == 0 {
            return Ok(0);
        }
        if !self.vmas.covers(addr, end) {
            return Err(MapError::NoMemory);
        }
        let prot = u32::try_from(prot & u64::from(READ | WRITE | EXEC)).unwrap_or(0);
        let pieces = self.vmas.overlapping(addr, end);
        if pieces
            .iter()
            .any(|(_, vma)| prot & !vma.kind.max_protection() != 0)
        {
            return Err(MapError::Access);
        }
        self.room_for_mapping()?;
        self.vmas.protect(addr, end, prot);
        let mut invalidate = Invalidations::default();
        let result = self.protect_pages(physical, addr, end, prot, &mut invalidate);
        invalidate.apply(physical);
        result.inspect_err(|_| self.ran_out())?;
        Ok(0)
    }

    /// `madvise`: `MADV_DONTNEED` and `MADV_FREE` drop anonymous pages (they read as zero
    /// next time, and their memory goes back to the host); other known advice is accepted
    /// and changes nothing.
    pub fn madvise(
        &mut self,
        physical: &PhysicalMemory,
        addr: u64,
        len: u64,
        advice: u64,
    ) -> Result<u64, MapError> {
        // Linux's advice values, for the ones that are hints here.
        const KNOWN: &[u64] = &[
            0, 1, 2, 3, 4, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
        ];
        if addr % PAGE != 0 || !KNOWN.contains(&advice) {
            return Err(MapError::Invalid);
        }
        let len = page_align(len).ok_or(MapError::Invalid)?;
        let end = addr.checked_add(len).ok_or(MapError::Invalid)?;
        if len == 0 {
            return Ok(0);
        }
        if advice == MADV_DONTNEED || advice == MADV_FREE {
            let mut invalidate = Invalidations::default();
            let mut result = Ok(());
            for (start, vma) in self.vmas.overlapping(addr, end) {
                if vma.kind == Kind::Anonymous {
                    result = result.and(self.unmap_pages(
                        physical,
                        start,
                        vma.end,
                        true,
                        &mut invalidate,
                    ));
                }
            }
            invalidate.apply(physical);
            result?;
        }
        if !self.vmas.covers(addr, end) {
            return Err(MapError::NoMemory);
        }
        Ok(0)
    }

    /// `mremap`: shrinks in place, grows in place when the room after the mapping is free,
    /// else moves it (with `MREMAP_MAYMOVE`), copying the pages in use.
    pub fn mremap(
        &mut self,
        physical: &PhysicalMemory,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> Result<u64, MapError> {
        if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED) != 0
            || flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0
            || addr % PAGE != 0
        {
            return Err(MapError::Invalid);
        }
        let old_len = page_align(old_len).ok_or(MapError::Invalid)?;
        let new_len = match page_align(new_len) {
            Some(0) | None => return Err(MapError::Invalid),
            Some(len) => len,
        };
        if old_len == 0 {
            return Err(MapError::Invalid);
        }
        let old_end = addr.checked_add(old_len).ok_or(MapError::Fault)?;
        let Some((_, vma)) = self.vmas.find(addr).filter(|(_, vma)| vma.end >= old_end) else {
            return Err(MapError::Fault);
        };
        if vma.kind != Kind::Anonymous {
            return Err(MapError::Invalid);
        }
        self.room_for_mapping()?;
        if flags & MREMAP_FIXED != 0 {
            let end = new_addr.checked_add(new_len).ok_or(MapError::Invalid)?;
            if new_addr % PAGE != 0
                || new_addr < MIN_MAP_ADDRESS
                || end > USER_END
                || (new_addr < old_end && addr < end)
            {
                return Err(MapError::Invalid);
            }
            self.unmap_range(physical, new_addr, end)?;
            return self.move_mapping(physical, addr, old_len, new_addr, new_len, vma);
        }
        if new_len <= old_len {
            let new_end = addr.saturating_add(new_len);
            self.unmap_range(physical, new_end, old_end)?;
            return Ok(addr);
        }
        let grown_end = addr.checked_add(new_len).ok_or(MapError::NoMemory)?;
        if grown_end <= USER_END && !self.vmas.any_in(old_end, grown_end) {
            self.vmas.insert(
                old_end,
                Vma {
                    end: grown_end,
                    ..vma
                },
            );
            return Ok(addr);
        }
        if flags & MREMAP_MAYMOVE == 0 {
            return Err(MapError::NoMemory);
        }
        let to = self.find_free(new_len).ok_or(MapError::NoMemory)?;
        self.move_mapping(physical, addr, old_len, to, new_len, vma)
    }

    /// Moves the mapping `[from, from + old_len)` to `[to, to + new_len)` (free): the pages in
    /// use are copied to frames of the new range, then the old range is unmapped.
    fn move_mapping(
        &mut self,
        physical: &PhysicalMemory,
        from: u64,
        old_len: u64,
        to: u64,
        new_len: u64,
        vma: Vma,
    ) -> Result<u64, MapError> {
        let new_end = to.saturating_add(new_len);
        self.vmas.insert(
            to,
            Vma {
                end: new_end,
                dense: vma.dense || new_len >= CHUNK,
                huge: vma.huge || new_len >= CHUNK,
                ..vma
            },
        );
        let copied = old_len.min(new_len);
        let backed: Vec<u64> = self
            .backings
            .range(chunk_of(from)..from.saturating_add(copied))
            .map(|(&stretch, _)| stretch)
            .collect();
        let pages = backed.into_iter().flat_map(|stretch| {
            let first = stretch.max(from);
            let last = stretch
                .saturating_add(CHUNK)
                .min(from.saturating_add(copied));
            (0..last.saturating_sub(first) / PAGE)
                .map(move |page| first.saturating_add(page.saturating_mul(PAGE)))
        });
        for source in pages.collect::<Vec<u64>>() {
            let offset = source.saturating_sub(from);
            if let Some(frame) = self.frame_of(physical, source)
                && vma.prot != 0
            {
                let target = to.saturating_add(offset);
                let moved = self
                    .populate(physical, target)
                    .ok()
                    .and_then(|()| self.frame_of(physical, target));
                let Some(target_frame) = moved else {
                    self.ran_out();
                    self.unmap_range(physical, to, new_end)?;
                    return Err(MapError::NoMemory);
                };
                physical.copy(frame, target_frame, PAGE);
            }
        }
        self.unmap_range(physical, from, from.saturating_add(old_len))?;
        Ok(to)
    }

    /// The frame holding page `va`, if it has one (present or kept).
    pub(super) fn frame_of(&self, physical: &PhysicalMemory, va: u64) -> Option<u64> {
        match self.tables.leaf(physical, va)? {
            Leaf::Large { entry, .. } => Some(
                (entry & ADDRESS).saturating_add(va.saturating_sub(chunk_of(va)) & !(PAGE - 1)),
            ),
            Leaf::Small { entry, .. } if entry & (PRESENT | KEPT) != 0 => Some(entry & ADDRESS),
            Leaf::Small { .. } => None,
        }
    }

    /// Gives the pages of `[start, end)` that fall in stretches already backed by a whole
    /// chunk their entries now: their frames are held already, so this costs no memory, and
    /// a heap growing by small steps inside the image's stretch (as `malloc` grows it) then
    /// takes no page fault per step. Advice only: on failure the pages fault in as usual.
    fn map_ahead_in_whole_stretches(&mut self, physical: &PhysicalMemory, start: u64, end: u64) {
        let mut stretch = chunk_of(start);
        while stretch < end {
            let next = stretch.saturating_add(CHUNK);
            if matches!(self.backings.get(&stretch), Some(Backing::Whole { .. })) {
                // One call maps every page of the stretch's mappings (`populate_whole`).
                let _ = self.populate(physical, start.max(stretch));
            }
            if next <= stretch {
                break;
            }
            stretch = next;
        }
    }

    /// Whether `va` is in the heap past the 2 MiB stretch it starts in: a heap that has
    /// grown that far is used heavily, and its chunks are worth host huge pages.
    pub(super) fn in_grown_heap(&self, va: u64) -> bool {
        va >= chunk_of(self.brk_start).saturating_add(CHUNK) && va < self.brk
    }

    /// `brk`: moves the end of the heap; returns the (possibly unchanged) break.
    pub fn brk(&mut self, physical: &PhysicalMemory, requested: u64) -> u64 {
        if requested < self.brk_start {
            return self.brk;
        }
        let (Some(new_end), Some(old_end)) = (page_align(requested), page_align(self.brk)) else {
            return self.brk;
        };
        if new_end > old_end {
            if new_end > USER_END
                || self.vmas.any_in(old_end, new_end)
                || self.room_for_mapping().is_err()
            {
                return self.brk;
            }
            self.vmas.insert(
                old_end,
                Vma {
                    end: new_end,
                    prot: READ | WRITE,
                    kind: Kind::Anonymous,
                    dense: true,
                    huge: false,
                },
            );
            self.map_ahead_in_whole_stretches(physical, old_end, new_end);
        } else if new_end < old_end && self.unmap_range(physical, new_end, old_end).is_err() {
            return self.brk;
        }
        self.brk = requested;
        self.brk
    }
}
