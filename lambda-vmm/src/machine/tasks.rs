//! The program's threads as the run loop keeps them: the CPU state of each thread that is
//! not on a vCPU, and the round-robin order in which they get one.
//!
//! A thread runs on one vCPU at a time. It leaves it when its syscall blocks, when it yields,
//! when it exits, or when it is preempted (its time slice ended, or another vCPU asked);
//! its registers, FPU/SSE/AVX state and FS base are kept here until it runs again. On one
//! vCPU the FPU state of the thread that last ran stays on the vCPU, so a program with one
//! thread never pays for a switch; once several vCPUs run the program, a thread's FPU state
//! is saved as it leaves, so any vCPU can take it.

use std::collections::BTreeMap;
use std::time::Instant;

use kvm_bindings::kvm_xsave;

use crate::kernel::FS_BASE_END;
use crate::vm::vcpu::{SyscallArgs, UserRegs};

/// Where a thread is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) enum TaskState {
    /// On vCPU `cpu`.
    Running {
        /// The vCPU's slot.
        cpu: usize,
    },
    /// Runnable, from these registers.
    Ready(#[serde(with = "crate::file_forms::registers")] UserRegs),
    /// In a syscall that blocked. The call is retried when the thread could run; once it
    /// returns, the thread goes on from `regs` with the result in `rax`.
    Blocked {
        /// Its registers as the call returns them (`rax` aside).
        #[serde(with = "crate::file_forms::registers")]
        regs: UserRegs,
        /// The call.
        call: SyscallArgs,
        /// When the call wants to be retried at the latest (`None`: when something changes).
        #[serde(with = "crate::file_forms::optional_instant")]
        wake: Option<Instant>,
    },
}

/// One thread's CPU state.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Task {
    /// Its FS base (thread pointer).
    pub fs_base: u64,
    /// Its FPU/SSE/AVX state while another thread's is on the vCPU.
    #[serde(with = "crate::file_forms::xsave")]
    pub fpu: Option<Box<kvm_xsave>>,
    /// Where it is.
    pub state: TaskState,
}

impl Clone for Task {
    /// A copy for a snapshot. `kvm_xsave` is not `Clone` (its `extra` tail is a flexible
    /// array for AMX state); `KVM_GET_XSAVE` fills only `region`, which is copied whole.
    fn clone(&self) -> Task {
        Task {
            fs_base: self.fs_base,
            fpu: self.fpu.as_ref().map(|fpu| {
                Box::new(kvm_xsave {
                    region: fpu.region,
                    ..Default::default()
                })
            }),
            state: self.state.clone(),
        }
    }
}

/// Every thread of the program, by id.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Tasks {
    tasks: BTreeMap<u32, Task>,
    /// The thread that was last put on a vCPU, where the round-robin goes on from.
    last: u32,
}

impl Tasks {
    /// One thread, `tid`, running on vCPU `cpu`, which holds its state, with FS base
    /// `fs_base`: a program's first thread (at its start or after `execve`), or a child
    /// process's.
    pub fn only(tid: u32, cpu: usize, fs_base: u64) -> Tasks {
        let first = Task {
            fs_base,
            fpu: None,
            state: TaskState::Running { cpu },
        };
        Tasks {
            tasks: BTreeMap::from([(tid, first)]),
            last: tid,
        }
    }

    /// How many threads there are.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// How many threads are on a vCPU.
    pub fn running(&self) -> usize {
        self.tasks
            .values()
            .filter(|task| matches!(task.state, TaskState::Running { .. }))
            .count()
    }

    /// Whether a thread waits for a vCPU (runnable, not on one).
    pub fn any_ready(&self) -> bool {
        self.tasks
            .values()
            .any(|task| matches!(task.state, TaskState::Ready(_)))
    }

    /// Whether a thread is blocked in a call.
    pub fn any_blocked(&self) -> bool {
        self.tasks
            .values()
            .any(|task| matches!(task.state, TaskState::Blocked { .. }))
    }

    /// The threads on a vCPU, with the vCPU's slot.
    pub fn on_cpus(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        self.tasks
            .iter()
            .filter_map(|(&tid, task)| match task.state {
                TaskState::Running { cpu } => Some((tid, cpu)),
                _ => None,
            })
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
    }

    /// Puts `tid` on vCPU `cpu`.
    pub fn set_running(&mut self, tid: u32, cpu: usize) {
        if let Some(task) = self.tasks.get_mut(&tid) {
            task.state = TaskState::Running { cpu };
            self.last = tid;
        }
    }

    /// Takes `tid` off its vCPU into `state`.
    pub fn set_off_cpu(&mut self, tid: u32, state: TaskState) {
        if let Some(task) = self.tasks.get_mut(&tid) {
            task.state = state;
        }
    }

    /// The thread ids, lowest first.
    pub fn ids(&self) -> Vec<u32> {
        self.tasks.keys().copied().collect()
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

    /// Checks threads read from a snapshot file, for a vCPU whose KVM loads XSAVE regions
    /// within `xsave`: there is one at least, they are the kernel's threads
    /// `kernel_threads` (lowest first), no more and no fewer (a thread only one side knows
    /// would never run, or make its calls as another), each waits in a call (a snapshot
    /// is taken only so), each FS base is one the kernel could have set (below
    /// [`FS_BASE_END`]), and each saved FPU state is one KVM loads
    /// ([`crate::vm::xsave::check`]). Says what is wrong.
    pub fn check(
        &self,
        xsave: crate::vm::xsave::XsaveLimits,
        kernel_threads: &[u32],
    ) -> Result<(), String> {
        if self.tasks.is_empty() {
            return Err("it has no thread".into());
        }
        if !self.tasks.keys().eq(kernel_threads) {
            return Err(format!(
                "the threads whose registers it holds ({:?}) are not the kernel's \
                 ({kernel_threads:?})",
                self.ids()
            ));
        }
        for (tid, task) in &self.tasks {
            if !matches!(task.state, TaskState::Blocked { .. }) {
                return Err(format!("thread {tid} is not waiting in a call"));
            }
            if task.fs_base >= FS_BASE_END {
                return Err(format!(
                    "thread {tid}'s FS base {:#x} is not a canonical address of the program's",
                    task.fs_base
                ));
            }
            if let Some(fpu) = &task.fpu {
                crate::vm::xsave::check(&crate::vm::vcpu::xsave_bytes(fpu), xsave)
                    .map_err(|why| format!("thread {tid}'s FPU state {why}"))?;
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forged_state::assert_refused;

    /// Threads 1 and 2 waiting in `read`, thread 2 with its FPU state saved.
    fn waiting() -> Tasks {
        let mut tasks = Tasks::only(1, 0, 0x7f00_0000_0000);
        let blocked = || TaskState::Blocked {
            regs: UserRegs::default(),
            call: SyscallArgs::default(),
            wake: None,
        };
        tasks.set_off_cpu(1, blocked());
        let mut fpu = Box::<kvm_xsave>::default();
        fpu.region[6] = 0x1f80; // MXCSR
        fpu.region[128] = 0b111; // XSTATE_BV: x87, SSE, AVX
        tasks.add(
            2,
            Task {
                fs_base: FS_BASE_END - 4096,
                fpu: Some(fpu),
                state: blocked(),
            },
        );
        tasks
    }

    /// x87, SSE and AVX, on a CPU with DAZ.
    const XSAVE: crate::vm::xsave::XsaveLimits = crate::vm::xsave::XsaveLimits {
        components: 0b111,
        mxcsr_mask: 0xffff,
    };

    #[test]
    fn threads_a_snapshot_could_not_hold_are_refused() {
        let good = waiting();
        good.check(XSAVE, &[1, 2]).unwrap();
        let refused = |forge: &dyn Fn(&mut Tasks), because: &str| {
            assert_refused(
                &good,
                forge,
                |tasks: &Tasks| tasks.check(XSAVE, &[1, 2]),
                because,
            );
        };
        refused(&|tasks| tasks.set_running(2, 0), "thread 2 is not waiting");
        refused(
            &|tasks| tasks.set_off_cpu(1, TaskState::Ready(UserRegs::default())),
            "thread 1 is not waiting",
        );
        refused(
            &|tasks| tasks.get_mut(1).unwrap().fs_base = 1 << 47,
            "not a canonical address",
        );
        // Canonical, but in the kernel's half, where no FS base the kernel sets can lie.
        refused(
            &|tasks| tasks.get_mut(2).unwrap().fs_base = 0xffff_8000_0000_0000,
            "not a canonical address",
        );
        refused(
            &|tasks| tasks.get_mut(2).unwrap().fpu.as_mut().unwrap().region[128] = 0b1000,
            "thread 2's FPU state holds components 0x8",
        );
        refused(
            &|tasks| {
                tasks.remove(1);
                tasks.remove(2);
            },
            "no thread",
        );
        refused(&|tasks| tasks.remove(2), "are not the kernel's ([1, 2])");
        let why = waiting().check(XSAVE, &[1, 3]).unwrap_err();
        assert!(
            why.contains("([1, 2]) are not the kernel's ([1, 3])"),
            "{why}"
        );
    }
}
