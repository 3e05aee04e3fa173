//! Where each chunk may be a large page: the one stretch of the address space it was first
//! mapped large at (its home).
//!
//! Why: under shadow paging (PVM), KVM builds the translation of a guest 2 MiB page in a
//! shadow table it finds by the chunk's guest-physical address, and links it from the
//! shadow entry of the stretch that maps it. The VMM's own writes to the guest's page
//! tables are invisible to KVM (`docs/platform.md`), so when a stretch stops mapping the
//! chunk that link stays. Discarding the chunk's frames empties the shadow table, but if
//! the chunk were later mapped large at another stretch, the same shadow table would fill
//! again, and the first stretch, through its stale link, would reach the new stretch's
//! memory without a fault. (Found by a `malloc`/`realloc`/`free` stress program: a page of
//! the heap read another page's data after the heap shrank and grew back.) A chunk mapped
//! large only ever at its home keeps every link to its shadow table on that one stretch,
//! where it is right again whenever the chunk is. Elsewhere the chunk serves as 4 KiB
//! pages, whose shadow tables are per page table, and page tables never change stretch.

use std::collections::BTreeMap;

/// The home of every chunk that has been a large page.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LargePageHomes {
    home: BTreeMap<u64, u64>,
}

/// How well a free chunk suits a stretch that wants one, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Suitability {
    /// Its home is the stretch: it may be a large page there.
    Home,
    /// It has no home yet: it may become a large page there.
    Homeless,
    /// Its home is another stretch: it can serve only as 4 KiB pages.
    Elsewhere,
}

impl LargePageHomes {
    /// Whether `chunk` may be mapped as one large page at `stretch`.
    pub fn allows(&self, chunk: u64, stretch: u64) -> bool {
        self.home.get(&chunk).is_none_or(|&home| home == stretch)
    }

    /// Records that `chunk` is mapped large at `stretch` (its home from now on).
    pub fn settle(&mut self, chunk: u64, stretch: u64) {
        self.home.entry(chunk).or_insert(stretch);
    }

    /// How well `chunk` suits `stretch`.
    pub fn suitability(&self, chunk: u64, stretch: u64) -> Suitability {
        match self.home.get(&chunk) {
            Some(&home) if home == stretch => Suitability::Home,
            Some(_) => Suitability::Elsewhere,
            None => Suitability::Homeless,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_large_only_at_its_first_stretch() {
        let mut homes = LargePageHomes::default();
        assert!(homes.allows(0x20_0000, 0x4000_0000));
        assert_eq!(
            homes.suitability(0x20_0000, 0x4000_0000),
            Suitability::Homeless
        );
        homes.settle(0x20_0000, 0x4000_0000);
        homes.settle(0x20_0000, 0x4020_0000);
        assert!(homes.allows(0x20_0000, 0x4000_0000));
        assert!(!homes.allows(0x20_0000, 0x4020_0000));
        assert_eq!(homes.suitability(0x20_0000, 0x4000_0000), Suitability::Home);
        assert_eq!(
            homes.suitability(0x20_0000, 0x4020_0000),
            Suitability::Elsewhere
        );
        assert!(Suitability::Home < Suitability::Homeless);
        assert!(Suitability::Homeless < Suitability::Elsewhere);
    }
}
