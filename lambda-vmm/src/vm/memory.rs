//! Guest memory and the one checked accessor for guest pointers.
//!
//! Every access the kernel makes on behalf of the guest goes through [`GuestMemory`], which
//! checks that the whole range is user memory (see [`Layout::is_user_range`]) before touching
//! it. Nothing else in the crate reads or writes guest memory on the guest's behalf.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
    MemoryRegionAddress,
};

use super::layout::{Layout, PAGE};
use crate::sync::lock;

/// A guest length as a host size (lossless on x86-64; a length too large for the host
/// saturates and then fails the range check it is used with).
fn host_size(len: u64) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// A host size as a guest length (lossless on x86-64).
fn guest_size(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// A guest address or length that does not name user memory: the syscall gets `EFAULT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bad guest address {addr:#x} (+{len})")]
pub struct Fault {
    /// The address the guest gave.
    pub addr: u64,
    /// The length it asked for.
    pub len: u64,
}

/// Why guest memory could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot allocate {size} bytes of guest memory")]
pub struct AllocError {
    size: u64,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// The guest's physical memory: one memory file of the function's size, mapped shared at
/// address 0 and backed only as pages are touched. A memory file (rather than anonymous
/// memory) lets the host count the pages the guest touched in O(1) with `fstat`, and frees
/// pages exactly with a punched hole.
pub struct GuestMemory {
    memory: GuestMemoryMmap,
    backing: std::sync::Arc<std::fs::File>,
    layout: Layout,
    /// Ranges mapped privately from elsewhere (the program image): not in the memory file.
    private_spans: std::sync::Mutex<Vec<(u64, u64)>>,
}

impl GuestMemory {
    /// Reserves `size` bytes; the host backs pages only as they are touched.
    pub fn new(size: u64) -> Result<GuestMemory, AllocError> {
        let error = |source: Box<dyn std::error::Error + Send + Sync>| AllocError { size, source };
        let backing = std::sync::Arc::new(
            crate::host::memory_file(c"lambda-guest").map_err(|e| error(e.into()))?,
        );
        backing.set_len(size).map_err(|e| error(e.into()))?;
        let file = vm_memory::FileOffset::from_arc(backing.clone(), 0);
        let memory = GuestMemoryMmap::from_ranges_with_files([(
            GuestAddress(0),
            host_size(size),
            Some(file),
        )])
        .map_err(|e| error(e.into()))?;
        Ok(GuestMemory {
            memory,
            backing,
            layout: Layout::new(size),
            private_spans: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The address map.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Host address and size of the mapping, for registering it with KVM.
    pub fn host_mapping(&self) -> (*mut u8, u64) {
        let region = self.region();
        (region.as_ptr(), region.len())
    }

    fn region(&self) -> &vm_memory::GuestRegionMmap {
        // `new` created exactly one region at address 0.
        self.memory
            .iter()
            .next()
            .expect("guest memory has one region")
    }

    /// Checks that `[addr, addr + len)` is user memory without touching it.
    pub fn validate(&self, addr: u64, len: u64) -> Result<(), Fault> {
        self.check(addr, len)
    }

    /// Whether `[addr, addr + len)` is user memory. An empty range touches nothing and is
    /// always acceptable, whatever its address, as Linux accepts `read(fd, NULL, 0)`.
    fn check(&self, addr: u64, len: u64) -> Result<(), Fault> {
        if len == 0 || self.layout.is_user_range(addr, len) {
            Ok(())
        } else {
            Err(Fault { addr, len })
        }
    }

    /// Copies guest bytes at `addr` into `buf`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.check(addr, buf.len() as u64)?;
        self.memory
            .read_slice(buf, GuestAddress(addr))
            .map_err(|_| Fault {
                addr,
                len: buf.len() as u64,
            })
    }

    /// Reads `len` guest bytes at `addr` into a new vector.
    pub fn read_vec(&self, addr: u64, len: u64) -> Result<Vec<u8>, Fault> {
        let mut buf = Vec::new();
        self.read_into(addr, len, &mut buf)?;
        Ok(buf)
    }

    /// Appends `len` guest bytes at `addr` to `out`. The range is checked before anything is
    /// allocated, so a guest's length never sizes a host buffer it could not fill.
    pub fn read_into(&self, addr: u64, len: u64, out: &mut Vec<u8>) -> Result<(), Fault> {
        self.check(addr, len)?;
        let start = out.len();
        out.resize(start.saturating_add(host_size(len)), 0);
        self.read(addr, out.get_mut(start..).unwrap_or_default())
    }

    /// Copies `data` into guest memory at `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), Fault> {
        self.check(addr, data.len() as u64)?;
        self.memory
            .write_slice(data, GuestAddress(addr))
            .map_err(|_| Fault {
                addr,
                len: data.len() as u64,
            })
    }

    /// Reads a plain-data value (an integer or a `#[repr(C)]` struct of them).
    pub fn read_obj<T: vm_memory::ByteValued>(&self, addr: u64) -> Result<T, Fault> {
        self.check(addr, size_of::<T>() as u64)?;
        self.memory.read_obj(GuestAddress(addr)).map_err(|_| Fault {
            addr,
            len: size_of::<T>() as u64,
        })
    }

    /// Writes a plain-data value.
    pub fn write_obj<T: vm_memory::ByteValued>(&self, addr: u64, value: T) -> Result<(), Fault> {
        self.check(addr, size_of::<T>() as u64)?;
        self.memory
            .write_obj(value, GuestAddress(addr))
            .map_err(|_| Fault {
                addr,
                len: size_of::<T>() as u64,
            })
    }

    /// Reads a NUL-terminated string of at most `max_len` bytes (without the NUL).
    /// `Ok(None)` means no NUL within `max_len` bytes (the caller answers `ENAMETOOLONG`).
    pub fn read_c_string(&self, addr: u64, max_len: usize) -> Result<Option<Vec<u8>>, Fault> {
        let mut out = Vec::new();
        let mut cursor = addr;
        let mut chunk = [0u8; 256];
        while out.len() <= max_len {
            // Read up to the end of the current page so a string ending just before unmapped
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

    /// Fills `[addr, addr + len)` with zeros. Whole pages are handed back to the host so they
    /// read as zero again without being touched.
    pub fn zero(&self, addr: u64, len: u64) -> Result<(), Fault> {
        self.check(addr, len)?;
        if len == 0 {
            return Ok(());
        }
        // Checked above: the range lies in guest memory, far from overflowing.
        let end = addr.saturating_add(len);
        let first_page = addr.saturating_add(PAGE - 1) & !(PAGE - 1);
        let last_page = end & !(PAGE - 1);
        if first_page < last_page {
            self.write(addr, &vec![0; host_size(first_page.saturating_sub(addr))])?;
            self.discard(first_page, last_page.saturating_sub(first_page));
            self.write(
                last_page,
                &vec![0; host_size(end.saturating_sub(last_page))],
            )?;
        } else {
            self.write(addr, &vec![0; host_size(len)])?;
        }
        Ok(())
    }

    /// Maps `len` bytes of `file` privately (copy-on-write) at guest address `addr`, which
    /// must be page-aligned user memory. Used to load program images without copying them.
    pub fn map_private(
        &self,
        addr: u64,
        len: u64,
        file: std::os::fd::BorrowedFd<'_>,
    ) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        if addr % PAGE != 0 || len % PAGE != 0 || self.check(addr, len).is_err() {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let host = self
            .region()
            .get_host_address(MemoryRegionAddress(addr))
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EFAULT))?;
        // Populated read-only first, so the pages are mapped without being copied (a writable
        // private populate would copy them all), then made writable: a write copies just
        // the page written.
        // SAFETY: [host, host + len) lies inside this struct's own guest mapping (checked
        // above), so MAP_FIXED replaces only guest pages, which nothing in the host reads
        // through references; the mapping stays valid until the region is unmapped on drop.
        let mapped = unsafe {
            libc::mmap(
                host.cast(),
                host_size(len),
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_POPULATE,
                file.as_raw_fd(),
                0,
            )
        };
        if mapped == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        lock(&self.private_spans).push((addr, len));
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

    /// Returns whole pages to the host: they read as zero afterwards. The range must be
    /// page-aligned user memory (the callers ensure it). Pages of a private span (the
    /// program image) are not in the memory file, so there zeros are written instead.
    fn discard(&self, addr: u64, len: u64) {
        use std::os::fd::AsRawFd;
        let end = addr.saturating_add(len);
        let spans = lock(&self.private_spans);
        for &(start, span_len) in spans.iter() {
            let (from, to) = (addr.max(start), end.min(start.saturating_add(span_len)));
            if from < to {
                let _ = self.write(from, &vec![0; host_size(to.saturating_sub(from))]);
            }
        }
        drop(spans);
        // SAFETY: fallocate on our own memory file; punching a hole frees the file's pages
        // in [addr, end), and every mapping of them then reads zeros. Private spans mapped
        // over parts of the range are other files' pages and stay as written above.
        unsafe {
            libc::fallocate(
                self.backing.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                addr as libc::off_t,
                len as libc::off_t,
            );
        }
    }

    /// Bytes of guest memory the guest (and the loader) actually touched: the memory file's
    /// allocated pages, counted by the host in O(1), plus the resident pages of private
    /// spans (the program image).
    pub fn resident_bytes(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let file_bytes = self
            .backing
            .metadata()
            .map_or(0, |m| m.blocks().saturating_mul(512));
        let spans = lock(&self.private_spans).clone();
        file_bytes.saturating_add(self.resident_bytes_in(&spans))
    }

    /// Resident pages in the given ranges, asked of the host page by page (`mincore`).
    fn resident_bytes_in(&self, ranges: &[(u64, u64)]) -> u64 {
        let (host, size) = self.host_mapping();
        let mut residency = Vec::new();
        let mut total: u64 = 0;
        for &(start, len) in ranges {
            let start = start & !(PAGE - 1);
            let end = start.saturating_add(len).min(size) & !(PAGE - 1);
            if start >= end {
                continue;
            }
            let pages = host_size(end.saturating_sub(start) / PAGE);
            residency.clear();
            residency.resize(pages, 0u8);
            // SAFETY: [host + start, host + end) lies inside this struct's own live mapping
            // (end is clamped to its size), and `residency` has one byte per page of it.
            let rc = unsafe {
                libc::mincore(
                    host.add(host_size(start)).cast(),
                    host_size(end.saturating_sub(start)),
                    residency.as_mut_ptr(),
                )
            };
            if rc == 0 {
                let resident = residency.iter().filter(|&&b| b & 1 != 0).count();
                total = total.saturating_add(guest_size(resident).saturating_mul(PAGE));
            }
        }
        total
    }

    /// Writes kernel structures (page tables, GDT, stubs) that live outside user memory.
    /// Only the VM setup code calls this, never on a guest's behalf.
    pub(crate) fn write_kernel(&self, addr: u64, data: &[u8]) {
        self.memory
            .write_slice(data, GuestAddress(addr))
            .expect("kernel structures lie inside guest memory");
    }

    /// Reads kernel structures (the exception frame on the kernel stack).
    pub(crate) fn read_kernel_u64(&self, addr: u64) -> Option<u64> {
        self.memory.read_obj(GuestAddress(addr)).ok()
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
mod tests {
    use super::super::layout::USER_START;
    use super::*;

    fn memory() -> GuestMemory {
        GuestMemory::new(128 << 20).unwrap()
    }

    #[test]
    fn reads_and_writes_are_checked() {
        let memory = memory();
        memory.write(USER_START, b"hello").unwrap();
        assert_eq!(memory.read_vec(USER_START, 5).unwrap(), b"hello");
        assert!(memory.write(0, b"x").is_err());
        assert!(memory.read_vec(u64::MAX, 2).is_err());
        assert!(memory.read_vec(USER_START, u64::MAX).is_err());
        let end = memory.layout().mapped_end;
        assert!(memory.write(end - 2, b"abc").is_err());
    }

    #[test]
    fn c_strings() {
        let memory = memory();
        memory.write(USER_START, b"/var/task\0").unwrap();
        assert_eq!(
            memory.read_c_string(USER_START, 100).unwrap().unwrap(),
            b"/var/task"
        );
        assert_eq!(memory.read_c_string(USER_START, 4).unwrap(), None);
        let end = memory.layout().mapped_end;
        memory.write(end - 3, b"ab\0").unwrap();
        assert_eq!(memory.read_c_string(end - 3, 10).unwrap().unwrap(), b"ab");
        memory.write(end - 2, b"ab").unwrap();
        assert!(memory.read_c_string(end - 2, 10).is_err());
    }

    #[test]
    fn zero_discards_pages() {
        let memory = memory();
        let addr = USER_START + 100;
        memory.write(addr, &vec![7; 3 * PAGE as usize]).unwrap();
        let before = memory.resident_bytes();
        assert!(before >= 3 * PAGE);
        memory.zero(addr, 3 * PAGE).unwrap();
        assert!(memory.resident_bytes() < before);
        assert!(
            memory
                .read_vec(addr, 3 * PAGE)
                .unwrap()
                .iter()
                .all(|&b| b == 0)
        );
    }
}
