//! Child processes on the machine. One process runs at a time (`kernel/fork.rs` says why):
//! a `fork` stops the parent, keeps its threads' CPU state and, unless the child shares its
//! memory (`vfork`), a copy of its memory (`mm/copy.rs`), and runs the child on the same
//! vCPU from the parent's registers with `rax` = 0. When the child ends (it exits, or a
//! signal or fault kills it), the parent's memory is put back (a `vfork` child's too, if it
//! had replaced itself with `execve`) and its threads run again, the forking one getting
//! the child's pid.
//!
//! A waiting parent's memory copy counts against the function's memory: a `fork` whose copy
//! would take the copies of all waiting parents past the memory size answers `ENOMEM`.

use lambda_core::{Signal, Stop};

use super::core::Core;
use super::cpus::Cpu;
use super::tasks::{TaskState, Tasks};
use super::{Flow, Settled};
use crate::error::VmmError;
use crate::kernel::ChildEnd;
use crate::mm::MemoryCopy;
use crate::program::ProgramImage;
use crate::vm::vcpu::{SyscallArgs, UserRegs};

/// A parent process waiting for its child.
pub(super) struct WaitingParent {
    /// Its threads, the forking one ready to return the child's pid.
    tasks: Tasks,
    /// Its memory, while the child does not share it.
    memory: Option<MemoryCopy>,
    /// Whether the child shares its memory until it execs or ends (`vfork`).
    shares_memory: bool,
    /// Its program (the child's `execve` replaces the machine's; its syscall sites are the
    /// parent's to learn again once it runs).
    image: ProgramImage,
}

/// `-errno` in `rax`.
fn error(errno: i32) -> u64 {
    i64::from(errno).wrapping_neg() as u64
}

impl Core<'_> {
    /// Whether the waiting parents' memory copies, with `more`, stay within the function's
    /// memory size.
    fn copies_fit(&self, more: &MemoryCopy) -> bool {
        let held: u64 = self
            .parents
            .iter()
            .filter_map(|parent| parent.memory.as_ref())
            .map(MemoryCopy::bytes)
            .sum();
        held.saturating_add(more.bytes()) <= self.memory.size()
    }

    /// Carries out thread `tid`'s `fork` (its call `call` answered
    /// [`crate::kernel::Step::Fork`]), which returns to `regs`.
    pub(super) fn fork(
        &mut self,
        cpu: &mut Cpu,
        tid: u32,
        mut regs: UserRegs,
        call: SyscallArgs,
    ) -> Result<Flow, VmmError> {
        if self.wait_alone(cpu, tid, regs, call)? {
            self.kernel.drop_fork();
            return Ok(Flow::Go);
        }
        // The forking thread's FPU state and TLS, which the child starts with too.
        self.load_thread(cpu, tid)?;
        let fpu = cpu.vcpu.save_fpu()?;
        let fs_base = self.tasks.get_mut(tid).map_or(0, |task| task.fs_base);
        let Some(child) = self.kernel.begin_child(self.memory) else {
            regs.rax = error(libc::EAGAIN);
            return self.put_on_cpu(cpu, tid, &regs);
        };
        let memory = if child.shares_memory {
            None
        } else {
            let copy = self.memory.copy_out();
            if !self.copies_fit(&copy) {
                self.kernel.end_child(None);
                regs.rax = error(libc::ENOMEM);
                return self.put_on_cpu(cpu, tid, &regs);
            }
            Some(copy)
        };
        if let Some(addr) = child.child_settid {
            // Checked by the call; the child's own memory only.
            let _ = self.memory.write_obj(addr, child.pid);
        }
        let mut parent_regs = regs;
        parent_regs.rax = u64::from(child.pid);
        self.tasks.set_off_cpu(tid, TaskState::Ready(parent_regs));
        if let Some(task) = self.tasks.get_mut(tid) {
            task.fpu = Some(fpu);
        }
        let child_fs_base = child.tls.unwrap_or(fs_base);
        let tasks = Tasks::only(child.pid, cpu.slot(), child_fs_base);
        let parent_tasks = std::mem::replace(self.tasks, tasks);
        self.parents.push(WaitingParent {
            tasks: parent_tasks,
            memory,
            shares_memory: child.shares_memory,
            image: self.image.clone(),
        });
        // The child goes on from the parent's registers, with the parent's FPU state (still
        // on the vCPU) and TLS.
        let mut child_regs = regs;
        child_regs.rax = 0;
        if let Some(stack) = child.stack {
            child_regs.rsp = stack;
        }
        cpu.current = Some(child.pid);
        cpu.loaded = Some(child.pid);
        if child.tls.is_some() {
            cpu.vcpu.set_fs_base(child_fs_base)?;
        }
        cpu.vcpu.resume(self.memory.physical(), &child_regs)?;
        Ok(Flow::Go)
    }

    /// Before a child's `execve` empties the address space: a `vfork` child still shares
    /// its parent's memory, which is copied out now. `Err(errno)` if the copy does not fit.
    pub(super) fn keep_parent_memory(&mut self) -> Result<(), i32> {
        let Some(parent) = self.parents.last() else {
            return Ok(());
        };
        if !parent.shares_memory || parent.memory.is_some() {
            return Ok(());
        }
        let copy = self.memory.copy_out();
        if !self.copies_fit(&copy) {
            return Err(libc::ENOMEM);
        }
        if let Some(parent) = self.parents.last_mut() {
            parent.memory = Some(copy);
        }
        Ok(())
    }

    /// If `flow` ends the program while a child process runs, the child ends instead (an
    /// exit, or a signal or fault that kills it) and its parent goes on; any other flow (a
    /// timeout, a response too large) stands.
    pub(super) fn child_or_end(&mut self, cpu: &mut Cpu, flow: Flow) -> Result<Flow, VmmError> {
        let Flow::Settled(Settled::Ended(stop)) = &flow else {
            return Ok(flow);
        };
        if self.parents.is_empty() {
            return Ok(flow);
        }
        let end = match stop {
            Stop::Exited(code) => ChildEnd::Exited(*code),
            Stop::Signaled { signal, .. } => ChildEnd::Killed(signal.0),
            _ => return Ok(flow),
        };
        // The thread that ended it is gone; threads of the child on other vCPUs are stopped
        // before the parent's memory comes back under them.
        if let Some(tid) = cpu.current.take() {
            self.tasks.remove(tid);
        }
        cpu.loaded = None;
        for (_, slot) in self.tasks.on_cpus().collect::<Vec<_>>() {
            self.stop_cpu(slot);
        }
        self.child_ending = Some(end);
        self.finish_child_end(cpu)
    }

    /// Ends the running child as [`Core::child_ending`] says, once none of its threads is on
    /// a vCPU (until then nothing runs here): the kernel goes back to the parent, the
    /// parent's memory comes back, its threads run again.
    pub(super) fn finish_child_end(&mut self, cpu: &mut Cpu) -> Result<Flow, VmmError> {
        if self.tasks.running() > 0 {
            return Ok(Flow::Go);
        }
        let (Some(end), Some(parent)) = (self.child_ending.take(), self.parents.pop()) else {
            return Ok(Flow::Go);
        };
        self.kernel.end_child(Some(end));
        if let Some(copy) = &parent.memory
            && self.memory.copy_back(copy).is_err()
        {
            return Ok(Flow::Settled(Settled::Ended(Stop::Signaled {
                signal: Signal::SIGKILL,
                detail: Some(
                    "the memory of a process whose child ended could not be put back".into(),
                ),
            })));
        }
        *self.tasks = parent.tasks;
        *self.image = parent.image;
        // The vCPU held the child's FPU state; every parent thread's is in its task.
        cpu.current = None;
        cpu.loaded = None;
        Ok(Flow::Go)
    }
}
