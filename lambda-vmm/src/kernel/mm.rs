//! The memory syscalls, as the table calls them: `mmap`, `mprotect`, `munmap`, `brk`,
//! `mremap` and `madvise`, answered by the address space (`mm`) and its errors turned into
//! errnos.

use super::{Errno, SysResult};
use crate::mm::{GuestMemory, MapError};

impl From<MapError> for Errno {
    fn from(error: MapError) -> Errno {
        Errno(error.errno())
    }
}

/// `mmap`: anonymous memory (a file answers `ENODEV`); the descriptor and offset of an
/// anonymous mapping are ignored, as Linux ignores them.
pub(super) fn mmap(memory: &GuestMemory, addr: u64, len: u64, prot: u64, flags: u64) -> SysResult {
    Ok(memory.mmap(addr, len, prot, flags)?)
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
