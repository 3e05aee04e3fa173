//! The machine's state while it runs, behind the one lock a vCPU thread takes at each exit:
//! the kernel, the threads' CPU state and who runs where; and what an exit does to them.
//!
//! Every method here runs with the lock held. The guest runs without it: a vCPU thread takes
//! the lock when its vCPU exits, handles the exit, picks what the vCPU runs next, and lets
//! go of the lock for `KVM_RUN`.

use std::sync::Condvar;
use std::sync::atomic::{AtomicBool, Ordering};

use lambda_core::{Signal, Stop};

use super::cpus::Cpu;
use super::faults;
use super::signal_frame::{self, FaultContext};
use super::tasks::{Task, TaskState, Tasks};
use super::{Flow, Settled};
use crate::error::VmmError;
use crate::kernel::{Delivery, Disposition, Kernel, Step};
use crate::mm::GuestMemory;
use crate::program::ProgramImage;
use crate::vm::Exit;
use crate::vm::kick::VcpuThread;
use crate::vm::layout::MAX_VCPUS;
use crate::vm::vcpu::{SyscallArgs, UserRegs};

/// Syscalls that send a signal, after which a thread running on another vCPU may have one
/// to take: `rt_sigqueueinfo`, `kill`, `tkill`, `tgkill`, `rt_tgsigqueueinfo`.
const SIGNAL_SENDERS: [u64; 5] = [129, 62, 200, 234, 297];

/// What the run loop asks at each wait (see [`super::Machine::run`]).
pub(super) type StopWaiting<'a> = &'a mut (dyn FnMut(&mut Kernel, bool) -> bool + Send);

/// The machine's state during a run.
pub(super) struct Core<'a> {
    /// The program's kernel.
    pub kernel: &'a mut Kernel,
    /// The program's threads.
    pub tasks: &'a mut Tasks,
    /// Guest memory.
    pub memory: &'a GuestMemory,
    /// The program (its syscall sites are learned as they are seen; `execve` replaces it).
    pub image: &'a mut ProgramImage,
    /// Whether programs are told of the vDSO (kept for the programs `execve` starts).
    pub vdso: bool,
    /// The thread whose `execve` or `fork` waits for the other threads to leave their
    /// vCPUs: until it goes ahead or fails, no other thread is put on one.
    pub alone_waiting: Option<u32>,
    /// Parent processes waiting for the running one (`fork.rs`), the nearest last.
    pub parents: &'a mut Vec<super::fork::WaitingParent>,
    /// Programs `execve` checked before.
    pub programs: &'a crate::program::ExecCache,
    /// How the running child process ended, while its threads on other vCPUs are being
    /// stopped (`fork.rs`).
    pub child_ending: Option<crate::kernel::ChildEnd>,
    /// The caller's question at each wait.
    pub stop_waiting: StopWaiting<'a>,
    /// How the run ends, once one vCPU thread decided it; the others then stop.
    pub over: Option<Result<Settled, VmmError>>,
    /// Whether more than one vCPU runs the program in this run (decided when the second one
    /// starts): threads' FPU states are then saved as they leave a vCPU.
    pub multi: bool,
    /// The thread running each vCPU, to kick it.
    pub threads: [Option<VcpuThread>; MAX_VCPUS],
    /// Asks each vCPU's run to return at its next kick.
    pub stops: &'a [AtomicBool; MAX_VCPUS],
    /// Signalled when there may be work for an idle vCPU thread, or the run is over.
    pub changed: &'a Condvar,
    /// vCPU threads waiting for work.
    pub idle: usize,
    /// vCPUs made but not running in this run.
    pub spare: Vec<Cpu>,
    /// vCPUs made so far (slots `0..made`).
    pub made: usize,
    /// vCPUs running in this run (each on its own host thread).
    pub started: usize,
    /// Most vCPUs this environment may run at once.
    pub max_cpus: usize,
    /// [`Kernel::futex_wakeups`] when last looked at.
    pub wakeups_seen: u64,
}

impl Core<'_> {
    /// Decides how the run ends (the first decision stands) and stops every other vCPU.
    pub fn end(&mut self, me: usize, result: Result<Settled, VmmError>) {
        if self.over.is_none() {
            self.over = Some(result);
        }
        for slot in 0..MAX_VCPUS {
            if slot != me {
                self.stop_cpu(slot);
            }
        }
        self.changed.notify_all();
    }

    /// Asks the caller whether to stop at this wait (see [`super::Machine::run`]).
    pub fn ask_stop_waiting(&mut self, nothing_runnable: bool) -> bool {
        (self.stop_waiting)(self.kernel, nothing_runnable)
    }

    /// Makes vCPU `slot` return from its run (if a thread runs it).
    pub fn stop_cpu(&self, slot: usize) {
        if let Some(thread) = self.threads[slot] {
            self.stops[slot].store(true, Ordering::Release);
            thread.kick();
        }
    }

    /// What vCPU `cpu`, running thread `tid`, does about `exit`.
    pub fn handle_exit(&mut self, cpu: &mut Cpu, tid: u32, exit: Exit) -> Result<Flow, VmmError> {
        match exit {
            Exit::Syscall => {
                if let Some(site) = cpu.vcpu.stub_syscall_site() {
                    self.image.learn_syscall_site(self.memory, site);
                }
                let call = cpu.vcpu.syscall();
                let regs = cpu.vcpu.syscall_return_regs();
                self.kernel.enter_thread(tid);
                let step = self.kernel.handle(self.memory, call);
                let flow = self.finish_call(cpu, tid, regs, call, step)?;
                if matches!(flow, Flow::Settled(_)) {
                    return Ok(flow);
                }
                if SIGNAL_SENDERS.contains(&call.number) {
                    self.kick_signalled(cpu.slot());
                }
                // The thread blocked (or yielded, or exited): the caller may stop here.
                if cpu.current.is_none() && self.tasks.len() > 0 && self.ask_stop_waiting(false) {
                    return Ok(Flow::Settled(Settled::Waiting));
                }
                Ok(Flow::Go)
            }
            Exit::Exception(info) => {
                let Some(unresolved) = faults::resolve(self.memory, &info, &mut cpu.last_fault)
                else {
                    if cpu.vcpu.continue_after_fault(self.memory.physical())? {
                        return Ok(Flow::Go);
                    }
                    return Ok(Flow::Settled(Settled::Ended(Stop::Signaled {
                        signal: Signal::SIGSEGV,
                        detail: Some(
                            "the exception frame on the kernel stack was rewritten".into(),
                        ),
                    })));
                };
                let regs = cpu.vcpu.exception_regs();
                let disposition = unresolved
                    .signal
                    .map(|signal| self.kernel.fault(tid, signal));
                let (Some(Disposition::Deliver(delivery)), Some(regs)) = (disposition, regs) else {
                    return Ok(Flow::Settled(Settled::Ended(unresolved.stop)));
                };
                let fault = FaultContext {
                    trapno: u64::from(info.vector),
                    error_code: info.error_code.unwrap_or(0),
                    cr2: info.fault_address.unwrap_or(0),
                };
                match self.push_frame(cpu, tid, &regs, &delivery, fault)? {
                    Ok(handler) => {
                        cpu.vcpu.resume(self.memory.physical(), &handler)?;
                        Ok(Flow::Go)
                    }
                    Err(stop) => Ok(Flow::Settled(Settled::Ended(stop))),
                }
            }
            Exit::Preempted => {
                let regs = cpu.vcpu.preempted_regs(self.memory.physical());
                self.take_off(cpu, tid, TaskState::Ready(regs))?;
                Ok(Flow::Go)
            }
            // Retried, or given up, by the vCPU's loop (`cpus.rs`), which counts them.
            Exit::MemoryBusy => Ok(Flow::Go),
            Exit::DeadlineReached => Ok(Flow::Settled(Settled::Ended(Stop::TimedOut))),
            Exit::Wrecked(reason) => Ok(Flow::Settled(Settled::Ended(Stop::Signaled {
                signal: Signal::SIGSEGV,
                detail: Some(reason),
            }))),
        }
    }

    /// Kicks the vCPUs (other than `me`) whose thread now has a signal to take, so it takes
    /// it at once rather than at its next exit.
    fn kick_signalled(&self, me: usize) {
        for (tid, slot) in self.tasks.on_cpus() {
            if slot != me && self.kernel.signal_pending(tid) {
                self.stop_cpu(slot);
            }
        }
    }

    /// Picks what vCPU `cpu` runs next, round-robin: a runnable thread, or a blocked one
    /// whose call now returns. Leaves `cpu.current` empty if there is none.
    pub fn schedule(&mut self, cpu: &mut Cpu) -> Result<Flow, VmmError> {
        if self.child_ending.is_some() {
            // A child process ended while threads of it ran on other vCPUs: none runs
            // until they are all off theirs, then its parent's threads are scheduled below.
            let flow = self.finish_child_end(cpu)?;
            if self.child_ending.is_some() || !matches!(flow, Flow::Go) {
                return Ok(flow);
            }
        }
        if self.tasks.len() == 0 {
            // Every thread exited without ending the program: cannot happen, as the last
            // thread's `exit` ends it; treated as an exit with status 0.
            return Ok(Flow::Settled(Settled::Ended(Stop::Exited(0))));
        }
        for tid in self.tasks.round_robin() {
            if self.alone_waiting.is_some_and(|waiting| waiting != tid) {
                continue;
            }
            let Some(task) = self.tasks.get_mut(tid) else {
                continue;
            };
            match task.state {
                TaskState::Running { .. } => {}
                TaskState::Ready(regs) => return self.put_on_cpu(cpu, tid, &regs),
                TaskState::Blocked { mut regs, call, .. } if self.kernel.signal_pending(tid) => {
                    // A signal interrupts the call: restarted after the handler under
                    // SA_RESTART, else EINTR.
                    self.kernel.enter_thread(tid);
                    self.kernel.interrupt_wait();
                    if self.alone_waiting == Some(tid) {
                        self.alone_waiting = None;
                    }
                    let restart = self
                        .kernel
                        .next_signal(tid)
                        .is_some_and(|signal| self.kernel.restarts(signal, call.number));
                    if restart {
                        regs.rax = call.number;
                        regs.rip = regs.rip.wrapping_sub(2);
                    } else {
                        regs.rax = i64::from(-libc::EINTR) as u64;
                    }
                    return self.put_on_cpu(cpu, tid, &regs);
                }
                TaskState::Blocked { regs, call, .. } => {
                    self.kernel.enter_thread(tid);
                    let step = self.kernel.handle(self.memory, call);
                    let flow = self.finish_call(cpu, tid, regs, call, step)?;
                    if !matches!(flow, Flow::Go) || cpu.current.is_some() {
                        return Ok(flow);
                    }
                }
            }
        }
        Ok(Flow::Go)
    }

    /// Carries out what the kernel said about thread `tid`'s call `call`, which returns to
    /// `regs`: the thread goes on (on `cpu`), waits, yields or is gone.
    fn finish_call(
        &mut self,
        cpu: &mut Cpu,
        tid: u32,
        mut regs: UserRegs,
        call: SyscallArgs,
        step: Step,
    ) -> Result<Flow, VmmError> {
        if self.alone_waiting == Some(tid) && !matches!(step, Step::Exec | Step::Fork) {
            // Its `execve` or `fork` failed on a retry: the other threads may run again.
            self.alone_waiting = None;
        }
        match step {
            Step::Return(value) => {
                regs.rax = value;
                return self.put_on_cpu(cpu, tid, &regs);
            }
            Step::SetFsBase(base) => {
                if let Some(task) = self.tasks.get_mut(tid) {
                    task.fs_base = base;
                }
                if cpu.loaded == Some(tid) {
                    cpu.vcpu.set_fs_base(base)?;
                }
                regs.rax = 0;
                return self.put_on_cpu(cpu, tid, &regs);
            }
            Step::Clone(new) => {
                let mut child = regs;
                child.rax = 0;
                if let Some(stack) = new.stack {
                    child.rsp = stack;
                }
                regs.rax = u64::from(new.tid);
                // The child starts with the parent's FPU state, loaded on the vCPU.
                self.load_thread(cpu, tid)?;
                let fpu = cpu.vcpu.save_fpu()?;
                let fs_base = self.tasks.get_mut(tid).map_or(0, |task| task.fs_base);
                self.tasks.add(
                    new.tid,
                    Task {
                        fs_base: new.tls.unwrap_or(fs_base),
                        fpu: Some(fpu),
                        state: TaskState::Ready(child),
                    },
                );
                return self.put_on_cpu(cpu, tid, &regs);
            }
            Step::ThreadExit => {
                self.tasks.remove(tid);
                if cpu.current == Some(tid) {
                    cpu.current = None;
                }
                if cpu.loaded == Some(tid) {
                    cpu.loaded = None;
                }
            }
            Step::Yield => {
                regs.rax = 0;
                self.take_off(cpu, tid, TaskState::Ready(regs))?;
            }
            Step::Block(wake) => {
                self.take_off(cpu, tid, TaskState::Blocked { regs, call, wake })?;
            }
            Step::SigReturn => return self.sigreturn(cpu, tid, &regs),
            Step::Exec => return self.exec(cpu, tid, regs, call),
            Step::Fork => return self.fork(cpu, tid, regs, call),
            Step::Stop(end) => return Ok(Flow::Settled(Settled::Ended(end.stop()))),
        }
        Ok(Flow::Go)
    }

    /// Takes thread `tid` off `cpu` into `state`; with several vCPUs running, its FPU state
    /// is saved now, so any vCPU can take the thread next.
    pub fn take_off(&mut self, cpu: &mut Cpu, tid: u32, state: TaskState) -> Result<(), VmmError> {
        self.tasks.set_off_cpu(tid, state);
        if cpu.current == Some(tid) {
            cpu.current = None;
        }
        if self.multi {
            self.unload(cpu)?;
        }
        Ok(())
    }

    /// Makes thread `tid` (on `cpu`, in call `call`, returning to `regs`) run alone, for an
    /// `execve` or `fork`: if other threads are on other vCPUs, they are stopped (a kick),
    /// `tid` waits in its call, which is retried, and no other thread gets a vCPU meanwhile.
    /// Says whether `tid` must wait.
    pub(super) fn wait_alone(
        &mut self,
        cpu: &mut Cpu,
        tid: u32,
        regs: UserRegs,
        call: SyscallArgs,
    ) -> Result<bool, VmmError> {
        let elsewhere: Vec<usize> = self
            .tasks
            .on_cpus()
            .filter(|&(other, _)| other != tid)
            .map(|(_, slot)| slot)
            .collect();
        if elsewhere.is_empty() {
            self.alone_waiting = None;
            return Ok(false);
        }
        self.alone_waiting = Some(tid);
        for slot in elsewhere {
            self.stop_cpu(slot);
        }
        self.take_off(
            cpu,
            tid,
            TaskState::Blocked {
                regs,
                call,
                wake: None,
            },
        )?;
        Ok(true)
    }

    /// Saves the FPU state `cpu` holds for a thread into that thread.
    pub fn unload(&mut self, cpu: &mut Cpu) -> Result<(), VmmError> {
        if let Some(previous) = cpu.loaded.take() {
            let saved = cpu.vcpu.save_fpu()?;
            if let Some(task) = self.tasks.get_mut(previous) {
                task.fpu = Some(saved);
            }
        }
        Ok(())
    }

    /// Loads thread `tid`'s FPU state and FS base on `cpu`, saving those of the thread that
    /// had it.
    pub(super) fn load_thread(&mut self, cpu: &mut Cpu, tid: u32) -> Result<(), VmmError> {
        if cpu.loaded == Some(tid) {
            return Ok(());
        }
        self.unload(cpu)?;
        let Some(task) = self.tasks.get_mut(tid) else {
            return Ok(());
        };
        if let Some(fpu) = task.fpu.take() {
            cpu.vcpu.load_fpu(&fpu)?;
        }
        cpu.vcpu.set_fs_base(task.fs_base)?;
        cpu.loaded = Some(tid);
        Ok(())
    }

    /// Runs thread `tid` on `cpu` from `regs` next, in the handler of a signal it has
    /// pending if any (or the program ends, if that signal's action ends it).
    pub(super) fn put_on_cpu(
        &mut self,
        cpu: &mut Cpu,
        tid: u32,
        regs: &UserRegs,
    ) -> Result<Flow, VmmError> {
        self.load_thread(cpu, tid)?;
        let mut regs = *regs;
        if self.kernel.signal_pending(tid) {
            match self.kernel.take_signal(tid) {
                None => {}
                Some(Disposition::Terminate(signal)) => {
                    return Ok(Flow::Settled(Settled::Ended(Stop::Signaled {
                        signal: Signal(signal),
                        detail: None,
                    })));
                }
                Some(Disposition::Deliver(delivery)) => {
                    match self.push_frame(cpu, tid, &regs, &delivery, FaultContext::default())? {
                        Ok(handler) => regs = handler,
                        Err(stop) => return Ok(Flow::Settled(Settled::Ended(stop))),
                    }
                }
            }
        }
        cpu.vcpu.resume(self.memory.physical(), &regs)?;
        self.tasks.set_running(tid, cpu.slot());
        cpu.current = Some(tid);
        Ok(Flow::Go)
    }

    /// Writes the frame of `delivery` for thread `tid` (loaded on `cpu`), stopped at `regs`;
    /// returns the handler's registers, or how the program ends if the frame cannot be
    /// written (SIGSEGV, as Linux forces it).
    fn push_frame(
        &mut self,
        cpu: &mut Cpu,
        tid: u32,
        regs: &UserRegs,
        delivery: &Delivery,
        fault: FaultContext,
    ) -> Result<Result<UserRegs, Stop>, VmmError> {
        let signal = delivery.info.signo;
        let segv = |why: String| Stop::Signaled {
            signal: Signal::SIGSEGV,
            detail: Some(format!("cannot run the handler of signal {signal}: {why}")),
        };
        if !delivery.action.has_restorer() {
            return Ok(Err(segv("it has no SA_RESTORER to return through".into())));
        }
        let fpu = cpu.vcpu.save_fpu()?;
        match signal_frame::push(self.memory, regs, &fpu, delivery, fault) {
            Ok((handler, switched)) => {
                if switched {
                    self.kernel.disarm_altstack(tid);
                }
                Ok(Ok(handler))
            }
            Err(error) => Ok(Err(segv(format!("its frame does not fit ({error})")))),
        }
    }

    /// `rt_sigreturn` of thread `tid`, whose stack pointer `regs.rsp` is at the frame's
    /// ucontext: its registers, FPU state, mask and alternate stack come back from there. A
    /// frame that cannot be read or holds an FPU state KVM refuses ends the program with
    /// SIGSEGV, as Linux does.
    fn sigreturn(&mut self, cpu: &mut Cpu, tid: u32, regs: &UserRegs) -> Result<Flow, VmmError> {
        self.load_thread(cpu, tid)?;
        let segv = |why: String| {
            Ok(Flow::Settled(Settled::Ended(Stop::Signaled {
                signal: Signal::SIGSEGV,
                detail: Some(format!("rt_sigreturn: {why}")),
            })))
        };
        let restored = match signal_frame::pop(self.memory, regs.rsp) {
            Ok(restored) => restored,
            Err(error) => return segv(format!("no signal frame at {:#x} ({error})", regs.rsp)),
        };
        if let Some(fpu) = &restored.fpu
            && let Err(error) = cpu.vcpu.load_fpu(fpu)
        {
            return segv(format!("the frame's FPU state is not valid ({error})"));
        }
        self.kernel
            .return_from_handler(tid, restored.mask, restored.altstack);
        self.put_on_cpu(cpu, tid, &restored.regs)
    }
}
