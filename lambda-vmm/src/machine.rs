//! A booted program in its micro-VM: the vCPU run loop joined to the kernel, with syscalls
//! that can wait. Both contracts drive one of these.

use std::time::{Duration, Instant};

use lambda_core::{FunctionConfig, Signal, Stop};

use crate::error::VmmError;
use crate::kernel::{Kernel, KernelSetup, Step, SyscallStats};
use crate::program::{ProgramImage, StartupInfo, build_stack};
use crate::trace::span;
use crate::vm::kick::Deadline;
use crate::vm::spare::SparePool;
use crate::vm::vcpu::SyscallArgs;
use crate::vm::{Exit, MicroVm, kvm, teardown};

/// Why [`Machine::run`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The program is waiting in a syscall and the caller asked to stop there; the call is
    /// kept and retried by the next `run`.
    Waiting,
    /// The program is over (or must be: a crash or timeout).
    Ended(Stop),
}

/// A program running in a micro-VM.
pub struct Machine {
    vm: Option<Box<MicroVm>>,
    image: ProgramImage,
    kernel: Kernel,
    pending: Option<SyscallArgs>,
    setup: Duration,
    from_spare: bool,
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
        spares: Option<&SparePool>,
        make_setup: impl FnOnce(u64) -> KernelSetup,
    ) -> Result<Machine, VmmError> {
        let start = Instant::now();
        let spare = spares.and_then(|pool| pool.take(config.memory_bytes()));
        let from_spare = spare.is_some();
        let mut vm = match spare {
            Some(vm) => vm,
            None => Box::new(MicroVm::new(config.memory_bytes())?),
        };
        let prepared = (|| -> Result<(), VmmError> {
            image.load_into(&vm.memory)?;
            let argv = [crate::kernel::PROGRAM_PATH.to_string()];
            let startup = StartupInfo {
                argv: &argv,
                envp,
                random: random_seed(),
                hwcap: kvm::context().map_or(0, |context| context.hwcap),
            };
            let stack = build_stack(image, &vm.memory, &startup)?;
            vm.vcpu.start(image.entry(), stack)?;
            Ok(())
        })();
        if let Err(error) = prepared {
            teardown::dispose(vm);
            return Err(error);
        }
        let kernel = Kernel::new(&vm.memory, make_setup(image.image_end()));
        Ok(Machine {
            vm: Some(vm),
            image: image.clone(),
            kernel,
            pending: None,
            setup: start.elapsed(),
            from_spare,
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

    /// Runs the program until it ends, the deadline passes, or it waits in a syscall and
    /// `stop_waiting` (asked each time it starts to wait) says to stop there. A wait the
    /// caller does not stop at is slept out (to its own timeout, at most to the deadline).
    pub fn run(
        &mut self,
        deadline: Instant,
        mut stop_waiting: impl FnMut(&mut Kernel) -> bool,
    ) -> Result<Settled, VmmError> {
        span!("run");
        let vm = self
            .vm
            .as_mut()
            .expect("a machine runs until it is dropped");
        let kick = Deadline::arm(deadline);
        loop {
            if let Some(call) = self.pending.take() {
                match self.kernel.handle(&vm.memory, call) {
                    Step::Return(value) => vm.vcpu.complete_syscall(&vm.memory, value as i64)?,
                    Step::SetFsBase(base) => {
                        vm.vcpu.set_fs_base(base)?;
                        vm.vcpu.complete_syscall(&vm.memory, 0)?;
                    }
                    Step::Stop(end) => return Ok(Settled::Ended(end.stop())),
                    Step::Block(wake) => {
                        self.pending = Some(call);
                        if stop_waiting(&mut self.kernel) {
                            return Ok(Settled::Waiting);
                        }
                        let until = wake.map_or(deadline, |wake| wake.min(deadline));
                        let now = Instant::now();
                        if until > now {
                            std::thread::sleep(until - now);
                        }
                        if Instant::now() >= deadline {
                            return Ok(Settled::Ended(Stop::TimedOut));
                        }
                        continue;
                    }
                }
            }
            match vm.vcpu.run(&vm.memory, &kick) {
                Ok(Exit::Syscall) => {
                    if let Some(site) = vm.vcpu.stub_syscall_site() {
                        self.image.syscall_sites().learn(&vm.memory, site);
                    }
                    self.pending = Some(vm.vcpu.syscall());
                }
                Ok(Exit::Exception(info)) => return Ok(Settled::Ended(info.stop())),
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
}

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
