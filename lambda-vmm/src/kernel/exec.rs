//! `execve` and `execveat`: the path, arguments and environment a program hands to the next
//! one, read from guest memory and bounded as Linux bounds them; the file, looked up in the
//! environment's file system; and what the process keeps and forgets across the exec.
//!
//! The kernel never touches the address space or the vCPU: a call that can go ahead answers
//! [`Step::Exec`], and the run loop (`machine/exec.rs`) takes the request
//! ([`Kernel::take_exec`]), finds the program it names (following `#!` lines and `PT_INTERP`
//! through [`Kernel::executable_file`]) and either answers the call with an error or loads
//! the program and calls [`Kernel::finish_exec`].

use std::sync::Arc;

use super::fd::Object;
use super::files::read_path;
use super::{Errno, Kernel, Step, SysResult};
use crate::mm::GuestMemory;
use crate::mm::layout::{PAGE, STACK_SIZE};

/// Longest argument or environment string, its NUL included (Linux's `MAX_ARG_STRLEN`);
/// a longer one answers `E2BIG`.
pub const MAX_ARG_STRLEN: u64 = 32 * PAGE;
/// Most bytes the argument and environment strings, with a pointer each, may take: a
/// quarter of the stack, as Linux allows with its 8 MiB stack, less a page for the
/// auxiliary vector. More answers `E2BIG`.
pub const MAX_ARG_BYTES: u64 = STACK_SIZE / 4 - PAGE;

const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_EMPTY_PATH: u64 = 0x1000;

/// What an `execve` that can go ahead asks of the run loop.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// The file, as an absolute path.
    pub path: String,
    /// Its contents.
    pub bytes: Arc<[u8]>,
    /// The argument vector (never empty: Linux gives a program called with none `[""]`).
    pub argv: Vec<Vec<u8>>,
    /// The environment.
    pub envp: Vec<Vec<u8>>,
}

/// Reads the NULL-terminated array of C strings at `array` (none if `array` is 0), taking
/// each string's bytes, its NUL and its pointer from `budget`.
fn read_strings(memory: &GuestMemory, array: u64, budget: &mut u64) -> Result<Vec<Vec<u8>>, Errno> {
    let too_big = Errno(libc::E2BIG);
    let mut strings = Vec::new();
    if array == 0 {
        return Ok(strings);
    }
    let mut at = array;
    loop {
        let pointer: u64 = memory.read_obj(at)?;
        if pointer == 0 {
            return Ok(strings);
        }
        *budget = budget.checked_sub(8).ok_or(too_big)?;
        let max = usize::try_from(MAX_ARG_STRLEN.saturating_sub(1)).unwrap_or(usize::MAX);
        let string = memory.read_c_string(pointer, max)?.ok_or(too_big)?;
        let len = u64::try_from(string.len())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        *budget = budget.checked_sub(len).ok_or(too_big)?;
        strings.push(string);
        at = at.checked_add(8).ok_or(Errno(libc::EFAULT))?;
    }
}

impl Kernel {
    /// `execve(path, argv, envp)`.
    pub(super) fn execve(
        &mut self,
        memory: &GuestMemory,
        path: u64,
        argv: u64,
        envp: u64,
    ) -> SysResult {
        self.execveat(memory, libc::AT_FDCWD as i64 as u64, path, argv, envp, 0)
    }

    /// `execveat(dirfd, path, argv, envp, flags)`: with `AT_EMPTY_PATH` and an empty path,
    /// the file open at `dirfd` (`fexecve`).
    pub(super) fn execveat(
        &mut self,
        memory: &GuestMemory,
        dirfd: u64,
        path: u64,
        argv: u64,
        envp: u64,
        flags: u64,
    ) -> SysResult {
        if flags & !(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 {
            return Err(Errno(libc::EINVAL));
        }
        let raw = read_path(memory, path)?;
        let path = if raw.is_empty() {
            if flags & AT_EMPTY_PATH == 0 {
                return Err(Errno(libc::ENOENT));
            }
            match &self.fds.get(dirfd)?.object {
                Object::File(file) => file.path.clone(),
                _ => return Err(Errno(libc::EACCES)),
            }
        } else {
            self.resolve_read(dirfd, &raw)?
        };
        let mut budget = MAX_ARG_BYTES;
        let mut argv = read_strings(memory, argv, &mut budget)?;
        let envp = read_strings(memory, envp, &mut budget)?;
        if argv.is_empty() {
            argv.push(Vec::new());
        }
        let bytes = self.executable_file(&path)?;
        self.exec = Some(ExecRequest {
            path,
            bytes,
            argv,
            envp,
        });
        self.pending_step = Some(Step::Exec);
        Ok(0)
    }

    /// The `execve` request of the call that answered [`Step::Exec`].
    pub fn take_exec(&mut self) -> Option<ExecRequest> {
        self.exec.take()
    }

    /// The contents of the file at `path` (absolute, or relative to the working directory),
    /// if the program may execute it: `ENOENT` if it is not there, `EACCES` if it is a
    /// directory or not executable (`/tmp` files are not).
    pub fn executable_file(&self, path: &str) -> Result<Arc<[u8]>, Errno> {
        let path = self.resolve_read(libc::AT_FDCWD as u64, path.as_bytes())?;
        let metadata = self.fs.metadata(&path)?;
        if metadata.is_dir || !metadata.executable {
            return Err(Errno(libc::EACCES));
        }
        self.fs.read_file(&path)
    }

    /// Carries out an `execve` the run loop has loaded the next program for (which runs
    /// `exe`): the other threads are gone, and the caller becomes the process's first
    /// thread (its tid the pid), with no clear-child-tid word, robust list, alternate stack or name;
    /// caught signals go back to their default action (ignored ones stay ignored; the mask
    /// and pending signals stay); descriptors with `FD_CLOEXEC` are closed. Returns the
    /// caller's thread id from now on.
    pub fn finish_exec(&mut self, exe: &str) -> u32 {
        let caller = self.threads.current();
        for tid in self.threads.ids() {
            if tid != caller {
                self.threads.remove(tid);
                self.forget_futex_wait(tid);
            }
        }
        self.forget_futex_wait(caller);
        let leader = self.pid;
        self.threads.become_only(caller, leader);
        self.actions.reset_for_exec();
        for fd in self.fds.closed_on_exec() {
            if let Ok(released) = self.fds.remove(fd) {
                self.release(fd, released);
            }
        }
        self.exe = exe.to_string();
        self.blocked_since = None;
        self.wake_at = None;
        leader
    }
}
