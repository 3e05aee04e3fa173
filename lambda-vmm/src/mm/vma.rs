//! The program's mappings (Linux's VMAs): which ranges of the address space exist, with
//! what protection and of what kind. Page tables follow them lazily; this map is the truth
//! a fault or a syscall's pointer is checked against.

use std::collections::BTreeMap;

use super::layout::PAGE;

/// `PROT_READ`.
pub const READ: u32 = 1;
/// `PROT_WRITE`.
pub const WRITE: u32 = 2;
/// `PROT_EXEC`.
pub const EXEC: u32 = 4;

/// What a mapping holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// Private anonymous memory (mmap, the heap, the stack): zero until written.
    Anonymous,
    /// The program's own pages, placed when it was loaded.
    Image,
    /// The vDSO's data page: the VMM's frame, never writable or executable.
    Vvar,
    /// The vDSO's code: the VMM's frame, never writable.
    Vdso,
}

impl Kind {
    /// The protections a mapping of this kind may ever have (`mprotect` asking for more
    /// answers `EACCES`).
    pub fn max_protection(self) -> u32 {
        match self {
            Kind::Anonymous | Kind::Image => READ | WRITE | EXEC,
            Kind::Vvar => READ,
            Kind::Vdso => READ | EXEC,
        }
    }

    /// Whether its pages are frames of the function's memory (else they are the VMM's).
    pub fn uses_frames(self) -> bool {
        matches!(self, Kind::Anonymous | Kind::Image)
    }
}

/// One mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Vma {
    /// One past its last byte.
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: u32,
    /// What it holds.
    pub kind: Kind,
    /// Whether it is expected to be used densely (the heap, the stack, the image, mappings
    /// of 2 MiB or more): its 2 MiB stretches get whole chunks and large pages.
    pub dense: bool,
    /// Whether its whole chunks also ask the host for 2 MiB pages: mappings of 2 MiB or
    /// more, where the program is expected to touch much of each chunk. The stack, the
    /// image and the heap's first stretch stay on 4 KiB host pages, so a small program does
    /// not pay for zeroing (and the host for compacting) a 2 MiB page to use a few KiB of
    /// it; the heap past its first stretch gets huge pages too (`in_grown_heap`).
    pub huge: bool,
}

/// The mappings of one address space, by start address; they never overlap.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct VmaMap {
    map: BTreeMap<u64, Vma>,
}

impl VmaMap {
    /// How many mappings there are.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The mapping holding `addr`, with its start.
    pub fn find(&self, addr: u64) -> Option<(u64, Vma)> {
        self.map
            .range(..=addr)
            .next_back()
            .filter(|(_, vma)| vma.end > addr)
            .map(|(&start, &vma)| (start, vma))
    }

    /// The mappings overlapping `[start, end)`, each cut to that range.
    pub fn overlapping(&self, start: u64, end: u64) -> Vec<(u64, Vma)> {
        let first = self.find(start).map_or(start, |(s, _)| s);
        self.map
            .range(first..end)
            .filter(|(_, vma)| vma.end > start)
            .map(|(&s, &vma)| {
                (
                    s.max(start),
                    Vma {
                        end: vma.end.min(end),
                        ..vma
                    },
                )
            })
            .collect()
    }

    /// Whether any mapping overlaps `[start, end)`.
    pub fn any_in(&self, start: u64, end: u64) -> bool {
        !self.overlapping(start, end).is_empty()
    }

    /// Whether `[start, end)` is mapped without a hole.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        let mut cursor = start;
        for (s, vma) in self.overlapping(start, end) {
            if s > cursor {
                return false;
            }
            cursor = vma.end;
        }
        cursor >= end
    }

    /// Cuts mappings at `addr`, so a change can start or end there.
    fn split_at(&mut self, addr: u64) {
        if let Some((start, vma)) = self.find(addr)
            && start < addr
        {
            self.map.insert(start, Vma { end: addr, ..vma });
            self.map.insert(addr, vma);
        }
    }

    /// Removes `[start, end)` from the mappings, cutting those it straddles.
    pub fn remove(&mut self, start: u64, end: u64) {
        self.split_at(start);
        self.split_at(end);
        let inside: Vec<u64> = self.map.range(start..end).map(|(&s, _)| s).collect();
        for s in inside {
            self.map.remove(&s);
        }
    }

    /// Adds `[start, vma.end)`, which must be free, merging it with neighbours that are the
    /// same in all but their bounds (as Linux merges adjacent anonymous mappings).
    pub fn insert(&mut self, start: u64, vma: Vma) {
        self.map.insert(start, vma);
        self.merge_around(start);
    }

    /// Sets the protection of `[start, end)`, which must be mapped.
    pub fn protect(&mut self, start: u64, end: u64, prot: u32) {
        self.split_at(start);
        self.split_at(end);
        let inside: Vec<u64> = self.map.range(start..end).map(|(&s, _)| s).collect();
        for &s in &inside {
            if let Some(vma) = self.map.get_mut(&s) {
                vma.prot = prot;
            }
        }
        for s in inside {
            self.merge_around(s);
        }
        self.merge_around(end);
    }

    fn merge_around(&mut self, start: u64) {
        let Some(&vma) = self.map.get(&start) else {
            return;
        };
        let same = |a: &Vma, b: &Vma| {
            a.prot == b.prot && a.kind == b.kind && a.dense == b.dense && a.huge == b.huge
        };
        let mut start = start;
        let mut vma = vma;
        if let Some((before, previous)) = self
            .map
            .range(..start)
            .next_back()
            .map(|(&before, &previous)| (before, previous))
            && previous.end == start
            && same(&previous, &vma)
            && vma.kind == Kind::Anonymous
        {
            self.map.remove(&start);
            start = before;
            vma = Vma {
                end: vma.end,
                ..previous
            };
            self.map.insert(start, vma);
        }
        if let Some(&next) = self.map.get(&vma.end)
            && same(&next, &vma)
            && vma.kind == Kind::Anonymous
        {
            self.map.remove(&vma.end);
            self.map.insert(
                start,
                Vma {
                    end: next.end,
                    ..vma
                },
            );
        }
    }

    /// Checks a map read back from a snapshot file: at most `max` mappings, each
    /// page-aligned, not empty, inside `[floor, ceiling)` and clear of the next (the syscalls
    /// above never make another, and the VMM's own area lies above `ceiling`: a mapping
    /// reaching it would let the program's pages be mapped over the VMM's stubs and
    /// tables), with protections its kind may have (`mmap`, `mprotect` and the loader give
    /// no others). Says what does not hold.
    pub fn check(&self, floor: u64, ceiling: u64, max: usize) -> Result<(), String> {
        if self.map.len() > max {
            return Err(format!("are {}, more than {max}", self.map.len()));
        }
        let mut previous_end = floor;
        for (&start, vma) in &self.map {
            if start % PAGE != 0
                || vma.end % PAGE != 0
                || start < previous_end
                || vma.end <= start
                || vma.end > ceiling
            {
                return Err(format!(
                    "hold [{start:#x}, {:#x}), not page-aligned, empty, overlapping another or \
                     outside [{floor:#x}, {ceiling:#x})",
                    vma.end
                ));
            }
            if vma.prot & !vma.kind.max_protection() != 0 {
                return Err(format!(
                    "hold [{start:#x}, {:#x}) with protections {:#x}, beyond the {:#x} its \
                     kind ({:?}) may have",
                    vma.end,
                    vma.prot,
                    vma.kind.max_protection(),
                    vma.kind
                ));
            }
            previous_end = vma.end;
        }
        Ok(())
    }

    /// The highest free range of `len` bytes, aligned to `align`, within `[floor, ceiling)`.
    pub fn highest_gap(&self, floor: u64, ceiling: u64, len: u64, align: u64) -> Option<u64> {
        let mut top = ceiling;
        let fits = |top: u64| -> Option<u64> {
            let start = top.checked_sub(len)? & !(align.saturating_sub(1));
            (start >= floor).then_some(start)
        };
        for (&start, vma) in self.map.range(..ceiling).rev() {
            if vma.end <= top
                && let Some(candidate) = fits(top)
                && candidate >= vma.end
            {
                return Some(candidate);
            }
            top = top.min(start);
            if top <= floor {
                return None;
            }
        }
        fits(top)
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn a_map_the_syscalls_could_not_make_is_refused() {
        let mut map = VmaMap::default();
        map.insert(0x10000, anon(0x20000, READ));
        map.insert(0x30000, anon(0x40000, READ | WRITE));
        map.check(0x10000, 0x50000, 2).unwrap();
        assert!(
            map.check(0x10000, 0x50000, 1)
                .unwrap_err()
                .contains("more than 1")
        );
        // Reaching past the ceiling (the VMM's area), or below the floor.
        assert!(
            map.check(0x10000, 0x3f000, 2)
                .unwrap_err()
                .contains("outside")
        );
        assert!(
            map.check(0x11000, 0x50000, 2)
                .unwrap_err()
                .contains("outside")
        );
        let refused = |start: u64, end: u64| {
            let mut forged = map.clone();
            forged.map.insert(start, anon(end, READ));
            forged.check(0x10000, 0x50000, 3).unwrap_err()
        };
        assert!(refused(0x1f000, 0x28000).contains("overlapping"));
        assert!(refused(0x25000, 0x25000).contains("empty"));
        assert!(refused(0x25800, 0x26000).contains("page-aligned"));
        assert!(refused(0x25000, 0x26800).contains("page-aligned"));
        // Protections beyond what the mapping's kind may have: `mmap` keeps only read,
        // write and execute, and `mprotect` refuses more than the vDSO's read and execute.
        let protected = |kind: Kind, prot: u32| {
            let mut forged = map.clone();
            forged.map.insert(
                0x25000,
                Vma {
                    kind,
                    ..anon(0x26000, prot)
                },
            );
            forged.check(0x10000, 0x50000, 3)
        };
        protected(Kind::Anonymous, READ | WRITE | EXEC).unwrap();
        protected(Kind::Vdso, READ | EXEC).unwrap();
        let why = protected(Kind::Anonymous, READ | 0x8).unwrap_err();
        assert!(
            why.contains("with protections 0x9, beyond the 0x7 its kind (Anonymous) may have"),
            "{why}"
        );
        let why = protected(Kind::Vdso, READ | WRITE).unwrap_err();
        assert!(
            why.contains("beyond the 0x5 its kind (Vdso) may have"),
            "{why}"
        );
    }

    fn anon(end: u64, prot: u32) -> Vma {
        Vma {
            end,
            prot,
            kind: Kind::Anonymous,
            dense: false,
            huge: false,
        }
    }

    #[test]
    fn neighbours_merge_and_changes_split() {
        let mut map = VmaMap::default();
        map.insert(0x1000, anon(0x3000, READ | WRITE));
        map.insert(0x3000, anon(0x5000, READ | WRITE));
        assert_eq!(map.len(), 1);
        assert_eq!(map.find(0x4fff), Some((0x1000, anon(0x5000, READ | WRITE))));
        map.protect(0x2000, 0x3000, READ);
        assert_eq!(map.len(), 3);
        assert_eq!(map.find(0x2000).unwrap().1.prot, READ);
        map.protect(0x2000, 0x3000, READ | WRITE);
        assert_eq!(map.len(), 1);
        map.remove(0x2000, 0x4000);
        assert_eq!(map.len(), 2);
        assert!(!map.any_in(0x2000, 0x4000));
        assert!(map.covers(0x1000, 0x2000));
        assert!(!map.covers(0x1000, 0x4001));
        assert_eq!(
            map.overlapping(0x1800, 0x4800),
            vec![
                (0x1800, anon(0x2000, READ | WRITE)),
                (0x4000, anon(0x4800, READ | WRITE))
            ]
        );
    }

    #[test]
    fn gaps_are_found_top_down() {
        let mut map = VmaMap::default();
        map.insert(0x10_0000, anon(0x20_0000, READ));
        map.insert(0x30_0000, anon(0x40_0000, READ));
        assert_eq!(
            map.highest_gap(0, 0x50_0000, 0x1000, 0x1000),
            Some(0x4f_f000)
        );
        assert_eq!(
            map.highest_gap(0, 0x40_0000, 0x10_0000, 0x1000),
            Some(0x20_0000)
        );
        assert_eq!(map.highest_gap(0, 0x40_0000, 0x10_0001, 0x1000), None);
        assert_eq!(map.highest_gap(0, 0x20_0000, 0x10_0000, 0x1000), Some(0));
        assert_eq!(map.highest_gap(0x1000, 0x20_0000, 0x10_0000, 0x1000), None);
        assert_eq!(
            map.highest_gap(0, 0x50_0000, 0x2000, 0x20_0000),
            Some(0x40_0000)
        );
    }
}
