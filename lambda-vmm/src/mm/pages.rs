//! Pages, as the address space backs them: giving a range frames and page-table entries
//! (populating), taking them away (unmapping), changing what they allow (protecting), and
//! making sure KVM forgets whatever the guest may no longer reach.
//!
//! Backing follows each 2 MiB stretch of the address space. A stretch of a dense mapping
//! (the heap, the stack, the image, mappings of 2 MiB or more) gets a whole chunk of the
//! function's memory, page `i` on frame `i`, all its pages at the first fault, and one large
//! page when a single mapping covers it and the chunk may be large there (`homes.rs`); for
//! mappings of 2 MiB or more (`Vma::huge`) and the heap past its first stretch the host is
//! asked to back the chunk with one huge page, so the guest touches it at full speed. Other
//! stretches get frames one at a time, a window of them per fault, host-populated and
//! entered with the Accessed and Dirty bits set, so KVM maps the guest's first touches
//! eight at a time (`docs/platform.md`).
//!
//! The rule that keeps stale translations out (a security matter on PVM hosts, where KVM
//! never sees the VMM's page-table writes): after an entry that mapped a frame is removed,
//! weakened or pointed elsewhere, the frame is discarded (when freed) or revoked (when kept)
//! before the guest runs again, which drops every translation KVM holds to it.

use super::layout::{CHUNK, PAGE, chunk_of};
use super::page_table::{
    ACCESSED, ADDRESS, DIRTY, KEPT, LARGE, Leaf, NO_EXECUTE, NoFrame, PRESENT, USER, WRITABLE,
    take_frame,
};
use super::physical::PhysicalMemory;
use super::space::{AddressSpace, Backing};
use super::vma::{EXEC, Kind, WRITE};

/// Pages given frames at once around a fault in a stretch backed frame by frame.
pub const FAULT_AROUND_PAGES: u64 = 16;

/// A page, as a host size.
const PAGE_BYTES: usize = 4096;

/// The function's memory ran out (after everything that could be freed was).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

impl From<NoFrame> for OutOfMemory {
    fn from(_: NoFrame) -> OutOfMemory {
        OutOfMemory
    }
}

/// The page-table flags of a page with protection `prot` (`PROT_*`); 0 for `PROT_NONE`.
pub fn entry_flags(prot: u32) -> u64 {
    if prot == 0 {
        return 0;
    }
    let mut flags = PRESENT | USER | ACCESSED | DIRTY;
    if prot & WRITE != 0 {
        flags |= WRITABLE;
    }
    if prot & EXEC == 0 {
        flags |= NO_EXECUTE;
    }
    flags
}

/// Whether going from entry `old` to entry `new` takes any access away.
fn weakens(old: u64, new: u64) -> bool {
    old & PRESENT != 0
        && (new & PRESENT == 0
            || (old & WRITABLE != 0 && new & WRITABLE == 0)
            || (old & NO_EXECUTE == 0 && new & NO_EXECUTE != 0)
            || (old & ADDRESS) != (new & ADDRESS))
}

/// Ranges of guest-physical memory to hand to the host, gathered while page tables change
/// and applied in as few calls as possible before the guest runs again.
#[derive(Debug, Default)]
pub struct Invalidations {
    discard: Vec<(u64, u64)>,
    revoke: Vec<(u64, u64)>,
}

impl Invalidations {
    fn push(list: &mut Vec<(u64, u64)>, addr: u64, len: u64) {
        if let Some((start, size)) = list.last_mut()
            && start.saturating_add(*size) == addr
        {
            *size = size.saturating_add(len);
            return;
        }
        list.push((addr, len));
    }

    /// The frames will be reused or freed: their contents go.
    pub fn discard(&mut self, addr: u64, len: u64) {
        Invalidations::push(&mut self.discard, addr, len);
    }

    /// The frames stay mapped with less access, or elsewhere: their contents stay.
    pub fn revoke(&mut self, addr: u64, len: u64) {
        Invalidations::push(&mut self.revoke, addr, len);
    }

    /// Applies everything gathered.
    pub fn apply(self, physical: &PhysicalMemory) {
        for (addr, len) in self.revoke {
            physical.revoke(addr, len);
        }
        for (addr, len) in self.discard {
            physical.discard(addr, len);
        }
    }
}

impl AddressSpace {
    /// Gives the page holding `va` (inside a mapping that allows some access) a frame and a
    /// page-table entry, with its neighbours as the stretch's backing decides.
    pub(super) fn populate(
        &mut self,
        physical: &PhysicalMemory,
        va: u64,
    ) -> Result<(), OutOfMemory> {
        let (start, vma) = self.vmas.find(va).ok_or(OutOfMemory)?;
        if !vma.kind.uses_frames() {
            return Ok(());
        }
        let stretch = chunk_of(va);
        if !self.backings.contains_key(&stretch) {
            let backing = match vma
                .dense
                .then(|| self.take_chunk_for(physical, stretch))
                .flatten()
            {
                Some(chunk) => {
                    physical.prefer_huge(chunk, CHUNK, vma.huge || self.in_grown_heap(va));
                    Backing::Whole { chunk, pages: 0 }
                }
                None => Backing::Frames { pages: 0 },
            };
            self.backings.insert(stretch, backing);
        }
        let result = match self.backings.get(&stretch).copied() {
            Some(Backing::Whole { chunk, .. }) => self.populate_whole(physical, stretch, chunk),
            _ => self.populate_window(physical, va, start, vma.end),
        };
        self.forget_if_empty(stretch);
        result
    }

    /// Every page of a whole-chunk stretch that lies in a mapping: one large page when one
    /// mapping with access covers the stretch, else a page-table entry for each.
    fn populate_whole(
        &mut self,
        physical: &PhysicalMemory,
        stretch: u64,
        chunk: u64,
    ) -> Result<(), OutOfMemory> {
        let end = stretch.saturating_add(CHUNK);
        let pieces = self.vmas.overlapping(stretch, end);
        if let [(start, vma)] = pieces.as_slice()
            && *start == stretch
            && vma.end == end
            && vma.prot != 0
            && vma.kind == Kind::Anonymous
            && !matches!(
                self.tables.leaf(physical, stretch),
                Some(Leaf::Large { .. })
            )
            && self.homes.allows(chunk, stretch)
            && self.whole_chunk_untouched_or_uniform(physical, stretch, chunk, vma.prot)
        {
            self.tables.map_large(
                physical,
                &mut self.pool,
                stretch,
                chunk,
                entry_flags(vma.prot),
            )?;
            self.homes.settle(chunk, stretch);
            self.set_pages(stretch, CHUNK / PAGE);
            return Ok(());
        }
        if matches!(
            self.tables.leaf(physical, stretch),
            Some(Leaf::Large { .. })
        ) {
            return Ok(());
        }
        let mut added: u64 = 0;
        for (start, vma) in pieces {
            if vma.prot == 0 || !vma.kind.uses_frames() {
                continue;
            }
            let mut page = start;
            while page < vma.end {
                let at = self.tables.table_entry(physical, &mut self.pool, page)?;
                if physical.read_u64(at) & (PRESENT | KEPT) == 0 {
                    let frame = chunk.saturating_add(page.saturating_sub(stretch));
                    physical.write_u64(at, frame | entry_flags(vma.prot));
                    added = added.saturating_add(1);
                }
                page = page.saturating_add(PAGE);
            }
        }
        self.add_pages(stretch, added);
        Ok(())
    }

    /// A free chunk for `stretch`: one whose large-page home it is if any is free, else one
    /// without a home, else any (which then serves as 4 KiB pages). It is in a memory slot
    /// (`PhysicalMemory::cover`) before anything can point at it; `None` when no chunk is
    /// free or the VM could not register the slot.
    fn take_chunk_for(&mut self, physical: &PhysicalMemory, stretch: u64) -> Option<u64> {
        let homes = &self.homes;
        let chunk = self
            .pool
            .take_chunk_ranked(|chunk| homes.suitability(chunk, stretch))?;
        if physical.cover(chunk, CHUNK).is_err() {
            self.pool.give_chunk(chunk);
            return None;
        }
        Some(chunk)
    }

    /// Whether the stretch's page table (if any) maps only its own chunk's frames with
    /// `prot`, or nothing: then one large page says the same.
    fn whole_chunk_untouched_or_uniform(
        &self,
        physical: &PhysicalMemory,
        stretch: u64,
        chunk: u64,
        prot: u32,
    ) -> bool {
        let Some(Leaf::Small { at, .. }) = self.tables.leaf(physical, stretch) else {
            return true;
        };
        let table = at & !(PAGE - 1);
        let want = entry_flags(prot);
        let mut entries = vec![0u8; PAGE_BYTES];
        physical.read(table, &mut entries);
        entries.chunks_exact(8).enumerate().all(|(i, bytes)| {
            let entry = u64::from_le_bytes(bytes.try_into().unwrap_or_default());
            let frame = chunk.saturating_add((i as u64).saturating_mul(PAGE));
            entry == 0 || entry == frame | want
        })
    }

    /// A window of pages around `va` in a stretch backed frame by frame, within the mapping
    /// `[start, end)`: each gets a frame, host-populated, and its entry.
    fn populate_window(
        &mut self,
        physical: &PhysicalMemory,
        va: u64,
        start: u64,
        end: u64,
    ) -> Result<(), OutOfMemory> {
        let stretch = chunk_of(va);
        let window = FAULT_AROUND_PAGES.saturating_mul(PAGE);
        let window_start = va & !window.saturating_sub(1);
        let from = window_start.max(start).max(stretch);
        let to = window_start
            .saturating_add(window)
            .min(end)
            .min(stretch.saturating_add(CHUNK));
        let Some((_, vma)) = self.vmas.find(va) else {
            return Err(OutOfMemory);
        };
        if vma.prot == 0 {
            // As in `populate_whole`: a page without access gets no frame. Its entry would
            // be neither present nor kept, so no walk or unmap would find the frame again.
            return Ok(());
        }
        let flags = entry_flags(vma.prot);
        let mut added: u64 = 0;
        let mut page = from & !(PAGE - 1);
        let mut fresh: Vec<(u64, u64)> = Vec::new();
        while page < to {
            let at = self.tables.table_entry(physical, &mut self.pool, page)?;
            if physical.read_u64(at) & (PRESENT | KEPT) == 0 {
                let Some(frame) = take_frame(physical, &mut self.pool) else {
                    if page == (va & !(PAGE - 1)) {
                        self.add_pages(stretch, added);
                        return Err(OutOfMemory);
                    }
                    break;
                };
                Invalidations::push(&mut fresh, frame, PAGE);
                physical.write_u64(at, frame | flags);
                added = added.saturating_add(1);
            }
            page = page.saturating_add(PAGE);
        }
        for (addr, len) in fresh {
            physical.populate(addr, len);
        }
        self.add_pages(stretch, added);
        Ok(())
    }

    fn add_pages(&mut self, stretch: u64, added: u64) {
        if let Some(Backing::Whole { pages, .. } | Backing::Frames { pages }) =
            self.backings.get_mut(&stretch)
        {
            *pages = pages.saturating_add(added);
        }
    }

    fn set_pages(&mut self, stretch: u64, count: u64) {
        if let Some(Backing::Whole { pages, .. } | Backing::Frames { pages }) =
            self.backings.get_mut(&stretch)
        {
            *pages = count;
        }
    }

    /// Drops the backing of a stretch with no page left, handing its chunk back.
    fn forget_if_empty(&mut self, stretch: u64) {
        match self.backings.get(&stretch).copied() {
            Some(Backing::Whole { chunk, pages: 0 }) => {
                self.backings.remove(&stretch);
                self.pool.give_chunk(chunk);
            }
            Some(Backing::Frames { pages: 0 }) => {
                self.backings.remove(&stretch);
            }
            _ => {}
        }
    }

    /// Takes frames and entries away from `[start, end)` (page-aligned): the memory goes back
    /// to the pool (or, for `keep_frames_of_whole`, stays with its stretch, reading zero).
    pub(super) fn unmap_pages(
        &mut self,
        physical: &PhysicalMemory,
        start: u64,
        end: u64,
        keep_frames_of_whole: bool,
        invalidate: &mut Invalidations,
    ) -> Result<(), OutOfMemory> {
        for stretch in self.stretches_with_pages(start, end) {
            let from = start.max(stretch);
            let to = end.min(stretch.saturating_add(CHUNK));
            self.unmap_in_stretch(
                physical,
                stretch,
                from,
                to,
                keep_frames_of_whole,
                invalidate,
            )?;
        }
        Ok(())
    }

    /// The 2 MiB stretches overlapping `[start, end)` that may hold page-table entries: the
    /// backed ones and those of the vDSO. A reservation of any size costs only its backed
    /// stretches to change.
    fn stretches_with_pages(&self, start: u64, end: u64) -> Vec<u64> {
        let mut stretches: Vec<u64> = self
            .backings
            .range(chunk_of(start)..end)
            .map(|(&stretch, _)| stretch)
            .collect();
        for (vma_start, vma) in self.vmas.overlapping(start, end) {
            if !vma.kind.uses_frames() {
                let mut stretch = chunk_of(vma_start);
                while stretch < vma.end {
                    stretches.push(stretch);
                    stretch = stretch.saturating_add(CHUNK);
                }
            }
        }
        stretches.sort_unstable();
        stretches.dedup();
        stretches
    }

    fn unmap_in_stretch(
        &mut self,
        physical: &PhysicalMemory,
        stretch: u64,
        from: u64,
        to: u64,
        keep_frames_of_whole: bool,
        invalidate: &mut Invalidations,
    ) -> Result<(), OutOfMemory> {
        let backing = self.backings.get(&stretch).copied();
        if let Some(Leaf::Large { at, .. }) = self.tables.leaf(physical, stretch) {
            let Some(Backing::Whole { chunk, .. }) = backing else {
                unreachable!("large pages map whole chunks");
            };
            if from == stretch && to == stretch.saturating_add(CHUNK) {
                invalidate.discard(chunk, CHUNK);
                if !keep_frames_of_whole {
                    physical.write_u64(at, 0);
                    self.set_pages(stretch, 0);
                    self.forget_if_empty(stretch);
                }
                return Ok(());
            }
            // The split takes its table from the pool, which may hand out a frame this
            // unmap has given back from another stretch. Such frames are discarded when the
            // unmap is done: discard them now, or the new table would be wiped with them
            // (its entries gone while the stretch still counts them).
            std::mem::take(invalidate).apply(physical);
            self.tables.split(physical, &mut self.pool, stretch)?;
        }
        let mut removed: u64 = 0;
        let mut page = from;
        while page < to {
            if let Some(Leaf::Small { at, entry }) = self.tables.leaf(physical, page)
                && entry & (PRESENT | KEPT) != 0
            {
                let frame = entry & ADDRESS;
                // The vDSO's pages are the VMM's: forgotten, never wiped, and not counted
                // by the stretch's backing, which counts only frames of the function's.
                let ours = !self.kernel_frame(frame);
                if ours {
                    invalidate.discard(frame, PAGE);
                } else {
                    invalidate.revoke(frame, PAGE);
                }
                match backing {
                    Some(Backing::Whole { .. }) if keep_frames_of_whole => {}
                    Some(Backing::Whole { .. }) => {
                        physical.write_u64(at, 0);
                        removed = removed.saturating_add(u64::from(ours));
                    }
                    _ => {
                        physical.write_u64(at, 0);
                        if ours {
                            self.pool.give_frame(frame);
                        }
                        removed = removed.saturating_add(u64::from(ours));
                    }
                }
            }
            page = page.saturating_add(PAGE);
        }
        if let Some(Backing::Whole { pages, .. } | Backing::Frames { pages }) =
            self.backings.get_mut(&stretch)
        {
            *pages = pages.saturating_sub(removed);
        }
        if let Some(Backing::Whole { chunk, pages: 0 }) = self.backings.get(&stretch).copied() {
            // Pages the host backed with the chunk's huge page but the guest never had.
            invalidate.discard(chunk, CHUNK);
        }
        self.forget_if_empty(stretch);
        Ok(())
    }

    /// Sets the entries of `[start, end)` (page-aligned, mapped) to protection `prot`.
    pub(super) fn protect_pages(
        &mut self,
        physical: &PhysicalMemory,
        start: u64,
        end: u64,
        prot: u32,
        invalidate: &mut Invalidations,
    ) -> Result<(), OutOfMemory> {
        let flags = entry_flags(prot);
        for stretch in self.stretches_with_pages(start, end) {
            let from = start.max(stretch);
            let to = end.min(stretch.saturating_add(CHUNK));
            if let Some(Leaf::Large { at, entry }) = self.tables.leaf(physical, stretch) {
                if from == stretch && to == stretch.saturating_add(CHUNK) && prot != 0 {
                    let new = (entry & ADDRESS) | flags | LARGE;
                    if weakens(entry, new) {
                        invalidate.revoke(entry & ADDRESS, CHUNK);
                    }
                    physical.write_u64(at, new);
                    continue;
                }
                self.tables.split(physical, &mut self.pool, stretch)?;
            }
            let mut page = from;
            while page < to {
                if let Some(Leaf::Small { at, entry }) = self.tables.leaf(physical, page)
                    && entry & (PRESENT | KEPT) != 0
                {
                    let frame = entry & ADDRESS;
                    let new = if prot == 0 {
                        frame | KEPT
                    } else {
                        frame | flags
                    };
                    if weakens(entry, new) {
                        invalidate.revoke(frame, PAGE);
                    }
                    physical.write_u64(at, new);
                }
                page = page.saturating_add(PAGE);
            }
        }
        Ok(())
    }

    /// Gives the stretch at `stretch` a whole chunk (the loader's), or returns the one it
    /// has; `None` when no chunk is free or the stretch is backed frame by frame.
    pub(super) fn take_whole(&mut self, physical: &PhysicalMemory, stretch: u64) -> Option<u64> {
        match self.backings.get(&stretch).copied() {
            Some(Backing::Whole { chunk, .. }) => Some(chunk),
            Some(Backing::Frames { .. }) => None,
            None => {
                let chunk = self.take_chunk_for(physical, stretch)?;
                physical.prefer_huge(chunk, CHUNK, false);
                self.backings
                    .insert(stretch, Backing::Whole { chunk, pages: 0 });
                Some(chunk)
            }
        }
    }

    /// Whether `frame` is one of the VMM's (the kernel area), not the function's memory.
    pub(super) fn kernel_frame(&self, frame: u64) -> bool {
        frame >= super::physical::KERNEL_BASE
    }
}
