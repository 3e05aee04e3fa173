//! A booted program in its micro-VM: the vCPU run loop joined to the kernel, with syscalls
//! that can wait. Both contracts drive one of these.

use std::time::{Duration, Instant};

use lambda_core::{FunctionConfig, Signal, Stop};

use crate::error::VmmError;
use crate::kernel::{Kernel, KernelSetup, Step, SyscallStats};
use crate::mm::{FaultOutcome, GuestMemory, PageFault};
use crate::program::{ProgramImage, StartupInfo, build_stack};
use crate::trace::span;
use crate::vm::exception::ExceptionInfo;
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
    pending: Option<SyscallArgs>,
    setup: Duration,
    from_spare: bool,
    /// The last page fault and how many times in a row it came back resolved.
    last_fault: (u64, u32),
}

/// Times the same page fault may come back after the VMM resolved it before the program is
/// stopped: once is normal (a fault KVM had to see again), more means the page cannot be
/// given what the access needs.
const REPEATED_FAULTS: u32 = 3;

/// Handles an exception the program raised: a page fault its mappings allow is resolved
/// (`None`: the program goes on); anything else ends it with Linux's signal.
fn resolve(memory: &GuestMemory, info: &ExceptionInfo, last: &mut (u64, u32)) -> Option<Stop> {
    let (Some(addr), Some(error_code)) = (info.fault_address, info.error_code) else {
        return Some(info.stop());
    };
    let fault = PageFault { addr, error_code };
    match memory.page_fault(fault) {
        FaultOutcome::Resolved => {
            let key = addr ^ error_code.rotate_left(48);
            *last = if last.0 == key {
                (key, last.1.saturating_add(1))
            } else {
                (key, 1)
            };
            if last.1 > REPEATED_FAULTS {
                Some(info.segfault(fault, "the page fault kept coming back"))
            } else {
                None
            }
        }
        FaultOutcome::Unmapped => Some(info.segfault(fault, "no mapping holds the address")),
        FaultOutcome::Forbidden => Some(info.segfault(
            fault,
            &format!("the mapping does not allow {}", fault.needs()),
        )),
        // Linux's out-of-memory killer; the ending names the memory size.
        FaultOutcome::OutOfMemory => Some(Stop::Signaled {
            signal: Signal::SIGKILL,
            detail: Some("out of memory".into()),
        }),
    }
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
        Ok(Machine {
            vm: Some(vm),
            image: image.clone(),
            kernel,
            pending: None,
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
                    Step::Return(value) => {
                        vm.vcpu
                            .complete_syscall(vm.memory.physical(), value as i64)?;
                    }
                    Step::SetFsBase(base) => {
                        vm.vcpu.set_fs_base(base)?;
                        vm.vcpu.complete_syscall(vm.memory.physical(), 0)?;
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
            self.kernel
                .publish_clock(vm.memory.physical(), crate::vm::layout::VVAR_FRAME);
            match vm.vcpu.run(vm.memory.physical(), &kick) {
                Ok(Exit::Syscall) => {
                    if let Some(site) = vm.vcpu.stub_syscall_site() {
                        self.image.syscall_sites().learn(&vm.memory, site);
                    }
                    self.pending = Some(vm.vcpu.syscall());
                }
                Ok(Exit::Exception(info)) => {
                    if let Some(stop) = resolve(&vm.memory, &info, &mut self.last_fault) {
                        return Ok(Settled::Ended(stop));
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
