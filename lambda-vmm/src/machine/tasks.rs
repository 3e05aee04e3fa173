//! The program's threads as the run loop keeps them: the CPU state of each thread that is
//! not on the vCPU, and the round-robin order in which they get it.
//!
//! One thread runs on the vCPU at a time. A thread leaves it when its syscall blocks, when
//! it yields, when it exits, or when its time slice ends; its registers, FPU/SSE/AVX state and
//! FS base are kept here until it runs again. The FPU state of the thread that last ran stays
//! on the vCPU, so a program with one thread never pays for a switch.

use std::collections::BTreeMap;
use std::time::Instant;

use kvm_bindings::kvm_xsave;

use crate::vm::vcpu::{SyscallArgs, UserRegs};

/// Where a thread is.
#[derive(Debug)]
pub(super) enum TaskState {
    /// On the vCPU.
    Running,
    /// Runnable, from these registers.
    Ready(UserRegs),
    /// In a syscall that blocked. The call is retried when the thread could run; once it
    /// returns, the thread goes on from `regs` with the result in `rax`.
    Blocked {
        /// Its registers as the call returns them (`rax` aside).
        regs: UserRegs,
        /// The call.
        call: SyscallArgs,
        /// When the call wants to be retried at the latest (`None`: when something changes).
        wake: Option<Instant>,
    },
}

/// One thread's CPU state.
#[derive(Debug)]
pub(super) struct Task {
    /// Its FS base (thread pointer).
    pub fs_base: u64,
    /// Its FPU/SSE/AVX state while another thread's is on the vCPU.
    pub fpu: Option<Box<kvm_xsave>>,
    /// Where it is.
    pub state: TaskState,
}

/// Every thread of the program, by id.
#[derive(Debug)]
pub(super) struct Tasks {
    tasks: BTreeMap<u32, Task>,
    /// The thread on the vCPU now.
    running: Option<u32>,
    /// The thread whose FPU state and FS base are loaded on the vCPU.
    loaded: Option<u32>,
    /// The thread that ran last, where the round-robin goes on from.
    last: u32,
}

impl Tasks {
    /// The first thread, `tid`, running on a vCPU that holds its state.
    pub fn new(tid: u32) -> Tasks {
        let first = Task {
            fs_base: 0,
            fpu: None,
            state: TaskState::Running,
        };
        Tasks {
            tasks: BTreeMap::from([(tid, first)]),
            running: Some(tid),
            loaded: Some(tid),
            last: tid,
        }
    }

    /// How many threads there are.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// The thread on the vCPU.
    pub fn running(&self) -> Option<u32> {
        self.running
    }

    /// The thread whose FPU state and FS base the vCPU holds.
    pub fn loaded(&self) -> Option<u32> {
        self.loaded
    }

    /// Records that `tid`'s FPU state and FS base are on the vCPU.
    pub fn set_loaded(&mut self, tid: Option<u32>) {
        self.loaded = tid;
    }

    /// The thread `tid`.
    pub fn get_mut(&mut self, tid: u32) -> Option<&mut Task> {
        self.tasks.get_mut(&tid)
    }

    /// Adds a thread.
    pub fn add(&mut self, tid: u32, task: Task) {
        self.tasks.insert(tid, task);
    }

    /// Removes `tid` (it exited).
    pub fn remove(&mut self, tid: u32) {
        self.tasks.remove(&tid);
        if self.running == Some(tid) {
            self.running = None;
        }
        if self.loaded == Some(tid) {
            self.loaded = None;
        }
    }

    /// Puts `tid` on the vCPU.
    pub fn set_running(&mut self, tid: u32) {
        if let Some(task) = self.tasks.get_mut(&tid) {
            task.state = TaskState::Running;
            self.running = Some(tid);
            self.last = tid;
        }
    }

    /// Takes `tid` off the vCPU into `state`.
    pub fn set_off_cpu(&mut self, tid: u32, state: TaskState) {
        if let Some(task) = self.tasks.get_mut(&tid) {
            task.state = state;
        }
        if self.running == Some(tid) {
            self.running = None;
        }
    }

    /// Thread ids in round-robin order: those after the last one that ran, then the rest,
    /// ending with it.
    pub fn round_robin(&self) -> Vec<u32> {
        let after = self.last.saturating_add(1);
        self.tasks
            .range(after..)
            .chain(self.tasks.range(..after))
            .map(|(&tid, _)| tid)
            .collect()
    }

    /// The earliest time a blocked thread wants its call retried.
    pub fn next_wake(&self) -> Option<Instant> {
        self.tasks
            .values()
            .filter_map(|task| match task.state {
                TaskState::Blocked { wake, .. } => wake,
                _ => None,
            })
            .min()
    }
}
