//! The memory syscalls, as the table calls them: `mmap`, `mprotect`, `munmap`, `brk`,
//! `mremap` and `madvise`, answered by the address space (`mm`) and its errors turned into
//! errnos.

use super::fd::Object;
use super::{Errno, Kernel, SysResult};
use crate::mm::layout::PAGE;
use crate::mm::{
    FileSource, GuestMemory, MAP_ANONYMOUS, MAP_SHARED, MAP_SHARED_VALIDATE, MAP_TYPE, MapError,
    PROT_EXEC, PROT_WRITE,
};

impl From<MapError> for Errno {
    fn from(error: MapError) -> Errno {
        Errno(error.errno())
    }
}

impl Kernel {
    /// `mmap`: anonymous memory (the descriptor and offset are ignored, as Linux ignores
    /// them), or a regular file's bytes from `offset`: a base image's file's pages mapped
    /// copy-on-write (`GuestMemory::mmap_file`), another file's copied
    /// (`GuestMemory::mmap_contents`). A private file mapping behaves as Linux's does as long
    /// as the file does not change; a shared one is accepted read-only (a writable shared
    /// mapping of a `/tmp` file answers `ENODEV`: its writes could not reach the file).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mmap(
        &mut self,
        memory: &GuestMemory,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        fd: u64,
        offset: u64,
    ) -> SysResult {
        if flags & MAP_ANONYMOUS != 0 {
            return Ok(memory.mmap(addr, len, prot, flags)?);
        }
        let file = match &self.fds.get(fd)?.object {
            Object::File(file) => file,
            Object::Dir(_) => return Err(Errno(libc::ENODEV)),
            _ => return Err(Errno(libc::EACCES)),
        };
        if !file.readable {
            return Err(Errno(libc::EACCES));
        }
        let shared = matches!(flags & MAP_TYPE, MAP_SHARED | MAP_SHARED_VALIDATE);
        if shared && prot & u64::from(PROT_WRITE) != 0 {
            return Err(Errno(if file.writable {
                libc::ENODEV
            } else {
                libc::EACCES
            }));
        }
        if offset % PAGE != 0 || len == 0 {
            return Err(Errno(libc::EINVAL));
        }
        // A base image's file is mapped (its pages shared); the environment's own are copied.
        if let Some(image_file) = self.fs.image_file(&file.path) {
            // An executable mapping's `syscall` instructions, found once per file.
            let sites = (prot & u64::from(PROT_EXEC) != 0)
                .then(|| image_file.syscall_offsets(crate::code_scan::syscall_file_offsets));
            let source = FileSource {
                file: &image_file,
                offset,
                syscall_offsets: sites,
            };
            return Ok(memory.mmap_file(addr, len, prot, flags, source)?);
        }
        // The mapping's length bounds the copy (and `mmap` refuses lengths past the address
        // space before anything is read).
        let want = usize::try_from(len).map_err(|_| Errno(libc::ENOMEM))?;
        let contents = self.fs.read_at(&file.path, offset, want)?.into_owned();
        Ok(memory.mmap_contents(addr, len, prot, flags, &contents)?)
    }
}

/// `mprotect`.
pub(super) fn mprotect(memory: &GuestMemory, addr: u64, len: u64, prot: u64) -> SysResult {
    Ok(memory.mprotect(addr, len, prot)?)
}

/// `munmap`.
pub(super) fn munmap(memory: &GuestMemory, addr: u64, len: u64) -> SysResult {
    Ok(memory.munmap(addr, len)?)
}

/// `brk`: the new break, or the old one when it cannot move.
pub(super) fn brk(memory: &GuestMemory, requested: u64) -> SysResult {
    Ok(memory.brk(requested))
}

/// `mremap`.
pub(super) fn mremap(
    memory: &GuestMemory,
    addr: u64,
    old_len: u64,
    new_len: u64,
    flags: u64,
    new_addr: u64,
) -> SysResult {
    Ok(memory.mremap(addr, old_len, new_len, flags, new_addr)?)
}

/// `madvise`.
pub(super) fn madvise(memory: &GuestMemory, addr: u64, len: u64, advice: u64) -> SysResult {
    Ok(memory.madvise(addr, len, advice)?)
}

/// Most bytes of `mincore`'s vector written per step.
const MINCORE_STEP: u64 = 4096;

/// `mincore(addr, len, vec)`: one byte per page of a mapped range, each saying "resident"
/// (the function's memory is never swapped out). `EINVAL` for an unaligned address,
/// `ENOMEM` for a range with a hole.
pub(super) fn mincore(memory: &GuestMemory, addr: u64, len: u64, vec: u64) -> SysResult {
    if addr % PAGE != 0 {
        return Err(Errno(libc::EINVAL));
    }
    let pages = len.div_ceil(PAGE);
    let span = pages.checked_mul(PAGE).ok_or(Errno(libc::ENOMEM))?;
    if !memory.is_mapped(addr, span) {
        return Err(Errno(libc::ENOMEM));
    }
    memory.validate(vec, pages)?;
    let ones = [1u8; 4096];
    let mut done: u64 = 0;
    while done < pages {
        let step = pages.saturating_sub(done).min(MINCORE_STEP);
        let at = vec.checked_add(done).ok_or(Errno(libc::EFAULT))?;
        memory.write(
            at,
            ones.get(..usize::try_from(step).unwrap_or(0))
                .unwrap_or(&[]),
        )?;
        done = done.saturating_add(step);
    }
    Ok(0)
}
