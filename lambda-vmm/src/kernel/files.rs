//! File descriptors and paths: stdio, regular files and directories of the in-memory
//! filesystem, and the descriptor calls (`dup`, `fcntl`, `ioctl`). Sockets and eventfds are
//! read and written here too, through their own modules.

use super::abi;
use super::fd::{Descriptor, MAX_FDS, Object, OpenDir, OpenFile};
use super::vfs::{self, Metadata, RenameFlags};
use super::{Errno, Kernel, ProcessEnd, Stdio, SysResult};
use crate::mm::GuestMemory;
use lambda_core::limits;

/// Most iovecs in one readv/writev (Linux's IOV_MAX).
const IOV_MAX: u64 = 1024;
/// Bytes moved between guest memory and the kernel per step, so a huge write never needs a
/// huge host buffer.
pub(super) const CHUNK: u64 = 64 * 1024;
/// Most bytes one read or write moves (Linux's `MAX_RW_COUNT`).
const MAX_RW_COUNT: u64 = 0x7fff_f000;
/// The program's path inside the environment.
pub const PROGRAM_PATH: &str = "/var/task/bootstrap";

/// The one device file: reads end at once, writes are dropped.
const DEV_NULL: &str = "/dev/null";
const S_IFIFO: u32 = 0o010_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFSOCK: u32 = 0o140_000;
const AT_EMPTY_PATH: u64 = 0x1000;
const O_ACCMODE: u64 = 0o3;
const O_CREAT: u64 = 0o100;
const O_EXCL: u64 = 0o200;
const O_TRUNC: u64 = 0o1000;
const O_APPEND: u64 = 0o2000;
const O_NONBLOCK: u64 = 0o4000;
const O_DIRECTORY: u64 = 0o200_000;
const O_CLOEXEC: u64 = 0o2_000_000;
/// `O_TMPFILE` without `O_DIRECTORY`.
const O_TMPFILE_ONLY: u64 = 0o20_000_000;
/// The flags that must be exactly `O_TMPFILE` when any is (Linux's `O_TMPFILE_MASK`).
const O_TMPFILE_MASK: u64 = O_TMPFILE_ONLY | O_DIRECTORY | O_CREAT;
const W_OK: u64 = 2;
const TCGETS: u64 = 0x5401;
const FIONBIO: u64 = 0x5421;

fn errno(code: i32) -> Errno {
    Errno(code)
}

/// Reads a path argument, with Linux's errors for bad pointers and overlong paths.
pub(super) fn read_path(memory: &GuestMemory, addr: u64) -> Result<Vec<u8>, Errno> {
    memory
        .read_c_string(addr, vfs::PATH_MAX - 1)?
        .ok_or(errno(libc::ENAMETOOLONG))
}

/// A file offset argument (`pread64`, `pwrite64`): negative ones answer `EINVAL`.
fn offset_arg(offset: u64) -> Result<u64, Errno> {
    if abi::long(offset) < 0 {
        return Err(errno(libc::EINVAL));
    }
    Ok(offset)
}

/// The read and write access `open`'s `flags` ask for (`O_ACCMODE`; its fourth value gives
/// neither).
fn access(flags: u64) -> (bool, bool) {
    let mode = flags & O_ACCMODE;
    let read = mode == libc::O_RDONLY as u64 || mode == libc::O_RDWR as u64;
    let write = mode == libc::O_WRONLY as u64 || mode == libc::O_RDWR as u64;
    (read, write)
}

/// The regular file at `path` as `open`'s `flags` open it: its access, at offset 0,
/// `O_APPEND` as asked.
fn open_file(path: String, flags: u64) -> OpenFile {
    let (readable, writable) = access(flags);
    OpenFile {
        path,
        offset: 0,
        readable,
        writable,
        append: flags & O_APPEND != 0,
    }
}

/// The descriptor `open` gives `object` for `flags`: `O_NONBLOCK` and `O_CLOEXEC` as asked.
fn opened(object: Object, flags: u64) -> Descriptor {
    Descriptor {
        object,
        nonblocking: flags & O_NONBLOCK != 0,
        cloexec: flags & O_CLOEXEC != 0,
    }
}

/// A `struct stat` as x86-64 Linux lays it out (144 bytes).
fn stat_bytes(mode: u32, size: u64, inode: u64) -> [u8; 144] {
    let mut stat = [0u8; 144];
    stat[0..8].copy_from_slice(&0x4c_u64.to_le_bytes()); // st_dev
    stat[8..16].copy_from_slice(&inode.to_le_bytes());
    stat[16..24].copy_from_slice(&1u64.to_le_bytes()); // st_nlink
    stat[24..28].copy_from_slice(&mode.to_le_bytes());
    stat[48..56].copy_from_slice(&size.to_le_bytes());
    stat[56..64].copy_from_slice(&4096u64.to_le_bytes()); // st_blksize
    stat[64..72].copy_from_slice(&size.div_ceil(512).to_le_bytes()); // st_blocks
    stat
}

fn metadata_stat(meta: &Metadata) -> [u8; 144] {
    let mode = if meta.is_dir {
        S_IFDIR | 0o755
    } else if meta.executable {
        S_IFREG | 0o755
    } else {
        S_IFREG | 0o644
    };
    let mut stat = stat_bytes(mode, meta.size, meta.inode);
    if meta.removed {
        stat[16..24].copy_from_slice(&0u64.to_le_bytes()); // st_nlink
    }
    stat
}

/// `struct iovec`s, checked and bounded.
pub(super) fn read_iovecs(
    memory: &GuestMemory,
    addr: u64,
    count: u64,
) -> Result<Vec<(u64, u64)>, Errno> {
    if count > IOV_MAX {
        return Err(errno(libc::EINVAL));
    }
    let raw = memory.read_vec(addr, count.saturating_mul(16))?;
    let iovecs: Vec<(u64, u64)> = raw
        .chunks_exact(16)
        .map(|c| {
            let base = u64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
            let len = u64::from_le_bytes(c[8..].try_into().expect("8 bytes"));
            (base, len)
        })
        .collect();
    let mut total: u64 = 0;
    for &(_, len) in &iovecs {
        total = total
            .checked_add(len)
            .filter(|t| *t <= isize::MAX as u64)
            .ok_or(errno(libc::EINVAL))?;
    }
    Ok(iovecs)
}

impl Kernel {
    /// Resolves a path argument relative to `dirfd` (only the working directory and
    /// directory descriptors are bases).
    pub(super) fn resolve(
        &self,
        memory: &GuestMemory,
        dirfd: u64,
        path: u64,
    ) -> Result<String, Errno> {
        self.resolve_read(dirfd, &read_path(memory, path)?)
    }

    /// [`Kernel::resolve`] for a path already read from guest memory.
    pub(super) fn resolve_read(&self, dirfd: u64, raw: &[u8]) -> Result<String, Errno> {
        let base = if raw.starts_with(b"/") {
            "/".to_string()
        } else if abi::int(dirfd) == libc::AT_FDCWD {
            // A working directory removed since holds nothing, and nothing can be made in it.
            if vfs::orphan_inode(&self.cwd).is_some() {
                return Err(errno(libc::ENOENT));
            }
            self.cwd.clone()
        } else {
            match &self.fds.get(dirfd)?.object {
                // A directory removed while open holds nothing, and nothing can be made in it.
                Object::Dir(dir) if vfs::orphan_inode(&dir.path).is_some() => {
                    return Err(errno(libc::ENOENT));
                }
                Object::Dir(dir) => dir.path.clone(),
                _ => return Err(errno(libc::ENOTDIR)),
            }
        };
        vfs::normalize(&base, raw)
    }

    pub(super) fn read(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        buf: u64,
        count: u64,
    ) -> SysResult {
        let count = count.min(MAX_RW_COUNT);
        memory.validate(buf, count)?;
        let descriptor = self.fds.get(fd)?;
        let nonblocking = descriptor.nonblocking;
        if matches!(descriptor.object, Object::Stdin) && self.stdin_held() {
            self.stdin_awaited = true;
            return self.would_block(nonblocking);
        }
        match &descriptor.object {
            Object::Stdin => match &mut self.stdio {
                Stdio::OneShot {
                    stdin, stdin_read, ..
                } => {
                    let rest = stdin.get(*stdin_read..).unwrap_or_default();
                    let data = rest.get(..abi::size(count)).unwrap_or(rest);
                    memory.write(buf, data)?;
                    *stdin_read = stdin_read.saturating_add(data.len());
                    Ok(abi::count(data.len()))
                }
                Stdio::Log => Ok(0),
            },
            Object::Stdout | Object::Stderr => Err(errno(libc::EBADF)),
            Object::Null => Ok(0),
            Object::File(file) if !file.readable => Err(errno(libc::EBADF)),
            Object::File(file) => {
                let n = self.read_file_at(memory, &file.path.clone(), file.offset, buf, count)?;
                if let Object::File(file) = &mut self.fds.get_mut(fd)?.object {
                    file.offset = file.offset.saturating_add(n);
                }
                Ok(n)
            }
            Object::Dir(_) => Err(errno(libc::EISDIR)),
            Object::Socket(_) => self.socket_recv(memory, fd, buf, count, nonblocking),
            Object::EventFd(_) => self.eventfd_read(memory, fd, buf, count, nonblocking),
            Object::Pipe(end) => {
                let end = *end;
                self.pipe_read(memory, end, buf, count, nonblocking)
            }
            Object::UnixStream(end) => {
                let end = *end;
                self.unix_stream_read(memory, end, buf, count, nonblocking)
            }
            Object::Epoll(_) => Err(errno(libc::EINVAL)),
        }
    }

    /// Sends guest bytes to a sink chunk by chunk; returns how many the sink took.
    pub(super) fn write_chunks_to(
        &mut self,
        memory: &GuestMemory,
        buf: u64,
        count: u64,
        mut sink: impl FnMut(&mut Kernel, &[u8]) -> Result<usize, Errno>,
    ) -> SysResult {
        memory.validate(buf, count)?;
        let mut done: u64 = 0;
        let mut chunk = Vec::with_capacity(abi::size(count.min(CHUNK)));
        while done < count {
            let take = count.saturating_sub(done).min(CHUNK);
            chunk.clear();
            memory.read_into(abi::field(buf, done)?, take, &mut chunk)?;
            let taken = match sink(self, &chunk) {
                Ok(n) => n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            done = done.saturating_add(abi::count(taken));
            if taken < chunk.len() {
                break;
            }
        }
        Ok(done)
    }

    pub(super) fn write(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        buf: u64,
        count: u64,
    ) -> SysResult {
        let descriptor = self.fds.get(fd)?;
        let nonblocking = descriptor.nonblocking;
        match &descriptor.object {
            Object::Stdout if matches!(self.stdio, Stdio::OneShot { .. }) => self
                .write_chunks_to(memory, buf, count, |kernel, data| {
                    let Stdio::OneShot { response, .. } = &mut kernel.stdio else {
                        unreachable!("checked above")
                    };
                    if response.len().saturating_add(data.len()) > limits::MAX_SYNC_PAYLOAD_BYTES {
                        kernel.pending_end = Some(ProcessEnd::ResponseTooLarge);
                        return Err(errno(libc::EFBIG));
                    }
                    response.extend_from_slice(data);
                    Ok(data.len())
                })
                .or_else(|e| {
                    if self.pending_end.is_some() {
                        Ok(0)
                    } else {
                        Err(e)
                    }
                }),
            Object::Stdout | Object::Stderr => {
                self.write_chunks_to(memory, buf, count, |kernel, data| {
                    kernel.log.write(data);
                    Ok(data.len())
                })
            }
            Object::Stdin => Err(errno(libc::EBADF)),
            // As Linux's: nothing is read, but the range must lie in the program's half
            // (`access_ok`), and one write takes at most `MAX_RW_COUNT` bytes.
            Object::Null => {
                if buf
                    .checked_add(count)
                    .is_none_or(|end| end > crate::mm::layout::USER_END)
                {
                    return Err(errno(libc::EFAULT));
                }
                Ok(count.min(MAX_RW_COUNT))
            }
            Object::File(file) if !file.writable => Err(errno(libc::EBADF)),
            Object::File(file) => {
                let path = file.path.clone();
                let offset = if file.append {
                    self.fs.metadata(&path)?.size
                } else {
                    file.offset
                };
                let written = self.write_file_at(memory, &path, offset, buf, count)?;
                if let Object::File(file) = &mut self.fds.get_mut(fd)?.object {
                    file.offset = offset.saturating_add(written);
                }
                Ok(written)
            }
            Object::Dir(_) => Err(errno(libc::EISDIR)),
            Object::Socket(_) => self.socket_send(memory, fd, buf, count, nonblocking),
            Object::EventFd(_) => self.eventfd_write(memory, fd, buf, count),
            Object::Pipe(end) => {
                let end = *end;
                self.pipe_write(memory, end, buf, count, nonblocking)
            }
            Object::UnixStream(end) => {
                let end = *end;
                self.unix_stream_write(memory, end, buf, count, nonblocking)
            }
            Object::Epoll(_) => Err(errno(libc::EINVAL)),
        }
    }

    /// Copies file bytes at `offset` into guest memory; returns how many.
    fn read_file_at(
        &mut self,
        memory: &GuestMemory,
        path: &str,
        offset: u64,
        buf: u64,
        count: u64,
    ) -> SysResult {
        let data = self
            .fs
            .read_at(path, offset, abi::size(count.min(MAX_RW_COUNT)))?;
        memory.write(buf, &data)?;
        Ok(abi::count(data.len()))
    }

    /// Writes guest bytes into a file at `offset`, chunk by chunk; returns how many.
    fn write_file_at(
        &mut self,
        memory: &GuestMemory,
        path: &str,
        offset: u64,
        buf: u64,
        count: u64,
    ) -> SysResult {
        let mut at = offset;
        self.write_chunks_to(memory, buf, count, |kernel, data| {
            let n = kernel.fs.write_at(path, at, data)?;
            at = at.saturating_add(abi::count(n));
            Ok(n)
        })
    }

    /// The open file `fd` names, for `pread`/`pwrite`, if it was opened for `access`.
    fn positional_file(&self, fd: u64, write: bool) -> Result<String, Errno> {
        let Object::File(file) = &self.fds.get(fd)?.object else {
            return Err(errno(libc::ESPIPE));
        };
        if (write && !file.writable) || (!write && !file.readable) {
            return Err(errno(libc::EBADF));
        }
        Ok(file.path.clone())
    }

    pub(super) fn pread(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        buf: u64,
        count: u64,
        offset: u64,
    ) -> SysResult {
        let offset = offset_arg(offset)?;
        let path = self.positional_file(fd, false)?;
        self.read_file_at(memory, &path, offset, buf, count)
    }

    pub(super) fn pwrite(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        buf: u64,
        count: u64,
        offset: u64,
    ) -> SysResult {
        let offset = offset_arg(offset)?;
        let path = self.positional_file(fd, true)?;
        self.write_file_at(memory, &path, offset, buf, count)
    }

    /// Runs `transfer(kernel, base, len, done)` over iovecs in order, stopping at the first
    /// short transfer; an error after some bytes moved ends the call with those bytes, as
    /// Linux's vectored I/O does.
    pub(super) fn vectored(
        &mut self,
        iovecs: Vec<(u64, u64)>,
        mut transfer: impl FnMut(&mut Kernel, u64, u64, u64) -> SysResult,
    ) -> SysResult {
        let mut total: u64 = 0;
        for (base, len) in iovecs {
            match transfer(self, base, len, total) {
                Ok(n) => {
                    total = total.saturating_add(n);
                    if n < len || self.pending_end.is_some() {
                        break;
                    }
                }
                Err(e) if total == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(total)
    }

    pub(super) fn readv(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        iov: u64,
        count: u64,
    ) -> SysResult {
        let iovecs = read_iovecs(memory, iov, count)?;
        self.vectored(iovecs, |kernel, base, len, _| {
            kernel.read(memory, fd, base, len)
        })
    }

    pub(super) fn writev(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        iov: u64,
        count: u64,
    ) -> SysResult {
        let iovecs = read_iovecs(memory, iov, count)?;
        self.vectored(iovecs, |kernel, base, len, _| {
            kernel.write(memory, fd, base, len)
        })
    }

    pub(super) fn close(&mut self, fd: u64) -> SysResult {
        let released = self.fds.remove(fd)?;
        self.release(fd, released);
        Ok(0)
    }

    /// `fadvise64(fd, offset, len, advice)`: a hint; checked as Linux checks it.
    pub(super) fn fadvise64(&self, fd: u64, advice: u64) -> SysResult {
        const POSIX_FADV_NOREUSE: u64 = 5;
        match &self.fds.get(fd)?.object {
            Object::File(_) | Object::Null => {}
            _ => return Err(errno(libc::ESPIPE)),
        }
        if advice > POSIX_FADV_NOREUSE {
            return Err(errno(libc::EINVAL));
        }
        Ok(0)
    }

    /// `close_range(first, last, flags)`: closes the open descriptors from `first` to `last`
    /// (or, with `CLOSE_RANGE_CLOEXEC`, marks them close-on-exec).
    pub(super) fn close_range(&mut self, first: u64, last: u64, flags: u64) -> SysResult {
        const CLOSE_RANGE_UNSHARE: u64 = 2;
        const CLOSE_RANGE_CLOEXEC: u64 = 4;
        let (first, last) = (abi::uint(first), abi::uint(last));
        if flags & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0 || first > last {
            return Err(errno(libc::EINVAL));
        }
        let range = u64::from(first)..=u64::from(last);
        for fd in self.fds.open_fds() {
            if !range.contains(&fd) {
                continue;
            }
            if flags & CLOSE_RANGE_CLOEXEC != 0 {
                self.fds.set_cloexec(fd, true);
            } else {
                let released = self.fds.remove(fd)?;
                self.release(fd, released);
            }
        }
        Ok(0)
    }

    /// Lets go of what a closed descriptor held: its epoll registrations, and the object
    /// itself when this was the last descriptor of its open description.
    pub(super) fn release(&mut self, fd: u64, released: Option<Descriptor>) {
        for end in released
            .iter()
            .flat_map(|descriptor| descriptor.object.pipe_ends())
        {
            self.pipes.close(end);
        }
        if let Some(Descriptor {
            object: Object::Socket(socket),
            ..
        }) = released
            && let (Some(connection), Some(api)) = (socket.connection, self.api.as_mut())
            && !self.borrowed.contains(&connection)
        {
            api.disconnect(connection);
        }
        for other in self.fds.open_fds() {
            if let Ok(Descriptor {
                object: Object::Epoll(epoll),
                ..
            }) = self.fds.get_mut(other)
            {
                epoll.interests.remove(&fd);
            }
        }
        self.release_orphans();
    }

    pub(super) fn fstat(&mut self, memory: &GuestMemory, fd: u64, statbuf: u64) -> SysResult {
        let stat = match &self.fds.get(fd)?.object {
            Object::Stdin | Object::Stdout | Object::Stderr => stat_bytes(S_IFIFO | 0o600, 0, 0),
            Object::File(OpenFile { path, .. }) | Object::Dir(OpenDir { path, .. }) => {
                metadata_stat(&self.fs.metadata(path)?)
            }
            Object::Socket(_) => stat_bytes(S_IFSOCK | 0o777, 0, 0),
            Object::Epoll(_) | Object::EventFd(_) => stat_bytes(0o600, 0, 0),
            Object::Pipe(_) => stat_bytes(S_IFIFO | 0o600, 0, 0),
            Object::UnixStream(_) => stat_bytes(S_IFSOCK | 0o777, 0, 0),
            Object::Null => stat_bytes(S_IFCHR | 0o666, 0, 0),
        };
        memory.write(statbuf, &stat)?;
        Ok(0)
    }

    pub(super) fn stat_path(
        &mut self,
        memory: &GuestMemory,
        dirfd: u64,
        path: u64,
        statbuf: u64,
        flags: u64,
    ) -> SysResult {
        if flags & AT_EMPTY_PATH != 0 && read_path(memory, path)?.is_empty() {
            return self.fstat(memory, dirfd, statbuf);
        }
        let path = self.resolve(memory, dirfd, path)?;
        let meta = self.fs.metadata(&path)?;
        memory.write(statbuf, &metadata_stat(&meta))?;
        Ok(0)
    }

    /// `faccessat`: the program runs as root, so only existence and a write to read-only
    /// code can fail.
    pub(super) fn faccessat(
        &mut self,
        memory: &GuestMemory,
        dirfd: u64,
        path: u64,
        mode: u64,
    ) -> SysResult {
        if mode & !0o7 != 0 {
            return Err(errno(libc::EINVAL));
        }
        let path = self.resolve(memory, dirfd, path)?;
        let meta = self.fs.metadata(&path)?;
        if mode & W_OK != 0 && !meta.writable {
            return Err(self.fs.read_only_error(&path));
        }
        Ok(0)
    }

    pub(super) fn openat(
        &mut self,
        memory: &GuestMemory,
        dirfd: u64,
        path: u64,
        flags: u64,
    ) -> SysResult {
        let path = self.resolve(memory, dirfd, path)?;
        if flags & O_TMPFILE_ONLY != 0 {
            return self.open_unnamed(&path, flags);
        }
        if path == DEV_NULL {
            if flags & O_DIRECTORY != 0 {
                return Err(errno(libc::ENOTDIR));
            }
            return self.fds.insert(opened(Object::Null, flags));
        }
        let (_, writable) = access(flags);
        let exists = self.fs.metadata(&path).is_ok();
        if flags & O_CREAT != 0 {
            if exists && flags & O_EXCL != 0 {
                return Err(errno(libc::EEXIST));
            }
            if !exists {
                self.fs.create_file(&path)?;
            }
        }
        let meta = self.fs.metadata(&path)?;
        if meta.is_dir {
            if writable {
                return Err(errno(libc::EISDIR));
            }
        } else if flags & O_DIRECTORY != 0 {
            return Err(errno(libc::ENOTDIR));
        }
        if writable && !meta.writable {
            return Err(self.fs.read_only_error(&path));
        }
        if flags & O_TRUNC != 0 && writable {
            self.fs.truncate(&path, 0)?;
        }
        let object = if meta.is_dir {
            Object::Dir(OpenDir { path, position: 0 })
        } else {
            Object::File(open_file(path, flags))
        };
        self.fds.insert(opened(object, flags))
    }

    /// `openat` with `O_TMPFILE`: an unnamed file in directory `dir`, open for writing, gone
    /// when its last descriptor closes. Linux's `EINVAL` for other flags with it or no write
    /// access.
    fn open_unnamed(&mut self, dir: &str, flags: u64) -> SysResult {
        let (_, writable) = access(flags);
        if flags & O_TMPFILE_MASK != O_TMPFILE_ONLY | O_DIRECTORY || !writable {
            return Err(errno(libc::EINVAL));
        }
        let inode = self.fs.create_unnamed(dir)?;
        let file = open_file(vfs::orphan_path(inode), flags);
        let inserted = self.fds.insert(opened(Object::File(file), flags));
        if inserted.is_err() {
            self.fs.release_orphan(inode);
        }
        inserted
    }

    pub(super) fn lseek(&mut self, fd: u64, offset: u64, whence: u64) -> SysResult {
        let size = match &self.fds.get(fd)?.object {
            Object::File(file) => self.fs.metadata(&file.path)?.size,
            Object::Dir(_) => 0,
            _ => return Err(errno(libc::ESPIPE)),
        };
        let descriptor = self.fds.get_mut(fd)?;
        let current = match &descriptor.object {
            Object::File(file) => file.offset,
            Object::Dir(dir) => abi::count(dir.position),
            _ => 0,
        };
        let base = match abi::int(whence) {
            libc::SEEK_SET => 0,
            libc::SEEK_CUR => abi::long(current),
            libc::SEEK_END => abi::long(size),
            _ => return Err(errno(libc::EINVAL)),
        };
        let target = base
            .checked_add(abi::long(offset))
            .and_then(|target| u64::try_from(target).ok())
            .ok_or(errno(libc::EINVAL))?;
        match &mut descriptor.object {
            Object::File(file) => file.offset = target,
            Object::Dir(dir) => dir.position = abi::size(target),
            _ => {}
        }
        Ok(target)
    }

    pub(super) fn ftruncate(&mut self, fd: u64, len: u64) -> SysResult {
        match &self.fds.get(fd)?.object {
            Object::File(file) if file.writable => {
                let path = file.path.clone();
                self.fs.truncate(&path, len).map(|()| 0)
            }
            _ => Err(errno(libc::EINVAL)),
        }
    }

    pub(super) fn getdents64(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        buf: u64,
        count: u64,
    ) -> SysResult {
        let Object::Dir(dir) = &self.fds.get(fd)?.object else {
            return Err(errno(libc::ENOTDIR));
        };
        let path = dir.path.clone();
        if vfs::orphan_inode(&path).is_some() {
            // Linux lists nothing of a directory removed while open.
            return Err(errno(libc::ENOENT));
        }
        let mut position = dir.position;
        let meta = self.fs.metadata(&path)?;
        let mut entries = vec![
            (".".to_string(), true, meta.inode),
            ("..".to_string(), true, 1),
        ];
        entries.extend(self.fs.children(&path));
        let mut out = Vec::new();
        while let Some((name, is_dir, inode)) = entries.get(position) {
            // d_ino, d_off, d_reclen, d_type, the name and its NUL, padded to 8 bytes. A name
            // is at most NAME_MAX bytes, so the record fits its 16-bit length.
            let reclen = name.len().saturating_add(20).next_multiple_of(8);
            let Ok(reclen16) = u16::try_from(reclen) else {
                return Err(errno(libc::EOVERFLOW));
            };
            if out.len().saturating_add(reclen) > abi::size(count) {
                break;
            }
            position = position.saturating_add(1);
            let start = out.len();
            out.extend_from_slice(&inode.to_le_bytes());
            out.extend_from_slice(&abi::count(position).to_le_bytes());
            out.extend_from_slice(&reclen16.to_le_bytes());
            out.push(if *is_dir { libc::DT_DIR } else { libc::DT_REG });
            out.extend_from_slice(name.as_bytes());
            out.resize(start.saturating_add(reclen), 0);
        }
        if out.is_empty() && position < entries.len() {
            return Err(errno(libc::EINVAL));
        }
        memory.write(buf, &out)?;
        if let Object::Dir(dir) = &mut self.fds.get_mut(fd)?.object {
            dir.position = position;
        }
        Ok(out.len() as u64)
    }

    pub(super) fn mkdirat(&mut self, memory: &GuestMemory, dirfd: u64, path: u64) -> SysResult {
        let path = self.resolve(memory, dirfd, path)?;
        self.fs.mkdir(&path).map(|()| 0)
    }

    pub(super) fn unlinkat(
        &mut self,
        memory: &GuestMemory,
        dirfd: u64,
        path: u64,
        flags: u64,
    ) -> SysResult {
        let path = self.resolve(memory, dirfd, path)?;
        self.remove_path(&path, flags & libc::AT_REMOVEDIR as u64 != 0)
            .map(|()| 0)
    }

    /// `rename`, `renameat` and `renameat2` (`flags`).
    pub(super) fn renameat(
        &mut self,
        memory: &GuestMemory,
        old_dirfd: u64,
        old: u64,
        new_dirfd: u64,
        new: u64,
        flags: u64,
    ) -> SysResult {
        let flags = RenameFlags::from_bits(flags)?;
        let from = self.resolve(memory, old_dirfd, old)?;
        let to = self.resolve(memory, new_dirfd, new)?;
        // Descriptors open on moved paths follow them, as Linux's follow the inode.
        self.rename_path(&from, &to, flags).map(|()| 0)
    }

    pub(super) fn getcwd(&mut self, memory: &GuestMemory, buf: u64, size: u64) -> SysResult {
        if vfs::orphan_inode(&self.cwd).is_some() {
            // Linux's answer where the working directory was removed.
            return Err(errno(libc::ENOENT));
        }
        let mut path = self.cwd.as_bytes().to_vec();
        path.push(0);
        if size < path.len() as u64 {
            return Err(errno(libc::ERANGE));
        }
        memory.write(buf, &path)?;
        Ok(path.len() as u64)
    }

    pub(super) fn chdir(&mut self, memory: &GuestMemory, path: u64) -> SysResult {
        let path = self.resolve(memory, libc::AT_FDCWD as u64, path)?;
        if !self.fs.metadata(&path)?.is_dir {
            return Err(errno(libc::ENOTDIR));
        }
        self.cwd = path;
        self.release_orphans();
        Ok(0)
    }

    /// `fchdir(fd)`: the directory open at `fd` becomes the working directory.
    pub(super) fn fchdir(&mut self, fd: u64) -> SysResult {
        match &self.fds.get(fd)?.object {
            // A removed directory too, as Linux enters one (and then finds nothing in it).
            Object::Dir(dir) => {
                self.cwd = dir.path.clone();
                self.release_orphans();
                Ok(0)
            }
            _ => Err(errno(libc::ENOTDIR)),
        }
    }

    /// `statfs(path, buf)`.
    pub(super) fn statfs(&mut self, memory: &GuestMemory, path: u64, buf: u64) -> SysResult {
        let path = self.resolve(memory, libc::AT_FDCWD as u64, path)?;
        self.fs.metadata(&path)?;
        self.write_statfs(memory, &path, buf)
    }

    /// `fstatfs(fd, buf)`.
    pub(super) fn fstatfs(&mut self, memory: &GuestMemory, fd: u64, buf: u64) -> SysResult {
        let path = match &self.fds.get(fd)?.object {
            Object::File(OpenFile { path, .. }) | Object::Dir(OpenDir { path, .. }) => path.clone(),
            // Pipes, sockets and the rest live on the kernel's own file systems.
            _ => "/".to_string(),
        };
        self.write_statfs(memory, &path, buf)
    }

    /// Writes the `struct statfs` (120 bytes) of the file system holding `path`: `/tmp` is a
    /// tmpfs of the environment's ephemeral storage; the rest is read-only.
    fn write_statfs(&self, memory: &GuestMemory, path: &str, buf: u64) -> SysResult {
        const TMPFS_MAGIC: u64 = 0x0102_1994;
        const OVERLAYFS_MAGIC: u64 = 0x794c_7630;
        const ST_RDONLY: u64 = 1;
        const BLOCK: u64 = 4096;
        // Only `/tmp` can remove what a descriptor still has open.
        let tmp =
            path == vfs::TMP_ROOT || path.starts_with("/tmp/") || vfs::orphan_inode(path).is_some();
        let (kind, blocks, free, flags) = if tmp {
            let blocks = self.fs.tmp_quota() / BLOCK;
            let used = self.fs.tmp_used().div_ceil(BLOCK);
            (TMPFS_MAGIC, blocks, blocks.saturating_sub(used), 0)
        } else {
            (OVERLAYFS_MAGIC, 0, 0, ST_RDONLY)
        };
        let files = abi::count(vfs::MAX_TMP_ENTRIES);
        // f_type, f_bsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_fsid (two ints),
        // f_namelen, f_frsize, f_flags, four spare words.
        let words: [u64; 15] = [
            kind,
            BLOCK,
            blocks,
            free,
            free,
            files,
            if tmp { files } else { 0 },
            0,
            abi::count(vfs::NAME_MAX),
            BLOCK,
            flags,
            0,
            0,
            0,
            0,
        ];
        let bytes: Vec<u8> = words.iter().flat_map(|word| word.to_le_bytes()).collect();
        memory.write(buf, &bytes)?;
        Ok(0)
    }

    /// `readlinkat`: `/proc/self/exe` names the program; the base image's links are read as
    /// stored.
    pub(super) fn readlinkat(
        &mut self,
        memory: &GuestMemory,
        dirfd: u64,
        path: u64,
        buf: u64,
        size: u64,
    ) -> SysResult {
        let raw = read_path(memory, path)?;
        let target = if raw == b"/proc/self/exe" {
            self.exe.as_bytes().to_vec()
        } else {
            let path = self.resolve(memory, dirfd, path)?;
            self.fs.read_link(&path)?
        };
        if abi::int(size) <= 0 {
            return Err(errno(libc::EINVAL));
        }
        let target = target.get(..abi::size(size)).unwrap_or(&target);
        memory.write(buf, target)?;
        Ok(abi::count(target.len()))
    }

    pub(super) fn dup(&mut self, fd: u64, min: usize) -> SysResult {
        self.fds.dup(fd, min)
    }

    pub(super) fn dup2(&mut self, old: u64, new: u64) -> SysResult {
        if old == new {
            return self.fds.get(old).map(|_| new);
        }
        self.dup3(old, new, 0)
    }

    pub(super) fn dup3(&mut self, old: u64, new: u64, flags: u64) -> SysResult {
        if old == new {
            return Err(errno(libc::EINVAL));
        }
        if flags & !O_CLOEXEC != 0 {
            return Err(errno(libc::EINVAL));
        }
        let released = self.fds.dup_to(old, new)?;
        self.release(new, released);
        self.fds.set_cloexec(new, flags & O_CLOEXEC != 0);
        Ok(new)
    }

    pub(super) fn fcntl(&mut self, fd: u64, command: u64, arg: u64) -> SysResult {
        match abi::int(command) {
            libc::F_GETFD => return self.fds.cloexec(fd).map(u64::from),
            libc::F_SETFD => {
                self.fds.cloexec(fd)?;
                self.fds.set_cloexec(fd, arg & 1 != 0);
                return Ok(0);
            }
            _ => {}
        }
        let descriptor = self.fds.get_mut(fd)?;
        // F_DUPFD's lowest number must be below the descriptor limit.
        let lowest = usize::try_from(abi::int(arg))
            .ok()
            .filter(|&lowest| lowest < MAX_FDS);
        match abi::int(command) {
            libc::F_GETFL => {
                const READ_ONLY: u64 = 0;
                const WRITE_ONLY: u64 = 1;
                const READ_WRITE: u64 = 2;
                let access = match &descriptor.object {
                    Object::Stdin => READ_ONLY,
                    Object::Stdout | Object::Stderr => WRITE_ONLY,
                    Object::File(f) if f.readable && f.writable => READ_WRITE,
                    Object::File(f) if f.writable => WRITE_ONLY,
                    Object::File(_) | Object::Dir(_) => READ_ONLY,
                    _ => READ_WRITE,
                };
                Ok(access
                    | if descriptor.nonblocking {
                        O_NONBLOCK
                    } else {
                        0
                    })
            }
            libc::F_SETFL => {
                descriptor.nonblocking = arg & O_NONBLOCK != 0;
                Ok(0)
            }
            libc::F_DUPFD => self.dup(fd, lowest.ok_or(errno(libc::EINVAL))?),
            libc::F_DUPFD_CLOEXEC => {
                let new = self.dup(fd, lowest.ok_or(errno(libc::EINVAL))?)?;
                self.fds.set_cloexec(new, true);
                Ok(new)
            }
            _ => Err(errno(libc::EINVAL)),
        }
    }

    pub(super) fn ioctl(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        request: u64,
        arg: u64,
    ) -> SysResult {
        let descriptor = self.fds.get_mut(fd)?;
        match request {
            FIONBIO => {
                let value: u32 = memory.read_obj(arg)?;
                descriptor.nonblocking = value != 0;
                Ok(0)
            }
            TCGETS => Err(errno(libc::ENOTTY)),
            _ => Err(errno(libc::ENOTTY)),
        }
    }
}
