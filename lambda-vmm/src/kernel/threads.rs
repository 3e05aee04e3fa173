//! Threads: the program's thread table (ids, each thread's clear-child-tid word and the wait
//! it is in while another thread runs) and the syscalls that create, name and end threads.
//!
//! The kernel keeps no CPU state: it tells the run loop what to do with a thread's registers
//! through [`Step::Clone`], [`Step::ThreadExit`] and [`Step::Yield`]. Thread `PID` (1) is the
//! program's first thread; the process id is always `PID`.

use std::collections::BTreeMap;
use std::time::Instant;

use super::process::FIRST_PID;
use super::{Errno, Kernel, Step, SysResult, abi};
use crate::mm::GuestMemory;

/// Most threads a program may have at once, as Lambda's limit on processes and threads per
/// execution environment (1,024); one more `clone` answers `EAGAIN`.
pub const MAX_THREADS: usize = 1024;
/// Thread ids go up to Linux's default `pid_max`, then start again at the lowest free one.
const TID_MAX: u32 = 4_194_304;

pub(super) const CSIGNAL: u64 = 0xff;
pub(super) const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_THREAD: u64 = 0x1_0000;
const CLONE_SYSVSEM: u64 = 0x4_0000;
pub(super) const CLONE_SETTLS: u64 = 0x8_0000;
pub(super) const CLONE_PARENT_SETTID: u64 = 0x10_0000;
pub(super) const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
const CLONE_DETACHED: u64 = 0x40_0000;
const CLONE_UNTRACED: u64 = 0x80_0000;
pub(super) const CLONE_CHILD_SETTID: u64 = 0x100_0000;
const CLONE_IO: u64 = 0x8000_0000;
/// What a thread (`CLONE_THREAD`) may also ask for; anything else answers `EINVAL`.
const THREAD_FLAGS: u64 = CSIGNAL
    | CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_UNTRACED
    | CLONE_CHILD_SETTID
    | CLONE_IO;
/// `struct clone_args` up to `cgroup`, the last field this kernel knows.
const CLONE_ARGS_SIZE: u64 = 88;
/// The same in bytes of a host buffer.
const CLONE_ARGS_LEN: usize = 88;
/// The first version of `struct clone_args` (up to `tls`).
const CLONE_ARGS_SIZE_VER0: u64 = 64;

/// A thread the run loop is to start: a copy of the calling thread's registers and FPU
/// state, with `rax` = 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewThread {
    /// Its id (what the parent's call returns).
    pub tid: u32,
    /// Its stack pointer (`None`: the parent's).
    pub stack: Option<u64>,
    /// Its FS base (`None`: the parent's).
    pub tls: Option<u64>,
}

/// What the kernel keeps of a thread.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Thread {
    /// Where `exit` writes 0 and wakes a futex waiter (`set_tid_address`,
    /// `CLONE_CHILD_CLEARTID`); 0 for none.
    clear_child_tid: u64,
    /// The wait it is in while another thread runs (the running thread's is in the kernel).
    #[serde(with = "crate::file_forms::optional_instant")]
    blocked_since: Option<Instant>,
    #[serde(with = "crate::file_forms::optional_instant")]
    wake_at: Option<Instant>,
    /// Its name (`prctl(PR_SET_NAME)`), NUL-padded; empty reads as the program's.
    name: [u8; THREAD_NAME_LEN],
    /// Its signal mask, alternate stack and pending signals.
    pub(super) signals: super::signals::ThreadSignals,
    /// Its scheduling policy (`sched_setscheduler`).
    pub(super) policy: u64,
    /// The head of its robust futex list (`set_robust_list`), 0 for none.
    pub(super) robust_list: u64,
}

/// Bytes of a thread's name with its NUL (Linux's `TASK_COMM_LEN`).
pub(super) const THREAD_NAME_LEN: usize = 16;

/// The thread table.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Threads {
    threads: BTreeMap<u32, Thread>,
    current: u32,
    next_tid: u32,
}

impl Threads {
    /// The table of a program that has just started: its first thread, running.
    pub(super) fn new() -> Threads {
        Threads {
            threads: BTreeMap::from([(first_tid(), Thread::default())]),
            current: first_tid(),
            next_tid: first_tid().saturating_add(1),
        }
    }

    /// The id of the thread making calls.
    pub(super) fn current(&self) -> u32 {
        self.current
    }

    /// Thread `tid`.
    pub(super) fn get(&self, tid: u32) -> Option<&Thread> {
        self.threads.get(&tid)
    }

    /// Thread `tid`, to change.
    pub(super) fn get_mut(&mut self, tid: u32) -> Option<&mut Thread> {
        self.threads.get_mut(&tid)
    }

    /// The thread ids, lowest first.
    pub(super) fn ids(&self) -> Vec<u32> {
        self.threads.keys().copied().collect()
    }

    /// Whether `tid` is one of the program's threads.
    pub(super) fn contains(&self, tid: u32) -> bool {
        self.threads.contains_key(&tid)
    }

    /// How many threads there are.
    pub(super) fn len(&self) -> usize {
        self.threads.len()
    }

    /// Removes thread `tid` (another thread's `execve` ended it).
    pub(super) fn remove(&mut self, tid: u32) {
        self.threads.remove(&tid);
    }

    /// After `execve`: `caller`, the only thread left, becomes thread `leader` and the
    /// current one, as a new program's first thread: no clear-child-tid word, robust list,
    /// alternate stack, name or wait; its signal mask, pending signals and scheduling policy
    /// stay.
    pub(super) fn become_only(&mut self, caller: u32, leader: u32) {
        let mut thread = self.threads.remove(&caller).unwrap_or_default();
        thread.clear_child_tid = 0;
        thread.robust_list = 0;
        thread.name = [0; THREAD_NAME_LEN];
        thread.blocked_since = None;
        thread.wake_at = None;
        thread.signals = thread.signals.for_exec();
        self.threads.clear();
        self.threads.insert(leader, thread);
        self.current = leader;
    }

    /// The table of a child process whose one thread `tid` is a copy of thread `caller`
    /// of this one: the same signal mask, alternate stack and scheduling policy, nothing
    /// pending, no robust list, `clear_child_tid` as the clone asked.
    pub(super) fn for_child(&self, caller: u32, tid: u32, clear_child_tid: u64) -> Threads {
        let parent = self.threads.get(&caller).cloned().unwrap_or_default();
        let thread = Thread {
            clear_child_tid,
            signals: parent.signals.for_child(),
            policy: parent.policy,
            name: parent.name,
            ..Thread::default()
        };
        Threads {
            threads: BTreeMap::from([(tid, thread)]),
            current: tid,
            next_tid: tid.saturating_add(1),
        }
    }

    /// Checks a thread table read back from a snapshot file: one thread at least and no
    /// more than [`MAX_THREADS`], ids from the first pid to [`TID_MAX`], and the next id one
    /// `free_tid` could have left (so that it never hands out an id outside that range).
    /// The thread making calls may be one that is gone: a thread's exit leaves the kernel
    /// on it until the run loop enters another. Says what does not hold.
    pub(super) fn check(&self) -> Result<(), String> {
        if self.threads.is_empty() || self.threads.len() > MAX_THREADS {
            return Err(format!(
                "it holds {} threads, not 1 to {MAX_THREADS}",
                self.threads.len()
            ));
        }
        let ids = FIRST_PID..=TID_MAX;
        if let Some(tid) = self.threads.keys().find(|tid| !ids.contains(tid)) {
            return Err(format!(
                "thread id {tid} is outside {FIRST_PID} to {TID_MAX}"
            ));
        }
        if !(first_tid().saturating_add(1)..=TID_MAX.saturating_add(1)).contains(&self.next_tid) {
            return Err(format!(
                "its next thread id {} is out of range",
                self.next_tid
            ));
        }
        Ok(())
    }

    /// The lowest free id from `next_tid` on, wrapping once past [`TID_MAX`].
    pub(super) fn free_tid(&mut self) -> Option<u32> {
        let after = |tid: u32| {
            if tid >= TID_MAX {
                first_tid().saturating_add(1)
            } else {
                tid.saturating_add(1)
            }
        };
        let start = self.next_tid;
        let mut tid = start;
        while self.threads.contains_key(&tid) {
            tid = after(tid);
            if tid == start {
                return None;
            }
        }
        self.next_tid = after(tid);
        Some(tid)
    }
}

fn first_tid() -> u32 {
    FIRST_PID
}

/// What `clone`, `clone3`, `fork` and `vfork` were asked for, in one shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CloneRequest {
    pub(super) flags: u64,
    pub(super) stack: Option<u64>,
    pub(super) parent_tid: u64,
    pub(super) child_tid: u64,
    pub(super) tls: u64,
}

impl CloneRequest {
    /// Checks what a new thread or process would write or load: a TLS pointer the program
    /// may have (`EPERM`), and the tid words it asked to have set or cleared (`EFAULT`).
    pub(super) fn check_pointers(&self, memory: &GuestMemory) -> Result<(), Errno> {
        if self.flags & CLONE_SETTLS != 0 && self.tls >= crate::mm::layout::USER_END {
            return Err(Errno(libc::EPERM));
        }
        for (flag, addr) in [
            (CLONE_PARENT_SETTID, self.parent_tid),
            (CLONE_CHILD_SETTID, self.child_tid),
            (CLONE_CHILD_CLEARTID, self.child_tid),
        ] {
            if self.flags & flag != 0 {
                memory.validate(addr, 4)?;
            }
        }
        Ok(())
    }
}

impl Kernel {
    /// Makes `tid` the thread whose calls the kernel handles next (the run loop calls this
    /// before handing the kernel a call of another thread). Unknown ids are ignored.
    pub fn enter_thread(&mut self, tid: u32) {
        let current = self.threads.current;
        if tid == current || !self.threads.contains(tid) {
            return;
        }
        if let Some(thread) = self.threads.threads.get_mut(&current) {
            thread.blocked_since = self.blocked_since.take();
            thread.wake_at = self.wake_at.take();
        }
        if let Some(thread) = self.threads.threads.get_mut(&tid) {
            self.blocked_since = thread.blocked_since.take();
            self.wake_at = thread.wake_at.take();
        }
        self.threads.current = tid;
    }

    /// The thread whose calls the kernel is handling.
    pub fn current_thread(&self) -> u32 {
        self.threads.current()
    }

    /// How many threads the program has.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// `gettid`.
    pub(super) fn gettid(&self) -> SysResult {
        Ok(u64::from(self.threads.current()))
    }

    /// `set_tid_address`: the calling thread's clear-child-tid word.
    pub(super) fn set_tid_address(&mut self, addr: u64) -> SysResult {
        let current = self.threads.current();
        if let Some(thread) = self.threads.threads.get_mut(&current) {
            thread.clear_child_tid = addr;
        }
        Ok(u64::from(current))
    }

    /// The calling thread's name (`PR_GET_NAME`).
    pub(super) fn thread_name(&self) -> [u8; THREAD_NAME_LEN] {
        let name = self
            .threads
            .threads
            .get(&self.threads.current())
            .map_or([0; THREAD_NAME_LEN], |thread| thread.name);
        if name[0] == 0 {
            let mut program = [0u8; THREAD_NAME_LEN];
            program[..9].copy_from_slice(b"bootstrap");
            program
        } else {
            name
        }
    }

    /// Names the calling thread (`PR_SET_NAME`): the first 15 bytes, NUL-terminated.
    pub(super) fn set_thread_name(&mut self, name: &[u8]) {
        let current = self.threads.current();
        if let Some(thread) = self.threads.threads.get_mut(&current) {
            thread.name = [0; THREAD_NAME_LEN];
            for (slot, &byte) in thread
                .name
                .iter_mut()
                .zip(name.iter().take(THREAD_NAME_LEN - 1))
            {
                *slot = byte;
            }
        }
    }

    /// `sched_yield`: the run loop lets another thread run.
    pub(super) fn sched_yield(&mut self) -> SysResult {
        self.pending_step = Some(Step::Yield);
        Ok(0)
    }

    /// `clone(flags, stack, parent_tid, child_tid, tls)`.
    pub(super) fn clone_thread(
        &mut self,
        memory: &GuestMemory,
        flags: u64,
        stack: u64,
        parent_tid: u64,
        child_tid: u64,
        tls: u64,
    ) -> SysResult {
        self.spawn(
            memory,
            CloneRequest {
                flags,
                stack: (stack != 0).then_some(stack),
                parent_tid,
                child_tid,
                tls,
            },
        )
    }

    /// `clone3(args, size)`.
    pub(super) fn clone3(&mut self, memory: &GuestMemory, args: u64, size: u64) -> SysResult {
        if !(CLONE_ARGS_SIZE_VER0..=crate::mm::layout::PAGE).contains(&size) {
            return Err(Errno(libc::EINVAL));
        }
        let mut bytes = [0u8; CLONE_ARGS_LEN];
        let known = size.min(CLONE_ARGS_SIZE);
        memory.read(
            args,
            bytes
                .get_mut(..abi::size(known))
                .ok_or(Errno(libc::EINVAL))?,
        )?;
        if size > CLONE_ARGS_SIZE {
            // A newer caller's extra fields must be zero, as Linux requires.
            let mut extra = vec![0u8; abi::size(size.saturating_sub(CLONE_ARGS_SIZE))];
            memory.read(abi::field(args, CLONE_ARGS_SIZE)?, &mut extra)?;
            if extra.iter().any(|&byte| byte != 0) {
                return Err(Errno(libc::E2BIG));
            }
        }
        let field = |index: usize| -> u64 {
            let mut word = [0u8; 8];
            let start = index.saturating_mul(8);
            if let Some(slot) = bytes.get(start..start.saturating_add(8)) {
                word.copy_from_slice(slot);
            }
            u64::from_le_bytes(word)
        };
        // Field 1, `pidfd`, is read only with CLONE_PIDFD, which is not offered.
        let (flags, child_tid, parent_tid, exit_signal) = (field(0), field(2), field(3), field(4));
        let (stack, stack_size, tls, set_tid, set_tid_size, cgroup) =
            (field(5), field(6), field(7), field(8), field(9), field(10));
        // Flags beyond 32 bits (CLONE_CLEAR_SIGHAND, CLONE_INTO_CGROUP), a chosen tid or a
        // cgroup are not offered.
        if flags > u64::from(u32::MAX)
            || flags & CSIGNAL != 0
            || exit_signal > 64
            || set_tid != 0
            || set_tid_size != 0
            || cgroup != 0
        {
            return Err(Errno(libc::EINVAL));
        }
        let stack = match (stack, stack_size) {
            (0, 0) => None,
            (0, _) | (_, 0) => return Err(Errno(libc::EINVAL)),
            (base, size) => Some(base.checked_add(size).ok_or(Errno(libc::EINVAL))?),
        };
        // A new process's exit signal is a field of its own here; `clone`'s flags carry it.
        let flags = if flags & CLONE_THREAD == 0 {
            flags | exit_signal
        } else {
            flags
        };
        self.spawn(
            memory,
            CloneRequest {
                flags,
                stack,
                parent_tid,
                child_tid,
                tls,
            },
        )
    }

    fn spawn(&mut self, memory: &GuestMemory, request: CloneRequest) -> SysResult {
        let flags = request.flags;
        if flags & CLONE_THREAD == 0 {
            // A new process (fork, vfork, posix_spawn).
            return self.new_process(memory, request);
        }
        let thread = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD;
        if flags & thread != thread || flags & !THREAD_FLAGS != 0 {
            return Err(Errno(libc::EINVAL));
        }
        request.check_pointers(memory)?;
        if self.threads.len() >= MAX_THREADS {
            return Err(Errno(libc::EAGAIN));
        }
        let tid = self.threads.free_tid().ok_or(Errno(libc::EAGAIN))?;
        for flag in [CLONE_PARENT_SETTID, CLONE_CHILD_SETTID] {
            let addr = if flag == CLONE_PARENT_SETTID {
                request.parent_tid
            } else {
                request.child_tid
            };
            if flags & flag != 0 {
                memory.write_obj(addr, tid)?;
            }
        }
        let clear_child_tid = if flags & CLONE_CHILD_CLEARTID != 0 {
            request.child_tid
        } else {
            0
        };
        let mut thread = Thread {
            clear_child_tid,
            ..Thread::default()
        };
        // A new thread starts with its creator's signal mask and no alternate stack.
        thread.signals = self
            .threads
            .get(self.threads.current())
            .map(|creator| creator.signals.for_new_thread())
            .unwrap_or_default();
        self.threads.threads.insert(tid, thread);
        self.pending_step = Some(Step::Clone(NewThread {
            tid,
            stack: request.stack,
            tls: (flags & CLONE_SETTLS != 0).then_some(request.tls),
        }));
        Ok(u64::from(tid))
    }

    /// `exit`: ends the calling thread. Its clear-child-tid word is zeroed and one futex
    /// waiter on it woken (how `pthread_join` learns of it). The last thread's `exit` ends the
    /// program with `status`.
    pub(super) fn exit_thread(&mut self, memory: &GuestMemory, status: u64) -> SysResult {
        let tid = self.threads.current();
        let gone = self.threads.threads.remove(&tid).unwrap_or_default();
        self.forget_futex_wait(tid);
        self.release_robust_list(memory, tid, gone.robust_list);
        self.blocked_since = None;
        self.wake_at = None;
        if gone.clear_child_tid != 0 && memory.write_obj(gone.clear_child_tid, 0u32).is_ok() {
            self.futex_wake_all_bits(gone.clear_child_tid, 1);
        }
        if self.threads.len() == 0 {
            return self.exit(status);
        }
        // The kernel stays on the gone thread until the run loop enters the next one.
        self.pending_step = Some(Step::ThreadExit);
        Ok(0)
    }

    /// The program's thread ids, lowest first.
    pub(crate) fn thread_ids(&self) -> Vec<u32> {
        self.threads.threads.keys().copied().collect()
    }
}
