//! The program's address space: the brk heap growing up from the image, anonymous mmap
//! regions allocated top-down below the stack guard. All of it lies inside the function's
//! memory, so a program can never make the host allocate more than its memory size.

use std::collections::BTreeMap;

use super::{Errno, SysResult};
use crate::vm::GuestMemory;
use crate::vm::layout::{Layout, PAGE};

const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MREMAP_MAYMOVE: u64 = 1;
const MADV_DONTNEED: u64 = 4;
const MADV_FREE: u64 = 8;

/// Most separate mappings a program may hold (Linux's default `vm.max_map_count`).
pub const MAX_MAPPINGS: usize = 65_530;

fn errno(code: i32) -> Errno {
    Errno(code)
}

fn page_align(len: u64) -> Option<u64> {
    len.checked_add(PAGE.saturating_sub(1))
        .map(|l| l & !PAGE.saturating_sub(1))
}

/// The end of `[start, start + len)`. Regions lie inside guest memory (far below `2^64`), so
/// this never saturates for a recorded region; for a guest's range, saturation makes the
/// range fail the bounds it is checked against.
fn end_of(start: u64, len: u64) -> u64 {
    start.saturating_add(len)
}

/// The heap and mmap area of one program.
pub struct AddressSpace {
    brk_start: u64,
    brk: u64,
    /// Lowest and highest addresses mmap may hand out.
    area_start: u64,
    area_end: u64,
    /// Mapped regions: start -> length (page-aligned, non-overlapping).
    regions: BTreeMap<u64, u64>,
    exhausted: bool,
}

impl AddressSpace {
    /// An empty address space for a program whose image ends at `image_end`.
    pub fn new(layout: &Layout, image_end: u64) -> AddressSpace {
        AddressSpace {
            brk_start: image_end,
            brk: image_end,
            area_start: image_end,
            area_end: layout.guard_start,
            regions: BTreeMap::new(),
            exhausted: false,
        }
    }

    /// Separate mappings held.
    #[cfg(feature = "fuzzing")]
    pub fn mappings(&self) -> usize {
        self.regions.len()
    }

    /// Whether an allocation ever failed for lack of memory.
    pub fn exhausted(&self) -> bool {
        self.exhausted
    }

    fn lowest_region(&self) -> u64 {
        self.regions.keys().next().copied().unwrap_or(self.area_end)
    }

    /// `brk`: moves the program break; returns the (possibly unchanged) break.
    pub fn brk(&mut self, memory: &GuestMemory, requested: u64) -> SysResult {
        if requested < self.brk_start {
            return Ok(self.brk);
        }
        let new_end = page_align(requested).unwrap_or(u64::MAX);
        if new_end > self.lowest_region() {
            self.exhausted = true;
            return Ok(self.brk);
        }
        let old_end = page_align(self.brk).unwrap_or(new_end);
        if new_end < old_end {
            memory.zero(new_end, old_end.saturating_sub(new_end))?;
        }
        self.brk = requested;
        Ok(self.brk)
    }

    /// Finds the highest free gap of `len` bytes between the heap and the stack guard.
    fn find_gap(&self, len: u64) -> Option<u64> {
        let floor = page_align(self.brk)?;
        let mut ceiling = self.area_end;
        for (&start, &length) in self.regions.iter().rev() {
            let end = end_of(start, length);
            if ceiling.checked_sub(end).is_some_and(|gap| gap >= len) {
                return ceiling.checked_sub(len);
            }
            ceiling = ceiling.min(start);
        }
        ceiling
            .checked_sub(floor)
            .filter(|gap| *gap >= len)
            .and_then(|_| ceiling.checked_sub(len))
    }

    fn overlaps(&self, start: u64, len: u64) -> bool {
        let end = end_of(start, len);
        self.regions
            .range(..end)
            .next_back()
            .is_some_and(|(&s, &l)| end_of(s, l) > start)
    }

    /// Records `[start, start + len)` as mapped, merged with mappings it touches (as Linux
    /// merges adjacent anonymous mappings), so contiguous allocations stay one entry.
    fn insert_region(&mut self, mut start: u64, mut len: u64) {
        if let Some((&before, &before_len)) = self.regions.range(..start).next_back()
            && end_of(before, before_len) == start
        {
            self.regions.remove(&before);
            len = len.saturating_add(before_len);
            start = before;
        }
        if let Some(after_len) = self.regions.remove(&end_of(start, len)) {
            len = len.saturating_add(after_len);
        }
        self.regions.insert(start, len);
    }

    /// Removes `[start, start + len)` from the region map, splitting regions as needed.
    fn unmap_range(&mut self, start: u64, len: u64) {
        let end = end_of(start, len);
        let affected: Vec<(u64, u64)> = self
            .regions
            .range(..end)
            .filter(|&(&s, &l)| end_of(s, l) > start)
            .map(|(&s, &l)| (s, l))
            .collect();
        for (s, l) in affected {
            self.regions.remove(&s);
            if s < start {
                self.regions.insert(s, start.saturating_sub(s));
            }
            let region_end = end_of(s, l);
            if region_end > end {
                self.regions.insert(end, region_end.saturating_sub(end));
            }
        }
    }

    /// `mmap`: anonymous private memory only (files arrive with the Runtime API filesystem).
    #[allow(clippy::too_many_arguments)]
    pub fn mmap(
        &mut self,
        memory: &GuestMemory,
        addr: u64,
        len: u64,
        _prot: u64,
        flags: u64,
        fd: u64,
        _offset: u64,
    ) -> SysResult {
        let _ = fd; // ignored for anonymous mappings, as Linux does
        if flags & MAP_ANONYMOUS == 0 {
            return Err(errno(libc::ENODEV));
        }
        if flags & (MAP_SHARED | MAP_PRIVATE) == 0 {
            return Err(errno(libc::EINVAL));
        }
        let len = match page_align(len) {
            Some(0) | None => return Err(errno(libc::EINVAL)),
            Some(len) => len,
        };
        if self.regions.len() >= MAX_MAPPINGS {
            return Err(errno(libc::ENOMEM));
        }
        if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
            if addr % PAGE != 0 {
                return Err(errno(libc::EINVAL));
            }
            let inside = addr >= page_align(self.brk).unwrap_or(u64::MAX)
                && addr
                    .checked_add(len)
                    .is_some_and(|end| end <= self.area_end);
            if !inside {
                return Err(errno(libc::ENOMEM));
            }
            if self.overlaps(addr, len) {
                if flags & MAP_FIXED_NOREPLACE != 0 {
                    return Err(errno(libc::EEXIST));
                }
                self.unmap_range(addr, len);
            }
            memory.zero(addr, len)?;
            self.insert_region(addr, len);
            return Ok(addr);
        }
        let Some(start) = self.find_gap(len) else {
            self.exhausted = true;
            return Err(errno(libc::ENOMEM));
        };
        // Freed memory was zeroed when it was unmapped; fresh memory is zero.
        self.insert_region(start, len);
        Ok(start)
    }

    /// `munmap`: frees the range and hands its pages back to the host.
    pub fn munmap(&mut self, memory: &GuestMemory, addr: u64, len: u64) -> SysResult {
        if addr % PAGE != 0 || len == 0 {
            return Err(errno(libc::EINVAL));
        }
        let len = page_align(len).ok_or(errno(libc::EINVAL))?;
        let end = addr.checked_add(len).ok_or(errno(libc::EINVAL))?;
        if addr < self.area_start || end > self.area_end {
            return Err(errno(libc::EINVAL));
        }
        if self.overlaps(addr, len) {
            self.unmap_range(addr, len);
            memory.zero(addr, len)?;
        }
        Ok(0)
    }

    /// `mremap`: shrinks in place; growing answers ENOMEM, and glibc's realloc then falls
    /// back to allocate-copy-free.
    pub fn mremap(
        &mut self,
        memory: &GuestMemory,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
    ) -> SysResult {
        if addr % PAGE != 0 || flags & !MREMAP_MAYMOVE != 0 {
            return Err(errno(libc::EINVAL));
        }
        let old_len = page_align(old_len).ok_or(errno(libc::EINVAL))?;
        let new_len = match page_align(new_len) {
            Some(0) | None => return Err(errno(libc::EINVAL)),
            Some(len) => len,
        };
        let old_end = addr.checked_add(old_len).ok_or(errno(libc::EFAULT))?;
        let mapped = self
            .regions
            .range(..=addr)
            .next_back()
            .is_some_and(|(&start, &len)| end_of(start, len) >= old_end);
        if !mapped {
            return Err(errno(libc::EFAULT));
        }
        if new_len > old_len {
            return Err(errno(libc::ENOMEM));
        }
        if new_len < old_len {
            self.munmap(
                memory,
                end_of(addr, new_len),
                old_len.saturating_sub(new_len),
            )?;
        }
        Ok(addr)
    }

    /// `mprotect`: accepted without effect (guest memory is always readable and writable).
    pub fn mprotect(&mut self, addr: u64, _len: u64) -> SysResult {
        if addr % PAGE != 0 {
            return Err(errno(libc::EINVAL));
        }
        Ok(0)
    }

    /// `madvise`: `MADV_DONTNEED` / `MADV_FREE` zero the anonymous memory in the range (mmap
    /// regions and the brk heap) and hand it back to the host; the rest of the range (the
    /// program's own image, the stack) and every other advice are left alone, as hints.
    pub fn madvise(&mut self, memory: &GuestMemory, addr: u64, len: u64, advice: u64) -> SysResult {
        if addr % PAGE != 0 {
            return Err(errno(libc::EINVAL));
        }
        let len = page_align(len).ok_or(errno(libc::EINVAL))?;
        let end = addr.checked_add(len).ok_or(errno(libc::EINVAL))?;
        if advice != MADV_DONTNEED && advice != MADV_FREE {
            return Ok(0);
        }
        let heap = (
            self.brk_start,
            page_align(self.brk).unwrap_or(self.brk_start),
        );
        let anonymous = self
            .regions
            .range(..end)
            .map(|(&start, &length)| (start, end_of(start, length)))
            .chain(std::iter::once(heap));
        for (start, stop) in anonymous {
            let (from, to) = (start.max(addr), stop.min(end));
            if from < to {
                memory.zero(from, to.saturating_sub(from))?;
            }
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::layout::USER_START;

    fn setup() -> (GuestMemory, AddressSpace) {
        let memory = GuestMemory::new(128 << 20).unwrap();
        let space = AddressSpace::new(memory.layout(), USER_START + (4 << 20));
        (memory, space)
    }

    const ANON: u64 = MAP_PRIVATE | MAP_ANONYMOUS;
    const NO_FD: u64 = u64::MAX;

    #[test]
    fn mmap_reuses_freed_memory_zeroed() {
        let (memory, mut space) = setup();
        let a = space.mmap(&memory, 0, 8192, 3, ANON, NO_FD, 0).unwrap();
        memory.write(a, b"dirty").unwrap();
        space.munmap(&memory, a, 8192).unwrap();
        let b = space.mmap(&memory, 0, 8192, 3, ANON, NO_FD, 0).unwrap();
        assert_eq!(a, b);
        assert_eq!(memory.read_vec(b, 5).unwrap(), [0; 5]);
    }

    #[test]
    fn exhaustion_is_reported() {
        let (memory, mut space) = setup();
        let mut count = 0;
        while space.mmap(&memory, 0, 1 << 20, 3, ANON, NO_FD, 0).is_ok() {
            count += 1;
            assert!(count < 200);
        }
        assert!(count > 100);
        assert!(space.exhausted());
        let before = space.brk(&memory, 0).unwrap();
        assert_eq!(space.brk(&memory, before + (1 << 20)).unwrap(), before);
    }

    #[test]
    fn the_number_of_mappings_is_bounded() {
        let memory = GuestMemory::new(1024 << 20).unwrap();
        let mut space = AddressSpace::new(memory.layout(), USER_START + (4 << 20));
        // Every other page, so the mappings cannot merge.
        for i in 0..MAX_MAPPINGS as u64 {
            let addr = USER_START + (8 << 20) + i * 8192;
            space
                .mmap(&memory, addr, 4096, 3, ANON | MAP_FIXED, NO_FD, 0)
                .unwrap();
        }
        assert_eq!(
            space.mmap(&memory, 0, 4096, 3, ANON, NO_FD, 0),
            Err(Errno(libc::ENOMEM))
        );
    }

    #[test]
    fn brk_grows_and_refuses_to_cross_mappings() {
        let (memory, mut space) = setup();
        let start = space.brk(&memory, 0).unwrap();
        assert_eq!(space.brk(&memory, start + 10_000).unwrap(), start + 10_000);
        assert_eq!(space.brk(&memory, start - 1).unwrap(), start + 10_000);
        assert!(!space.exhausted());
    }

    #[test]
    fn bad_arguments() {
        let (memory, mut space) = setup();
        assert_eq!(
            space.mmap(&memory, 0, 4096, 3, MAP_PRIVATE, 3, 0),
            Err(Errno(libc::ENODEV))
        );
        assert_eq!(
            space.mmap(&memory, 0, 0, 3, ANON, NO_FD, 0),
            Err(Errno(libc::EINVAL))
        );
        assert_eq!(
            space.mmap(&memory, 0, u64::MAX, 3, ANON, NO_FD, 0),
            Err(Errno(libc::EINVAL))
        );
        assert_eq!(
            space.mmap(&memory, 0x1000, 4096, 3, ANON | MAP_FIXED, NO_FD, 0),
            Err(Errno(libc::ENOMEM))
        );
        assert_eq!(space.munmap(&memory, 5, 4096), Err(Errno(libc::EINVAL)));
        assert_eq!(space.munmap(&memory, 0, 4096), Err(Errno(libc::EINVAL)));
    }
}
