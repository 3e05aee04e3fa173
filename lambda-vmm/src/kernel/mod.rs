//! The guest's kernel: a checked subset of the Linux x86-64 syscall ABI, one file per family,
//! dispatched through the syscall table (`table.rs`: number, name, handler, how far it
//! follows Linux).
//!
//! Every pointer a guest passes is used only through [`GuestMemory`]; every count is bounded;
//! arithmetic on guest values is checked (the module denies unchecked arithmetic and
//! truncating casts); a syscall the kernel does not know returns `ENOSYS` and is counted,
//! never panics. A call that must wait (a read with no data, `epoll_wait`, a sleep) returns
//! [`Step::Block`]; the run loop retries it when something may have changed, and it then
//! sees its own timeout. The kernel never touches the vCPU (a call that changes CPU state
//! says so in its [`Step`]), so it runs, and is tested and fuzzed, without KVM.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

mod abi;
mod exec;
mod fd;
mod files;
mod fork;
mod futex;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod harness;
mod mm;
mod names;
mod net;
mod orphans;
mod pipe;
mod poll;
mod process;
mod robust;
mod sched;
mod signals;
mod table;
#[cfg(test)]
mod tests;
mod threads;
mod time;
mod unix_socket;
pub mod vfs;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lambda_core::logs::LogCollector;
use lambda_core::runtime_api::RuntimeApi;

pub use exec::ExecRequest;
#[cfg(feature = "fuzzing")]
pub(crate) use fd::MAX_FDS;
pub use files::PROGRAM_PATH;
pub use fork::ChildEnd;
pub use names::name as syscall_name;
pub use net::RUNTIME_API_ENDPOINT;
pub use process::FS_BASE_END;
pub use signals::{AltStack, Delivery, Disposition, SigInfo};
pub use threads::{MAX_THREADS, NewThread};

use crate::mm::{Fault, GuestMemory};
use crate::vm::vcpu::SyscallArgs;

/// Most distinct unsupported syscall numbers counted one by one.
pub const MAX_UNSUPPORTED_KINDS: usize = 64;
/// The key under which unsupported syscalls beyond [`MAX_UNSUPPORTED_KINDS`] are counted.
pub const OTHER_UNSUPPORTED: u64 = u64::MAX;

/// The numbers of the syscalls the table answers.
#[cfg(feature = "fuzzing")]
pub(crate) fn table_numbers() -> Vec<u64> {
    table::TABLE.iter().map(|syscall| syscall.number).collect()
}

/// A Linux error number, returned to the guest as `-errno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

/// Not an error number: the call must wait (see [`Kernel::wait`]).
const BLOCKED: Errno = Errno(-1);

impl Errno {
    /// The guest's error for a host I/O error (`EIO` when it carries no number).
    pub fn from_io(error: std::io::Error) -> Errno {
        Errno(error.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl From<Fault> for Errno {
    fn from(_: Fault) -> Errno {
        Errno(libc::EFAULT)
    }
}

/// What a syscall returns to the guest.
pub type SysResult = Result<u64, Errno>;

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProcessEnd {
    /// `exit` / `exit_group` with this status.
    Exited(i32),
    /// Killed by a signal it sent itself (`abort` raises SIGABRT).
    Signaled(i32),
    /// Wrote more than the response limit to stdout (one-shot contract).
    ResponseTooLarge,
}

impl ProcessEnd {
    /// The end in the words every backend shares.
    pub fn stop(self) -> lambda_core::Stop {
        match self {
            ProcessEnd::Exited(status) => lambda_core::Stop::Exited(status),
            ProcessEnd::Signaled(signal) => lambda_core::Stop::Signaled {
                signal: lambda_core::Signal(signal),
                detail: None,
            },
            ProcessEnd::ResponseTooLarge => lambda_core::Stop::ResponseTooLarge,
        }
    }
}

/// What the run loop does after a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Step {
    /// Return this value to the guest and go on.
    Return(u64),
    /// Set the calling thread's FS base (the thread pointer), then return 0 to it.
    SetFsBase(u64),
    /// Start a thread as a copy of the calling one (`clone`); the caller gets its id.
    Clone(NewThread),
    /// The calling thread is gone (`exit` with other threads left); run another.
    ThreadExit,
    /// Return 0 to the caller and let another runnable thread have the CPU (`sched_yield`).
    Yield,
    /// Restore the calling thread from the signal frame at its stack pointer
    /// (`rt_sigreturn`).
    SigReturn,
    /// Replace the program (`execve`): the request is [`Kernel::take_exec`]'s. If the
    /// program cannot be loaded the call answers an error; else [`Kernel::finish_exec`].
    Exec,
    /// Start a child process (`fork`, `vfork`): see [`Kernel::begin_child`]. The caller
    /// waits until the child ends, then gets its pid.
    Fork,
    /// The call must wait, until the given time at the latest (`None`: until something
    /// changes). Retry the same call later.
    Block(#[serde(with = "crate::file_forms::optional_instant")] Option<Instant>),
    /// The program is over.
    Stop(ProcessEnd),
}

/// Counters a user can read after a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyscallStats {
    /// Syscalls made.
    pub syscalls: u64,
    /// Syscalls this kernel does not implement, by number, with how often each was made.
    /// At most [`MAX_UNSUPPORTED_KINDS`] numbers are kept apart; the rest are counted under
    /// [`OTHER_UNSUPPORTED`], so a guest trying every number cannot grow the map.
    pub unsupported: BTreeMap<u64, u64>,
}

/// Where stdin comes from and stdout goes.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
enum Stdio {
    /// One-shot: the event on stdin, the response on stdout.
    OneShot {
        stdin: Vec<u8>,
        stdin_read: usize,
        response: Vec<u8>,
        /// The event is not there yet (a machine booted to be snapshotted at its first read
        /// of stdin): a read of stdin waits until [`Kernel::deliver_stdin`].
        held: bool,
    },
    /// Runtime API: stdin is empty, stdout is part of the log.
    Log,
}

/// The state a program sees through its syscalls: memory map, descriptors, files, network,
/// clocks.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Kernel {
    fds: fd::FdTable,
    fs: vfs::FileSystem,
    cwd: String,
    /// What `/proc/self/exe` names: the program, or a `#!` script's interpreter.
    exe: String,
    stdio: Stdio,
    /// Not in a snapshot: a restored kernel gets a new log.
    #[serde(skip, default = "no_log")]
    log: LogCollector,
    api: Option<RuntimeApi>,
    clock: time::GuestClock,
    stats: SyscallStats,
    pending_end: Option<ProcessEnd>,
    /// What the current call asks of the run loop besides its result (a new FS base, a new
    /// thread, ...).
    pending_step: Option<Step>,
    threads: threads::Threads,
    futexes: futex::FutexWaiters,
    pipes: pipe::Pipes,
    actions: signals::Actions,
    sched: sched::SchedState,
    /// The stack pointer of the thread making the current call.
    user_sp: u64,
    /// When the current thread's waiting call first blocked, and when it wants to wake.
    #[serde(with = "crate::file_forms::optional_instant")]
    blocked_since: Option<Instant>,
    #[serde(with = "crate::file_forms::optional_instant")]
    wake_at: Option<Instant>,
    next_local_port: u16,
    /// Whether a read of stdin has waited for an event that is held back.
    stdin_awaited: bool,
    /// The `execve` the current call asks for (see [`Step::Exec`]); never in a snapshot, as
    /// the run loop takes it at once.
    #[serde(skip)]
    exec: Option<ExecRequest>,
    /// The running process's file-mode creation mask (`umask`).
    umask: u32,
    /// The running process's pid, and its parent's (0 for the environment's first).
    pid: u32,
    ppid: u32,
    /// Its children that ended and are not reaped yet, with their `wait4` status.
    children: BTreeMap<u32, ChildEnd>,
    /// The Runtime API connections it inherited from its parent, which its closing them
    /// leaves open.
    borrowed: std::collections::BTreeSet<lambda_core::runtime_api::ConnectionId>,
    /// The parents waiting for it, the nearest last (see `fork.rs`).
    parents: Vec<fork::Parent>,
    /// The `fork` the current call asks for (see [`Step::Fork`]).
    #[serde(skip)]
    fork: Option<threads::CloneRequest>,
}

/// The log of a kernel read from a snapshot file, until it is given its own.
fn no_log() -> LogCollector {
    LogCollector::new(0)
}

/// How a kernel is set up.
pub struct KernelSetup {
    /// The vCPU's TSC minus the host's (0 on PVM hosts), for the clock.
    pub tsc_offset: i64,
    /// Files under `/var/task` and the `/tmp` quota.
    pub fs: vfs::FileSystem,
    /// For one-shot runs, the event on stdin; `None` for a Runtime API environment.
    pub stdin: Option<Vec<u8>>,
    /// The Runtime API the loopback socket reaches, if any.
    pub api: Option<RuntimeApi>,
    /// The log that stdout/stderr go to at first.
    pub log: LogCollector,
}

impl Kernel {
    /// A kernel for one program.
    pub fn new(setup: KernelSetup) -> Kernel {
        let stdio = match setup.stdin {
            Some(stdin) => Stdio::OneShot {
                stdin,
                stdin_read: 0,
                response: Vec::new(),
                held: false,
            },
            None => Stdio::Log,
        };
        Kernel {
            fds: fd::FdTable::with_stdio(),
            fs: setup.fs,
            cwd: vfs::TASK_ROOT.to_string(),
            exe: PROGRAM_PATH.to_string(),
            stdio,
            log: setup.log,
            api: setup.api,
            clock: time::GuestClock::new(setup.tsc_offset),
            stats: SyscallStats::default(),
            pending_end: None,
            pending_step: None,
            threads: threads::Threads::new(),
            futexes: futex::FutexWaiters::default(),
            pipes: pipe::Pipes::default(),
            actions: signals::Actions::default(),
            sched: sched::SchedState::default(),
            user_sp: 0,
            blocked_since: None,
            wake_at: None,
            next_local_port: 40_000,
            stdin_awaited: false,
            exec: None,
            umask: 0o022,
            pid: process::FIRST_PID,
            ppid: 0,
            children: BTreeMap::new(),
            borrowed: std::collections::BTreeSet::new(),
            parents: Vec::new(),
            fork: None,
        }
    }

    /// Sets what `/proc/self/exe` names (the program's path until then).
    pub fn set_exe(&mut self, path: &str) {
        self.exe = path.to_string();
    }

    /// Holds the one-shot event back: reads of stdin wait (and [`Kernel::stdin_awaited`] says
    /// so) until [`Kernel::deliver_stdin`]. For booting a function to snapshot it where it
    /// first reads its event.
    pub fn hold_stdin(&mut self) {
        if let Stdio::OneShot { held, .. } = &mut self.stdio {
            *held = true;
        }
    }

    /// Whether a read of stdin has waited for the held-back event.
    pub fn stdin_awaited(&self) -> bool {
        self.stdin_awaited
    }

    /// Whether reads of stdin wait for an event held back.
    fn stdin_held(&self) -> bool {
        matches!(self.stdio, Stdio::OneShot { held: true, .. })
    }

    /// Gives a one-shot program its event on stdin (after [`Kernel::hold_stdin`]).
    pub fn deliver_stdin(&mut self, payload: Vec<u8>) {
        if let Stdio::OneShot {
            stdin,
            stdin_read,
            held,
            ..
        } = &mut self.stdio
        {
            *stdin = payload;
            *stdin_read = 0;
            *held = false;
        }
        self.stdin_awaited = false;
    }

    /// Attaches the function's base image to a kernel read from a snapshot file (which
    /// names the image by the function's configuration rather than holding it).
    pub fn attach_base_image(&mut self, image: Option<crate::base_image::BaseImage>) {
        self.fs.set_image(image);
    }

    /// Checks a kernel read from a snapshot file against the function's configuration
    /// `config`: its filesystem, where what it holds would otherwise lift a limit for the
    /// environment's life (see [`vfs::FileSystem::check`]), its descriptor table
    /// ([`fd::FdTable::check`]), its pipes (`Pipes::check`: a forged count of the bytes
    /// they hold would lift their limit; `Pipes::check_ends`: each counts the open
    /// descriptions of its ends), its thread table (`Threads::check`), its signal state
    /// and futex waiters (bounded as the calls bound them); that it is
    /// a kernel of the function's contract
    /// (the Runtime API's state for a Runtime API function, checked by
    /// [`RuntimeApi::check`]: a forged read mark or event would fail or answer the next
    /// invocation; no more than a response's limit written for a one-shot function), whose
    /// sockets and Runtime API connections name each other one to one
    /// (`Kernel::check_sockets`); and
    /// that it is between calls in the environment's first process, as a snapshot is taken
    /// (no call's step or end waiting for the run loop, which would take it unchecked; no
    /// parent waiting in `fork`, whose pipes may be larger), with no more unreaped children
    /// than `fork` allows. Says what is wrong.
    pub fn check(&self, config: &lambda_core::FunctionConfig) -> Result<(), String> {
        self.check_state(vfs::tmp_quota(config.ephemeral_storage_mb))?;
        self.check_contract(config.contract)?;
        self.check_between_calls()
    }

    /// The part of [`Kernel::check`] that holds of every state the kernel's calls leave
    /// between calls while no child process runs, whatever the point: its filesystem within
    /// a `/tmp` quota of `tmp_quota` bytes, its descriptor table, its pipes and their counts
    /// of open ends, its thread table, its signal actions and each thread's masks, pending
    /// signals and alternate stack (`Kernel::check_signals`), its futex waiters
    /// (`Kernel::check_futexes`), its sockets against its Runtime API's connections, and
    /// its epoll instances' registrations (`Kernel::check_epolls`). Says what is wrong.
    pub(crate) fn check_state(&self, tmp_quota: u64) -> Result<(), String> {
        self.fs
            .check(tmp_quota)
            .map_err(|why| format!("filesystem: {why}"))?;
        self.fds
            .check()
            .map_err(|why| format!("descriptor table: {why}"))?;
        // While no child process runs, only the open descriptions hold pipe ends (a parent
        // waiting in `fork` holds its own too).
        let open_ends = self
            .fds
            .descriptions()
            .flat_map(|descriptor| descriptor.object.pipe_ends());
        self.pipes
            .check()
            .and_then(|()| self.pipes.check_ends(open_ends))
            .map_err(|why| format!("pipes: {why}"))?;
        self.threads
            .check()
            .map_err(|why| format!("threads: {why}"))?;
        self.check_signals()
            .map_err(|why| format!("signals: {why}"))?;
        self.check_futexes()
            .map_err(|why| format!("futex waiters: {why}"))?;
        self.check_open_paths()
            .map_err(|why| format!("open files: {why}"))?;
        // What `/proc/self/exe` names may be a `#!` line's interpreter as written.
        if self.exe.len() >= vfs::PATH_MAX {
            return Err(format!(
                "its program's path is {} bytes long, more than a path may be",
                self.exe.len()
            ));
        }
        let kept_apart = self
            .stats
            .unsupported
            .keys()
            .filter(|&&number| number != OTHER_UNSUPPORTED)
            .count();
        if kept_apart > MAX_UNSUPPORTED_KINDS {
            return Err(format!(
                "it counts {kept_apart} unsupported syscall numbers apart, more than \
                 {MAX_UNSUPPORTED_KINDS}"
            ));
        }
        self.check_sockets()
            .map_err(|why| format!("sockets: {why}"))?;
        self.check_epolls().map_err(|why| format!("epoll: {why}"))
    }

    /// The part of [`Kernel::check`] that says whether this is the kernel of a `contract`
    /// function.
    fn check_contract(&self, contract: lambda_core::Contract) -> Result<(), String> {
        match (&self.stdio, &self.api, contract) {
            (Stdio::Log, Some(api), lambda_core::Contract::RuntimeApi) => {
                api.check().map_err(|why| format!("Runtime API: {why}"))
            }
            (Stdio::OneShot { response, .. }, None, lambda_core::Contract::Stdio) => {
                if response.len() > lambda_core::limits::MAX_SYNC_PAYLOAD_BYTES {
                    return Err(format!(
                        "its response holds {} bytes, more than a response may",
                        response.len()
                    ));
                }
                Ok(())
            }
            (_, _, contract) => Err(format!("it is not the kernel of a {contract:?} function")),
        }
    }

    /// The part of [`Kernel::check`] that says whether this kernel is between calls in the
    /// environment's first process.
    fn check_between_calls(&self) -> Result<(), String> {
        if self.pending_step.is_some() || self.pending_end.is_some() {
            return Err("a call's outcome still waits for the run loop".into());
        }
        if !self.parents.is_empty() || !self.borrowed.is_empty() {
            return Err("a child process runs while its parent waits in fork".into());
        }
        if self.children.len() > fork::MAX_UNREAPED {
            return Err(format!(
                "it holds {} unreaped children, more than {}",
                self.children.len(),
                fork::MAX_UNREAPED
            ));
        }
        Ok(())
    }

    /// A copy of this kernel for an environment restored from a snapshot of it: the same
    /// descriptors, files, threads, signals, futexes and Runtime API state; a new log and
    /// counters, and a clock that goes on from the snapshot's (its monotonic time has moved
    /// on by the time between) for a vCPU whose TSC is the host's plus `tsc_offset`.
    pub fn restored(&self, tsc_offset: i64, log: LogCollector) -> Kernel {
        let mut kernel = self.clone();
        kernel.log = log;
        kernel.stats = SyscallStats::default();
        kernel.clock = self.clock.restored(tsc_offset);
        kernel
    }

    /// Syscall counters.
    pub fn stats(&self) -> &SyscallStats {
        &self.stats
    }

    /// Refreshes the clock the program reads through the vDSO, in its data page at `vvar`
    /// (before each run of the vCPU).
    pub fn publish_clock(&mut self, physical: &crate::mm::physical::PhysicalMemory, vvar: u64) {
        self.clock.publish(physical, vvar);
    }

    /// The Runtime API behind the loopback socket.
    pub fn api_mut(&mut self) -> Option<&mut RuntimeApi> {
        self.api.as_mut()
    }

    /// Replaces the log that stdout and stderr feed, returning the old one.
    pub fn replace_log(&mut self, log: LogCollector) -> LogCollector {
        std::mem::replace(&mut self.log, log)
    }

    /// The log that stdout and stderr feed.
    pub fn log_mut(&mut self) -> &mut LogCollector {
        &mut self.log
    }

    /// Takes the one-shot response (what the program wrote to stdout).
    pub fn take_response(&mut self) -> Vec<u8> {
        match &mut self.stdio {
            Stdio::OneShot { response, .. } => std::mem::take(response),
            Stdio::Log => Vec::new(),
        }
    }

    /// Bytes the program keeps in `/tmp`.
    pub fn tmp_used(&self) -> u64 {
        self.fs.tmp_used()
    }

    /// Performs one syscall of the current thread (see [`Kernel::enter_thread`]), or retries
    /// one of its that blocked, against guest `memory`. The
    /// kernel never touches the vCPU: a call that changes CPU state says so in its [`Step`],
    /// so the kernel runs (and is tested) without KVM.
    pub fn handle(&mut self, memory: &GuestMemory, call: SyscallArgs) -> Step {
        if self.blocked_since.is_none() {
            self.stats.syscalls = self.stats.syscalls.saturating_add(1);
        }
        self.user_sp = call.stack_pointer;
        let result = self.dispatch(memory, call);
        if result == Err(Errno(libc::EPIPE)) && signals::raises_sigpipe(&call) {
            self.raise_sigpipe();
        }
        if let Some(end) = self.pending_end.take() {
            return Step::Stop(end);
        }
        if let Some(step) = self.pending_step.take() {
            self.blocked_since = None;
            self.wake_at = None;
            return step;
        }
        match result {
            Err(BLOCKED) => Step::Block(self.wake_at),
            other => {
                self.blocked_since = None;
                self.wake_at = None;
                match other {
                    Ok(value) => Step::Return(value),
                    Err(Errno(errno)) => Step::Return(i64::from(errno).wrapping_neg() as u64),
                }
            }
        }
    }

    /// A call that found nothing to do: `EAGAIN` on a non-blocking descriptor, else a wait
    /// with no timeout (the retry finds out what changed).
    fn would_block(&mut self, nonblocking: bool) -> SysResult {
        if !nonblocking {
            self.wait(None)?;
        }
        Err(Errno(libc::EAGAIN))
    }

    /// For a call that has nothing to return yet: `Ok(())` once its timeout (counted from its
    /// first attempt) has passed, so it returns its timeout result; otherwise [`BLOCKED`].
    /// A timeout too far away to be a point in time (`nanosleep` of `INT64_MAX` seconds) is
    /// no timeout at all, as Linux clamps it.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), Errno> {
        let since = *self.blocked_since.get_or_insert_with(Instant::now);
        match timeout.and_then(|timeout| since.checked_add(timeout)) {
            Some(wake) if Instant::now() >= wake => Ok(()),
            wake => {
                self.wake_at = wake;
                Err(BLOCKED)
            }
        }
    }

    /// Forgets the call that was waiting, as if a signal had interrupted it: the next call
    /// is a new one. (The run loop never does this; the fuzz target, which cannot wait, does.)
    #[cfg(feature = "fuzzing")]
    pub(crate) fn abandon_wait(&mut self) {
        self.forget_futex_wait(self.threads.current());
        self.blocked_since = None;
        self.wake_at = None;
    }

    /// Open descriptors and `/tmp` bytes: resources a guest can grow.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn footprint(&self) -> (usize, u64) {
        (self.fds.open_fds().len(), self.fs.tmp_used())
    }

    /// Ends the program after the current syscall.
    fn end(&mut self, end: ProcessEnd) -> SysResult {
        self.pending_end = Some(end);
        Ok(0)
    }

    /// `exit` and `exit_group`: the low byte of the status, as a parent sees it.
    fn exit(&mut self, status: u64) -> SysResult {
        self.end(ProcessEnd::Exited(i32::from(status.to_le_bytes()[0])))
    }

    fn dispatch(&mut self, memory: &GuestMemory, call: SyscallArgs) -> SysResult {
        if let Some(syscall) = table::find(call.number) {
            return syscall.call(self, memory, call.args);
        }
        let unsupported = &mut self.stats.unsupported;
        let key = if unsupported.contains_key(&call.number)
            || unsupported.len() < MAX_UNSUPPORTED_KINDS
        {
            call.number
        } else {
            OTHER_UNSUPPORTED
        };
        let count = unsupported.entry(key).or_default();
        *count = count.saturating_add(1);
        Err(Errno(libc::ENOSYS))
    }
}
