//! The host memory behind the VMs' kernel areas: 64 KiB slices of a few large anonymous
//! mappings shared by every VM in the process, rather than one mapping per VM.
//!
//! Making a VM (`KVM_CREATE_VM`) walks and locks every mapping of the process, so its cost
//! grows with the mappings all the other VMs hold (`docs/platform.md`, "Many VMs in one
//! process"). A VM holds three of its own: its function memory, its vCPU's `kvm_run` page and
//! its kernel area. Carving the kernel areas out of chunks of [`CHUNK_AREAS`] areas leaves two.
//!
//! A slice handed back is zeroed (`MADV_DONTNEED`, which also makes KVM forget every
//! translation to it) before another VM can take it. A chunk whose slices are all free is
//! unmapped, except one, kept for the next VM, so a process that makes and drops one VM at a
//! time maps nothing per VM.
//!
//! The part of a slice the VMM uses (48 KiB) is backed with its own zeroed pages at once when
//! the slice is handed out or renewed (`MADV_POPULATE_WRITE`). Otherwise the VMM's first
//! read of a page (the vDSO data page's sequence count, read before it is written) maps the
//! host's shared zero page, and the write after it replaces that page, which every VM of the
//! process hears of through its MMU notifier (`docs/platform.md`, "Many VMs in one
//! process").

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::sync::Mutex;

use crate::sync::lock;

use super::physical::{KERNEL_SIZE, KERNEL_USED};

/// Kernel areas per chunk: a chunk is 8 MiB of address space, backed only as touched.
pub(super) const CHUNK_AREAS: usize = 128;

/// The kernel area's size as a host size (64 KiB: nothing to truncate).
#[allow(clippy::cast_possible_truncation)]
const AREA_BYTES: usize = KERNEL_SIZE as usize;
/// The bytes of an area the VMM uses, as a host size (48 KiB: nothing to truncate).
#[allow(clippy::cast_possible_truncation)]
const USED_BYTES: usize = KERNEL_USED as usize;
const _: () = assert!(USED_BYTES <= AREA_BYTES);
/// A chunk's size in bytes.
const CHUNK_BYTES: usize = AREA_BYTES * CHUNK_AREAS;

/// One bit per area of a chunk.
const _: () = assert!(CHUNK_AREAS == u128::BITS as usize);

/// One mapping of [`CHUNK_AREAS`] kernel areas.
struct Chunk {
    /// Where the host mapped it.
    base: *mut u8,
    /// Bit `i` set: area `i` is free.
    free: u128,
}

// SAFETY: the chunk is plain anonymous memory, reached only through the areas handed out
// (each held by one VM) and unmapped under the slab's mutex once all of them are back.
unsafe impl Send for Chunk {}

/// Kernel areas to hand out, in chunks mapped as needed.
pub(super) struct AreaSlab {
    chunks: Mutex<Vec<Chunk>>,
}

/// The slab every VM of the process takes its kernel area from.
static SHARED: AreaSlab = AreaSlab::new();

/// One VM's kernel area: [`KERNEL_SIZE`] bytes of zeroed anonymous read-write memory, page
/// aligned and backed by pages of its own, handed back to its slab on drop.
pub(super) struct KernelArea {
    addr: *mut u8,
    slab: &'static AreaSlab,
}

// SAFETY: the area is plain anonymous memory; the pointer is only an address, used by the
// region built over it, which does its own synchronization (none is needed for anonymous
// memory shared with KVM). The slab it goes back to is behind a mutex.
unsafe impl Send for KernelArea {}
// SAFETY: as above: nothing in `KernelArea` itself is read or written through `&self`.
unsafe impl Sync for KernelArea {}

impl KernelArea {
    /// An area from the process's shared slab.
    pub(super) fn new() -> std::io::Result<KernelArea> {
        SHARED.take()
    }

    /// Where the area starts in the host.
    pub(super) fn addr(&self) -> *mut u8 {
        self.addr
    }

    /// Makes every byte of the area read as zero again, on fresh pages; KVM forgets every
    /// translation to it (the mmu notifier). The VM must not be running.
    pub(super) fn renew(&self) -> std::io::Result<()> {
        zero(self.addr)?;
        populate(self.addr);
        Ok(())
    }
}

impl Drop for KernelArea {
    fn drop(&mut self) {
        self.slab.give_back(self.addr);
    }
}

/// Backs the part of the area at `addr` that the VMM uses ([`KERNEL_USED`]) with zeroed pages
/// of its own now, as writing every page would, so no access maps the host's zero page to be
/// replaced later (see the module's notes); the 16 KiB above it, which nothing touches, stay
/// unbacked. Advice only: on failure (a host before Linux 5.14) the pages come as they are
/// touched.
fn populate(addr: *mut u8) {
    // SAFETY: [addr, addr + USED_BYTES) lies inside one read-write area of a live chunk of
    // ours, held by the caller alone; populating allocates the pages a write would, and
    // leaves the contents of pages already present as they are.
    unsafe { libc::madvise(addr.cast(), USED_BYTES, libc::MADV_POPULATE_WRITE) };
}

/// Drops the pages of the area at `addr`, which then reads as zero.
fn zero(addr: *mut u8) -> std::io::Result<()> {
    // SAFETY: [addr, addr + AREA_BYTES) is one area of a live chunk of ours, held by the
    // caller alone (handed out and not yet back on the free list); MADV_DONTNEED only drops
    // its anonymous pages, which the host never reads through references.
    let rc = unsafe { libc::madvise(addr.cast(), AREA_BYTES, libc::MADV_DONTNEED) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl AreaSlab {
    /// A slab with no chunks yet.
    pub(super) const fn new() -> AreaSlab {
        AreaSlab {
            chunks: Mutex::new(Vec::new()),
        }
    }

    /// A free area, zeroed and backed by pages of its own, from a new chunk if every chunk is
    /// full.
    pub(super) fn take(&'static self) -> std::io::Result<KernelArea> {
        let mut chunks = lock(&self.chunks);
        let index = match chunks.iter().position(|chunk| chunk.free != 0) {
            Some(index) => index,
            None => {
                chunks.push(Chunk {
                    base: map_chunk()?,
                    free: u128::MAX,
                });
                chunks.len().saturating_sub(1)
            }
        };
        let chunk = &mut chunks[index];
        let slot = chunk.free.trailing_zeros();
        chunk.free &= !(1u128 << slot);
        let offset = usize::try_from(slot)
            .unwrap_or(0)
            .saturating_mul(AREA_BYTES);
        // Inside the chunk: slot < CHUNK_AREAS.
        let addr = chunk.base.wrapping_add(offset);
        drop(chunks);
        populate(addr);
        Ok(KernelArea { addr, slab: self })
    }

    /// Takes back the area at `addr` (handed out by [`AreaSlab::take`]), zeroed; unmaps its
    /// chunk if that leaves two chunks wholly free.
    fn give_back(&self, addr: *mut u8) {
        // Zeroed before it is free, so no other VM can see what this one left. A failure
        // (only if the area were not mapped, which cannot happen) keeps the area out of use.
        if zero(addr).is_err() {
            return;
        }
        let addr = addr.addr();
        let mut chunks = lock(&self.chunks);
        let offset_in = |chunk: &Chunk| {
            addr.checked_sub(chunk.base.addr())
                .filter(|&offset| offset < CHUNK_BYTES)
        };
        let Some((index, offset)) = chunks
            .iter()
            .enumerate()
            .find_map(|(index, chunk)| Some((index, offset_in(chunk)?)))
        else {
            return;
        };
        let slot = offset / AREA_BYTES;
        chunks[index].free |= 1u128 << slot;
        let empty = chunks
            .iter()
            .filter(|chunk| chunk.free == u128::MAX)
            .count();
        if chunks[index].free == u128::MAX && empty > 1 {
            let chunk = chunks.swap_remove(index);
            // SAFETY: the whole chunk is ours (mapped by `map_chunk`), every area of it is
            // back on the free list (zeroed, no region or slot built over it is alive), and
            // it was just taken out of the slab, so nothing can hand it out again.
            unsafe { libc::munmap(chunk.base.cast(), CHUNK_BYTES) };
        }
    }

    /// How many chunks the slab maps now.
    #[cfg(test)]
    fn chunks(&self) -> usize {
        lock(&self.chunks).len()
    }
}

/// Maps a new chunk: anonymous, read-write, backed only as touched, and never with huge pages
/// (a 2 MiB page would hold the areas of 32 VMs, and dropping one area would split it).
fn map_chunk() -> std::io::Result<*mut u8> {
    // SAFETY: a fresh mapping at an address the kernel chooses; nothing else refers to it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            CHUNK_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the chunk just mapped; the advice changes how the host backs it, never its
    // contents. Advice only: a host without transparent huge pages refuses it, harmlessly.
    unsafe { libc::madvise(base, CHUNK_BYTES, libc::MADV_NOHUGEPAGE) };
    Ok(base.cast())
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
pub(super) mod tests {
    use super::*;
    use crate::mm::physical::PAGE;

    /// The host mappings (start, end) of this process that hold any of `addrs`.
    pub(in crate::mm) fn mappings_holding(
        addrs: &[usize],
    ) -> std::collections::BTreeSet<(usize, usize)> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mut holding = std::collections::BTreeSet::new();
        for line in maps.lines() {
            let range = line.split(' ').next().unwrap();
            let (start, end) = range.split_once('-').unwrap();
            let start = usize::from_str_radix(start, 16).unwrap();
            let end = usize::from_str_radix(end, 16).unwrap();
            if addrs.iter().any(|&addr| addr >= start && addr < end) {
                holding.insert((start, end));
            }
        }
        holding
    }

    /// Sets every byte of `area` to `byte`.
    fn fill(area: &KernelArea, byte: u8) {
        // SAFETY: the area is ours alone, KERNEL_SIZE bytes of read-write memory; the slice
        // lives only for this call.
        unsafe { std::slice::from_raw_parts_mut(area.addr(), AREA_BYTES) }.fill(byte);
    }

    /// Whether every byte of `area` reads as zero (read afresh: the host may have dropped
    /// the pages behind the compiler's back).
    fn zeroed(area: &KernelArea) -> bool {
        (0..AREA_BYTES).all(|offset| {
            // SAFETY: inside the area, which is ours and mapped.
            unsafe { std::ptr::read_volatile(area.addr().wrapping_add(offset)) == 0 }
        })
    }

    /// How many pages of `area` are present and the process's own, not the host's shared zero
    /// page (`/proc/self/pagemap`: bit 63 present, bit 56 mapped once; both readable without
    /// privileges).
    fn own_pages(area: &KernelArea) -> usize {
        use std::os::unix::fs::FileExt;
        let pagemap = std::fs::File::open("/proc/self/pagemap").unwrap();
        let first_page = area.addr().addr() / PAGE as usize;
        let mut entries = [0u8; 8 * AREA_PAGES];
        pagemap
            .read_exact_at(&mut entries, (first_page * 8) as u64)
            .unwrap();
        entries
            .chunks_exact(8)
            .map(|entry| u64::from_le_bytes(entry.try_into().unwrap()))
            .filter(|entry| entry >> 63 == 1 && (entry >> 56) & 1 == 1)
            .count()
    }

    /// Pages in an area.
    const AREA_PAGES: usize = AREA_BYTES / PAGE as usize;

    fn slab() -> &'static AreaSlab {
        Box::leak(Box::new(AreaSlab::new()))
    }

    /// Enough areas from `slab` to need three chunks, and their host addresses.
    fn three_chunks_of_areas(slab: &'static AreaSlab) -> (Vec<KernelArea>, Vec<usize>) {
        let areas: Vec<KernelArea> = (0..2 * CHUNK_AREAS + 1)
            .map(|_| slab.take().unwrap())
            .collect();
        let addrs = areas.iter().map(|area| area.addr().addr()).collect();
        (areas, addrs)
    }

    #[test]
    fn many_areas_share_few_host_mappings() {
        let slab = slab();
        let (areas, addrs) = three_chunks_of_areas(slab);
        assert_eq!(slab.chunks(), 3);
        let mut sorted = addrs.clone();
        sorted.sort_unstable();
        assert!(
            sorted
                .windows(2)
                .all(|pair| pair[1] - pair[0] >= AREA_BYTES),
            "no two areas overlap"
        );
        // Three chunks, or fewer mappings where the host placed chunks side by side.
        let holding = mappings_holding(&addrs);
        assert!(
            !holding.is_empty() && holding.len() <= 3,
            "{} areas in {} host mappings",
            areas.len(),
            holding.len()
        );
        for area in &areas {
            assert_eq!(area.addr().addr() % PAGE as usize, 0);
            assert!(zeroed(area));
            fill(area, 0xa5);
        }
    }

    #[test]
    fn an_area_given_back_is_zero_for_the_next_vm() {
        let slab = slab();
        let first = slab.take().unwrap();
        let addr = first.addr();
        fill(&first, 7);
        drop(first);
        let second = slab.take().unwrap();
        assert_eq!(second.addr(), addr, "the freed area is handed out again");
        assert!(zeroed(&second));
        fill(&second, 9);
        second.renew().unwrap();
        assert_eq!(second.addr(), addr);
        assert!(zeroed(&second), "renewing zeroes the area in place");
    }

    #[test]
    fn the_used_part_of_an_area_has_pages_of_its_own_before_anything_reads_it() {
        const USED_PAGES: usize = USED_BYTES / PAGE as usize;
        let slab = slab();
        let area = slab.take().unwrap();
        // Reading a page that is not there would map the shared zero page, and a write
        // after it would replace that page under every VM's MMU notifier. The pages above
        // the used part, which nothing touches, are not backed (reading them here maps the
        // zero page, which is not a page of the area's own).
        assert!(zeroed(&area));
        assert_eq!(own_pages(&area), USED_PAGES, "handed out");
        fill(&area, 5);
        assert_eq!(own_pages(&area), AREA_PAGES);
        area.renew().unwrap();
        assert!(zeroed(&area));
        assert_eq!(own_pages(&area), USED_PAGES, "renewed");
    }

    #[test]
    fn wholly_free_chunks_are_unmapped_but_one() {
        let slab = slab();
        let (areas, addrs) = three_chunks_of_areas(slab);
        drop(areas);
        assert_eq!(slab.chunks(), 1, "one empty chunk is kept for the next VM");
        let kept = slab.take().unwrap();
        assert!(
            addrs.contains(&kept.addr().addr()),
            "the next area comes from the chunk kept"
        );
        assert_eq!(slab.chunks(), 1);
    }
}
