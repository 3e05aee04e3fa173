//! The one-shot stdio contract: each invocation runs the program in a fresh micro-VM with the
//! event on stdin; stdout is the response, stderr the log, exit status 0 success.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lambda_core::logs::{DEFAULT_LOG_CAPACITY, LogCollector};
use lambda_core::{
    Ending, FunctionConfig, Invocation, InvokeOutcome, InvokeResult, Measured, Stop, ending,
};

use crate::VmmError;
use crate::code::CodePackage;
use crate::kernel::KernelSetup;
use crate::kernel::vfs::FileSystem;
use crate::loader::ProgramImage;
use crate::machine::{Machine, Settled};
use crate::vm::spare::SparePool;

/// What one run cost the VMM, beyond Lambda's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// VM exits (each costs tens of microseconds on a nested host).
    pub exits: u64,
    /// Syscalls the program made.
    pub syscalls: u64,
    /// Of those, how many entered the VMM directly from a rewritten `syscall` site instead of
    /// through ring 0 (see the crate docs).
    pub direct_syscalls: u64,
    /// Syscalls this kernel does not implement (they returned ENOSYS), by number.
    pub unsupported_syscalls: BTreeMap<u64, u64>,
    /// Time to build the VM and load the program.
    pub setup: Duration,
    /// Whether the VM was a ready-made spare (see `MicroVmBackend::with_spare_vms`).
    pub spare_vm: bool,
}

/// The guest's environment variables: Lambda's, then the function's own.
pub fn guest_environment(config: &FunctionConfig, runtime_api: Option<&str>) -> Vec<String> {
    use lambda_core::runtime_api::{EnvironmentInfo, log_stream_name, runtime_environment};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let instance = lambda_core::new_request_id().replace('-', "");
    let info = EnvironmentInfo::new(log_stream_name(now, "$LATEST", &instance));
    runtime_environment(config, runtime_api, &info)
        .into_iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect()
}

/// Adds a platform line naming the unsupported syscalls a run made, if any.
pub fn note_unsupported(log: &mut LogCollector, unsupported: &BTreeMap<u64, u64>) {
    if unsupported.is_empty() {
        return;
    }
    let list: Vec<String> = unsupported
        .iter()
        .map(|(&number, count)| match number {
            crate::kernel::OTHER_UNSUPPORTED => format!("others (x{count})"),
            number => format!("{number} (x{count})"),
        })
        .collect();
    log.platform_line(&format!(
        "[lambda-vmm] unsupported syscalls returned ENOSYS: {}",
        list.join(", ")
    ));
}

/// Runs `image` once with the invocation's payload on stdin, in a fresh VM of `config`'s
/// memory size, stopping it at `config.timeout`.
pub fn run_once(
    image: &ProgramImage,
    package: &CodePackage,
    config: &FunctionConfig,
    invocation: Invocation,
    spares: Option<&SparePool>,
) -> Result<(InvokeResult, RunStats), VmmError> {
    let envp = guest_environment(config, None);
    let fs = FileSystem::new(&package.files, u64::from(config.ephemeral_storage_mb) << 20);
    let payload = invocation.payload;
    let log = LogCollector::start(&invocation.request_id, "$LATEST", DEFAULT_LOG_CAPACITY);
    let mut machine = Machine::boot(image, config, &envp, spares, |image_end| KernelSetup {
        image_end,
        fs,
        stdin: Some(payload),
        api: None,
        log,
    })?;
    let start = Instant::now();
    let settled = machine.run(start + config.timeout, |_| false)?;
    let duration = start.elapsed();

    let stats = RunStats {
        exits: machine.exits(),
        syscalls: machine.stats().syscalls,
        direct_syscalls: machine.direct_syscalls(),
        unsupported_syscalls: machine.stats().unsupported.clone(),
        setup: machine.setup_time(),
        spare_vm: machine.used_spare(),
    };
    let ending = match settled {
        Settled::Ended(Stop::Exited(0)) => {
            Ending::Answered(InvokeOutcome::Response(machine.kernel().take_response()))
        }
        Settled::Ended(stop) => Ending::stopped(stop),
        Settled::Waiting => unreachable!("a one-shot run never stops while waiting"),
    };
    let measured = Measured {
        request_id: invocation.request_id,
        duration,
        max_memory_used_mb: machine.memory_used_mb(),
        init_duration: Some(stats.setup),
        out_of_memory: machine.kernel().out_of_memory(),
    };
    let log = machine.kernel().log_mut();
    note_unsupported(log, &stats.unsupported_syscalls);
    let result = ending::finish(ending, measured, config, log);
    Ok((result, stats))
}
