//! Files: the three stdio streams, path lookups (nothing on the host is reachable: every path
//! is absent), and the fd calls programs make at startup.

use super::stdio::WriteOutcome;
use super::{Errno, Kernel, ProcessEnd, SysResult};
use crate::vm::GuestMemory;

/// Longest path accepted (Linux's PATH_MAX).
const PATH_MAX: usize = 4096;
/// Most iovecs in one readv/writev (Linux's IOV_MAX).
const IOV_MAX: u64 = 1024;
/// Most pollfds in one poll (Linux's default RLIMIT_NOFILE).
const POLL_MAX: u64 = 1024;
/// The program's path inside the environment.
pub const PROGRAM_PATH: &str = "/var/task/bootstrap";
const WORKING_DIRECTORY: &str = "/var/task";

const S_IFIFO: u32 = 0o010_000;
const AT_EMPTY_PATH: u64 = 0x1000;
const POLLNVAL: i16 = 0x20;
const POLLIN: i16 = 0x1;
const POLLOUT: i16 = 0x4;

fn errno(code: i32) -> Errno {
    Errno(code)
}

/// Reads a path argument, with Linux's errors for bad pointers and overlong paths.
fn read_path(memory: &GuestMemory, addr: u64) -> Result<Vec<u8>, Errno> {
    memory
        .read_c_string(addr, PATH_MAX - 1)?
        .ok_or(errno(libc::ENAMETOOLONG))
}

/// A `struct stat` for a pipe, as x86-64 Linux lays it out (144 bytes).
fn pipe_stat() -> [u8; 144] {
    let mut stat = [0u8; 144];
    stat[16..24].copy_from_slice(&1u64.to_le_bytes()); // st_nlink
    stat[24..28].copy_from_slice(&(S_IFIFO | 0o600).to_le_bytes()); // st_mode
    stat[56..64].copy_from_slice(&4096u64.to_le_bytes()); // st_blksize
    stat
}

/// One `struct iovec`.
fn read_iovecs(memory: &GuestMemory, addr: u64, count: u64) -> Result<Vec<(u64, u64)>, Errno> {
    if count > IOV_MAX {
        return Err(errno(libc::EINVAL));
    }
    let raw = memory.read_vec(addr, count * 16)?;
    let mut total: u64 = 0;
    let iovecs: Vec<(u64, u64)> = raw
        .chunks_exact(16)
        .map(|c| {
            let base = u64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
            let len = u64::from_le_bytes(c[8..].try_into().expect("8 bytes"));
            (base, len)
        })
        .collect();
    for &(_, len) in &iovecs {
        total = total
            .checked_add(len)
            .filter(|t| *t <= isize::MAX as u64)
            .ok_or(errno(libc::EINVAL))?;
    }
    Ok(iovecs)
}

impl Kernel {
    pub(super) fn read(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        buf: u64,
        count: u64,
    ) -> SysResult {
        match fd {
            0 if self.stdio.is_open(0) => {
                let data = self.stdio.read_stdin(count.min(1 << 30) as usize);
                memory.write(buf, data)?;
                Ok(data.len() as u64)
            }
            1 | 2 if self.stdio.is_open(fd) => Err(errno(libc::EBADF)),
            _ => Err(errno(libc::EBADF)),
        }
    }

    pub(super) fn write(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        buf: u64,
        count: u64,
    ) -> SysResult {
        if !self.stdio.is_open(fd) || fd == 0 {
            return Err(errno(libc::EBADF));
        }
        memory.validate(buf, count)?;
        if fd == 1 {
            if count > lambda_core::limits::MAX_SYNC_PAYLOAD_BYTES as u64 {
                self.end(ProcessEnd::ResponseTooLarge)?;
                return Ok(0);
            }
            let data = memory.read_vec(buf, count)?;
            if self.stdio.write_stdout(&data) == WriteOutcome::ResponseTooLarge {
                self.end(ProcessEnd::ResponseTooLarge)?;
            }
        } else {
            // Only the tail of the log is kept, so only the tail of a long write is copied.
            let keep = count.min(lambda_core::limits::LOG_TAIL_BYTES as u64);
            let skipped = count - keep;
            let data = memory.read_vec(buf + skipped, keep)?;
            self.stdio.write_log_with_skipped(skipped, &data);
        }
        Ok(count)
    }

    pub(super) fn readv(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        iov: u64,
        count: u64,
    ) -> SysResult {
        let mut total = 0;
        for (base, len) in read_iovecs(memory, iov, count)? {
            let n = self.read(memory, fd, base, len)?;
            total += n;
            if n < len {
                break;
            }
        }
        Ok(total)
    }

    pub(super) fn writev(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        iov: u64,
        count: u64,
    ) -> SysResult {
        let mut total = 0;
        for (base, len) in read_iovecs(memory, iov, count)? {
            total += self.write(memory, fd, base, len)?;
            if self.pending_end.is_some() {
                break;
            }
        }
        Ok(total)
    }

    pub(super) fn close(&mut self, fd: u64) -> SysResult {
        if self.stdio.close(fd) {
            Ok(0)
        } else {
            Err(errno(libc::EBADF))
        }
    }

    pub(super) fn fstat(&mut self, memory: &GuestMemory, fd: u64, statbuf: u64) -> SysResult {
        if !self.stdio.is_open(fd) {
            return Err(errno(libc::EBADF));
        }
        memory.write(statbuf, &pipe_stat())?;
        Ok(0)
    }

    pub(super) fn newfstatat(
        &mut self,
        memory: &GuestMemory,
        dirfd: u64,
        path: u64,
        statbuf: u64,
        flags: u64,
    ) -> SysResult {
        let path = read_path(memory, path)?;
        if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
            return self.fstat(memory, dirfd, statbuf);
        }
        Err(errno(libc::ENOENT))
    }

    pub(super) fn lseek(&mut self, fd: u64) -> SysResult {
        if self.stdio.is_open(fd) {
            Err(errno(libc::ESPIPE))
        } else {
            Err(errno(libc::EBADF))
        }
    }

    pub(super) fn pread_pwrite(&mut self, fd: u64) -> SysResult {
        self.lseek(fd)
    }

    pub(super) fn dup(&mut self, fd: u64) -> SysResult {
        if self.stdio.is_open(fd) {
            // The one-shot environment has exactly three descriptors.
            Err(errno(libc::EMFILE))
        } else {
            Err(errno(libc::EBADF))
        }
    }

    pub(super) fn fcntl(&mut self, fd: u64, command: u64) -> SysResult {
        if !self.stdio.is_open(fd) {
            return Err(errno(libc::EBADF));
        }
        match command as i32 {
            libc::F_GETFD | libc::F_SETFD | libc::F_SETFL => Ok(0),
            libc::F_GETFL if fd == 0 => Ok(libc::O_RDONLY as u64),
            libc::F_GETFL => Ok(libc::O_WRONLY as u64),
            _ => Err(errno(libc::EINVAL)),
        }
    }

    pub(super) fn poll(&mut self, memory: &GuestMemory, fds: u64, count: u64) -> SysResult {
        if count > POLL_MAX {
            return Err(errno(libc::EINVAL));
        }
        let mut raw = memory.read_vec(fds, count * 8)?;
        let mut ready = 0;
        for entry in raw.chunks_exact_mut(8) {
            let fd = i32::from_le_bytes(entry[..4].try_into().expect("4 bytes"));
            let events = i16::from_le_bytes(entry[4..6].try_into().expect("2 bytes"));
            let revents = if fd < 0 {
                0
            } else if !self.stdio.is_open(fd as u64) {
                POLLNVAL
            } else if fd == 0 {
                events & POLLIN
            } else {
                events & POLLOUT
            };
            entry[6..8].copy_from_slice(&revents.to_le_bytes());
            if revents != 0 {
                ready += 1;
            }
        }
        memory.write(fds, &raw)?;
        Ok(ready)
    }

    pub(super) fn ioctl(&mut self, fd: u64) -> SysResult {
        if self.stdio.is_open(fd) {
            Err(errno(libc::ENOTTY))
        } else {
            Err(errno(libc::EBADF))
        }
    }
}

/// `stat` / `lstat`: no path exists.
pub fn stat_path(memory: &GuestMemory, path: u64, _statbuf: u64) -> SysResult {
    read_path(memory, path)?;
    Err(errno(libc::ENOENT))
}

/// `openat`: no path exists in the one-shot environment.
pub fn openat(memory: &GuestMemory, path: u64) -> SysResult {
    read_path(memory, path)?;
    Err(errno(libc::ENOENT))
}

/// `access`: no path exists.
pub fn access(memory: &GuestMemory, path: u64) -> SysResult {
    read_path(memory, path)?;
    Err(errno(libc::ENOENT))
}

/// `getcwd`: the task directory.
pub fn getcwd(memory: &GuestMemory, buf: u64, size: u64) -> SysResult {
    let mut path = WORKING_DIRECTORY.as_bytes().to_vec();
    path.push(0);
    if size < path.len() as u64 {
        return Err(errno(libc::ERANGE));
    }
    memory.write(buf, &path)?;
    Ok(path.len() as u64)
}

/// `readlink`: `/proc/self/exe` names the program; nothing else is a link.
pub fn readlink(memory: &GuestMemory, path: u64, buf: u64, size: u64) -> SysResult {
    let path = read_path(memory, path)?;
    if path != b"/proc/self/exe" {
        return Err(errno(libc::ENOENT));
    }
    let target = PROGRAM_PATH.as_bytes();
    let n = target.len().min(size as usize);
    memory.write(buf, &target[..n])?;
    Ok(n as u64)
}
