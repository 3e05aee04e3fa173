//! The guest's memory as its program sees it: a 47-bit virtual address space of mappings
//! over the function's memory, with page tables the VMM alone maintains, and the one checked
//! accessor through which the VMM touches the program's memory.
//!
//! [`GuestMemory`] owns the guest's physical memory and its address space. Every access the
//! kernel makes on the program's behalf goes through its `read`/`write` family, which
//! translates the program's addresses through the page tables and checks them against the
//! mappings, as Linux's `copy_from_user`/`copy_to_user` do: an address that is not mapped,
//! or not mapped for that access, is a [`Fault`] (`EFAULT`), whatever its value. A page
//! that is mapped but not yet backed gets its memory then, as a touch by the program would.
//!
//! Layers: `physical` (the host's memory behind it), `layout` (the address map), `frames` (the function's memory in chunks and
//! frames), `page_table` (the x86-64 tables), `vma` (the mappings), `pages` (backing and
//! unbacking pages, and the invalidation rule), `space` (the memory syscalls), `fault` (a
//! page fault of the program), `saved_check` (what a snapshot file brings of them, checked),
//! and this file (the accessor).

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

mod copy;
mod fault;
mod frames;
mod homes;
#[allow(unsafe_code)]
mod kernel_area;
pub mod layout;
mod page_table;
mod pages;
#[allow(unsafe_code)]
pub mod physical;
mod saved_check;
#[cfg(any(test, feature = "fuzzing"))]
pub use saved_check::ground as saved_space_ground;
mod slots;
mod space;
mod touched;
mod vma;

pub use copy::MemoryCopy;
pub use fault::{FaultOutcome, PageFault};
pub use pages::OutOfMemory;
#[cfg(feature = "fuzzing")]
pub use space::MAX_MAPPINGS;
pub use space::{MAP_ANONYMOUS, MAP_SHARED, MAP_SHARED_VALIDATE, MAP_TYPE};
pub use space::{MapError, MemoryStats};
pub use touched::{PageTouch, TouchedFrames};
pub use vma::{EXEC as PROT_EXEC, WRITE as PROT_WRITE};

use std::os::fd::BorrowedFd;
use std::sync::{Mutex, MutexGuard};

use layout::{CHUNK, PAGE, chunk_of};
use page_table::{ADDRESS, Leaf, PRESENT, USER, WRITABLE};
use space::AddressSpace;
use vma::{EXEC, READ, WRITE};

use crate::host::FrozenFile;
use crate::sync::lock;
use physical::{AllocError, PhysicalMemory};

/// A guest address or length that does not name memory the program may use that way: the
/// syscall gets `EFAULT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bad guest address {addr:#x} (+{len})")]
pub struct Fault {
    /// The address the guest gave.
    pub addr: u64,
    /// The length it asked for.
    pub len: u64,
}

/// A guest length as a host size (lossless on x86-64; a length too large for the host
/// saturates and then fails the range check it is used with).
fn host_size(len: u64) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// A host size as a guest length (lossless on x86-64).
fn guest_size(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// Where the VMM's pages shown to the program lie (guest-physical).
#[derive(Debug, Clone, Copy)]
pub struct KernelPages {
    /// The root page table (PML4), with the VMM's own entries already in it.
    pub root: u64,
    /// The vDSO's data page.
    pub vvar: u64,
    /// The vDSO's code.
    pub vdso: u64,
    /// Pages of vDSO code.
    pub vdso_pages: u64,
}

/// Protection of a segment of the program image: `PROT_*` bits.
pub type Protection = u32;

/// Pages of page tables at the start of the kernel area, from the root: the PML4 and the
/// tables down to the kernel area's own mapping, which share their upper levels with the
/// program's stack at the top of the lower half (`vm/layout.rs`).
const KERNEL_TABLE_PAGES: u64 = 4;

/// One past the last byte of the kernel area's own mapping at `KERNEL_VIRT`: the end of the
/// lower half.
const KERNEL_VIRT_END: u64 = layout::KERNEL_VIRT + CHUNK;

/// What a snapshot keeps of a guest's memory besides its contents: the address space's
/// mappings and frame bookkeeping, and the page tables in the kernel area (the others are
/// in the memory itself). The rest of the kernel area (descriptor tables, stubs, kernel
/// stacks, vDSO) is the VMM's and comes fresh with each VM.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct SavedSpace {
    space: AddressSpace,
    /// The kernel area's page tables, from the root.
    #[serde(with = "serde_bytes")]
    root: Vec<u8>,
    /// The ranges of memory stored (the rest reads as zero).
    stored: Vec<(u64, u64)>,
}

impl SavedSpace {
    /// The ranges of memory stored (address, length); the rest reads as zero.
    pub fn stored(&self) -> &[(u64, u64)] {
        &self.stored
    }

    /// Bytes of memory stored.
    pub fn stored_bytes(&self) -> u64 {
        self.stored
            .iter()
            .fold(0u64, |sum, &(_, len)| sum.saturating_add(len))
    }
}

/// The pages of the VMM's kernel area a new guest's page tables map: each one's virtual
/// address, and the page-table entry that maps it there (see
/// [`GuestMemory::kernel_area_leaves`]). What a snapshot's tables may map of the kernel area.
pub type KernelLeaves = std::collections::BTreeMap<u64, u64>;

/// What a file mapping maps (see [`GuestMemory::mmap_file`]).
#[derive(Debug, Clone, Copy)]
pub struct FileSource<'a> {
    /// The frozen file.
    pub file: &'a FrozenFile,
    /// The offset in it the mapping starts at (page-aligned).
    pub offset: u64,
    /// For an executable mapping of a library, the file offsets of its `syscall`
    /// instructions.
    pub syscall_offsets: Option<&'a std::collections::BTreeSet<u64>>,
}

/// Puts every chunk `space`'s frame pool has handed out in a memory slot
/// ([`PhysicalMemory::cover`]): what an address space restored from a snapshot may reach.
fn cover_used(physical: &PhysicalMemory, space: &AddressSpace) -> std::io::Result<()> {
    for (start, len) in space.pool.used_ranges() {
        physical.cover(start, len)?;
    }
    Ok(())
}

/// The protection a file mapping asked to have `prot` is made with while the file's bytes
/// are put in: `prot`, or readable too when it allows no access (a page without access gets
/// no frame, so nothing could be put in it).
fn fill_protection(prot: u64) -> u64 {
    if prot & u64::from(READ | WRITE | EXEC) == 0 {
        prot | u64::from(READ)
    } else {
        prot
    }
}

/// Gives the mapping at `[start, start + len)`, filled with [`fill_protection`]`(prot)`,
/// the protection `prot` it asked for, where that differs; `false` if it could not.
fn closed_after_filling(
    physical: &PhysicalMemory,
    space: &mut AddressSpace,
    start: u64,
    len: u64,
    prot: u64,
) -> bool {
    fill_protection(prot) == prot || space.mprotect(physical, start, len, prot).is_ok()
}

/// The guest's memory: its physical memory and its address space.
pub struct GuestMemory {
    physical: PhysicalMemory,
    space: Mutex<AddressSpace>,
}

impl GuestMemory {
    /// The memory of a new guest: `physical`, with an address space holding the stack and the
    /// vDSO over the VMM's `kernel` pages.
    pub fn new(physical: PhysicalMemory, kernel: KernelPages) -> Result<GuestMemory, AllocError> {
        let space = AddressSpace::new(
            &physical,
            kernel.root,
            kernel.vvar,
            kernel.vdso,
            kernel.vdso_pages,
        )
        .map_err(|_| AllocError::too_small(physical.user_size()))?;
        Ok(GuestMemory {
            physical,
            space: Mutex::new(space),
        })
    }

    /// Saves the memory's contents into `file` (sparse, zero pages left out) and returns the
    /// rest of its state. The guest must not run meanwhile.
    pub fn save(&self, file: &std::fs::File) -> std::io::Result<SavedSpace> {
        let space = self.space().clone();
        let stored = self.physical.save_user_memory(file)?;
        let mut root = vec![0u8; host_size(KERNEL_TABLE_PAGES * layout::PAGE)];
        self.physical.read(space.tables.root(), &mut root);
        Ok(SavedSpace {
            space,
            root,
            stored,
        })
    }

    /// The pages of the kernel area (the VMM's, past its page tables) that this memory's
    /// page tables map, by virtual address, with their entries. For a new guest: the
    /// descriptor tables, stubs and kernel stacks at `KERNEL_VIRT`, and the vDSO.
    pub fn kernel_area_leaves(&self) -> KernelLeaves {
        let space = self.space();
        let mut leaves = KernelLeaves::new();
        space
            .tables
            // Up to the end of the lower half, where the kernel area's own mapping ends.
            .for_each_leaf(&self.physical, KERNEL_VIRT_END, |va, entry, large| {
                if !large && entry & page_table::ADDRESS >= physical::KERNEL_BASE {
                    leaves.insert(va, entry);
                }
            });
        leaves
    }

    /// Makes this memory (of a VM that has not run, or is stopped) the one `file` and `saved`
    /// describe ([`GuestMemory::save`]): `file` is mapped copy-on-write, so pages are shared
    /// with every other memory restored from it until written.
    pub fn restore(&self, file: &std::fs::File, saved: &SavedSpace) -> std::io::Result<()> {
        use std::os::fd::AsFd;
        if file.metadata()?.len() != self.size() {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut space = self.space();
        cover_used(&self.physical, &saved.space)?;
        self.physical.map_user_memory(file.as_fd())?;
        self.physical.show_snapshot_contents(&saved.stored);
        self.physical.write(saved.space.tables.root(), &saved.root);
        *space = saved.space.clone();
        Ok(())
    }

    /// The memory of a guest restored from `saved` in one step: `physical` maps the memory
    /// file already ([`PhysicalMemory::over_file`]) and holds the VMM's kernel area; the
    /// address space is the saved one, with its root page tables written back. What
    /// [`GuestMemory::restore`] leaves, without first building an address space that the
    /// restore replaces (whose page tables would land in the file's pages).
    pub fn restored(physical: PhysicalMemory, saved: &SavedSpace) -> GuestMemory {
        // Not attached to a VM yet, so this only plans the slots (it cannot fail).
        let _ = cover_used(&physical, &saved.space);
        physical.show_snapshot_contents(&saved.stored);
        physical.write(saved.space.tables.root(), &saved.root);
        GuestMemory {
            physical,
            space: Mutex::new(saved.space.clone()),
        }
    }

    /// Copies every page `saved` stored into this memory's own pages now (restored from it),
    /// so the guest's first touches find them present and writable: KVM then maps eight
    /// neighbours per fault instead of one. They are no longer shared with the snapshot.
    pub fn populate_stored(&self, saved: &SavedSpace) {
        self.populate_frames(&saved.stored);
    }

    /// The physical memory, without the address space over it.
    pub fn into_physical(self) -> PhysicalMemory {
        self.physical
    }

    /// What the guest's page tables reach (tables and pages, as guest-physical address and
    /// length) that is neither in the kernel area nor in a memory slot (`slots.rs`):
    /// nothing, unless a frame was handed out without being covered first.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn uncovered(&self) -> Vec<(u64, u64)> {
        let space = self.space();
        let mut uncovered = Vec::new();
        space.tables.for_each_target(&self.physical, |addr, len| {
            if addr < physical::KERNEL_BASE && !self.physical.covers(addr, len) {
                uncovered.push((addr, len));
            }
        });
        uncovered
    }

    /// Whether its mappings and heap are ones a snapshot file may hold (the part of the
    /// load's check that holds of every address space the syscalls leave); says what is
    /// wrong.
    #[cfg(test)]
    pub fn check_mappings(&self) -> Result<(), String> {
        self.space().check_mappings()
    }

    /// The guest-physical address of the byte at `va`, if its page has a frame.
    #[cfg(test)]
    pub(crate) fn translate(&self, va: u64) -> Option<u64> {
        let mut space = self.space();
        let frame = self.frame(&mut space, va, false)?;
        Some(frame.saturating_add(va & (PAGE - 1)))
    }

    /// The guest-physical address of the page table whose entry maps `va` with a 4 KiB
    /// page, if it has one.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn table_of(&self, va: u64) -> Option<u64> {
        match self.space().tables.leaf(&self.physical, va)? {
            page_table::Leaf::Small { at, .. } => Some(at & !(PAGE - 1)),
            page_table::Leaf::Large { .. } => None,
        }
    }

    /// The guest's physical memory.
    pub fn physical(&self) -> &PhysicalMemory {
        &self.physical
    }

    /// Bytes of function memory.
    pub fn size(&self) -> u64 {
        self.physical.user_size()
    }

    fn space(&self) -> MutexGuard<'_, AddressSpace> {
        lock(&self.space)
    }

    /// The frame (guest-physical address) of the page holding `va`, for an access by the
    /// program (`write` or not), backing the page first if its mapping allows the access.
    fn frame(&self, space: &mut AddressSpace, va: u64, write: bool) -> Option<u64> {
        for _ in 0..2 {
            match space.tables.leaf(&self.physical, va) {
                Some(Leaf::Large { entry, .. })
                    if entry & PRESENT != 0 && (!write || entry & WRITABLE != 0) =>
                {
                    let offset = va.saturating_sub(chunk_of(va)) & !(PAGE - 1);
                    return Some((entry & ADDRESS).saturating_add(offset));
                }
                Some(Leaf::Small { entry, .. })
                    if entry & (PRESENT | USER) == PRESENT | USER
                        && (!write || entry & WRITABLE != 0) =>
                {
                    return Some(entry & ADDRESS);
                }
                _ => {}
            }
            let (_, vma) = space.find(va)?;
            let allowed = if write {
                vma.prot & WRITE != 0
            } else {
                vma.prot & (READ | WRITE | EXEC) != 0
            };
            if !allowed || space.populate(&self.physical, va).is_err() {
                if allowed {
                    space.ran_out();
                }
                return None;
            }
        }
        None
    }

    /// Calls `each(guest-physical address, offset in the range, length)` for the pieces of
    /// `[addr, addr + len)`, one per page, after checking the whole range allows the access.
    fn each_piece(
        &self,
        addr: u64,
        len: u64,
        write: bool,
        mut each: impl FnMut(u64, usize, usize),
    ) -> Result<(), Fault> {
        if len == 0 {
            return Ok(());
        }
        let fault = Fault { addr, len };
        let end = addr.checked_add(len).ok_or(fault)?;
        let mut space = self.space();
        let mut pieces = Vec::new();
        let mut cursor = addr;
        while cursor < end {
            let page_end = (cursor & !(PAGE - 1)).saturating_add(PAGE).min(end);
            let frame = self.frame(&mut space, cursor, write).ok_or(fault)?;
            let offset = cursor & (PAGE - 1);
            pieces.push((
                frame.saturating_add(offset),
                host_size(cursor.saturating_sub(addr)),
                host_size(page_end.saturating_sub(cursor)),
            ));
            cursor = page_end;
        }
        for (physical, offset, len) in pieces {
            each(physical, offset, len);
        }
        Ok(())
    }

    /// Checks that `[addr, addr + len)` is memory the program may read, without reading it.
    pub fn validate(&self, addr: u64, len: u64) -> Result<(), Fault> {
        if len == 0 {
            return Ok(());
        }
        let fault = Fault { addr, len };
        let end = addr.checked_add(len).ok_or(fault)?;
        let space = self.space();
        let mut cursor = addr;
        while cursor < end {
            let (_, vma) = space.find(cursor).ok_or(fault)?;
            if vma.prot == 0 {
                return Err(fault);
            }
            cursor = vma.end;
        }
        Ok(())
    }

    /// Copies the program's bytes at `addr` into `buf`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.each_piece(
            addr,
            guest_size(buf.len()),
            false,
            |physical, offset, len| {
                if let Some(piece) = buf.get_mut(offset..offset.saturating_add(len)) {
                    self.physical.read(physical, piece);
                }
            },
        )
    }

    /// Reads `len` bytes at `addr` into a new vector.
    pub fn read_vec(&self, addr: u64, len: u64) -> Result<Vec<u8>, Fault> {
        let mut buf = Vec::new();
        self.read_into(addr, len, &mut buf)?;
        Ok(buf)
    }

    /// Appends `len` bytes at `addr` to `out`. The range is checked before anything is
    /// allocated, so a guest's length never sizes a host buffer it could not fill.
    pub fn read_into(&self, addr: u64, len: u64, out: &mut Vec<u8>) -> Result<(), Fault> {
        self.validate(addr, len)?;
        let start = out.len();
        out.resize(start.saturating_add(host_size(len)), 0);
        let result = self.read(addr, out.get_mut(start..).unwrap_or_default());
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Copies `data` into the program's memory at `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), Fault> {
        self.each_piece(
            addr,
            guest_size(data.len()),
            true,
            |physical, offset, len| {
                if let Some(piece) = data.get(offset..offset.saturating_add(len)) {
                    self.physical.write(physical, piece);
                }
            },
        )
    }

    /// Reads a plain-data value (an integer or a `#[repr(C)]` struct of them).
    pub fn read_obj<T: vm_memory::ByteValued + Default>(&self, addr: u64) -> Result<T, Fault> {
        let mut value = T::default();
        self.read(addr, value.as_mut_slice())?;
        Ok(value)
    }

    /// Writes a plain-data value.
    pub fn write_obj<T: vm_memory::ByteValued>(&self, addr: u64, value: T) -> Result<(), Fault> {
        self.write(addr, value.as_slice())
    }

    /// Reads a NUL-terminated string of at most `max_len` bytes (without the NUL).
    /// `Ok(None)` means no NUL within `max_len` bytes (the caller answers `ENAMETOOLONG`).
    pub fn read_c_string(&self, addr: u64, max_len: usize) -> Result<Option<Vec<u8>>, Fault> {
        let mut out = Vec::new();
        let mut cursor = addr;
        let mut chunk = [0u8; 256];
        while out.len() <= max_len {
            // Up to the end of the current page, so a string ending just before unmapped
            // memory is still read.
            let page_left = host_size(PAGE.saturating_sub(cursor % PAGE));
            let take = page_left.min(chunk.len());
            let Some(piece) = chunk.get_mut(..take) else {
                return Ok(None);
            };
            self.read(cursor, piece)?;
            if let Some(nul) = piece.iter().position(|&b| b == 0) {
                out.extend_from_slice(piece.get(..nul).unwrap_or_default());
                return Ok((out.len() <= max_len).then_some(out));
            }
            out.extend_from_slice(piece);
            cursor = cursor.saturating_add(guest_size(piece.len()));
        }
        Ok(None)
    }

    /// Rewrites program code at `addr` (a syscall site), whatever the page's protection:
    /// only the VMM's own patching calls this, with bytes it checked. `false` if the page is
    /// not part of a mapping with frames.
    pub fn patch_code(&self, addr: u64, bytes: &[u8]) -> bool {
        let mut space = self.space();
        let len = guest_size(bytes.len());
        if (addr % PAGE).saturating_add(len) > PAGE {
            return false;
        }
        let Some((_, vma)) = space.find(addr) else {
            return false;
        };
        if !vma.kind.uses_frames() || vma.prot == 0 {
            return false;
        }
        let frame = match space.frame_of(&self.physical, addr) {
            Some(frame) => frame,
            None => match self.frame(&mut space, addr, false) {
                Some(frame) => frame,
                None => return false,
            },
        };
        self.physical
            .write(frame.saturating_add(addr % PAGE), bytes);
        true
    }

    /// Maps the program image: `len` bytes of `file` at `start` (both page-aligned), with
    /// each page's protection from `protection(page)`. Each 2 MiB stretch gets a whole chunk
    /// of the function's memory, over which the file's pages are mapped copy-on-write.
    pub fn load_image(
        &self,
        file: BorrowedFd<'_>,
        start: u64,
        len: u64,
        protection: impl Fn(u64) -> Protection,
    ) -> Result<(), LoadImageError> {
        let mut space = self.space();
        let end = start.checked_add(len).ok_or(LoadImageError::Placement)?;
        if start % PAGE != 0 || len % PAGE != 0 || start < layout::MIN_MAP_ADDRESS {
            return Err(LoadImageError::Placement);
        }
        if end > layout::MMAP_TOP {
            return Err(LoadImageError::Placement);
        }
        // The image's mappings, one per run of pages with the same protection (pages no
        // segment covers stay unmapped, as Linux leaves them).
        let mut runs = Vec::new();
        let mut page = start;
        while page < end {
            let prot = protection(page);
            let mut run_end = page.saturating_add(PAGE);
            while run_end < end && protection(run_end) == prot {
                run_end = run_end.saturating_add(PAGE);
            }
            if prot != 0 {
                space.add_image_mapping(page, run_end, prot);
                runs.push((page, run_end));
            }
            page = run_end;
        }
        // Whole chunks for the image's stretches, the file mapped over them.
        let mut stretch = chunk_of(start);
        while stretch < end {
            let from = start.max(stretch);
            let to = end.min(stretch.saturating_add(CHUNK));
            let chunk = space
                .take_whole(&self.physical, stretch)
                .ok_or(LoadImageError::TooLarge)?;
            self.physical
                .map_file(
                    chunk.saturating_add(from.saturating_sub(stretch)),
                    to.saturating_sub(from),
                    file,
                    from.saturating_sub(start),
                )
                .map_err(LoadImageError::Map)?;
            stretch = stretch.saturating_add(CHUNK);
        }
        for (from, to) in runs {
            space
                .populate_range(&self.physical, from, to)
                .map_err(|_| LoadImageError::TooLarge)?;
        }
        space.set_heap_start(end);
        Ok(())
    }

    /// Empties the address space for `execve` (see [`AddressSpace::reset_for_exec`]): the
    /// next program is loaded into it as into a new one. The guest must not run meanwhile.
    pub fn reset_for_exec(&self) -> Result<(), OutOfMemory> {
        self.space().reset_for_exec(&self.physical)
    }

    /// Copies this process's memory out, for a child process to use the address space
    /// meanwhile (see `copy.rs`). The guest must not run meanwhile.
    pub fn copy_out(&self) -> MemoryCopy {
        self.space().copy_out(&self.physical)
    }

    /// Puts back the memory `copy` holds, replacing what the address space holds now. The
    /// guest must not run meanwhile.
    pub fn copy_back(&self, copy: &MemoryCopy) -> Result<(), OutOfMemory> {
        self.space().copy_back(&self.physical, copy)
    }

    /// Resolves a page fault the program raised at `addr` with the CPU's `error_code`.
    pub fn page_fault(&self, fault: PageFault) -> FaultOutcome {
        self.space().page_fault(&self.physical, fault)
    }

    /// `mmap` of anonymous memory.
    pub fn mmap(&self, addr: u64, len: u64, prot: u64, flags: u64) -> Result<u64, MapError> {
        self.space().mmap(&self.physical, addr, len, prot, flags)
    }

    /// `mmap` of a file: the mapping is made as private anonymous memory is, and `contents`
    /// (the file's bytes from the mapping's offset, at most `len`) are copied into its first
    /// pages now; the rest reads zero. The copy is the environment's own, so a private
    /// mapping's writes stay in it and a read-only shared one cannot change. A mapping
    /// without access (`PROT_NONE`) is filled readable, then closed ([`closed_after_filling`]):
    /// its pages keep the file's bytes for an `mprotect` that opens them, as Linux's do.
    pub fn mmap_contents(
        &self,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        contents: &[u8],
    ) -> Result<u64, MapError> {
        let mut space = self.space();
        let start = space.mmap(
            &self.physical,
            addr,
            len,
            fill_protection(prot),
            flags | space::MAP_ANONYMOUS,
        )?;
        let filled = start.saturating_add(guest_size(contents.len()).min(len));
        if !self.copy_in(&mut space, start, filled, contents)
            || !closed_after_filling(&self.physical, &mut space, start, len, prot)
        {
            let _ = space.munmap(&self.physical, start, len);
            return Err(MapError::NoMemory);
        }
        Ok(start)
    }

    /// `mmap` of a frozen file from an offset: as [`GuestMemory::mmap_contents`], but the
    /// pages the file covers are the file's own, mapped copy-on-write over the mapping's
    /// frames, so every environment mapping the file shares them until it writes one. That
    /// needs the 2 MiB stretches the mapping lies in to be backed by whole chunks of the
    /// function's memory, so the kernel places such mappings in an area of their own
    /// ([`space::Area::Files`]); in a stretch backed frame by frame (a mapping placed where
    /// the program asked) the bytes are copied instead. The `syscall` instructions of an
    /// executable mapping of a library ([`FileSource::syscall_offsets`]) that the mapping
    /// holds may then be rewritten to enter the VMM directly.
    pub fn mmap_file(
        &self,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        source: FileSource<'_>,
    ) -> Result<u64, MapError> {
        let FileSource {
            file,
            offset,
            syscall_offsets,
        } = source;
        use std::os::fd::AsFd;
        let mut space = self.space();
        let start = space.mmap_in(
            &self.physical,
            addr,
            len,
            fill_protection(prot),
            flags | space::MAP_ANONYMOUS,
            space::Area::Files,
        )?;
        // The file's pages from `offset`: its last page is whole in the memory file (zero
        // past its end), but a page wholly past the end must never be mapped from it.
        let file_pages =
            layout::page_align(guest_size(file.len()).saturating_sub(offset)).unwrap_or(0);
        let mapped_len = layout::page_align(len).unwrap_or(len);
        let filled = start.saturating_add(file_pages.min(mapped_len));
        let mut from = start;
        let mut ok = true;
        while ok && from < filled {
            let stretch = chunk_of(from);
            let to = filled.min(stretch.saturating_add(CHUNK));
            let at = offset.saturating_add(from.saturating_sub(start));
            let mapped = space
                .take_whole(&self.physical, stretch)
                .is_some_and(|chunk| {
                    self.physical
                        .map_file(
                            chunk.saturating_add(from.saturating_sub(stretch)),
                            to.saturating_sub(from),
                            file.file().as_fd(),
                            at,
                        )
                        .is_ok()
                });
            ok = mapped || {
                let bytes = usize::try_from(at)
                    .ok()
                    .and_then(|at| file.get(at..))
                    .unwrap_or_default();
                let bytes = bytes
                    .get(..host_size(to.saturating_sub(from)))
                    .unwrap_or(bytes);
                self.copy_in(&mut space, from, to, bytes)
            };
            from = to;
        }
        // Entries for the mapped pages (copied ones have theirs already).
        ok = ok
            && space.populate_range(&self.physical, start, filled).is_ok()
            && closed_after_filling(&self.physical, &mut space, start, len, prot);
        if !ok {
            let _ = space.munmap(&self.physical, start, len);
            return Err(MapError::NoMemory);
        }
        if let Some(offsets) = syscall_offsets {
            space.add_library_sites(start, filled.saturating_sub(start), offset, offsets);
        }
        Ok(start)
    }

    /// Gives the pages of `[start, end)` (in one mapping) frames and entries and copies
    /// `bytes` into them from `start`; `false` if memory ran out.
    fn copy_in(&self, space: &mut AddressSpace, start: u64, end: u64, bytes: &[u8]) -> bool {
        space.populate_range(&self.physical, start, end).is_ok()
            && bytes
                .chunks(host_size(PAGE))
                .zip((start..end).step_by(host_size(PAGE)))
                .all(|(piece, page)| match space.frame_of(&self.physical, page) {
                    Some(frame) => {
                        self.physical.write(frame, piece);
                        true
                    }
                    None => false,
                })
    }

    /// Whether `site` is a `syscall` instruction of an image library mapped here, which may
    /// be rewritten (`GuestMemory::mmap_file`'s `syscall_offsets`).
    pub fn is_library_site(&self, site: u64) -> bool {
        self.space().is_library_site(site)
    }

    /// `munmap`.
    pub fn munmap(&self, addr: u64, len: u64) -> Result<u64, MapError> {
        self.space().munmap(&self.physical, addr, len)
    }

    /// `mprotect`.
    pub fn mprotect(&self, addr: u64, len: u64, prot: u64) -> Result<u64, MapError> {
        self.space().mprotect(&self.physical, addr, len, prot)
    }

    /// Whether `[addr, addr + len)` is mapped without a hole (whatever its protection).
    pub fn is_mapped(&self, addr: u64, len: u64) -> bool {
        addr.checked_add(len)
            .is_some_and(|end| self.space().vmas.covers(addr, end))
    }

    /// `madvise`.
    pub fn madvise(&self, addr: u64, len: u64, advice: u64) -> Result<u64, MapError> {
        self.space().madvise(&self.physical, addr, len, advice)
    }

    /// `mremap`.
    pub fn mremap(
        &self,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> Result<u64, MapError> {
        self.space()
            .mremap(&self.physical, addr, old_len, new_len, flags, new_addr)
    }

    /// `brk`.
    pub fn brk(&self, requested: u64) -> u64 {
        self.space().brk(&self.physical, requested)
    }

    /// Whether the program ran out of the function's memory.
    pub fn out_of_memory(&self) -> bool {
        self.space().out_of_memory()
    }

    /// Counters.
    pub fn stats(&self) -> MemoryStats {
        self.space().stats()
    }

    /// Separate mappings the program holds.
    #[cfg(feature = "fuzzing")]
    pub fn mappings(&self) -> usize {
        self.space().mappings()
    }

    /// Bytes of the function's memory given to the program's pages and page tables.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn committed_bytes(&self) -> u64 {
        self.space().committed()
    }

    /// Bytes of the function's memory the host holds for the program: the pages it touched
    /// (a page the host backs with a 2 MiB page counts whole, as Linux counts a huge page).
    pub fn resident_bytes(&self) -> u64 {
        let ranges = self.space().used_ranges();
        ranges
            .into_iter()
            .map(|(start, len)| self.physical.resident_bytes(start, len))
            .fold(0u64, u64::saturating_add)
    }
}

/// Why the program image could not be mapped.
#[derive(Debug, thiserror::Error)]
pub enum LoadImageError {
    /// Its addresses are not ones a program may use.
    #[error("the program's addresses are outside the range a program may use")]
    Placement,
    /// It does not fit in the function's memory.
    #[error("the program does not fit in the function's memory")]
    TooLarge,
    /// The host could not map it.
    #[error("cannot map the program image: {0}")]
    Map(#[source] std::io::Error),
}

#[cfg(test)]
mod tests;
