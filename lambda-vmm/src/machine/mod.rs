//! A booted program in its micro-VM: the vCPU run loop joined to the kernel, with syscalls
//! that can wait and threads that share the vCPU. Both contracts drive one of these.

use std::time::{Duration, Instant};

use lambda_core::{FunctionConfig, Signal, Stop};

mod faults;
mod signal_frame;
mod tasks;

use crate::error::VmmError;
use crate::kernel::{Delivery, Disposition, Kernel, KernelSetup, Step, SyscallStats};
use crate::program::{ProgramImage, StartupInfo, build_stack};
use crate::trace::span;
use crate::vm::kick::Deadline;
use crate::vm::spare::SparePool;
use crate::vm::vcpu::{SyscallArgs, UserRegs};
use crate::vm::{Exit, MicroVm, kvm, teardown};
use signal_frame::FaultContext;
use tasks::{Task, TaskState, Tasks};

/// Why [`Machine::run`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The program is waiting in a syscall and the caller asked to stop there; the call is
    /// kept and retried by the next `run`.
    Waiting,
    /// The program is over (or must be: a crash or timeout).
    Ended(Stop),
}

/// How the backend boots its machines.
#[derive(Clone, Default)]
pub struct MachineOptions {
    /// Where ready-made VMs come from, if anywhere.
    pub spares: Option<std::sync::Arc<SparePool>>,
    /// Whether programs are told of the vDSO (`AT_SYSINFO_EHDR`): without it they make a
    /// syscall (a VM exit) for every clock reading.
    pub no_vdso: bool,
    /// Whether guest memory is kept on 4 KiB host pages (no `MADV_HUGEPAGE`).
    pub no_huge_pages: bool,
}

/// A program running in a micro-VM.
pub struct Machine {
    vm: Option<Box<MicroVm>>,
    image: ProgramImage,
    kernel: Kernel,
    tasks: Tasks,
    setup: Duration,
    from_spare: bool,
    /// The last page fault and how many times in a row it came back resolved.
    last_fault: (u64, u32),
}

fn random_seed() -> [u8; 16] {
    let mut seed = [0u8; 16];
    if crate::host::fill_random(&mut seed).is_err() {
        // Only the stack protector and pointer guard seeds come from here; a time-derived
        // value beats failing the start.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        seed = (now.as_nanos() ^ u128::from(std::process::id())).to_le_bytes();
    }
    seed
}

impl Machine {
    /// Creates a VM for `config`, loads `image` and prepares it to run with `envp`.
    pub fn boot(
        image: &ProgramImage,
        config: &FunctionConfig,
        envp: &[String],
        options: &MachineOptions,
        make_setup: impl FnOnce(i64) -> KernelSetup,
    ) -> Result<Machine, VmmError> {
        let start = Instant::now();
        let spare = options
            .spares
            .as_ref()
            .and_then(|pool| pool.take(config.memory_bytes()));
        let from_spare = spare.is_some();
        let mut vm = match spare {
            Some(vm) => vm,
            None => Box::new(MicroVm::new(config.memory_bytes())?),
        };
        vm.memory
            .physical()
            .allow_huge_pages(!options.no_huge_pages);
        let prepared = (|| -> Result<(), VmmError> {
            image.load_into(&vm.memory)?;
            let argv = [crate::kernel::PROGRAM_PATH.to_string()];
            let startup = StartupInfo {
                argv: &argv,
                envp,
                random: random_seed(),
                hwcap: kvm::context().map_or(0, |context| context.hwcap),
                vdso: !options.no_vdso,
            };
            let stack = build_stack(image, &vm.memory, &startup)?;
            vm.vcpu.start(image.entry(), stack)?;
            Ok(())
        })();
        if let Err(error) = prepared {
            teardown::dispose(vm);
            return Err(error);
        }
        let kernel = Kernel::new(make_setup(vm.vcpu.tsc_offset()));
        let tasks = Tasks::new(kernel.current_thread());
        Ok(Machine {
            vm: Some(vm),
            image: image.clone(),
            kernel,
            tasks,
            setup: start.elapsed(),
            from_spare,
            last_fault: (0, 0),
        })
    }

    /// Whether the VM came ready-made from the spare pool.
    pub fn used_spare(&self) -> bool {
        self.from_spare
    }

    /// How long [`Machine::boot`] took.
    pub fn setup_time(&self) -> Duration {
        self.setup
    }

    /// The kernel's state.
    pub fn kernel(&mut self) -> &mut Kernel {
        &mut self.kernel
    }

    /// Syscall counters.
    pub fn stats(&self) -> &SyscallStats {
        self.kernel.stats()
    }

    /// VM exits so far.
    pub fn exits(&self) -> u64 {
        self.vm.as_ref().map_or(0, |vm| vm.vcpu.exits())
    }

    /// Syscalls so far that entered from a patched site (see `syscall_sites`).
    pub fn direct_syscalls(&self) -> u64 {
        self.vm.as_ref().map_or(0, |vm| vm.vcpu.direct_syscalls())
    }

    /// Guest memory touched, in MB (rounded up).
    pub fn memory_used_mb(&self) -> u32 {
        self.vm
            .as_ref()
            .map_or(0, |vm| vm.memory.resident_bytes().div_ceil(1 << 20) as u32)
    }

    /// Whether the program ran out of the function's memory.
    pub fn out_of_memory(&self) -> bool {
        self.vm.as_ref().is_some_and(|vm| vm.memory.out_of_memory())
    }

    /// Page faults the VMM resolved so far (each one VM exit).
    pub fn page_faults(&self) -> u64 {
        self.vm
            .as_ref()
            .map_or(0, |vm| vm.memory.stats().page_faults)
    }

    /// Runs the program until it ends, the deadline passes, or a thread waits in a syscall
    /// and `stop_waiting` says to stop there. It is asked each time a thread starts to wait
    /// (with `false`) and whenever no thread can run (with `true`). Waits the caller does not
    /// stop at are slept out (to the earliest timeout, at most to the deadline) once no thread
    /// can run.
    pub fn run(
        &mut self,
        deadline: Instant,
        mut stop_waiting: impl FnMut(&mut Kernel, bool) -> bool,
    ) -> Result<Settled, VmmError> {
        span!("run");
        let kick = Deadline::arm(deadline);
        let mut slice: Option<Deadline> = None;
        loop {
            let Some(tid) = self.tasks.running() else {
                slice = None;
                match self.schedule(deadline, &mut stop_waiting)? {
                    Flow::Go => continue,
                    Flow::Settled(settled) => return Ok(settled),
                }
            };
            if slice.is_none() && self.tasks.len() > 1 {
                slice = Some(Deadline::arm(Instant::now() + TIME_SLICE));
            }
            let vm = self
                .vm
                .as_mut()
                .expect("a machine runs until it is dropped");
            self.kernel
                .publish_clock(vm.memory.physical(), crate::vm::layout::VVAR_FRAME);
            match vm.vcpu.run(vm.memory.physical(), &kick, slice.as_ref()) {
                Ok(Exit::Syscall) => {
                    if let Some(site) = vm.vcpu.stub_syscall_site() {
                        self.image.syscall_sites().learn(&vm.memory, site);
                    }
                    let call = vm.vcpu.syscall();
                    let regs = vm.vcpu.syscall_return_regs();
                    self.kernel.enter_thread(tid);
                    let step = self.kernel.handle(&vm.memory, call);
                    match self.finish_call(tid, regs, call, step)? {
                        Flow::Go => {}
                        Flow::Settled(settled) => return Ok(settled),
                    }
                    if self.tasks.running().is_none() && self.tasks.len() > 0 {
                        // The thread blocked: the caller may stop here.
                        if stop_waiting(&mut self.kernel, false) {
                            return Ok(Settled::Waiting);
                        }
                    }
                }
                Ok(Exit::Exception(info)) => {
                    let Some(unresolved) = faults::resolve(&vm.memory, &info, &mut self.last_fault)
                    else {
                        continue;
                    };
                    let regs = vm.vcpu.exception_regs();
                    let disposition = unresolved
                        .signal
                        .map(|signal| self.kernel.fault(tid, signal));
                    let (Some(Disposition::Deliver(delivery)), Some(regs)) = (disposition, regs)
                    else {
                        return Ok(Settled::Ended(unresolved.stop));
                    };
                    let fault = FaultContext {
                        trapno: u64::from(info.vector),
                        error_code: info.error_code.unwrap_or(0),
                        cr2: info.fault_address.unwrap_or(0),
                    };
                    match self.push_frame(tid, &regs, &delivery, fault)? {
                        Ok(handler) => {
                            let vm = self
                                .vm
                                .as_mut()
                                .expect("a machine runs until it is dropped");
                            vm.vcpu.resume(vm.memory.physical(), &handler);
                        }
                        Err(stop) => return Ok(Settled::Ended(stop)),
                    }
                }
                Ok(Exit::SliceEnded) => {
                    slice = None;
                    if let Some(regs) = vm.vcpu.preempted_regs() {
                        self.tasks.set_off_cpu(tid, TaskState::Ready(regs));
                    }
                }
                Ok(Exit::DeadlineReached) => return Ok(Settled::Ended(Stop::TimedOut)),
                Ok(Exit::Wrecked(reason)) => {
                    return Ok(Settled::Ended(Stop::Signaled {
                        signal: Signal::SIGSEGV,
                        detail: Some(reason),
                    }));
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn vm_mut(&mut self) -> &mut MicroVm {
        self.vm
            .as_mut()
            .expect("a machine runs until it is dropped")
    }

    /// Picks the next thread to run, round-robin: a runnable one, or a blocked one whose
    /// call now returns. With none, stops if `stop_waiting` says so, else sleeps until the
    /// earliest timeout of a blocked call (at most to the deadline) and looks again.
    fn schedule(
        &mut self,
        deadline: Instant,
        stop_waiting: &mut impl FnMut(&mut Kernel, bool) -> bool,
    ) -> Result<Flow, VmmError> {
        loop {
            if self.tasks.len() == 0 {
                // Every thread exited without ending the program: cannot happen, as the last
                // thread's `exit` ends it; treated as an exit with status 0.
                return Ok(Flow::Settled(Settled::Ended(Stop::Exited(0))));
            }
            for tid in self.tasks.round_robin() {
                let Some(task) = self.tasks.get_mut(tid) else {
                    continue;
                };
                match task.state {
                    TaskState::Running => {}
                    TaskState::Ready(regs) => return self.put_on_cpu(tid, &regs),
                    TaskState::Blocked { mut regs, call, .. }
                        if self.kernel.signal_pending(tid) =>
                    {
                        // A signal interrupts the call: restarted after the handler under
                        // SA_RESTART, else EINTR.
                        self.kernel.enter_thread(tid);
                        self.kernel.interrupt_wait();
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
                        return self.put_on_cpu(tid, &regs);
                    }
                    TaskState::Blocked { regs, call, .. } => {
                        self.kernel.enter_thread(tid);
                        let vm = self
                            .vm
                            .as_mut()
                            .expect("a machine runs until it is dropped");
                        let step = self.kernel.handle(&vm.memory, call);
                        let flow = self.finish_call(tid, regs, call, step)?;
                        if !matches!(flow, Flow::Go) || self.tasks.running().is_some() {
                            return Ok(flow);
                        }
                    }
                }
            }
            if stop_waiting(&mut self.kernel, true) {
                return Ok(Flow::Settled(Settled::Waiting));
            }
            let until = self
                .tasks
                .next_wake()
                .map_or(deadline, |wake| wake.min(deadline));
            let now = Instant::now();
            if until > now {
                std::thread::sleep(until - now);
            }
            if Instant::now() >= deadline {
                return Ok(Flow::Settled(Settled::Ended(Stop::TimedOut)));
            }
        }
    }

    /// Carries out what the kernel said about thread `tid`'s call `call`, which returns to
    /// `regs`: the thread goes on (on the vCPU), waits, yields or is gone.
    fn finish_call(
        &mut self,
        tid: u32,
        mut regs: UserRegs,
        call: SyscallArgs,
        step: Step,
    ) -> Result<Flow, VmmError> {
        match step {
            Step::Return(value) => {
                regs.rax = value;
                return self.put_on_cpu(tid, &regs);
            }
            Step::SetFsBase(base) => {
                if let Some(task) = self.tasks.get_mut(tid) {
                    task.fs_base = base;
                }
                if self.tasks.loaded() == Some(tid) {
                    self.vm_mut().vcpu.set_fs_base(base)?;
                }
                regs.rax = 0;
                return self.put_on_cpu(tid, &regs);
            }
            Step::Clone(new) => {
                let mut child = regs;
                child.rax = 0;
                if let Some(stack) = new.stack {
                    child.rsp = stack;
                }
                regs.rax = u64::from(new.tid);
                // The child starts with the parent's FPU state, loaded on the vCPU.
                self.load_thread(tid)?;
                let fpu = self.vm_mut().vcpu.save_fpu()?;
                let fs_base = self.tasks.get_mut(tid).map_or(0, |task| task.fs_base);
                self.tasks.add(
                    new.tid,
                    Task {
                        fs_base: new.tls.unwrap_or(fs_base),
                        fpu: Some(fpu),
                        state: TaskState::Ready(child),
                    },
                );
                return self.put_on_cpu(tid, &regs);
            }
            Step::ThreadExit => self.tasks.remove(tid),
            Step::Yield => {
                regs.rax = 0;
                self.tasks.set_off_cpu(tid, TaskState::Ready(regs));
            }
            Step::Block(wake) => {
                self.tasks
                    .set_off_cpu(tid, TaskState::Blocked { regs, call, wake });
            }
            Step::SigReturn => return self.sigreturn(tid, &regs),
            Step::Stop(end) => return Ok(Flow::Settled(Settled::Ended(end.stop()))),
        }
        Ok(Flow::Go)
    }

    /// Loads thread `tid`'s FPU state and FS base on the vCPU, saving those of the thread
    /// that had it.
    fn load_thread(&mut self, tid: u32) -> Result<(), VmmError> {
        if self.tasks.loaded() == Some(tid) {
            return Ok(());
        }
        if let Some(previous) = self.tasks.loaded() {
            let saved = self.vm_mut().vcpu.save_fpu()?;
            if let Some(task) = self.tasks.get_mut(previous) {
                task.fpu = Some(saved);
            }
        }
        self.tasks.set_loaded(None);
        let Some(task) = self.tasks.get_mut(tid) else {
            return Ok(());
        };
        let fpu = task.fpu.take();
        let fs_base = task.fs_base;
        let vcpu = &self.vm_mut().vcpu;
        if let Some(fpu) = fpu {
            vcpu.load_fpu(&fpu)?;
        }
        vcpu.set_fs_base(fs_base)?;
        self.tasks.set_loaded(Some(tid));
        Ok(())
    }

    /// Runs thread `tid` from `regs` next, in the handler of a signal it has pending if any
    /// (or the program ends, if that signal's action ends it).
    fn put_on_cpu(&mut self, tid: u32, regs: &UserRegs) -> Result<Flow, VmmError> {
        self.load_thread(tid)?;
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
                    match self.push_frame(tid, &regs, &delivery, FaultContext::default())? {
                        Ok(handler) => regs = handler,
                        Err(stop) => return Ok(Flow::Settled(Settled::Ended(stop))),
                    }
                }
            }
        }
        let vm = self
            .vm
            .as_mut()
            .expect("a machine runs until it is dropped");
        vm.vcpu.resume(vm.memory.physical(), &regs);
        self.tasks.set_running(tid);
        Ok(Flow::Go)
    }

    /// Writes the frame of `delivery` for thread `tid` (loaded on the vCPU), stopped at
    /// `regs`; returns the handler's registers, or how the program ends if the frame cannot
    /// be written (SIGSEGV, as Linux forces it).
    fn push_frame(
        &mut self,
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
        let vm = self
            .vm
            .as_mut()
            .expect("a machine runs until it is dropped");
        let fpu = vm.vcpu.save_fpu()?;
        match signal_frame::push(&vm.memory, regs, &fpu, delivery, fault) {
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
    fn sigreturn(&mut self, tid: u32, regs: &UserRegs) -> Result<Flow, VmmError> {
        self.load_thread(tid)?;
        let vm = self
            .vm
            .as_mut()
            .expect("a machine runs until it is dropped");
        let segv = |why: String| {
            Ok(Flow::Settled(Settled::Ended(Stop::Signaled {
                signal: Signal::SIGSEGV,
                detail: Some(format!("rt_sigreturn: {why}")),
            })))
        };
        let restored = match signal_frame::pop(&vm.memory, regs.rsp, regs) {
            Ok(restored) => restored,
            Err(error) => return segv(format!("no signal frame at {:#x} ({error})", regs.rsp)),
        };
        if let Some(fpu) = &restored.fpu
            && let Err(error) = vm.vcpu.load_fpu(fpu)
        {
            return segv(format!("the frame's FPU state is not valid ({error})"));
        }
        self.kernel
            .return_from_handler(tid, restored.mask, restored.altstack);
        self.put_on_cpu(tid, &restored.regs)
    }
}

/// What the run loop does next.
enum Flow {
    /// Go on running threads.
    Go,
    /// Return this to the caller.
    Settled(Settled),
}

/// How long a thread runs while others wait for the vCPU before it is stopped (a kick) to
/// let the next one run.
const TIME_SLICE: Duration = Duration::from_millis(5);

impl Machine {
    /// Tears the VM down now, on this thread (dropping a machine hands it to the teardown
    /// thread instead).
    pub fn destroy(mut self) {
        drop(self.vm.take());
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Some(vm) = self.vm.take() {
            teardown::dispose(vm);
        }
    }
}
