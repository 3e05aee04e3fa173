//! The guest's kernel: a checked subset of the Linux x86-64 syscall ABI, one file per family
//! and the dispatch table here.
//!
//! Every pointer a guest passes is used only through [`GuestMemory`]; every count is bounded;
//! a syscall the kernel does not know returns `ENOSYS` and is counted, never panics.

mod fs;
mod futex;
mod mm;
mod process;
mod stdio;
mod time;

use std::collections::BTreeMap;
use std::time::Instant;

pub use fs::PROGRAM_PATH;
pub use stdio::{LogTail, Stdio};

use crate::vm::vcpu::SyscallArgs;
use crate::vm::{Fault, GuestMemory, Vcpu};

/// A Linux error number, returned to the guest as `-errno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

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
    /// Wrote more than the response limit to stdout.
    ResponseTooLarge,
}

/// What the run loop does after a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Return this value to the guest and go on.
    Return(u64),
    /// The program is over.
    Stop(ProcessEnd),
}

/// What a syscall handler may use besides the kernel's own state.
pub struct SyscallContext<'a> {
    /// Guest memory, through the checked accessor.
    pub memory: &'a GuestMemory,
    /// The vCPU, for the few calls that change CPU state (the FS base).
    pub vcpu: &'a Vcpu,
    /// When the invocation must end; sleeps never pass it.
    pub deadline: Instant,
}

/// Counters a user can read after a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyscallStats {
    /// Syscalls made.
    pub syscalls: u64,
    /// Syscalls this kernel does not implement, by number, with how often each was made.
    pub unsupported: BTreeMap<u64, u64>,
}

/// The state a program sees through its syscalls: memory map, files, stdio, clocks.
pub struct Kernel {
    mm: mm::AddressSpace,
    stdio: Stdio,
    clock: time::GuestClock,
    stats: SyscallStats,
    pending_end: Option<ProcessEnd>,
}

impl Kernel {
    /// A kernel for a program whose image ends at `image_end`, with `stdin` as its input.
    pub fn new(memory: &GuestMemory, image_end: u64, stdin: Vec<u8>) -> Kernel {
        Kernel {
            mm: mm::AddressSpace::new(memory.layout(), image_end),
            stdio: Stdio::new(stdin),
            clock: time::GuestClock::new(),
            stats: SyscallStats::default(),
            pending_end: None,
        }
    }

    /// Stdout and the log.
    pub fn stdio(&self) -> &Stdio {
        &self.stdio
    }

    /// Takes stdout and the log out of the kernel.
    pub fn into_stdio(self) -> Stdio {
        self.stdio
    }

    /// Syscall counters.
    pub fn stats(&self) -> &SyscallStats {
        &self.stats
    }

    /// Whether an allocation failed because the function's memory was exhausted.
    pub fn out_of_memory(&self) -> bool {
        self.mm.exhausted()
    }

    /// Performs one syscall.
    pub fn handle(&mut self, cx: &SyscallContext<'_>, call: SyscallArgs) -> Step {
        self.stats.syscalls += 1;
        let result = self.dispatch(cx, call);
        if let Some(end) = self.pending_end.take() {
            return Step::Stop(end);
        }
        match result {
            Ok(value) => Step::Return(value),
            Err(Errno(errno)) => Step::Return((-i64::from(errno)) as u64),
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
            3 => self.close(a0),
            4 | 6 => fs::stat_path(m, a0, a1),
            5 => self.fstat(m, a0, a1),
            7 => self.poll(m, a0, a1),
            8 => self.lseek(a0),
            9 => self.mm.mmap(m, a0, a1, a2, a3, a4, a5),
            10 => self.mm.mprotect(a0, a1),
            11 => self.mm.munmap(m, a0, a1),
            12 => self.mm.brk(m, a0),
            13 => process::rt_sigaction(m, a2, a3),
            14 => process::rt_sigprocmask(m, a2, a3),
            16 => self.ioctl(a0),
            17 | 18 => self.pread_pwrite(a0),
            19 => self.readv(m, a0, a1, a2),
            20 => self.writev(m, a0, a1, a2),
            21 => fs::access(m, a0),
            24 => Ok(0), // sched_yield: one thread, nothing to yield to
            25 => self.mm.mremap(m, a0, a1, a2, a3),
            28 => self.mm.madvise(m, a0, a1, a2),
            32 => self.dup(a0),
            35 => self.clock.nanosleep(m, cx.deadline, a0, a1),
            39 | 186 => Ok(process::PID),
            60 | 231 => self.end(ProcessEnd::Exited(a0 as i32 & 0xff)),
            62 => self.kill(a0, a1),
            63 => process::uname(m, a0),
            72 => self.fcntl(a0, a1),
            79 => fs::getcwd(m, a0, a1),
            89 => fs::readlink(m, a0, a1, a2),
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
            202 => futex::futex(m, cx.deadline, a0, a1, a2, a3),
            204 => process::sched_getaffinity(m, a1, a2),
            218 => Ok(process::PID), // set_tid_address
            228 => self.clock.clock_gettime(m, a0, a1),
            229 => self.clock.clock_getres(m, a1),
            230 => self.clock.clock_nanosleep(m, cx.deadline, a0, a1, a2),
            234 => self.tgkill(a0, a1, a2),
            257 => fs::openat(m, a1),
            262 => self.newfstatat(m, a0, a1, a2, a3),
            267 => fs::readlink(m, a1, a2, a3),
            273 => Ok(0), // set_robust_list: no other threads to wake on exit
            // Known and deliberately absent, each with a graceful fallback in glibc and Rust's
            // std: restartable sequences, and new threads (the environment has one vCPU).
            334 | 435 | 56 => Err(Errno(libc::ENOSYS)),
            302 => process::prlimit64(m, a0, a1, a2, a3),
            318 => process::getrandom(m, a0, a1),
            // Calls a program may try and that have a graceful fallback: no threads, no
            // processes, no rseq, no statx, no io_uring.
            number => {
                *self.stats.unsupported.entry(number).or_default() += 1;
                Err(Errno(libc::ENOSYS))
            }
        }
    }
}
