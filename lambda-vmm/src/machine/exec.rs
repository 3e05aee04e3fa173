//! `execve` on the machine. While the calling thread can still be given an error, the
//! program the call names is found and checked (its `#!` interpreters and `PT_INTERP`
//! looked up in the environment's files, its size against the function's memory); then the
//! point of no return, as on Linux: the other threads are gone, the address space is
//! emptied, the new program and its stack are loaded, and the thread starts it on the same
//! vCPU as the first thread of a new program, with a clean FPU state and no TLS.
//!
//! Threads running on other vCPUs are first stopped (a kick) and the call retried once none
//! runs; meanwhile no other thread is put on a vCPU. A `vfork` child's parent keeps its
//! memory: it is copied out before the child's exec empties the address space
//! (`fork.rs`).

use std::sync::Arc;

use lambda_core::{Signal, Stop};

use super::core::Core;
use super::cpus::Cpu;
use super::tasks::Tasks;
use super::{Flow, Settled, random_seed};
use crate::error::VmmError;
use crate::kernel::{Errno, Kernel};
use crate::program::{ProgramFiles, ResolveError, StartupInfo, Unrunnable, build_stack, resolve};
use crate::vm::kvm;
use crate::vm::vcpu::{SyscallArgs, UserRegs};

/// The environment's files, as `execve` finds a script's and a dynamic program's
/// interpreters in them.
struct EnvironmentFiles<'k>(&'k Kernel);

impl ProgramFiles for EnvironmentFiles<'_> {
    fn executable(&self, path: &str) -> Result<Arc<[u8]>, Unrunnable> {
        self.0.executable_file(path).map_err(|Errno(errno)| {
            let reason = match errno {
                libc::ENOENT => "cannot be found",
                libc::EACCES => "is not an executable file",
                _ => "cannot be read",
            };
            Unrunnable::new(errno, reason)
        })
    }
}

impl Core<'_> {
    /// Carries out thread `tid`'s `execve` (its call `call` answered [`crate::kernel::Step::Exec`]),
    /// which returns to `regs` if it fails.
    pub(super) fn exec(
        &mut self,
        cpu: &mut Cpu,
        tid: u32,
        mut regs: UserRegs,
        call: SyscallArgs,
    ) -> Result<Flow, VmmError> {
        let Some(request) = self.kernel.take_exec() else {
            regs.rax = i64::from(-libc::EINVAL) as u64;
            return self.put_on_cpu(cpu, tid, &regs);
        };
        if self.wait_alone(cpu, tid, regs, call)? {
            // Retried (and the file read again) once they are off their vCPUs.
            return Ok(Flow::Go);
        }
        let found = resolve(
            &EnvironmentFiles(self.kernel),
            &request.path,
            request.bytes,
            request.argv,
            Some(self.programs),
        )
        .and_then(|image| {
            image
                .check_fits(self.memory.size())
                .map_err(ResolveError::Program)?;
            Ok(image)
        });
        let found = found
            .map_err(|error| error.errno())
            .and_then(|image| self.keep_parent_memory().map(|()| image));
        let image = match found {
            Ok(image) => image.started_by_execve(),
            Err(errno) => {
                regs.rax = i64::from(errno).wrapping_neg() as u64;
                return self.put_on_cpu(cpu, tid, &regs);
            }
        };
        // The point of no return: from here a failure ends the program, as Linux kills a
        // process whose exec fails after its old memory is gone.
        let leader = self.kernel.finish_exec(image.exe_path());
        *self.tasks = Tasks::only(leader, cpu.slot(), 0);
        cpu.current = Some(leader);
        cpu.loaded = Some(leader);
        cpu.last_fault = (0, 0);
        let killed = |why: String| {
            Ok(Flow::Settled(Settled::Ended(Stop::Signaled {
                signal: Signal::SIGSEGV,
                detail: Some(format!("execve of {}: {why}", request.path)),
            })))
        };
        if self.memory.reset_for_exec().is_err() {
            return killed("the old address space could not be emptied".into());
        }
        if let Err(error) = image.load_into(self.memory) {
            return killed(error.to_string());
        }
        let startup = StartupInfo {
            argv: image.argv().iter().map(Vec::as_slice).collect(),
            envp: request.envp.iter().map(Vec::as_slice).collect(),
            random: random_seed(),
            hwcap: kvm::context().map_or(0, |context| context.hwcap),
            vdso: self.vdso,
        };
        let stack = match build_stack(&image, self.memory, &startup) {
            Ok(stack) => stack,
            Err(error) => return killed(error.to_string()),
        };
        cpu.vcpu.start(image.start_address(), stack)?;
        cpu.vcpu.reset_fpu()?;
        cpu.vcpu.set_fs_base(0)?;
        *self.image = image;
        Ok(Flow::Go)
    }
}
