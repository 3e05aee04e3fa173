//! Processes: `fork`, `vfork` and `clone` without `CLONE_THREAD` start a child process;
//! its end wakes the parent, which reaps it with `wait4`.
//!
//! An environment runs one process at a time: while a child lives its parent waits, all its
//! threads stopped, and goes on when the child has ended (exited, or killed by a signal),
//! its `fork` returning the child's pid. So a child is always over by the time its parent
//! could wait for it, and `wait4` never blocks. This is what a shell bootstrap does (run a
//! command, wait for it, go on) and what `posix_spawn` + `waitpid` do; two processes
//! cannot run side by side (see `docs/processes.md`).
//!
//! The kernel keeps the waiting parents' state on a stack: their descriptor table, working
//! directory, threads, futex waits, signal actions and children. A child starts with copies
//! of them and one thread; the open descriptions it shares with its parent stay open for
//! the parent when the child closes them (pipe ends are counted per process; the Runtime
//! API connections it inherited are not disconnected). The run loop
//! (`machine/fork.rs`) keeps the parent's CPU state and memory.

use std::collections::{BTreeMap, BTreeSet};

use super::fd::{FdTable, Object};
use super::futex::FutexWaiters;
use super::signals::{Actions, SigInfo};
use super::threads::{
    CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID, CLONE_PARENT_SETTID, CLONE_SETTLS, CLONE_VM, CSIGNAL,
    CloneRequest, Threads,
};
use super::{Errno, Kernel, Step, SysResult, abi};
use crate::mm::GuestMemory;
use lambda_core::runtime_api::ConnectionId;

/// Most processes an environment holds at once: the running one and the parents waiting
/// for it. One more `fork` answers `EAGAIN`.
pub const MAX_PROCESSES: usize = 16;
/// Most children a process may have ended and not yet reaped with `wait4`; one more `fork`
/// answers `EAGAIN`.
pub const MAX_UNREAPED: usize = 1024;

const CLONE_VFORK: u64 = 0x4000;
/// What a new process may ask for: its exit signal, a `vfork`, its TLS and the tid words.
const PROCESS_FLAGS: u64 = CSIGNAL
    | CLONE_VM
    | CLONE_VFORK
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_CHILD_SETTID;

const WNOHANG: u64 = 1;
const WUNTRACED: u64 = 2;
const WCONTINUED: u64 = 8;
const WNOTHREAD: u64 = 0x2000_0000;
const WALL: u64 = 0x4000_0000;
const WCLONE: u64 = 0x8000_0000;
/// `si_code` of SIGCHLD for a child that exited, and one a signal killed.
const CLD_EXITED: i32 = 1;
const CLD_KILLED: i32 = 2;
/// Bytes of `struct rusage`.
const RUSAGE_LEN: usize = 144;

/// A child process the run loop is to start: a copy of the calling thread, `rax` = 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewProcess {
    /// Its pid (also its thread's id): what the parent's call returns.
    pub pid: u32,
    /// Its stack pointer (`None`: the parent's).
    pub stack: Option<u64>,
    /// Its FS base (`None`: the parent's).
    pub tls: Option<u64>,
    /// Whether it shares the parent's memory until it execs or ends (`vfork`); else it
    /// gets a copy, which it may change without the parent seeing it.
    pub shares_memory: bool,
    /// Where to write its pid in its own memory (`CLONE_CHILD_SETTID`).
    pub child_settid: Option<u64>,
}

/// How a child ended, as `wait4` and `waitid` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChildEnd {
    /// It exited with this status (its low byte).
    Exited(i32),
    /// A signal killed it.
    Killed(i32),
}

impl ChildEnd {
    /// The status word `wait4` writes.
    fn status(self) -> i32 {
        match self {
            ChildEnd::Exited(code) => (code & 0xff) << 8,
            ChildEnd::Killed(signal) => signal & 0x7f,
        }
    }

    /// `SIGCHLD`'s `si_code` for it, and its `si_status`: the exit status, or the signal.
    fn code_and_status(self) -> (i32, i32) {
        match self {
            ChildEnd::Exited(code) => (CLD_EXITED, code & 0xff),
            ChildEnd::Killed(signal) => (CLD_KILLED, signal & 0x7f),
        }
    }
}

/// What a waiting parent had when its child started.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Parent {
    pid: u32,
    ppid: u32,
    fds: FdTable,
    cwd: String,
    exe: String,
    threads: Threads,
    futexes: FutexWaiters,
    actions: Actions,
    children: BTreeMap<u32, ChildEnd>,
    borrowed: BTreeSet<ConnectionId>,
    umask: u32,
    /// The signal the child's end sends it (`SIGCHLD`, or none).
    exit_signal: i32,
}

/// `fork` and `vfork` as the `clone` they are: `flags` with `SIGCHLD` as the exit signal,
/// no stack, TLS or tid words.
fn plain_clone(flags: u64) -> CloneRequest {
    CloneRequest {
        flags: flags | u64::from(libc::SIGCHLD.unsigned_abs()),
        stack: None,
        parent_tid: 0,
        child_tid: 0,
        tls: 0,
    }
}

impl Kernel {
    /// The descriptor tables of the running process and of each parent waiting in `fork`:
    /// all the descriptors that share the environment's filesystem.
    pub(super) fn fd_tables(&self) -> impl Iterator<Item = &FdTable> {
        std::iter::once(&self.fds).chain(self.parents.iter().map(|parent| &parent.fds))
    }

    /// [`Kernel::fd_tables`], for a change.
    pub(super) fn fd_tables_mut(&mut self) -> impl Iterator<Item = &mut FdTable> {
        std::iter::once(&mut self.fds).chain(self.parents.iter_mut().map(|parent| &mut parent.fds))
    }

    /// The working directories of the running process and of each parent waiting in `fork`.
    pub(super) fn cwds(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.cwd).chain(self.parents.iter().map(|parent| &parent.cwd))
    }

    /// [`Kernel::cwds`], for a change.
    pub(super) fn cwds_mut(&mut self) -> impl Iterator<Item = &mut String> {
        std::iter::once(&mut self.cwd).chain(self.parents.iter_mut().map(|parent| &mut parent.cwd))
    }

    /// `fork()`.
    pub(super) fn fork(&mut self, memory: &GuestMemory) -> SysResult {
        self.new_process(memory, plain_clone(0))
    }

    /// `vfork()`.
    pub(super) fn vfork(&mut self, memory: &GuestMemory) -> SysResult {
        self.new_process(memory, plain_clone(CLONE_VM | CLONE_VFORK))
    }

    /// A `clone` or `clone3` without `CLONE_THREAD`: a new process, checked; the run loop
    /// starts it ([`Step::Fork`]). `CLONE_VM` is accepted only with `CLONE_VFORK` (a
    /// process sharing memory with a parent that runs on beside it cannot be run here).
    pub(super) fn new_process(&mut self, memory: &GuestMemory, request: CloneRequest) -> SysResult {
        let flags = request.flags;
        if flags & !PROCESS_FLAGS != 0 || flags & CLONE_VM != 0 && flags & CLONE_VFORK == 0 {
            return Err(Errno(libc::EINVAL));
        }
        let exit_signal = flags & CSIGNAL;
        if exit_signal > 64 {
            return Err(Errno(libc::EINVAL));
        }
        request.check_pointers(memory)?;
        if self.parents.len().saturating_add(1) >= MAX_PROCESSES
            || self.children.len() >= MAX_UNREAPED
        {
            return Err(Errno(libc::EAGAIN));
        }
        self.fork = Some(request);
        self.pending_step = Some(Step::Fork);
        Ok(0)
    }

    /// Starts the child process the call that answered [`Step::Fork`] asked for: the
    /// calling process (its calling thread current) becomes a waiting parent, and the kernel
    /// goes on as the child (see the module documentation). `None` if there was no request,
    /// or no pid is free (the run loop then answers `EAGAIN`).
    pub fn begin_child(&mut self, memory: &GuestMemory) -> Option<NewProcess> {
        let request = self.fork.take()?;
        let pid = loop {
            let pid = self.threads.free_tid()?;
            if !self.children.contains_key(&pid) {
                break pid;
            }
        };
        if request.flags & CLONE_PARENT_SETTID != 0 {
            let _ = memory.write_obj(request.parent_tid, pid);
        }
        let caller = self.threads.current();
        let parent = Parent {
            pid: self.pid,
            ppid: self.ppid,
            fds: self.fds.clone(),
            cwd: self.cwd.clone(),
            exe: self.exe.clone(),
            threads: self.threads.clone(),
            futexes: std::mem::take(&mut self.futexes),
            actions: self.actions.clone(),
            children: std::mem::take(&mut self.children),
            borrowed: self.borrowed.clone(),
            umask: self.umask,
            exit_signal: i32::try_from(request.flags & CSIGNAL).unwrap_or(0),
        };
        self.parents.push(parent);
        // The child's copies of the open descriptions stay open for the parent.
        let shared: Vec<Object> = self
            .fds
            .descriptions()
            .map(|descriptor| descriptor.object.clone())
            .collect();
        for object in shared {
            for end in object.pipe_ends() {
                self.pipes.open(end);
            }
            if let Object::Socket(socket) = &object
                && let Some(connection) = socket.connection
            {
                self.borrowed.insert(connection);
            }
        }
        let clear_child_tid = if request.flags & CLONE_CHILD_CLEARTID != 0 {
            request.child_tid
        } else {
            0
        };
        self.threads = self.threads.for_child(caller, pid, clear_child_tid);
        self.ppid = self.pid;
        self.pid = pid;
        self.blocked_since = None;
        self.wake_at = None;
        Some(NewProcess {
            pid,
            stack: request.stack,
            tls: (request.flags & CLONE_SETTLS != 0).then_some(request.tls),
            shares_memory: request.flags & CLONE_VM != 0,
            child_settid: (request.flags & CLONE_CHILD_SETTID != 0).then_some(request.child_tid),
        })
    }

    /// Forgets a [`Step::Fork`] request the run loop did not carry out.
    pub fn drop_fork(&mut self) {
        self.fork = None;
    }

    /// Ends the running child as `end` says: its descriptors close, and the kernel goes on
    /// as its parent, which gets `SIGCHLD` (if it asked for a signal) and can reap the child
    /// with `wait4`. With `None` the child never ran (the run loop could not start it): it
    /// leaves no trace. Returns the child's pid, or `None` if the running process is no
    /// child.
    pub fn end_child(&mut self, end: Option<ChildEnd>) -> Option<u32> {
        if self.parents.is_empty() {
            return None;
        }
        // The parent stays among the waiting ones while the child's descriptors close, so
        // a removed file it still has open is kept.
        for fd in self.fds.open_fds() {
            if let Ok(released) = self.fds.remove(fd) {
                self.release(fd, released);
            }
        }
        let parent = self.parents.pop()?;
        let child = self.pid;
        self.pid = parent.pid;
        self.ppid = parent.ppid;
        self.fds = parent.fds;
        self.cwd = parent.cwd;
        self.exe = parent.exe;
        self.threads = parent.threads;
        self.futexes = parent.futexes;
        self.actions = parent.actions;
        self.children = parent.children;
        self.borrowed = parent.borrowed;
        self.umask = parent.umask;
        // The child's working directory may have been the last to hold a removed one.
        self.release_orphans();
        self.blocked_since = None;
        self.wake_at = None;
        let Some(end) = end else {
            return Some(child);
        };
        // With SIGCHLD ignored, a child is reaped at once, as Linux does.
        if !self.actions.ignores(libc::SIGCHLD) {
            self.children.insert(child, end);
        }
        if parent.exit_signal != 0 {
            let info = SigInfo {
                signo: parent.exit_signal,
                code: end.code_and_status().0,
                addr: u64::from(child),
            };
            let _ = self.signal_process(info);
        }
        Some(child)
    }

    /// `wait4(pid, wstatus, options, rusage)`: reaps an ended child (`pid` > 0: that one;
    /// -1, 0 or a group: any, the lowest pid first). Every child has ended by the time its
    /// parent runs, so it never waits; with none, `ECHILD`. The resource usage reads as
    /// zero.
    pub(super) fn wait4(
        &mut self,
        memory: &GuestMemory,
        pid: u64,
        wstatus: u64,
        options: u64,
        rusage: u64,
    ) -> SysResult {
        let known = WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE;
        if options & !known != 0 {
            return Err(Errno(libc::EINVAL));
        }
        let wanted = abi::int(pid);
        let (child, end) = self
            .ended_child((wanted > 0).then_some(wanted))
            .ok_or(Errno(libc::ECHILD))?;
        if wstatus != 0 {
            memory.write_obj(wstatus, end.status())?;
        }
        if rusage != 0 {
            memory.write(rusage, &[0u8; RUSAGE_LEN])?;
        }
        self.children.remove(&child);
        Ok(u64::from(child))
    }

    /// `waitid(idtype, id, infop, options, rusage)`: as [`Kernel::wait4`] (`P_ALL`, `P_PID`,
    /// `P_PGID`, which is every child here), reporting in a `siginfo_t`; with `WNOWAIT` the
    /// child stays to be reaped. `WEXITED` must be asked for (stopped and continued children
    /// never happen here).
    pub(super) fn waitid(
        &mut self,
        memory: &GuestMemory,
        idtype: u64,
        id: u64,
        infop: u64,
        options: u64,
        rusage: u64,
    ) -> SysResult {
        const P_ALL: u64 = 0;
        const P_PID: u64 = 1;
        const P_PGID: u64 = 2;
        const WSTOPPED: u64 = 2;
        const WEXITED: u64 = 4;
        const WNOWAIT: u64 = 0x0100_0000;
        let known = WNOHANG | WSTOPPED | WEXITED | WCONTINUED | WNOWAIT | WNOTHREAD | WALL | WCLONE;
        if options & !known != 0 || options & (WEXITED | WSTOPPED | WCONTINUED) == 0 {
            return Err(Errno(libc::EINVAL));
        }
        let wanted = match idtype {
            P_PID => Some(abi::int(id)),
            P_ALL | P_PGID => None,
            _ => return Err(Errno(libc::EINVAL)),
        };
        let (child, end) = self.ended_child(wanted).ok_or(Errno(libc::ECHILD))?;
        if options & WEXITED == 0 {
            // Only stopped or continued children were asked for: there are none.
            return if options & WNOHANG != 0 {
                Ok(0)
            } else {
                Err(Errno(libc::ECHILD))
            };
        }
        if infop != 0 {
            let (code, value) = end.code_and_status();
            // si_signo, si_errno, si_code, padding, si_pid, si_uid, si_status; the rest zero.
            let mut info = [0u8; 128];
            let fields = [
                (0usize, libc::SIGCHLD),
                (8, code),
                (16, i32::try_from(child).unwrap_or(i32::MAX)),
                (24, value),
            ];
            for (at, field) in fields {
                if let Some(slot) = info.get_mut(at..at.saturating_add(4)) {
                    slot.copy_from_slice(&field.to_le_bytes());
                }
            }
            memory.write(infop, &info)?;
        }
        if rusage != 0 {
            memory.write(rusage, &[0u8; RUSAGE_LEN])?;
        }
        if options & WNOWAIT == 0 {
            self.children.remove(&child);
        }
        Ok(0)
    }

    /// The ended child `wait4` or `waitid` reports: `pid` (none if it is no ended child),
    /// or with `None` any, the lowest pid first.
    fn ended_child(&self, pid: Option<i32>) -> Option<(u32, ChildEnd)> {
        let child = match pid {
            Some(pid) => u32::try_from(pid).ok()?,
            None => *self.children.keys().next()?,
        };
        self.children.get(&child).map(|&end| (child, end))
    }

    /// The running process's pid.
    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// `umask(mask)`: sets the file-mode creation mask (its permission bits) and returns the
    /// old one. Files keep no modes here, so it changes nothing else.
    pub(super) fn umask(&mut self, mask: u64) -> SysResult {
        let old = self.umask;
        self.umask = abi::uint(mask) & 0o777;
        Ok(u64::from(old))
    }

    /// `getppid`: the waiting parent's pid, 0 for the environment's first process.
    pub(super) fn getppid(&self) -> SysResult {
        Ok(u64::from(self.ppid))
    }
}
