//! The guest's kernel: a checked subset of the Linux x86-64 syscall ABI, one file per family
//! and the dispatch table here.
//!
//! Every pointer a guest passes is used only through [`GuestMemory`]; every count is bounded;
//! a syscall the kernel does not know returns `ENOSYS` and is counted, never panics. A call
//! that must wait (a read with no data, `epoll_wait`, a sleep) returns [`Step::Block`]; the
//! run loop retries it when something may have changed, and it then sees its own timeout.

mod fd;
mod files;
mod futex;
mod mm;
mod net;
mod poll;
mod process;
mod time;
pub mod vfs;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lambda_core::logs::LogCollector;
use lambda_core::runtime_api::RuntimeApi;

pub use files::PROGRAM_PATH;
pub use net::RUNTIME_API_ENDPOINT;

use crate::vm::vcpu::SyscallArgs;
use crate::vm::{Fault, GuestMemory, Vcpu};

/// Most distinct unsupported syscall numbers counted one by one.
pub const MAX_UNSUPPORTED_KINDS: usize = 64;
/// The key under which unsupported syscalls beyond [`MAX_UNSUPPORTED_KINDS`] are counted.
pub const OTHER_UNSUPPORTED: u64 = u64::MAX;

/// A Linux error number, returned to the guest as `-errno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

/// Not an error number: the call must wait (see [`Kernel::wait`]).
const BLOCKED: Errno = Errno(-1);

impl From<Fault> for Errno {
    fn from(_: Fault) -> Errno {
        Errno(libc::EFAULT)
    }
}

/// What a syscall returns to the guest.
pub type SysResult = Result<u64, Errno>;

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Return this value to the guest and go on.
    Return(u64),
    /// The call must wait, until the given time at the latest (`None`: until something
    /// changes). Retry the same call later.
    Block(Option<Instant>),
    /// The program is over.
    Stop(ProcessEnd),
}

/// What a syscall handler may use besides the kernel's own state.
pub struct SyscallContext<'a> {
    /// Guest memory, through the checked accessor.
    pub memory: &'a GuestMemory,
    /// The vCPU, for the few calls that change CPU state (the FS base).
    pub vcpu: &'a Vcpu,
}

/// Counters a user can read after a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyscallStats {
    /// Syscalls made.
    pub syscalls: u64,
    /// Syscalls this kernel does not implement, by number, with how often each was made.
    /// At most [`MAX_UNSUPPORTED_KINDS`] numbers are kept apart; the rest are counted under
    /// [`OTHER_UNSUPPORTED`], so a guest trying every number cannot grow the map.
    pub unsupported: BTreeMap<u64, u64>,
}

/// Where stdin comes from and stdout goes.
enum Stdio {
    /// One-shot: the event on stdin, the response on stdout.
    OneShot {
        stdin: Vec<u8>,
        stdin_read: usize,
        response: Vec<u8>,
    },
    /// Runtime API: stdin is empty, stdout is part of the log.
    Log,
}

/// The state a program sees through its syscalls: memory map, descriptors, files, network,
/// clocks.
pub struct Kernel {
    mm: mm::AddressSpace,
    fds: fd::FdTable,
    fs: vfs::FileSystem,
    cwd: String,
    stdio: Stdio,
    log: LogCollector,
    api: Option<RuntimeApi>,
    clock: time::GuestClock,
    stats: SyscallStats,
    pending_end: Option<ProcessEnd>,
    /// When the call now waiting first blocked, and when it wants to wake.
    blocked_since: Option<Instant>,
    wake_at: Option<Instant>,
    next_local_port: u16,
}

/// How a kernel is set up.
pub struct KernelSetup {
    /// Where the program image ends (the heap starts there).
    pub image_end: u64,
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
    pub fn new(memory: &GuestMemory, setup: KernelSetup) -> Kernel {
        let stdio = match setup.stdin {
            Some(stdin) => Stdio::OneShot {
                stdin,
                stdin_read: 0,
                response: Vec::new(),
            },
            None => Stdio::Log,
        };
        Kernel {
            mm: mm::AddressSpace::new(memory.layout(), setup.image_end),
            fds: fd::FdTable::with_stdio(),
            fs: setup.fs,
            cwd: vfs::TASK_ROOT.to_string(),
            stdio,
            log: setup.log,
            api: setup.api,
            clock: time::GuestClock::new(),
            stats: SyscallStats::default(),
            pending_end: None,
            blocked_since: None,
            wake_at: None,
            next_local_port: 40_000,
        }
    }

    /// Syscall counters.
    pub fn stats(&self) -> &SyscallStats {
        &self.stats
    }

    /// Whether an allocation failed because the function's memory was exhausted.
    pub fn out_of_memory(&self) -> bool {
        self.mm.exhausted()
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

    /// Performs one syscall (or retries one that blocked).
    pub fn handle(&mut self, cx: &SyscallContext<'_>, call: SyscallArgs) -> Step {
        if self.blocked_since.is_none() {
            self.stats.syscalls += 1;
        }
        let result = self.dispatch(cx, call);
        if let Some(end) = self.pending_end.take() {
            return Step::Stop(end);
        }
        match result {
            Err(BLOCKED) => Step::Block(self.wake_at),
            other => {
                self.blocked_since = None;
                self.wake_at = None;
                match other {
                    Ok(value) => Step::Return(value),
                    Err(Errno(errno)) => Step::Return((-i64::from(errno)) as u64),
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
    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), Errno> {
        let since = *self.blocked_since.get_or_insert_with(Instant::now);
        match timeout {
            Some(timeout) if Instant::now() >= since + timeout => Ok(()),
            Some(timeout) => {
                self.wake_at = Some(since + timeout);
                Err(BLOCKED)
            }
            None => {
                self.wake_at = None;
                Err(BLOCKED)
            }
        }
    }

    /// Ends the program after the current syscall.
    fn end(&mut self, end: ProcessEnd) -> SysResult {
        self.pending_end = Some(end);
        Ok(0)
    }

    fn dispatch(&mut self, cx: &SyscallContext<'_>, call: SyscallArgs) -> SysResult {
        let [a0, a1, a2, a3, a4, a5] = call.args;
        let m = cx.memory;
        match call.number {
            0 => self.read(m, a0, a1, a2),
            1 => self.write(m, a0, a1, a2),
            2 => self.openat(m, libc::AT_FDCWD as u64, a0, a1),
            3 => self.close(a0),
            4 | 6 => self.stat_path(m, libc::AT_FDCWD as u64, a0, a1, 0),
            5 => self.fstat(m, a0, a1),
            7 => self.poll(m, a0, a1, poll::millis_timeout(a2)),
            8 => self.lseek(a0, a1, a2),
            9 => self.mm.mmap(m, a0, a1, a2, a3, a4, a5),
            10 => self.mm.mprotect(a0, a1),
            11 => self.mm.munmap(m, a0, a1),
            12 => self.mm.brk(m, a0),
            13 => process::rt_sigaction(m, a2, a3),
            14 => process::rt_sigprocmask(m, a2, a3),
            16 => self.ioctl(m, a0, a1, a2),
            17 => self.pread(m, a0, a1, a2, a3),
            18 => self.pwrite(m, a0, a1, a2, a3),
            19 => self.readv(m, a0, a1, a2),
            20 => self.writev(m, a0, a1, a2),
            21 => self.faccessat(m, libc::AT_FDCWD as u64, a0),
            24 => Ok(0), // sched_yield: one thread, nothing to yield to
            25 => self.mm.mremap(m, a0, a1, a2, a3),
            28 => self.mm.madvise(m, a0, a1, a2),
            32 => self.dup(a0, 0),
            33 => self.dup2(a0, a1),
            35 => self.nanosleep(m, a0),
            39 | 186 => Ok(process::PID),
            41 => self.socket(a0, a1),
            43 => self.accept(),
            42 => self.connect(m, a0, a1, a2),
            44 => self.sendto(m, a0, a1, a2),
            45 => self.recvfrom(m, a0, a1, a2, a3),
            46 => self.sendmsg(m, a0, a1),
            47 => self.recvmsg(m, a0, a1),
            48 => self.shutdown(a0, a1),
            49 | 50 => Err(Errno(libc::EOPNOTSUPP)), // bind, listen: no servers inside
            51 => self.getsockname(m, a0, a1, a2, false),
            52 => self.getsockname(m, a0, a1, a2, true),
            53 => Err(Errno(libc::EOPNOTSUPP)), // socketpair
            54 => Ok(0),                        // setsockopt: accepted, no effect
            55 => self.getsockopt(m, a0, a1, a2, a3, a4),
            60 | 231 => self.end(ProcessEnd::Exited(a0 as i32 & 0xff)),
            62 => self.kill(a0, a1),
            63 => process::uname(m, a0),
            72 => self.fcntl(a0, a1, a2),
            74 | 75 => self.fds.get(a0).map(|_| 0), // fsync, fdatasync: memory is durable enough
            77 => self.ftruncate(a0, a1),
            79 => self.getcwd(m, a0, a1),
            80 => self.chdir(m, a0),
            82 => self.renameat(m, libc::AT_FDCWD as u64, a0, libc::AT_FDCWD as u64, a1),
            83 => self.mkdirat(m, libc::AT_FDCWD as u64, a0),
            84 => self.unlinkat(m, libc::AT_FDCWD as u64, a0, libc::AT_REMOVEDIR as u64),
            87 => self.unlinkat(m, libc::AT_FDCWD as u64, a0, 0),
            89 => self.readlinkat(m, libc::AT_FDCWD as u64, a0, a1, a2),
            96 => self.clock.gettimeofday(m, a0),
            97 => process::getrlimit(m, a0, a1),
            98 => process::getrusage(m, a1),
            99 => process::sysinfo(m, a0),
            102 | 104 | 107 | 108 => Ok(0), // uid, gid, euid, egid: root in its own VM
            110 => Ok(0),                   // getppid: no parent inside the VM
            131 => process::sigaltstack(m, a1),
            158 => process::arch_prctl(cx, a0, a1),
            200 => self.tkill(a0, a1),
            201 => self.clock.time(m, a0),
            202 => self.futex(m, a0, a1, a2, a3),
            204 => process::sched_getaffinity(m, a1, a2),
            213 | 291 => self.epoll_create(a0 & libc::EPOLL_CLOEXEC as u64),
            217 => self.getdents64(m, a0, a1, a2),
            218 => Ok(process::PID), // set_tid_address
            228 => self.clock.clock_gettime(m, a0, a1),
            229 => self.clock.clock_getres(m, a1),
            230 => self.clock_nanosleep(m, a0, a1, a2),
            232 => self.epoll_wait(m, a0, a1, a2, poll::millis_timeout(a3)),
            233 => self.epoll_ctl(m, a0, a1, a2, a3),
            234 => self.tgkill(a0, a1, a2),
            257 => self.openat(m, a0, a1, a2),
            258 => self.mkdirat(m, a0, a1),
            262 => self.stat_path(m, a0, a1, a2, a3),
            263 => self.unlinkat(m, a0, a1, a2),
            264 | 316 => self.renameat(m, a0, a1, a2, a3),
            267 => self.readlinkat(m, a0, a1, a2, a3),
            269 | 439 => self.faccessat(m, a0, a1),
            271 => self.ppoll(m, a0, a1, a2),
            273 => Ok(0), // set_robust_list: no other threads to wake on exit
            281 => self.epoll_wait(m, a0, a1, a2, poll::millis_timeout(a3)),
            284 => self.eventfd(a0, 0),
            288 => self.accept(),
            290 => self.eventfd(a0, a1),
            292 => self.dup3(a0, a1, a2),
            302 => process::prlimit64(m, a0, a1, a2, a3),
            318 => process::getrandom(m, a0, a1),
            // Known and deliberately absent, each with a graceful fallback in glibc and Rust's
            // std: restartable sequences, statx, new threads (the environment has one vCPU).
            334 | 332 | 435 | 56 => Err(Errno(libc::ENOSYS)),
            number => {
                let unsupported = &mut self.stats.unsupported;
                let key = if unsupported.contains_key(&number)
                    || unsupported.len() < MAX_UNSUPPORTED_KINDS
                {
                    number
                } else {
                    OTHER_UNSUPPORTED
                };
                *unsupported.entry(key).or_default() += 1;
                Err(Errno(libc::ENOSYS))
            }
        }
    }
}
