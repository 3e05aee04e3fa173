//! A booted program in its micro-VM: the vCPU run loop joined to the kernel, with syscalls
//! that can wait and threads that share the environment's vCPUs. Both contracts drive one of
//! these.

use std::sync::atomic::AtomicBool;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use lambda_core::{FunctionConfig, Stop};

mod core;
mod cpus;
mod exec;
mod faults;
mod fork;
mod signal_frame;
mod snapshot;
mod tasks;
mod warm;

use crate::error::VmmError;
use crate::kernel::{Kernel, KernelSetup, SyscallStats};
use crate::program::{ProgramImage, StartupInfo, build_stack};
use crate::trace::span;
use crate::vm::layout::MAX_VCPUS;
use crate::vm::spare::SparePool;
use crate::vm::{MicroVm, kvm, recycle, teardown};
use cpus::{Cpu, Shared};
pub use snapshot::{MachineSnapshot, MachineState, OwnedMachineState};
use tasks::Tasks;
pub use warm::Lesson;

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
    /// Whether plain restores copy in only the frames an earlier restored run wrote, not
    /// also those it read (less memory per environment, a slower first invocation).
    pub lean_restores: bool,
    /// Programs `execve` checked, for the next exec of the same file in any machine.
    pub programs: std::sync::Arc<crate::program::ExecCache>,
}

/// A program running in a micro-VM.
pub struct Machine {
    vm: Option<Box<MicroVm>>,
    /// The VM's vCPUs (taken out of `vm` while the machine lives), by slot.
    cpus: Vec<Cpu>,
    /// How many vCPUs may run the program at once.
    max_cpus: usize,
    image: ProgramImage,
    kernel: Kernel,
    tasks: Tasks,
    setup: Duration,
    from_spare: bool,
    /// Whether programs are told of the vDSO (`MachineOptions::no_vdso` unset).
    vdso: bool,
    /// Parent processes waiting for the running one (`fork.rs`).
    parents: Vec<fork::WaitingParent>,
    /// Programs `execve` checked (shared by the backend's machines).
    programs: std::sync::Arc<crate::program::ExecCache>,
    /// Restored from a snapshot with nothing populated, and not yet asked what its program
    /// touched (`warm.rs`).
    teaches: bool,
    /// Pages touched ahead of the program's first run (`warm.rs`).
    warmed: usize,
    /// Pages an earlier restored run wrote, copied in before the first run (`warm.rs`).
    copied: usize,
}

/// 16 random bytes for a program's `AT_RANDOM`.
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

/// A VM of `memory_bytes` that needs no making: a spare if the pool has one ready, else one
/// recycled (`vm/recycle.rs`). Also says whether it was a spare.
fn reused_vm(memory_bytes: u64, options: &MachineOptions) -> Option<(Box<MicroVm>, bool)> {
    if let Some(vm) = options
        .spares
        .as_ref()
        .and_then(|pool| pool.take(memory_bytes))
    {
        return Some((vm, true));
    }
    recycle::take(memory_bytes).map(|vm| (vm, false))
}

/// `vm` with the backend's huge-page choice, made ready by `prepare`; if that fails, the VM
/// is torn down.
fn prepare_vm(
    mut vm: Box<MicroVm>,
    options: &MachineOptions,
    prepare: impl FnOnce(&mut MicroVm) -> Result<(), VmmError>,
) -> Result<Box<MicroVm>, VmmError> {
    vm.memory
        .physical()
        .allow_huge_pages(!options.no_huge_pages);
    match prepare(&mut vm) {
        Ok(()) => Ok(vm),
        Err(error) => {
            teardown::dispose(vm);
            Err(error)
        }
    }
}

/// A VM of `memory_bytes` (a spare or recycled one if there is one, else a new one), made
/// ready by `prepare` ([`prepare_vm`]). Also says whether it was a spare.
fn prepared_vm(
    memory_bytes: u64,
    options: &MachineOptions,
    prepare: impl FnOnce(&mut MicroVm) -> Result<(), VmmError>,
) -> Result<(Box<MicroVm>, bool), VmmError> {
    let (vm, from_spare) = match reused_vm(memory_bytes, options) {
        Some(reused) => reused,
        None => (Box::new(MicroVm::new(memory_bytes)?), false),
    };
    Ok((prepare_vm(vm, options, prepare)?, from_spare))
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
        let (mut vm, from_spare) = prepared_vm(config.memory_bytes(), options, |vm| {
            image.load_into(&vm.memory)?;
            let startup = StartupInfo {
                argv: image.argv().iter().map(Vec::as_slice).collect(),
                envp: envp.iter().map(String::as_bytes).collect(),
                random: random_seed(),
                hwcap: kvm::context().map_or(0, |context| context.hwcap),
                vdso: !options.no_vdso,
            };
            let stack = build_stack(image, &vm.memory, &startup)?;
            vm.vcpus[0].start(image.start_address(), stack)?;
            Ok(())
        })?;
        let max_cpus = (config.vcpus() as usize).clamp(1, MAX_VCPUS);
        let mut kernel = Kernel::new(make_setup(vm.vcpus[0].tsc_offset()));
        kernel.set_exe(image.exe_path());
        kernel.set_cpus(max_cpus as u32);
        let tasks = Tasks::only(kernel.current_thread(), 0, 0);
        let mut cpus: Vec<Cpu> = vm.vcpus.drain(..).map(Cpu::new).collect();
        cpus[0].current = Some(kernel.current_thread());
        cpus[0].loaded = cpus[0].current;
        Ok(Machine {
            vm: Some(vm),
            cpus,
            max_cpus,
            image: image.clone(),
            kernel,
            tasks,
            setup: start.elapsed(),
            from_spare,
            vdso: !options.no_vdso,
            parents: Vec::new(),
            programs: options.programs.clone(),
            teaches: false,
            warmed: 0,
            copied: 0,
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

    /// VM exits so far, on all vCPUs.
    pub fn exits(&self) -> u64 {
        self.cpus.iter().map(|cpu| cpu.vcpu.exits()).sum()
    }

    /// Syscalls so far that entered from a patched site (see `syscall_sites`).
    pub fn direct_syscalls(&self) -> u64 {
        self.cpus.iter().map(|cpu| cpu.vcpu.direct_syscalls()).sum()
    }

    /// vCPUs that have run the program so far: the first, and the others the program had
    /// threads ready for (made then, or ready-made with a spare VM).
    pub fn vcpus_used(&self) -> usize {
        self.cpus.iter().filter(|cpu| cpu.vcpu.exits() > 0).count()
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
    /// (with `false`) and whenever no thread can run (with `true`), on whichever vCPU thread
    /// saw it, with the machine's lock held. Waits the caller does not stop at are slept out
    /// (to the earliest timeout, at most to the deadline) once no thread can run.
    ///
    /// The calling thread runs vCPU 0; other vCPUs run on host threads of their own, started
    /// when threads of the program are ready for them and joined before `run` returns (see
    /// `cpus.rs`). A panic on one of them is raised again here.
    pub fn run(
        &mut self,
        deadline: Instant,
        mut stop_waiting: impl FnMut(&mut Kernel, bool) -> bool + Send,
    ) -> Result<Settled, VmmError> {
        span!("run");
        let vm = self
            .vm
            .as_deref()
            .expect("a machine runs until it is dropped");
        let mut all = std::mem::take(&mut self.cpus);
        let mut first = all.remove(0);
        let made = all.len() + 1;
        let stops: [AtomicBool; MAX_VCPUS] = Default::default();
        let changed = Condvar::new();
        let core = core::Core {
            kernel: &mut self.kernel,
            tasks: &mut self.tasks,
            memory: &vm.memory,
            image: &mut self.image,
            vdso: self.vdso,
            alone_waiting: None,
            parents: &mut self.parents,
            programs: &self.programs,
            child_ending: None,
            stop_waiting: &mut stop_waiting,
            over: None,
            multi: false,
            threads: [None; MAX_VCPUS],
            stops: &stops,
            changed: &changed,
            idle: 0,
            spare: all,
            made,
            started: 1,
            max_cpus: self.max_cpus,
            wakeups_seen: 0,
        };
        let shared = Shared {
            core: Mutex::new(core),
            vm,
            deadline,
            changed: &changed,
            stops: &stops,
            returned: Mutex::new(Vec::new()),
            panicked: Mutex::new(None),
        };
        // A panic here stops the other vCPUs before the scope waits for them; raised below.
        std::thread::scope(|scope| cpus::run_cpu_contained(&shared, scope, &mut first));
        let Shared {
            core,
            returned,
            panicked,
            ..
        } = shared;
        let core = core
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut cpus = core.spare;
        cpus.push(first);
        cpus.extend(returned.into_inner().unwrap_or_else(|p| p.into_inner()));
        cpus.sort_by_key(Cpu::slot);
        self.cpus = cpus;
        if let Some(payload) = panicked.into_inner().unwrap_or_else(|p| p.into_inner()) {
            std::panic::resume_unwind(payload);
        }
        core.over.unwrap_or(Ok(Settled::Ended(Stop::TimedOut)))
    }
}

/// What the run loop does next.
enum Flow {
    /// Go on running threads.
    Go,
    /// Return this to the caller.
    Settled(Settled),
}

impl Machine {
    /// Tears the VM down now, on this thread, or makes it new for the next program
    /// (`vm/recycle.rs`); dropping a machine hands it to the teardown thread instead.
    pub fn destroy(mut self) {
        if let Some(vm) = self.take_vm() {
            recycle::keep_or_drop(vm);
        }
    }

    /// The VM with its vCPUs back in it.
    fn take_vm(&mut self) -> Option<Box<MicroVm>> {
        let mut vm = self.vm.take()?;
        vm.vcpus = self.cpus.drain(..).map(|cpu| cpu.vcpu).collect();
        Some(vm)
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Some(vm) = self.take_vm() {
            teardown::dispose(vm);
        }
    }
}
