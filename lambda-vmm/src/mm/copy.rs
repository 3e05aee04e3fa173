//! A process's memory copied out of the address space while a child process uses it, and
//! put back when the child ends (`fork`, and a `vfork` child's `execve`).
//!
//! The copy holds the mappings below the vDSO (bounds, protections, the heap's break, the
//! library syscall sites) and the contents of every page that has a frame, zero pages left
//! out. Putting it back first empties the address space the way `execve` does (every frame
//! discarded, so KVM keeps no translation of the child's pages), then maps each range again
//! as anonymous memory, writes the pages back and only then gives each range its
//! protection through `mprotect`'s own path. So no page-table entry is ever weakened or
//! pointed elsewhere without the invalidation every `munmap` and `mprotect` makes. The
//! pages come back as the process's own copies: file and image pages are no longer shared
//! with other environments, which only costs host memory.

use std::collections::BTreeSet;

use super::layout::{CHUNK, PAGE, VVAR, chunk_of};
use super::pages::OutOfMemory;
use super::physical::PhysicalMemory;
use super::space::AddressSpace;
use super::vma::{Kind, READ, Vma, WRITE};

/// A page's bytes, as a host size.
const PAGE_BYTES: usize = 4096;

/// One process's memory, copied out (see the module documentation).
#[derive(Debug, Clone)]
pub struct MemoryCopy {
    /// The mappings below the vDSO, by start.
    mappings: Vec<(u64, Vma)>,
    brk_start: u64,
    brk: u64,
    library_sites: BTreeSet<u64>,
    /// The guest addresses of the pages kept, and their bytes, a page each in order.
    pages: Vec<u64>,
    bytes: Vec<u8>,
}

impl MemoryCopy {
    /// Host bytes the copy holds.
    pub fn bytes(&self) -> u64 {
        u64::try_from(self.bytes.len()).unwrap_or(u64::MAX)
    }
}

impl AddressSpace {
    /// Copies out every mapping below the vDSO and the contents of its pages that have a
    /// frame and are not all zero.
    pub(super) fn copy_out(&self, physical: &PhysicalMemory) -> MemoryCopy {
        let mappings = self.vmas.overlapping(0, VVAR);
        let mut pages = Vec::new();
        let mut bytes = Vec::new();
        let mut page_bytes = [0u8; PAGE_BYTES];
        for &(start, vma) in &mappings {
            if !vma.kind.uses_frames() {
                continue;
            }
            let stretches: Vec<u64> = self
                .backings
                .range(chunk_of(start)..vma.end)
                .map(|(&stretch, _)| stretch)
                .collect();
            for stretch in stretches {
                let mut page = start.max(stretch);
                let end = vma.end.min(stretch.saturating_add(CHUNK));
                while page < end {
                    if let Some(frame) = self.frame_of(physical, page) {
                        physical.read(frame, &mut page_bytes);
                        if page_bytes.iter().any(|&byte| byte != 0) {
                            pages.push(page);
                            bytes.extend_from_slice(&page_bytes);
                        }
                    }
                    page = page.saturating_add(PAGE);
                }
            }
        }
        MemoryCopy {
            mappings,
            brk_start: self.brk_start,
            brk: self.brk,
            library_sites: self.library_sites.clone(),
            pages,
            bytes,
        }
    }

    /// Makes this address space the one `copy` was taken of (see the module documentation).
    pub(super) fn copy_back(
        &mut self,
        physical: &PhysicalMemory,
        copy: &MemoryCopy,
    ) -> Result<(), OutOfMemory> {
        self.reset_for_exec(physical)?;
        self.vmas.remove(0, VVAR);
        // Writable anonymous memory first, so the pages can be written back.
        for &(start, vma) in &copy.mappings {
            if vma.kind.uses_frames() {
                let writable = Vma {
                    kind: Kind::Anonymous,
                    prot: READ | WRITE,
                    ..vma
                };
                self.vmas.insert(start, writable);
            }
        }
        for (index, &page) in copy.pages.iter().enumerate() {
            let from = index.saturating_mul(PAGE_BYTES);
            let Some(content) = copy.bytes.get(from..from.saturating_add(PAGE_BYTES)) else {
                break;
            };
            // A window or chunk populated for an earlier page may hold this one already.
            let frame = match self.frame_of(physical, page) {
                Some(frame) => frame,
                None => {
                    self.populate(physical, page)?;
                    self.frame_of(physical, page).ok_or(OutOfMemory)?
                }
            };
            physical.write(frame, content);
        }
        for &(start, vma) in &copy.mappings {
            if vma.kind.uses_frames() {
                let len = vma.end.saturating_sub(start);
                self.mprotect(physical, start, len, u64::from(vma.prot))
                    .map_err(|_| OutOfMemory)?;
            }
        }
        self.brk_start = copy.brk_start;
        self.brk = copy.brk;
        self.library_sites = copy.library_sites.clone();
        Ok(())
    }
}
