//! The guest's physical memory, as the host holds it: the function's memory (the frames the
//! guest's pages are made of) and the small kernel area (page-table root, descriptor tables,
//! stubs, kernel stack, vDSO), each one host mapping registered with KVM as one memory slot:
//! anonymous memory, except the function memory of a VM made for a restore, which maps the
//! snapshot's memory file privately from the start ([`PhysicalMemory::over_file`]).
//!
//! Everything here works on guest-physical addresses the VMM chose itself (frames it owns,
//! kernel structures it placed); guest-virtual addresses, which the guest chooses, are
//! checked and translated by `mm`, which then calls this module. The host-memory operations
//! (`discard`, `revoke`, ...) are also how the VMM makes KVM forget translations: on a PVM
//! host, KVM learns of a page-table change the VMM makes only through the host's mmu
//! notifier, which these calls fire (see `docs/platform.md`).

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::os::fd::{AsRawFd, BorrowedFd};

use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap,
    MmapRegion,
};

use super::kernel_area::KernelArea;
use super::slots::{FIRST_PIECE_SLOT, KERNEL_SLOT, Plan, Slots};
pub use super::slots::{Registrar, Slot};
use crate::sync::lock;

/// Size of a small page.
pub const PAGE: u64 = 4096;
/// Guest-physical address of the function's memory.
pub const USER_BASE: u64 = 0;
/// Guest-physical address of the kernel area: above the largest function memory (10 GiB).
pub const KERNEL_BASE: u64 = 16 << 30;
/// Size of the kernel area.
pub const KERNEL_SIZE: u64 = 16 * PAGE;
/// The bytes at the start of the kernel area that the VMM uses (`vm/layout.rs`): backed with
/// host pages as soon as a VM takes the area (`kernel_area.rs`). The rest is never touched.
pub const KERNEL_USED: u64 = 12 * PAGE;

/// A guest length as a host size (lossless on x86-64).
fn host_size(len: u64) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// A host size as a guest length (lossless on x86-64).
fn guest_len(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// Why guest memory could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot allocate {size} bytes of guest memory")]
pub struct AllocError {
    size: u64,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl AllocError {
    /// The function's memory cannot hold even the first page tables.
    pub(crate) fn too_small(size: u64) -> AllocError {
        AllocError {
            size,
            source: "too small to hold the page tables of the stack and the vDSO".into(),
        }
    }

    /// The host could not map `size` bytes for guest memory.
    pub(crate) fn host(size: u64, error: std::io::Error) -> AllocError {
        AllocError {
            size,
            source: error.into(),
        }
    }
}

/// Alignment of the host mapping of the function's memory: a 2 MiB chunk of it must be a
/// 2 MiB-aligned host range for the host to back it with a huge page.
const HOST_ALIGN: u64 = 2 << 20;

/// A host mapping the VMM made itself (aligned), unmapped on drop.
struct HostMapping {
    addr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain anonymous memory; the pointer is only an address, used by
// the region built over it, which does its own synchronization (none is needed for
// anonymous memory shared with KVM).
unsafe impl Send for HostMapping {}
// SAFETY: as above: nothing in `HostMapping` itself is read or written through `&self`.
unsafe impl Sync for HostMapping {}

impl HostMapping {
    /// `len` bytes of anonymous read-write memory at a host address aligned to `align` (a
    /// power of two), backed only as touched.
    ///
    /// One `mmap` when the host's choice is aligned already: always for a page, and for a
    /// multiple of 2 MiB on this host, which aligns large anonymous mappings for huge pages.
    /// Otherwise a larger range is reserved and trimmed, which costs three more changes to
    /// the process's memory map; each of those is delivered to every VM in the process
    /// (`docs/platform.md`, "Many VMs in one process").
    fn new(len: u64, align: u64) -> std::io::Result<HostMapping> {
        let too_big = || std::io::Error::from_raw_os_error(libc::ENOMEM);
        let len = usize::try_from(len).map_err(|_| too_big())?;
        let align = usize::try_from(align).map_err(|_| too_big())?;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // SAFETY: a fresh mapping at an address the kernel chooses; nothing else refers to it.
        let direct = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
        };
        if direct == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        if (direct as usize) & align.wrapping_sub(1) == 0 {
            return Ok(HostMapping {
                addr: direct.cast(),
                len,
            });
        }
        // SAFETY: the mapping just made, which nothing refers to.
        unsafe { libc::munmap(direct, len) };
        let reserve = len.checked_add(align).ok_or_else(too_big)?;
        // SAFETY: a fresh mapping at an address the kernel chooses; nothing else refers to it.
        let base =
            unsafe { libc::mmap(std::ptr::null_mut(), reserve, libc::PROT_NONE, flags, -1, 0) };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = base.cast::<u8>();
        // `align` is a power of two: the distance to the next multiple of it.
        let skip = (base as usize).wrapping_neg() & align.wrapping_sub(1);
        let start = base.wrapping_add(skip);
        // SAFETY: [start, start + len) lies inside the reservation just made (skip < align),
        // which is ours alone; MAP_FIXED turns that part into read-write memory.
        let mapped = unsafe {
            libc::mmap(
                start.cast(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if mapped == libc::MAP_FAILED {
            let error = std::io::Error::last_os_error();
            // SAFETY: the whole reservation is ours and nothing refers to it.
            unsafe { libc::munmap(base.cast(), reserve) };
            return Err(error);
        }
        let tail = reserve.saturating_sub(skip).saturating_sub(len);
        // SAFETY: the unused head and tail of our own reservation, outside [start, start +
        // len); nothing refers to them.
        unsafe {
            if skip > 0 {
                libc::munmap(base.cast(), skip);
            }
            if tail > 0 {
                libc::munmap(start.wrapping_add(len).cast(), tail);
            }
        }
        Ok(HostMapping { addr: start, len })
    }

    /// `len` bytes of `file` from its start, mapped privately (copy-on-write) at an address
    /// the kernel chooses: one change to the process's memory map, into a range nothing
    /// held, so no VM in the process hears of it. The address is only page-aligned.
    fn from_file(len: u64, file: BorrowedFd<'_>) -> std::io::Result<HostMapping> {
        let len =
            usize::try_from(len).map_err(|_| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
        // SAFETY: a fresh mapping at an address the kernel chooses; nothing else refers to
        // it. Its one caller (`PhysicalMemory::over_file`) checked that the file is `len`
        // bytes long, so no access through the mapping falls past its end.
        let mapped = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_NORESERVE,
                file.as_raw_fd(),
                0,
            )
        };
        if mapped == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(HostMapping {
            addr: mapped.cast(),
            len,
        })
    }

    /// Whether the mapping starts on a multiple of `align` (a power of two).
    fn aligned_to(&self, align: u64) -> bool {
        (self.addr as usize) & host_size(align).wrapping_sub(1) == 0
    }

    /// Replaces the whole mapping with fresh anonymous memory at the same address: every
    /// page reads as zero again and the old pages are freed.
    fn renew(&self) -> std::io::Result<()> {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED;
        // SAFETY: [addr, addr + len) is this mapping, ours alone (made by `new`); MAP_FIXED
        // replaces it in place with memory of the same size and protection, so every region
        // and memory slot built over it stays valid. The host holds no reference into guest
        // memory across this call (the VM is stopped, and owned by the caller).
        let mapped = unsafe {
            libc::mmap(
                self.addr.cast(),
                self.len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
        };
        if mapped == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// A vm-memory region over the mapping, at guest-physical `guest`.
    fn region(
        &self,
        guest: u64,
    ) -> Result<GuestRegionMmap, Box<dyn std::error::Error + Send + Sync>> {
        // SAFETY: [addr, addr + len) is a live read-write private mapping we made (`new`, or
        // `from_file`, which vm-memory treats no differently), and it outlives the region:
        // `PhysicalMemory` drops its regions before its mappings.
        unsafe { region_over(self.addr, self.len, guest) }
    }
}

/// A vm-memory region over `len` bytes of host memory at `addr`, at guest-physical `guest`.
///
/// # Safety
/// `[addr, addr + len)` must be live read-write private memory that outlives the region.
unsafe fn region_over(
    addr: *mut u8,
    len: usize,
    guest: u64,
) -> Result<GuestRegionMmap, Box<dyn std::error::Error + Send + Sync>> {
    // SAFETY: the caller's promise: the range is live read-write private memory outliving
    // the region.
    let region = unsafe {
        MmapRegion::build_raw(
            addr,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        )
    }?;
    GuestRegionMmap::new(region, GuestAddress(guest)).ok_or_else(|| "a region past 2^64".into())
}

impl Drop for HostMapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours (made in `new`), and every region built over it has
        // been dropped (field order in `PhysicalMemory`).
        unsafe {
            libc::munmap(self.addr.cast(), self.len);
        }
    }
}

/// The guest's physical memory.
pub struct PhysicalMemory {
    /// The memory slots KVM holds of this memory (`slots.rs`). Declared first: a VM whose
    /// last handle is its registrar closes before the memory is unmapped.
    slots: std::sync::Mutex<Slots>,
    /// Regions over `user` and `kernel` (dropped before them).
    memory: GuestMemoryMmap,
    /// The function memory's host mapping.
    user: HostMapping,
    /// The kernel area, a slice of a mapping shared with other VMs (`kernel_area.rs`).
    kernel: KernelArea,
    user_size: u64,
    /// Ranges of user memory mapped privately from a file (the program image): discarding
    /// them must map fresh anonymous memory back, since the file's pages would show through.
    file_spans: std::sync::Mutex<Vec<(u64, u64)>>,
    /// For memory restored from a snapshot, where the snapshot's memory file still shows
    /// stored contents (address, length; sorted): those pages count as held whether or not
    /// this mapping has touched them ([`PhysicalMemory::resident_bytes`]). `None` otherwise.
    snapshot_pages: std::sync::Mutex<Option<Vec<(u64, u64)>>>,
    /// Whether [`PhysicalMemory::prefer_huge`] may ask for huge pages.
    huge_pages: std::sync::atomic::AtomicBool,
}

impl PhysicalMemory {
    /// Reserves `user_size` bytes of function memory and the kernel area; the host backs
    /// pages only as they are touched, with 4 KiB pages unless told otherwise
    /// ([`PhysicalMemory::prefer_huge`]).
    pub fn new(user_size: u64) -> Result<PhysicalMemory, AllocError> {
        let error = |source: Box<dyn std::error::Error + Send + Sync>| AllocError {
            size: user_size,
            source,
        };
        let user = HostMapping::new(user_size, HOST_ALIGN).map_err(|e| error(e.into()))?;
        let physical = PhysicalMemory::with_user_mapping(user, user_size, Vec::new())?;
        physical.prefer_huge(USER_BASE, user_size, false);
        Ok(physical)
    }

    /// The memory over `user`, the function memory's host mapping (`user_size` bytes, a file
    /// showing through `file_spans`), with a new kernel area.
    fn with_user_mapping(
        user: HostMapping,
        user_size: u64,
        file_spans: Vec<(u64, u64)>,
    ) -> Result<PhysicalMemory, AllocError> {
        let error = |source: Box<dyn std::error::Error + Send + Sync>| AllocError {
            size: user_size,
            source,
        };
        let kernel = KernelArea::new().map_err(|e| error(e.into()))?;
        // SAFETY: the kernel area is KERNEL_SIZE bytes of live read-write anonymous memory,
        // ours until `kernel` drops, which is after the region (field order below).
        let kernel_region =
            unsafe { region_over(kernel.addr(), host_size(KERNEL_SIZE), KERNEL_BASE) };
        let regions = vec![
            user.region(USER_BASE).map_err(error)?,
            kernel_region.map_err(error)?,
        ];
        let memory = GuestMemoryMmap::from_regions(regions).map_err(|e| error(e.into()))?;
        Ok(PhysicalMemory {
            slots: std::sync::Mutex::new(Slots {
                plan: Plan::new(user_size),
                registrar: None,
            }),
            memory,
            user,
            kernel,
            user_size,
            file_spans: std::sync::Mutex::new(file_spans),
            snapshot_pages: std::sync::Mutex::new(None),
            huge_pages: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// Function memory of `user_size` bytes mapped privately from `file` (as
    /// [`PhysicalMemory::save_user_memory`] wrote it, exactly that long), and a fresh kernel
    /// area: what [`PhysicalMemory::new`] followed by [`PhysicalMemory::map_user_memory`]
    /// leaves, in two changes to the process's memory map instead of three. The one left out
    /// is the replacement of the anonymous function memory, which every VM in the process
    /// hears of (`docs/platform.md`, "Many VMs in one process"). The function memory is then
    /// only page-aligned on the host ([`PhysicalMemory::renewable`] says whether it can be
    /// renewed in place).
    pub fn over_file(user_size: u64, file: &std::fs::File) -> Result<PhysicalMemory, AllocError> {
        use std::os::fd::AsFd;
        let error = |source: Box<dyn std::error::Error + Send + Sync>| AllocError {
            size: user_size,
            source,
        };
        let file_len = file.metadata().map_err(|e| error(e.into()))?.len();
        if file_len != user_size {
            return Err(error(
                format!("the memory file holds {file_len} bytes, not {user_size}").into(),
            ));
        }
        let user = HostMapping::from_file(user_size, file.as_fd()).map_err(|e| error(e.into()))?;
        PhysicalMemory::with_user_mapping(user, user_size, vec![(USER_BASE, user_size)])
    }

    /// Whether [`PhysicalMemory::renew`] leaves memory as good as [`PhysicalMemory::new`]
    /// makes it: the function memory must sit on a 2 MiB boundary of the host for huge pages
    /// to back it, which [`PhysicalMemory::over_file`] does not promise.
    pub fn renewable(&self) -> bool {
        self.user.aligned_to(HOST_ALIGN)
    }

    /// Makes the memory as [`PhysicalMemory::new`] made it: the function memory and the
    /// kernel area replaced by fresh anonymous memory that reads as zero, nothing mapped
    /// from a file, huge pages allowed and not yet asked for, no slot planned. The memory
    /// must be detached from its VM first ([`PhysicalMemory::detach`]).
    pub fn renew(&self) -> Result<(), AllocError> {
        {
            let mut slots = lock(&self.slots);
            slots.registrar = None;
            slots.plan = Plan::new(self.user_size);
        }
        self.replace()
    }

    /// [`PhysicalMemory::renew`] for memory whose VM keeps the slots a new memory of its
    /// size starts with (the kernel area's and the first piece of function memory:
    /// `slots.rs`), if the memory is [`PhysicalMemory::renewable`]: the host memory under
    /// them is replaced in place, which KVM's mmu notifier sees, and the plan keeps its first
    /// piece. Returns the slots of the other pieces, by number, for the VM to delete (it
    /// must, before it runs again: they are no longer planned), or `None` if the memory
    /// cannot be renewed in place, which leaves it as it was, for
    /// [`PhysicalMemory::renew`]. KVM's shadow page tables outlive this; the VM must make
    /// KVM drop them (deleting any slot does: `vm/shadow.rs`) before it runs again.
    pub fn renew_keeping_slots(&self) -> Result<Option<Vec<(u32, Slot)>>, AllocError> {
        if !self.renewable() {
            return Ok(None);
        }
        let extra: Vec<(u32, Slot)> = self
            .planned_slots()
            .into_iter()
            .filter(|&(number, _)| number > FIRST_PIECE_SLOT)
            .collect();
        lock(&self.slots).plan.keep_first();
        self.replace()?;
        Ok(Some(extra))
    }

    /// Replaces the function memory and the kernel area with fresh memory at the same host
    /// addresses, and forgets every file mapped into it and every huge-page request.
    fn replace(&self) -> Result<(), AllocError> {
        let error = |error| AllocError::host(self.user_size, error);
        self.user.renew().map_err(error)?;
        self.kernel.renew().map_err(error)?;
        lock(&self.file_spans).clear();
        *lock(&self.snapshot_pages) = None;
        self.allow_huge_pages(true);
        self.prefer_huge(USER_BASE, self.user_size, false);
        Ok(())
    }

    /// Whether the host may be asked for huge pages from now on (it is, unless told not to).
    pub fn allow_huge_pages(&self, allow: bool) {
        self.huge_pages
            .store(allow, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes of function memory.
    pub fn user_size(&self) -> u64 {
        self.user_size
    }

    /// The host mappings: the function memory, then the kernel area.
    #[cfg(test)]
    pub fn regions(&self) -> Vec<Slot> {
        self.memory
            .iter()
            .map(|region| Slot {
                guest_phys: region.start_addr().0,
                host: region.as_ptr(),
                size: region.len(),
            })
            .collect()
    }

    /// `[addr, addr + len)` as a memory slot (it must lie inside one host mapping).
    fn slot(&self, addr: u64, len: u64) -> std::io::Result<Slot> {
        let host = self
            .host_range(addr, len)
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(Slot {
            guest_phys: addr,
            host,
            size: len,
        })
    }

    /// The slots this memory has, by number: the kernel area's, then the function memory's
    /// pieces planned so far, in the order they were added (`slots.rs`).
    pub fn planned_slots(&self) -> Vec<(u32, Slot)> {
        let slots = lock(&self.slots);
        let mut all = Vec::with_capacity(slots.plan.pieces().len().saturating_add(1));
        if let Ok(kernel) = self.slot(KERNEL_BASE, KERNEL_SIZE) {
            all.push((KERNEL_SLOT, kernel));
        }
        for (&(start, len), number) in slots.plan.pieces().iter().zip(FIRST_PIECE_SLOT..) {
            if let Ok(piece) = self.slot(start, len) {
                all.push((number, piece));
            }
        }
        all
    }

    /// Hands the memory to a VM: registers every slot planned so far with `registrar`
    /// (the kernel area's, and the function memory's pieces), which from then on registers
    /// each piece [`PhysicalMemory::cover`] adds. On an error nothing stays attached (the
    /// slots already registered stay so until the VM closes or deletes them).
    pub fn attach(&self, registrar: Registrar) -> std::io::Result<()> {
        for (number, slot) in self.planned_slots() {
            registrar(number, slot)?;
        }
        lock(&self.slots).registrar = Some(registrar);
        Ok(())
    }

    /// Takes the memory from its VM: no further piece is registered, and the slots KVM
    /// holds of it are returned (by number) for the VM to delete. Nothing if it was not
    /// attached.
    pub fn detach(&self) -> Vec<(u32, Slot)> {
        let attached = lock(&self.slots).registrar.take().is_some();
        if attached {
            self.planned_slots()
        } else {
            Vec::new()
        }
    }

    /// Whether `[addr, addr + len)` of the function memory is in a memory slot (planned, or
    /// registered if the memory is attached).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn covers(&self, addr: u64, len: u64) -> bool {
        lock(&self.slots).plan.covers(addr, len)
    }

    /// Makes sure `[addr, addr + len)` of the function memory is in a memory slot before
    /// anything hands it to the guest: the pieces `slots.rs` plans are registered with the
    /// VM if the memory is attached to one (else they are registered when it is). An error
    /// is the VM's, from `KVM_SET_USER_MEMORY_REGION`; the range is then not covered.
    pub fn cover(&self, addr: u64, len: u64) -> std::io::Result<()> {
        let mut slots = lock(&self.slots);
        for piece in slots.plan.needed(addr, len) {
            if let Some(registrar) = &slots.registrar {
                let number = u32::try_from(slots.plan.pieces().len())
                    .ok()
                    .and_then(|n| n.checked_add(FIRST_PIECE_SLOT))
                    .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOSPC))?;
                registrar(number, self.slot(piece.0, piece.1)?)?;
            }
            slots.plan.add(piece);
        }
        Ok(())
    }

    /// The host address of `[addr, addr + len)`, which must lie inside one slot.
    fn host_range(&self, addr: u64, len: u64) -> Option<*mut u8> {
        let region = self.memory.find_region(GuestAddress(addr))?;
        let offset = addr.checked_sub(region.start_addr().0)?;
        if offset.checked_add(len)? > region.len() {
            return None;
        }
        // `offset` lies inside the region (checked), so the pointer stays in its mapping.
        Some(region.as_ptr().wrapping_add(host_size(offset)))
    }

    /// Copies guest-physical bytes at `addr` into `buf`. Panics if the range is not guest
    /// memory: callers pass only addresses the VMM placed or translated itself.
    pub fn read(&self, addr: u64, buf: &mut [u8]) {
        self.memory
            .read_slice(buf, GuestAddress(addr))
            .expect("the VMM reads only guest-physical memory it placed");
    }

    /// Copies `data` to guest-physical `addr` (see [`PhysicalMemory::read`]).
    pub fn write(&self, addr: u64, data: &[u8]) {
        self.memory
            .write_slice(data, GuestAddress(addr))
            .expect("the VMM writes only guest-physical memory it placed");
    }

    /// Reads a 64-bit word (a page-table entry, a stack slot of the kernel area).
    pub fn read_u64(&self, addr: u64) -> u64 {
        let mut bytes = [0u8; 8];
        self.read(addr, &mut bytes);
        u64::from_le_bytes(bytes)
    }

    /// Writes a 64-bit word.
    pub fn write_u64(&self, addr: u64, value: u64) {
        self.write(addr, &value.to_le_bytes());
    }

    /// Copies `len` bytes between two ranges of user memory (a page moving to another
    /// frame).
    pub fn copy(&self, from: u64, to: u64, len: u64) {
        let mut buf = vec![0u8; host_size(len)];
        self.read(from, &mut buf);
        self.write(to, &buf);
    }

    /// Gives the pages of `[addr, addr + len)` (page-aligned user memory) back to the host:
    /// they read as zero afterwards, and KVM forgets every translation to them, so a page
    /// the guest no longer maps cannot still be reached through a stale one.
    pub fn discard(&self, addr: u64, len: u64) {
        if len == 0 {
            return;
        }
        let Some(host) = self.host_range(addr, len) else {
            return;
        };
        let end = addr.saturating_add(len);
        let mut spans = lock(&self.file_spans);
        let touches_file = spans
            .iter()
            .any(|&(start, span)| start < end && start.saturating_add(span) > addr);
        if touches_file {
            // Anonymous memory mapped over the file's pages: zero, and it drops them (and
            // KVM's translations to them) as MADV_DONTNEED would.
            // SAFETY: [host, host + len) lies inside our own user-memory mapping (checked by
            // host_range), so MAP_FIXED replaces only guest pages, which the host never
            // reads through references; the region's owner unmaps the whole range on drop.
            let mapped = unsafe {
                libc::mmap(
                    host.cast(),
                    host_size(len),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            assert_ne!(
                mapped,
                libc::MAP_FAILED,
                "remapping guest memory failed: {}",
                std::io::Error::last_os_error()
            );
            *spans = without(&spans, addr, end);
            if let Some(pages) = lock(&self.snapshot_pages).as_mut() {
                *pages = without(pages, addr, end);
            }
            return;
        }
        drop(spans);
        // SAFETY: [host, host + len) lies inside our own anonymous user-memory mapping
        // (checked by host_range); MADV_DONTNEED only drops its pages, which then read as
        // zero, and nothing in the host holds references into guest memory.
        let rc = unsafe { libc::madvise(host.cast(), host_size(len), libc::MADV_DONTNEED) };
        assert_eq!(
            rc,
            0,
            "MADV_DONTNEED on guest memory failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Makes KVM forget every translation to the pages of `[addr, addr + len)` while keeping
    /// their contents: the guest's next access to them walks its page tables again. Used
    /// after a page's permissions were reduced or its mapping moved.
    pub fn revoke(&self, addr: u64, len: u64) {
        if len == 0 {
            return;
        }
        let Some(host) = self.host_range(addr, len) else {
            return;
        };
        for prot in [libc::PROT_READ, libc::PROT_READ | libc::PROT_WRITE] {
            // SAFETY: [host, host + len) lies inside our own guest-memory mapping (checked by
            // host_range). Making it read-only and then writable again changes no contents;
            // the VMM does not write guest memory between the two calls (it holds the
            // address-space lock), and the mapping was read-write before.
            let rc = unsafe { libc::mprotect(host.cast(), host_size(len), prot) };
            assert_eq!(
                rc,
                0,
                "mprotect on guest memory failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }

    /// Asks the host to back `[addr, addr + len)` with 2 MiB pages (a chunk the guest maps
    /// with one large page), or not to (frames handed out one by one). Advice only: a host
    /// without transparent huge pages just ignores it.
    pub fn prefer_huge(&self, addr: u64, len: u64, huge: bool) {
        let huge = huge && self.huge_pages.load(std::sync::atomic::Ordering::Relaxed);
        let Some(host) = self.host_range(addr, len) else {
            return;
        };
        let advice = if huge {
            libc::MADV_HUGEPAGE
        } else {
            libc::MADV_NOHUGEPAGE
        };
        // SAFETY: the range lies inside our own guest-memory mapping (checked by host_range);
        // the advice changes how the host backs it, never its contents.
        unsafe {
            libc::madvise(host.cast(), host_size(len), advice);
        }
    }

    /// Backs `[addr, addr + len)` with host pages now (zeroed, as fresh memory reads), so
    /// the guest's first touches find them present: KVM then maps eight neighbours per fault
    /// instead of one. Advice only: on failure the guest's touches fault them in.
    pub fn populate(&self, addr: u64, len: u64) {
        let Some(host) = self.host_range(addr, len) else {
            return;
        };
        // SAFETY: the range lies inside our own read-write guest-memory mapping (checked by
        // host_range); populating allocates its pages as a write would, changing nothing
        // (pages already present keep their contents).
        unsafe {
            libc::madvise(host.cast(), host_size(len), libc::MADV_POPULATE_WRITE);
        }
    }

    /// Maps `len` bytes of `file` from `offset`, privately (copy-on-write), over the user
    /// memory at `addr`; all three page-aligned. Used to load program images without copying
    /// them: the pages are populated read-only first (so nothing is copied), then made
    /// writable (a write copies just the page written).
    pub fn map_file(
        &self,
        addr: u64,
        len: u64,
        file: BorrowedFd<'_>,
        offset: u64,
    ) -> std::io::Result<()> {
        let invalid = || std::io::Error::from_raw_os_error(libc::EINVAL);
        if addr % PAGE != 0 || len % PAGE != 0 || offset % PAGE != 0 || len == 0 {
            return Err(invalid());
        }
        if addr.checked_add(len).is_none_or(|end| end > self.user_size) {
            return Err(invalid());
        }
        let host = self.host_range(addr, len).ok_or_else(invalid)?;
        let offset = libc::off_t::try_from(offset).map_err(|_| invalid())?;
        // SAFETY: [host, host + len) lies inside our own user-memory mapping (checked
        // above), so MAP_FIXED replaces only guest pages, which the host never reads through
        // references; the region's owner unmaps the whole range on drop.
        let mapped = unsafe {
            libc::mmap(
                host.cast(),
                host_size(len),
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_POPULATE,
                file.as_raw_fd(),
                offset,
            )
        };
        if mapped == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        lock(&self.file_spans).push((addr, len));
        if let Some(pages) = lock(&self.snapshot_pages).as_mut() {
            *pages = without(pages, addr, addr.saturating_add(len));
        }
        // SAFETY: the same range, just mapped above.
        if unsafe {
            libc::mprotect(
                host.cast(),
                host_size(len),
                libc::PROT_READ | libc::PROT_WRITE,
            )
        } != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Writes the function memory's contents into `file` at the same offsets, skipping pages
    /// that read as zero (the file stays sparse: a hole reads as zero too). Returns the
    /// ranges written (address, length). The guest must not run meanwhile.
    pub fn save_user_memory(&self, file: &std::fs::File) -> std::io::Result<Vec<(u64, u64)>> {
        use std::os::unix::fs::FileExt;
        file.set_len(self.user_size)?;
        let residency = self.residency(USER_BASE, self.user_size)?;
        let spans = lock(&self.file_spans).clone();
        let from_file = |addr: u64| {
            spans
                .iter()
                .any(|&(start, len)| addr >= start && addr < start.saturating_add(len))
        };
        let mut runs = Vec::new();
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0u64;
        let mut page = vec![0u8; host_size(PAGE)];
        for (index, resident) in (0u64..).zip(&residency) {
            let addr = USER_BASE.saturating_add(index.saturating_mul(PAGE));
            // A page never touched (or discarded) reads as zero unless a file shows through.
            let mut keep = false;
            if resident & 1 != 0 || from_file(addr) {
                self.read(addr, &mut page);
                keep = page.iter().any(|&byte| byte != 0);
            }
            if keep {
                if run.is_empty() {
                    run_start = addr;
                }
                run.extend_from_slice(&page);
            }
            if (!keep || run.len() >= 1 << 20) && !run.is_empty() {
                file.write_all_at(&run, run_start)?;
                runs.push((run_start, guest_len(run.len())));
                run.clear();
            }
        }
        if !run.is_empty() {
            file.write_all_at(&run, run_start)?;
            runs.push((run_start, guest_len(run.len())));
        }
        Ok(runs)
    }

    /// Maps `file` (as [`PhysicalMemory::save_user_memory`] wrote it, of this memory's size)
    /// privately over the whole function memory: the guest sees its contents, a write copies
    /// just the page written, and the file never changes. The host maps nothing now; each
    /// page comes in as the guest first touches it. KVM forgets every translation to the
    /// memory that was there (the mmu notifier), so the VM must not be running.
    pub fn map_user_memory(&self, file: BorrowedFd<'_>) -> std::io::Result<()> {
        let host = self
            .host_range(USER_BASE, self.user_size)
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: [host, host + user_size) is our own user-memory mapping (checked by
        // host_range), so MAP_FIXED replaces only guest pages, which the host never reads
        // through references; the region's owner unmaps the whole range on drop. The file is
        // at least that long (checked by the caller), so no access past its end can fault.
        let mapped = unsafe {
            libc::mmap(
                host.cast(),
                host_size(self.user_size),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_NORESERVE,
                file.as_raw_fd(),
                0,
            )
        };
        if mapped == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        *lock(&self.file_spans) = vec![(USER_BASE, self.user_size)];
        *lock(&self.snapshot_pages) = None;
        Ok(())
    }

    /// Tells this memory, mapped from a snapshot's memory file ([`PhysicalMemory::over_file`]
    /// or [`PhysicalMemory::map_user_memory`]), which ranges of the file hold stored
    /// contents (the rest are holes, reading as zero): what
    /// [`PhysicalMemory::save_user_memory`] returned.
    pub fn show_snapshot_contents(&self, stored: &[(u64, u64)]) {
        let spans = lock(&self.file_spans).clone();
        let mut pages: Vec<(u64, u64)> = Vec::with_capacity(stored.len());
        for &(start, len) in stored {
            let end = start.saturating_add(len);
            for &(span, span_len) in &spans {
                let (from, to) = (start.max(span), end.min(span.saturating_add(span_len)));
                if from < to {
                    pages.push((from, to.saturating_sub(from)));
                }
            }
        }
        pages.sort_unstable();
        *lock(&self.snapshot_pages) = Some(pages);
    }

    /// For each page of `[addr, addr + len)` (function memory, page-aligned), whether this
    /// process's page table maps it now (`None`: not), and if so whether written: a page
    /// counts as written when the mapping holds a private copy of it (anonymous and mapped
    /// only here), as read when it shows the memory file's page or the shared zero page.
    /// Read from `/proc/self/pagemap`. Right after [`PhysicalMemory::map_user_memory`]
    /// nothing is mapped, so afterwards this tells what the guest (through KVM) and the VMM
    /// have touched since.
    pub fn mapped_pages(&self, addr: u64, len: u64) -> std::io::Result<Vec<Option<bool>>> {
        use std::os::unix::fs::FileExt;
        /// pagemap: the page is present.
        const PRESENT: u64 = 1 << 63;
        /// pagemap: the page is a file page or shared anonymous memory.
        const FILE_OR_SHARED: u64 = 1 << 61;
        /// pagemap: the page is mapped exactly once.
        const EXCLUSIVE: u64 = 1 << 56;
        let invalid = || std::io::Error::from_raw_os_error(libc::EINVAL);
        if addr.saturating_add(len) > self.user_size {
            return Err(invalid());
        }
        let host = self.host_range(addr, len).ok_or_else(invalid)?;
        let mut entries = vec![0u8; host_size(len / PAGE).saturating_mul(8)];
        let first = host
            .addr()
            .checked_div(host_size(PAGE))
            .map_or(usize::MAX, |page| page.saturating_mul(8));
        std::fs::File::open("/proc/self/pagemap")?
            .read_exact_at(&mut entries, u64::try_from(first).unwrap_or(u64::MAX))?;
        Ok(entries
            .chunks_exact(8)
            .map(|entry| {
                let entry = entry.try_into().map_or(0, u64::from_le_bytes);
                (entry & PRESENT != 0)
                    .then_some(entry & FILE_OR_SHARED == 0 && entry & EXCLUSIVE != 0)
            })
            .collect())
    }

    /// One byte per page of `[addr, addr + len)` (which must lie inside one slot), bit 0 set
    /// where the host holds the page (`mincore`).
    fn residency(&self, addr: u64, len: u64) -> std::io::Result<Vec<u8>> {
        let host = self
            .host_range(addr, len)
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let mut residency = vec![0u8; host_size(len.div_ceil(PAGE))];
        // SAFETY: [host, host + len) lies inside our own live mapping (checked by
        // host_range), and `residency` has one byte per page of it.
        let rc = unsafe { libc::mincore(host.cast(), host_size(len), residency.as_mut_ptr()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(residency)
    }

    /// Bytes of `[addr, addr + len)` the host holds: pages touched and not discarded since
    /// (`mincore`). For memory restored from a snapshot, the pages this mapping holds (read
    /// from `/proc/self/pagemap`) and those where the snapshot's stored contents show
    /// through: the same count `mincore` gives while the memory file holds just what was
    /// stored, without `mincore`'s look-up of the file's page cache for every page not
    /// mapped here (about 60 us for a restored `runtime-loop`, on each invocation).
    pub fn resident_bytes(&self, addr: u64, len: u64) -> u64 {
        let resident = match lock(&self.snapshot_pages).as_deref() {
            Some(shown) => match self.mapped_pages(addr, len) {
                Ok(mapped) => held_over_snapshot(&mapped, addr, shown),
                Err(_) => self.mincore_count(addr, len),
            },
            None => self.mincore_count(addr, len),
        };
        guest_len(resident).saturating_mul(PAGE)
    }

    /// Pages of `[addr, addr + len)` `mincore` says the host holds (0 if it cannot tell).
    fn mincore_count(&self, addr: u64, len: u64) -> usize {
        self.residency(addr, len).map_or(0, |residency| {
            residency.iter().filter(|&&b| b & 1 != 0).count()
        })
    }

    /// Tests: bytes of `[addr, addr + len)` `mincore` says the host holds.
    #[cfg(test)]
    pub(crate) fn mincore_bytes(&self, addr: u64, len: u64) -> u64 {
        guest_len(self.mincore_count(addr, len)).saturating_mul(PAGE)
    }
}

/// `spans` (address, length) without what lies in `[addr, end)`.
fn without(spans: &[(u64, u64)], addr: u64, end: u64) -> Vec<(u64, u64)> {
    let mut kept = Vec::with_capacity(spans.len().saturating_add(1));
    for &(start, span) in spans {
        let span_end = start.saturating_add(span);
        if start < addr {
            kept.push((start, span_end.min(addr).saturating_sub(start)));
        }
        if span_end > end {
            let from = start.max(end);
            kept.push((from, span_end.saturating_sub(from)));
        }
    }
    kept
}

/// Of the pages from `addr` that `mapped` describes (one entry each, `Some` where mapped),
/// those mapped or inside one of `shown` (sorted ranges).
fn held_over_snapshot(mapped: &[Option<bool>], addr: u64, shown: &[(u64, u64)]) -> usize {
    let mut held = mapped.iter().filter(|page| page.is_some()).count();
    let end = guest_len(mapped.len())
        .saturating_mul(PAGE)
        .saturating_add(addr);
    for &(start, len) in shown {
        let (from, to) = (start.max(addr), start.saturating_add(len).min(end));
        let mut page = from;
        while page < to {
            let index = host_size(page.saturating_sub(addr) / PAGE);
            if mapped.get(index).is_some_and(Option::is_none) {
                held = held.saturating_add(1);
            }
            page = page.saturating_add(PAGE);
        }
    }
    held
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    #[test]
    fn discarded_pages_read_zero_and_leave_the_host() {
        let memory = PhysicalMemory::new(16 << 20).unwrap();
        memory.write(8 * PAGE, &[7; 3 * PAGE as usize]);
        assert_eq!(memory.resident_bytes(8 * PAGE, 3 * PAGE), 3 * PAGE);
        memory.discard(8 * PAGE, 2 * PAGE);
        assert_eq!(memory.resident_bytes(8 * PAGE, 3 * PAGE), PAGE);
        let mut back = [1u8; 16];
        memory.read(9 * PAGE, &mut back);
        assert_eq!(back, [0; 16]);
        memory.read(10 * PAGE, &mut back);
        assert_eq!(back, [7; 16]);
    }

    #[test]
    fn revoked_pages_keep_their_contents() {
        let memory = PhysicalMemory::new(16 << 20).unwrap();
        memory.write(PAGE, b"kept");
        memory.revoke(PAGE, PAGE);
        let mut back = [0u8; 4];
        memory.read(PAGE, &mut back);
        assert_eq!(&back, b"kept");
        memory.write(PAGE, b"more");
    }

    #[test]
    fn file_pages_are_copied_on_write_and_discarded_to_zero() {
        use std::os::fd::AsFd;
        use std::os::unix::fs::FileExt;
        let memory = PhysicalMemory::new(16 << 20).unwrap();
        let file = crate::host::memory_file(c"test").unwrap();
        file.set_len(2 * PAGE).unwrap();
        file.write_all_at(b"file bytes", PAGE).unwrap();
        memory
            .map_file(4 * PAGE, 2 * PAGE, file.as_fd(), 0)
            .unwrap();
        let mut back = [0u8; 10];
        memory.read(5 * PAGE, &mut back);
        assert_eq!(&back, b"file bytes");
        memory.write(5 * PAGE, b"FILE");
        let mut original = [0u8; 4];
        file.read_exact_at(&mut original, PAGE).unwrap();
        assert_eq!(&original, b"file");
        memory.discard(5 * PAGE, PAGE);
        memory.read(5 * PAGE, &mut back);
        assert_eq!(back, [0; 10]);
        assert!(memory.map_file(3, PAGE, file.as_fd(), 0).is_err());
    }

    #[test]
    fn restored_memory_counts_what_it_holds_and_what_the_snapshot_stored() {
        use std::os::fd::AsFd;
        let size = 16 << 20;
        let all = |memory: &PhysicalMemory| memory.resident_bytes(USER_BASE, 64 * PAGE);
        let by_mincore = |memory: &PhysicalMemory| memory.mincore_bytes(USER_BASE, 64 * PAGE);
        let original = PhysicalMemory::new(size).unwrap();
        original.write(0, &[7; 4 * PAGE as usize]);
        let file = crate::host::memory_file(c"resident-test").unwrap();
        let stored = original.save_user_memory(&file).unwrap();
        assert_eq!(stored, [(0, 4 * PAGE)]);
        let restored = PhysicalMemory::over_file(size, &file).unwrap();
        // Mapped from the file, nothing touched yet: `mincore` finds the stored pages in the
        // file's page cache; told which they are, the count finds them without it.
        assert_eq!(all(&restored), 4 * PAGE);
        restored.show_snapshot_contents(&stored);
        assert_eq!(all(&restored), 4 * PAGE);
        assert_eq!(all(&restored), by_mincore(&restored));
        // A stored page read, a hole read, a hole written: the two holes count too.
        let mut byte = [0u8; 1];
        restored.read(PAGE, &mut byte);
        assert_eq!(byte, [7]);
        restored.read(5 * PAGE, &mut byte);
        restored.write(6 * PAGE, &[1]);
        assert_eq!(all(&restored), 6 * PAGE);
        assert_eq!(all(&restored), by_mincore(&restored));
        // A stored page discarded no longer shows the file, nor counts.
        restored.discard(2 * PAGE, PAGE);
        assert_eq!(all(&restored), 5 * PAGE);
        assert_eq!(all(&restored), by_mincore(&restored));
        // A program image mapped over a stored page: what the image maps counts, not what
        // was stored there.
        let image = crate::host::memory_file(c"image-test").unwrap();
        image.set_len(PAGE).unwrap();
        restored.map_file(3 * PAGE, PAGE, image.as_fd(), 0).unwrap();
        assert_eq!(all(&restored), by_mincore(&restored));
        // Another memory restored from the file touching a hole changes nothing here (with
        // `mincore` it could: the file's page cache is shared).
        let other = PhysicalMemory::over_file(size, &file).unwrap();
        other.show_snapshot_contents(&stored);
        let before = all(&restored);
        other.read(9 * PAGE, &mut byte);
        other.write(10 * PAGE, &[1]);
        assert_eq!(all(&restored), before);
        // (It holds more than the two pages it touched: a read maps ahead the file's pages
        // already cached, the holes the first memory touched included.)
        assert!(all(&other) >= 6 * PAGE);
        assert_eq!(all(&other), by_mincore(&other));
        // Renewed, it is plain memory again.
        drop(other);
        if restored.renewable() {
            restored.renew().unwrap();
            assert_eq!(all(&restored), 0);
        }
    }

    #[test]
    fn the_function_memory_is_2_mib_aligned_on_the_host() {
        for size in [128u64 << 20, 129 << 20, 1000 << 20] {
            let memory = PhysicalMemory::new(size).unwrap();
            assert_eq!(memory.regions()[0].host as u64 % HOST_ALIGN, 0, "{size}");
            assert_eq!(memory.regions()[0].size, size);
        }
    }

    #[test]
    fn the_kernel_area_is_its_own_slot() {
        let memory = PhysicalMemory::new(128 << 20).unwrap();
        let slots = memory.regions();
        assert_eq!(slots.len(), 2);
        assert_eq!(slots[0].guest_phys, USER_BASE);
        assert_eq!(slots[0].size, 128 << 20);
        assert_eq!(slots[1].guest_phys, KERNEL_BASE);
        memory.write_u64(KERNEL_BASE + 8, 42);
        assert_eq!(memory.read_u64(KERNEL_BASE + 8), 42);
    }

    #[test]
    fn kernel_areas_are_slices_of_a_shared_host_mapping() {
        let first = PhysicalMemory::new(16 << 20).unwrap();
        let second = PhysicalMemory::new(16 << 20).unwrap();
        let (a, b) = (first.regions()[1], second.regions()[1]);
        assert_eq!((a.size, b.size), (KERNEL_SIZE, KERNEL_SIZE));
        assert_ne!(a.host, b.host);
        // One mapping of a whole chunk of areas (or more, where the host placed chunks side
        // by side), not one of its own per VM: making a VM costs in proportion to the
        // process's mappings.
        use crate::mm::kernel_area::{CHUNK_AREAS, tests::mappings_holding};
        let holding = mappings_holding(&[a.host.addr()]);
        assert_eq!(holding.len(), 1, "the kernel area is mapped");
        assert!(
            holding
                .iter()
                .all(|(start, end)| end - start >= CHUNK_AREAS * KERNEL_SIZE as usize)
        );
        first.write_u64(KERNEL_BASE, 1);
        second.write_u64(KERNEL_BASE, 2);
        assert_eq!(first.read_u64(KERNEL_BASE), 1);
        first.renew().unwrap();
        assert_eq!(
            first.read_u64(KERNEL_BASE),
            0,
            "renewing zeroes the kernel area"
        );
        assert_eq!(second.read_u64(KERNEL_BASE), 2, "and only this VM's");
    }

    /// The host backs the part of a kernel area the VMM uses at once, and nothing of the
    /// rest, when a VM takes the area and when it is renewed.
    #[test]
    fn only_the_used_part_of_the_kernel_area_is_backed() {
        let memory = PhysicalMemory::new(16 << 20).unwrap();
        let resident = || memory.resident_bytes(KERNEL_BASE, KERNEL_SIZE);
        assert_eq!(resident(), KERNEL_USED);
        memory.write_u64(KERNEL_BASE + KERNEL_USED - 8, 1);
        memory.renew().unwrap();
        assert_eq!(resident(), KERNEL_USED);
        assert_eq!(memory.read_u64(KERNEL_BASE + KERNEL_USED - 8), 0);
    }
}
