//! The vCPUs of a running machine, each on its own host thread.
//!
//! The thread that calls [`super::Machine::run`] runs vCPU 0. When a thread of the program
//! is ready and no vCPU is free, another vCPU starts on a new host thread (scoped to the
//! run), up to the environment's share ([`lambda_core::FunctionConfig::vcpus`]); a vCPU
//! with nothing to run waits for work on a condition variable. When the run is over, every
//! vCPU is stopped (a kick), its thread put off it, and its host thread joined before `run`
//! returns, so no host thread outlives a run. vCPUs are made once (about 0.2 ms each, the
//! first time a program needs them) and kept with the machine.

use std::any::Any;
use std::sync::atomic::AtomicBool;
use std::sync::{Condvar, Mutex};
use std::thread::Scope;
use std::time::{Duration, Instant};

use lambda_core::Stop;

use super::core::Core;
use super::tasks::TaskState;
use super::{Flow, Settled};
use crate::error::VmmError;
use crate::sync::{catch_panic, lock, wait_timeout};
use crate::trace::span;
use crate::vm::kick::{Deadline, VcpuThread};
use crate::vm::layout::{MAX_VCPUS, VVAR_FRAME};
use crate::vm::{Exit, MicroVm, Vcpu, VmError};

/// How long a thread runs while others wait for a vCPU before it is stopped (a kick) to let
/// the next one run.
const TIME_SLICE: Duration = Duration::from_millis(5);

/// How many `EFAULT`s in a row a vCPU takes as another thread's revoke window (see
/// [`Exit::MemoryBusy`]) before giving up: each one waits for the machine's lock, which the
/// revoking thread holds until the page is back.
const MAX_BUSY_RETRIES: u32 = 10_000;

/// A vCPU and what it holds of the program's threads.
pub(super) struct Cpu {
    /// The vCPU.
    pub vcpu: Vcpu,
    /// The thread on it.
    pub current: Option<u32>,
    /// The thread whose FPU state and FS base it holds.
    pub loaded: Option<u32>,
    /// The last page fault and how many times in a row it came back resolved.
    pub last_fault: (u64, u32),
}

impl Cpu {
    /// A vCPU holding no thread.
    pub fn new(vcpu: Vcpu) -> Cpu {
        Cpu {
            vcpu,
            current: None,
            loaded: None,
            last_fault: (0, 0),
        }
    }

    /// Which of the VM's vCPUs it is.
    pub fn slot(&self) -> usize {
        self.vcpu.slot()
    }
}

/// What the vCPU threads of one run share.
pub(super) struct Shared<'a> {
    /// The machine's state, behind its lock.
    pub core: Mutex<Core<'a>>,
    /// The VM (for its memory, and to make vCPUs).
    pub vm: &'a MicroVm,
    /// When the run times out.
    pub deadline: Instant,
    /// The same condition variable as `Core::changed`, waited on outside the lock's guard.
    pub changed: &'a Condvar,
    /// The same flags as `Core::stops`, read by vCPUs in `KVM_RUN`.
    pub stops: &'a [AtomicBool; MAX_VCPUS],
    /// vCPUs whose host thread finished, given back.
    pub returned: Mutex<Vec<Cpu>>,
    /// The first panic of a vCPU thread (the caller's included), raised again on the caller's
    /// thread once every vCPU thread is joined.
    pub panicked: Mutex<Option<Box<dyn Any + Send>>>,
}

/// Runs `cpu` on the calling thread until the run is over, then puts its thread off it.
/// Errors end the run (`Core::over`).
fn run_cpu<'scope, 'env, 'a: 'scope>(
    shared: &'scope Shared<'a>,
    scope: &'scope Scope<'scope, 'env>,
    cpu: &mut Cpu,
) {
    let slot = cpu.slot();
    let result = VcpuThread::current()
        .map_err(|error| VmmError::from(VmError::from(error)))
        .and_then(|thread| {
            {
                let mut core = lock(&shared.core);
                core.threads[slot] = Some(thread);
                let multi = core.multi;
                cpu.vcpu.set_stack_shared(multi);
            }
            cpu_loop(shared, scope, cpu)
        });
    let mut core = lock(&shared.core);
    if let Err(error) = result {
        core.end(slot, Err(error));
    }
    core.threads[slot] = None;
    // The run is over: the thread on the vCPU goes on from where it stopped next time.
    let physical = shared.vm.memory.physical();
    if let Some(tid) = cpu.current {
        let regs = cpu.vcpu.preempted_regs(physical);
        if let Err(error) = core.take_off(cpu, tid, TaskState::Ready(regs)) {
            core.end(slot, Err(error));
        }
    }
    if core.multi
        && let Err(error) = core.unload(cpu)
    {
        core.end(slot, Err(error));
    }
}

/// [`run_cpu`], with a panic contained: it ends the run, so the other vCPUs stop (the ending
/// it records is never returned), and the first one is kept to be raised again on the
/// caller's thread once every vCPU thread is joined.
pub(super) fn run_cpu_contained<'scope, 'env, 'a: 'scope>(
    shared: &'scope Shared<'a>,
    scope: &'scope Scope<'scope, 'env>,
    cpu: &mut Cpu,
) {
    let slot = cpu.slot();
    if let Err(payload) = catch_panic(|| run_cpu(shared, scope, cpu)) {
        lock(&shared.panicked).get_or_insert(payload);
        let mut core = lock(&shared.core);
        core.threads[slot] = None;
        core.end(slot, Ok(Settled::Waiting));
    }
}

/// The body of a vCPU thread other than the caller's: runs `cpu`, then gives it back.
fn helper<'scope, 'env, 'a: 'scope>(
    shared: &'scope Shared<'a>,
    scope: &'scope Scope<'scope, 'env>,
    mut cpu: Cpu,
) {
    run_cpu_contained(shared, scope, &mut cpu);
    let mut core = lock(&shared.core);
    core.started -= 1;
    drop(core);
    lock(&shared.returned).push(cpu);
}

fn cpu_loop<'scope, 'env, 'a: 'scope>(
    shared: &'scope Shared<'a>,
    scope: &'scope Scope<'scope, 'env>,
    cpu: &mut Cpu,
) -> Result<(), VmmError> {
    let slot = cpu.slot();
    let physical = shared.vm.memory.physical();
    let kick = Deadline::arm(shared.deadline);
    let mut slice: Option<Deadline> = None;
    let mut busy = 0u32;
    let mut core = lock(&shared.core);
    loop {
        if core.over.is_some() {
            return Ok(());
        }
        if cpu.current.is_none() {
            slice = None;
            let flow = core.schedule(cpu)?;
            if let Flow::Settled(settled) = core.child_or_end(cpu, flow)? {
                core.end(slot, Ok(settled));
                return Ok(());
            }
        }
        let Some(tid) = cpu.current else {
            // Nothing to run on this vCPU. With no thread running anywhere, the caller may
            // stop here; else wait for work, a blocked call's timeout or the deadline.
            if core.tasks.running() == 0 && core.ask_stop_waiting(true) {
                core.end(slot, Ok(Settled::Waiting));
                return Ok(());
            }
            let now = Instant::now();
            if now >= shared.deadline {
                core.end(slot, Ok(Settled::Ended(Stop::TimedOut)));
                return Ok(());
            }
            let until = core
                .tasks
                .next_wake()
                .map_or(shared.deadline, |wake| wake.min(shared.deadline));
            core.idle += 1;
            core = wait_timeout(shared.changed, core, until.saturating_duration_since(now));
            core.idle -= 1;
            continue;
        };
        share_work(shared, scope, &mut core, cpu)?;
        if slice.is_none() && core.tasks.len() > core.tasks.running() {
            slice = Some(Deadline::arm(Instant::now() + TIME_SLICE));
        }
        core.kernel.publish_clock(physical, VVAR_FRAME);
        drop(core);
        let exit = cpu
            .vcpu
            .run(physical, &kick, slice.as_ref(), &shared.stops[slot]);
        core = lock(&shared.core);
        let exit = exit?;
        match exit {
            Exit::MemoryBusy => {
                // Taking the lock above waited out the revoke; with one vCPU there is none.
                busy += 1;
                if !core.multi || busy > MAX_BUSY_RETRIES {
                    return Err(
                        VmError::kvm("KVM_RUN")(kvm_ioctls::Error::new(libc::EFAULT)).into(),
                    );
                }
                continue;
            }
            Exit::Preempted => {
                busy = 0;
                slice = None;
            }
            _ => busy = 0,
        }
        // The loop's top shares any work this exit made (before this vCPU runs again).
        let flow = core.handle_exit(cpu, tid, exit)?;
        if let Flow::Settled(settled) = core.child_or_end(cpu, flow)? {
            core.end(slot, Ok(settled));
            return Ok(());
        }
    }
}

/// If a thread waits for a vCPU (or a futex wake may have made one runnable), wakes an idle
/// vCPU thread, or starts another vCPU if the environment's share allows.
fn share_work<'scope, 'env, 'a: 'scope>(
    shared: &'scope Shared<'a>,
    scope: &'scope Scope<'scope, 'env>,
    core: &mut Core<'a>,
    cpu: &mut Cpu,
) -> Result<(), VmmError> {
    let wakeups = core.kernel.futex_wakeups();
    let woken = wakeups != core.wakeups_seen;
    core.wakeups_seen = wakeups;
    if core.over.is_some() || !(core.tasks.any_ready() || woken && core.tasks.any_blocked()) {
        return Ok(());
    }
    if core.idle > 0 {
        shared.changed.notify_one();
        return Ok(());
    }
    if core.started >= core.max_cpus {
        return Ok(());
    }
    let helper_cpu = match core.spare.pop() {
        Some(spare) => spare,
        None => {
            let made = {
                span!("add_vcpu");
                shared.vm.add_vcpu(core.made)
            };
            match made {
                Ok(vcpu) => {
                    core.made += 1;
                    Cpu::new(vcpu)
                }
                Err(_) => {
                    // Run on the vCPUs there are; the program is slower, not wrong.
                    core.max_cpus = core.started;
                    return Ok(());
                }
            }
        }
    };
    if !core.multi {
        // From now on threads move between vCPUs: the FPU state this vCPU keeps for a
        // thread that is not on it goes back to the thread.
        core.multi = true;
        if cpu.loaded != cpu.current {
            core.unload(cpu)?;
        }
        cpu.vcpu.set_stack_shared(true);
        if cpu.current.is_some() {
            // Its thread may be about to return through a stub's `iretq` (a frame the VMM
            // wrote, or the CPU's for a resolved fault): return through KVM instead, before
            // a thread on the new vCPU could rewrite that frame.
            let physical = shared.vm.memory.physical();
            let regs = cpu.vcpu.preempted_regs(physical);
            cpu.vcpu.resume(physical, &regs)?;
        }
    }
    core.started += 1;
    let name = format!("lambda-vcpu-{}", helper_cpu.slot());
    let spawned = std::thread::Builder::new()
        .name(name)
        .spawn_scoped(scope, move || helper(shared, scope, helper_cpu));
    if spawned.is_err() {
        // The host has no thread to give: the vCPU went with the closure; stay with the
        // vCPUs there are.
        core.started -= 1;
        core.max_cpus = core.started;
    }
    Ok(())
}
