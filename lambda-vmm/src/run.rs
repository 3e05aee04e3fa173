//! One run of a program in a fresh micro-VM: the one-shot stdio contract.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lambda_core::{
    ErrorType, FunctionConfig, FunctionError, Invocation, InvokeOutcome, InvokeResult, Report,
    ResetReason, limits,
};

use crate::VmmError;
use crate::kernel::{Kernel, ProcessEnd, Step, SyscallContext};
use crate::loader::{self, ProgramImage, StartupInfo};
use crate::signals::{Signal, describe_exception};
use crate::vm::kick::Deadline;
use crate::vm::{Exit, MicroVm, kvm, teardown};

/// What one run cost the VMM, beyond Lambda's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// VM exits (each costs tens of microseconds on a nested host).
    pub exits: u64,
    /// Syscalls the program made.
    pub syscalls: u64,
    /// Syscalls this kernel does not implement (they returned ENOSYS), by number.
    pub unsupported_syscalls: BTreeMap<u64, u64>,
    /// Time to build the VM and load the program.
    pub setup: Duration,
}

/// How the run ended, before it is turned into Lambda's vocabulary.
enum End {
    Process(ProcessEnd),
    Crash(String),
    Timeout,
}

fn hwcap() -> u64 {
    kvm::context()
        .ok()
        .and_then(|c| {
            c.cpuid
                .as_slice()
                .iter()
                .find(|e| e.function == 1 && e.index == 0)
                .map(|e| u64::from(e.edx))
        })
        .unwrap_or(0)
}

fn random_seed() -> [u8; 16] {
    let mut seed = [0u8; 16];
    // SAFETY: writes at most 16 bytes into `seed`.
    let n = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
    if n != 16 {
        // Only the stack protector and pointer guard rely on it; a clock-derived value beats
        // failing the invocation.
        let t = Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id());
        seed = t.to_le_bytes();
    }
    seed
}

/// The guest environment variables: the function's own plus Lambda's identity variables.
fn environment(config: &FunctionConfig) -> Vec<String> {
    let mut env = vec![
        format!("AWS_LAMBDA_FUNCTION_NAME={}", config.name),
        format!("AWS_LAMBDA_FUNCTION_MEMORY_SIZE={}", config.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION=$LATEST".to_string(),
        "LAMBDA_TASK_ROOT=/var/task".to_string(),
        format!("_HANDLER={}", config.handler),
        "TZ=:UTC".to_string(),
        "LANG=en_US.UTF-8".to_string(),
        "PATH=/var/task:/usr/local/bin:/usr/bin:/bin".to_string(),
    ];
    env.extend(config.environment.iter().map(|(k, v)| format!("{k}={v}")));
    env
}

/// Runs `image` once with the invocation's payload on stdin, in a VM of `config`'s memory
/// size, stopping it at `config.timeout`.
pub fn run_once(
    image: &ProgramImage,
    config: &FunctionConfig,
    invocation: Invocation,
) -> Result<(InvokeResult, RunStats), VmmError> {
    let setup_start = Instant::now();
    let mut vm = Box::new(MicroVm::new(config.memory_bytes())?);
    let result = run_in(&mut vm, image, config, invocation, setup_start);
    teardown::dispose(vm);
    result
}

fn run_in(
    vm: &mut MicroVm,
    image: &ProgramImage,
    config: &FunctionConfig,
    invocation: Invocation,
    setup_start: Instant,
) -> Result<(InvokeResult, RunStats), VmmError> {
    image.load_into(&vm.memory)?;
    let argv = [crate::kernel::PROGRAM_PATH.to_string()];
    let envp = environment(config);
    let startup = StartupInfo {
        argv: &argv,
        envp: &envp,
        random: random_seed(),
        hwcap: hwcap(),
    };
    let stack = loader::build_stack(image, &vm.memory, &startup)?;
    vm.vcpu.start(image.entry(), stack)?;
    let mut kernel = Kernel::new(&vm.memory, image.image_end(), invocation.payload);
    let setup = setup_start.elapsed();

    let start = Instant::now();
    let deadline = Deadline::arm(start + config.timeout);
    let end = loop {
        match vm.vcpu.run(&vm.memory, &deadline) {
            Ok(Exit::Syscall) => {
                let call = vm.vcpu.syscall();
                let cx = SyscallContext {
                    memory: &vm.memory,
                    vcpu: &vm.vcpu,
                    deadline: deadline.at(),
                };
                match kernel.handle(&cx, call) {
                    Step::Return(value) => vm.vcpu.complete_syscall(&vm.memory, value as i64)?,
                    Step::Stop(end) => break End::Process(end),
                }
            }
            Ok(Exit::Exception(info)) => break End::Crash(describe_exception(&info)),
            Ok(Exit::DeadlineReached) => break End::Timeout,
            Err(VmmError::GuestFailure(reason)) => {
                break End::Crash(format!("signal: segmentation fault (SIGSEGV): {reason}"));
            }
            Err(other) => return Err(other),
        }
    };
    let duration = start.elapsed();
    drop(deadline);

    let out_of_memory = kernel.out_of_memory();
    let stats = RunStats {
        exits: vm.vcpu.exits(),
        syscalls: kernel.stats().syscalls,
        unsupported_syscalls: kernel.stats().unsupported.clone(),
        setup,
    };
    let max_memory_used_mb = vm.memory.resident_bytes().div_ceil(1 << 20) as u32;
    let mut stdio = kernel.into_stdio();
    if !stats.unsupported_syscalls.is_empty() {
        let list: Vec<String> = stats
            .unsupported_syscalls
            .iter()
            .map(|(number, count)| format!("{number} (x{count})"))
            .collect();
        let line = format!(
            "[lambda-vmm] unsupported syscalls returned ENOSYS: {}\n",
            list.join(", ")
        );
        stdio.write_log(line.as_bytes());
    }
    let (outcome, reset) = outcome(end, &mut stdio, config, out_of_memory);
    let report = Report {
        request_id: invocation.request_id,
        duration,
        memory_size_mb: config.memory_mb,
        max_memory_used_mb: max_memory_used_mb.min(config.memory_mb),
        init_duration: Some(setup),
        restore_duration: None,
    };
    let result = InvokeResult {
        outcome,
        report,
        log_tail: stdio.log().tail(),
        reset,
    };
    Ok((result, stats))
}

fn exit_error(message: String, config: &FunctionConfig, out_of_memory: bool) -> FunctionError {
    if out_of_memory {
        FunctionError::new(
            ErrorType::RuntimeOutOfMemory,
            format!(
                "Runtime exited with error: {message}: the function used all of its {} MB \
                 of memory",
                config.memory_mb
            ),
        )
    } else {
        FunctionError::new(
            ErrorType::RuntimeExitError,
            format!("Runtime exited with error: {message}"),
        )
    }
}

fn outcome(
    end: End,
    stdio: &mut crate::kernel::Stdio,
    config: &FunctionConfig,
    out_of_memory: bool,
) -> (InvokeOutcome, Option<ResetReason>) {
    let reset_for = |oom: bool, otherwise| {
        if oom {
            ResetReason::OutOfMemory
        } else {
            otherwise
        }
    };
    match end {
        End::Process(ProcessEnd::Exited(0)) => (InvokeOutcome::Response(stdio.take_stdout()), None),
        End::Process(ProcessEnd::Exited(status)) => (
            InvokeOutcome::Error(exit_error(
                format!("exit status {status}"),
                config,
                out_of_memory,
            )),
            Some(reset_for(out_of_memory, ResetReason::Exit)),
        ),
        End::Process(ProcessEnd::Signaled(signal)) => {
            let signal = Signal(signal);
            let message = format!("signal: {} ({})", signal.description(), signal.name());
            (
                InvokeOutcome::Error(exit_error(message, config, out_of_memory)),
                Some(reset_for(out_of_memory, ResetReason::Crash)),
            )
        }
        End::Process(ProcessEnd::ResponseTooLarge) => (
            InvokeOutcome::failed(
                ErrorType::FunctionResponseSizeTooLarge,
                format!(
                    "Response payload size exceeded maximum allowed payload size ({} bytes).",
                    limits::MAX_SYNC_PAYLOAD_BYTES
                ),
            ),
            Some(ResetReason::Exit),
        ),
        End::Crash(description) => (
            InvokeOutcome::Error(exit_error(description, config, out_of_memory)),
            Some(reset_for(out_of_memory, ResetReason::Crash)),
        ),
        End::Timeout => (
            InvokeOutcome::failed(
                ErrorType::SandboxTimeout,
                format!(
                    "Task timed out after {:.2} seconds",
                    config.timeout.as_secs_f64()
                ),
            ),
            Some(ResetReason::Timeout),
        ),
    }
}
