//! The pages a restored program touched, by virtual address: learnt from the first run of a
//! machine restored from a snapshot, and touched again in machines restored ahead of time
//! before they are handed out (`machine/warm.rs`), so that KVM's shadow page tables hold
//! their translations before the program needs them (`docs/snapshots.md`); and the frames
//! that run touched, by guest-physical address, which later plain restores copy in before
//! they run.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::GuestMemory;
use super::layout::{CHUNK, PAGE, USER_END};
use super::page_table::{ADDRESS, Leaf, PRESENT, USER, WRITABLE};
use super::physical::{KERNEL_BASE, KERNEL_SIZE};

/// Most pages a lesson holds (16 MiB of touches): a machine restored ahead touches at most
/// these, about a thousand VM exits, however much the program touched.
pub const MAX_TOUCHED_PAGES: usize = 4096;

/// The frames of function memory a restored run touched, as runs (guest-physical address,
/// length) in address order ([`GuestMemory::touched_frames`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TouchedFrames {
    /// Those it wrote (the host holds a private copy).
    pub written: Vec<(u64, u64)>,
    /// Those it read, or that the host mapped beside a read, and did not write.
    pub read: Vec<(u64, u64)>,
}

/// A page to touch, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageTouch {
    /// The page's virtual address.
    pub va: u64,
    /// Touch it by writing (the program wrote it), not only by reading.
    pub write: bool,
}

impl GuestMemory {
    /// The program's pages the guest has touched since this memory was restored
    /// ([`GuestMemory::restore`], nothing populated ahead), at most [`MAX_TOUCHED_PAGES`] in
    /// address order: every page mapped now in the program's page tables whose frame the
    /// host has mapped since (see [`super::physical::PhysicalMemory::mapped_pages`]), written
    /// or only read; plus the vDSO's pages, which every program reading the clock uses.
    /// Pages the VMM touched on the program's behalf are in too, and so are some read only
    /// by neighbourhood: the host maps a file's pages around one read (fault-around, up to
    /// 64 KiB), so the pages read are a superset. Written pages are exact (each was copied).
    pub fn touched_pages(&self) -> std::io::Result<Vec<PageTouch>> {
        let kernel = KERNEL_BASE..KERNEL_BASE.saturating_add(KERNEL_SIZE);
        // Leaves as (first page's address, its frame, pages): a 2 MiB page is one.
        let mut leaves: Vec<(u64, u64, u64)> = Vec::new();
        self.space()
            .tables
            .for_each_leaf(&self.physical, USER_END, |va, entry, large| {
                if entry & USER != 0 {
                    leaves.push(if large {
                        (va, entry & ADDRESS & !(CHUNK - 1), CHUNK / PAGE)
                    } else {
                        (va, entry & ADDRESS, 1)
                    });
                }
            });
        // What the host maps, read a 2 MiB chunk of frames at a time, only where the
        // program maps something.
        let mut chunks: HashMap<u64, Vec<Option<bool>>> = HashMap::new();
        let mut touched = Vec::new();
        let pages = leaves.into_iter().flat_map(|(va, frame, count)| {
            (0..count).map(move |index| {
                let offset = index.saturating_mul(PAGE);
                (va.saturating_add(offset), frame.saturating_add(offset))
            })
        });
        for (va, frame) in pages {
            if touched.len() >= MAX_TOUCHED_PAGES {
                break;
            }
            let seen = if kernel.contains(&frame) {
                Some(false)
            } else {
                let chunk = frame & !(CHUNK - 1);
                let pages = match chunks.entry(chunk) {
                    Entry::Occupied(known) => known.into_mut(),
                    Entry::Vacant(new) => {
                        let len = CHUNK.min(self.size().saturating_sub(chunk));
                        new.insert(self.physical.mapped_pages(chunk, len)?)
                    }
                };
                usize::try_from(frame.saturating_sub(chunk) / PAGE)
                    .ok()
                    .and_then(|index| pages.get(index).copied().flatten())
            };
            if let Some(write) = seen {
                touched.push(PageTouch { va, write });
            }
        }
        Ok(touched)
    }

    /// The function memory's frames touched since this memory was restored
    /// ([`GuestMemory::restore`], nothing populated ahead), as runs (guest-physical address,
    /// length) in address order, at most [`MAX_TOUCHED_PAGES`] pages in all, the written ones
    /// first: every frame of a chunk in use that the host maps now. A frame the host holds a
    /// private copy of was written: the program's pages it wrote, its page tables (KVM writes
    /// their accessed and dirty bits), and what the VMM wrote for it. The others were read,
    /// or mapped beside a read (the host's fault-around). Read from `/proc/self/pagemap`
    /// ([`super::physical::PhysicalMemory::mapped_pages`]).
    pub fn touched_frames(&self) -> std::io::Result<TouchedFrames> {
        let mut frames = TouchedFrames::default();
        let (mut written, mut read) = (0usize, 0usize);
        'scan: for (start, len) in self.space().used_ranges() {
            let end = start.saturating_add(len).min(self.size());
            let mut chunk = start;
            while chunk < end {
                let span = CHUNK.min(end.saturating_sub(chunk));
                let mapped = self.physical.mapped_pages(chunk, span)?;
                for (index, seen) in (0u64..).zip(mapped) {
                    let frame = chunk.saturating_add(index.saturating_mul(PAGE));
                    let (runs, count) = match seen {
                        Some(true) => (&mut frames.written, &mut written),
                        Some(false) => (&mut frames.read, &mut read),
                        None => continue,
                    };
                    if *count >= MAX_TOUCHED_PAGES {
                        continue;
                    }
                    *count = count.saturating_add(1);
                    match runs.last_mut() {
                        Some((first, run)) if first.saturating_add(*run) == frame => {
                            *run = run.saturating_add(PAGE);
                        }
                        _ => runs.push((frame, PAGE)),
                    }
                    if written >= MAX_TOUCHED_PAGES {
                        break 'scan;
                    }
                }
                chunk = chunk.saturating_add(span);
            }
        }
        keep_pages(&mut frames.read, MAX_TOUCHED_PAGES.saturating_sub(written));
        Ok(frames)
    }

    /// Copies the frames of `runs` (as [`GuestMemory::touched_frames`] gives them, for a
    /// memory restored from the same snapshot) into this memory's own pages now, their
    /// contents unchanged. A frame the program would write, copied ahead, is not first
    /// mapped read-only and then copied on a write, which on the host is a change to the
    /// process's memory map, delivered to every VM in it (`docs/platform.md`, "Many VMs in
    /// one process"). A frame it would only read, copied ahead, is one KVM can map with its
    /// neighbours at one shadow-paging fault (it maps ahead only pages the host has mapped
    /// writable). Ranges outside the function memory are skipped. Returns how many pages
    /// were asked for.
    pub fn populate_frames(&self, runs: &[(u64, u64)]) -> usize {
        let mut pages = 0usize;
        for &(addr, len) in runs {
            if addr % PAGE == 0
                && len % PAGE == 0
                && addr.checked_add(len).is_some_and(|end| end <= self.size())
            {
                self.physical.populate(addr, len);
                pages = pages.saturating_add(usize::try_from(len / PAGE).unwrap_or(usize::MAX));
            }
        }
        pages
    }

    /// `touch` as the program's page tables let ring 3 make it now: `None` if the page is
    /// not mapped present for the program, a read if it is not writable.
    pub fn may_touch(&self, touch: PageTouch) -> Option<PageTouch> {
        let (Leaf::Small { entry, .. } | Leaf::Large { entry, .. }) =
            self.space().tables.leaf(&self.physical, touch.va)?;
        (entry & (PRESENT | USER) == PRESENT | USER).then_some(PageTouch {
            va: touch.va,
            write: touch.write && entry & WRITABLE != 0,
        })
    }
}

/// Cuts `runs` (guest-physical address, length) down to their first `pages` pages.
fn keep_pages(runs: &mut Vec<(u64, u64)>, pages: usize) {
    let mut left = u64::try_from(pages)
        .unwrap_or(u64::MAX)
        .saturating_mul(PAGE);
    runs.retain_mut(|(_, len)| {
        *len = (*len).min(left);
        left = left.saturating_sub(*len);
        *len > 0
    });
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_cut_to_their_first_pages() {
        let mut runs = vec![(0, 2 * PAGE), (8 * PAGE, 3 * PAGE), (20 * PAGE, PAGE)];
        keep_pages(&mut runs, 4);
        assert_eq!(runs, [(0, 2 * PAGE), (8 * PAGE, 2 * PAGE)]);
        keep_pages(&mut runs, 0);
        assert!(runs.is_empty());
    }
}
