//! The one-shot stdio contract: each invocation runs the program in a fresh micro-VM with the
//! event on stdin; stdout is the response, stderr the log, exit status 0 success.

use std::time::{Duration, Instant};

use lambda_core::logs::{DEFAULT_LOG_CAPACITY, LogCollector};
use lambda_core::{
    Ending, FunctionConfig, Invocation, InvokeOutcome, InvokeResult, Measured, Stop, ending,
};

use lambda_core::{EnvironmentError, EnvironmentStart, ExecutionEnvironment};

use super::file_system::guest_file_system;
use super::guard::guarded;
use super::stats::{RunStats, note_unsupported};
use super::variables::guest_environment;
use crate::error::VmmError;
use crate::kernel::KernelSetup;
use crate::machine::{Machine, MachineOptions, Settled};
use crate::program::{CodePackage, ProgramImage};
use crate::snapshot::{Frozen, Snapshot, SnapshotError};

/// A one-shot stdio environment: the checked program, run in a fresh micro-VM per
/// invocation with the event on stdin and the response on stdout; or, made from a
/// [`Snapshot`], each invocation in a fresh micro-VM restored from it (the program goes on
/// from its first read of stdin, which gets the event).
pub struct StdioEnvironment {
    image: ProgramImage,
    package: CodePackage,
    config: FunctionConfig,
    options: MachineOptions,
    last_stats: RunStats,
    snapshot: Option<Snapshot>,
    start: EnvironmentStart,
}

impl StdioEnvironment {
    /// The environment of a checked program; nothing runs until an invocation.
    pub(crate) fn new(
        image: ProgramImage,
        package: CodePackage,
        config: FunctionConfig,
        options: MachineOptions,
    ) -> StdioEnvironment {
        StdioEnvironment {
            image,
            package,
            config,
            options,
            last_stats: RunStats::default(),
            snapshot: None,
            start: EnvironmentStart::Init,
        }
    }

    /// The environment of a one-shot function snapshotted at its first read of stdin.
    pub(crate) fn restoring(snapshot: &Snapshot, options: MachineOptions) -> StdioEnvironment {
        let frozen = snapshot.frozen();
        StdioEnvironment {
            image: frozen.machine.image().clone(),
            package: frozen.package.clone(),
            config: frozen.config.clone(),
            options,
            last_stats: RunStats::default(),
            snapshot: Some(snapshot.clone()),
            start: EnvironmentStart::Restored,
        }
    }

    /// Records how the environment started (SnapStart's refusal, for one).
    pub(crate) fn set_start(&mut self, start: EnvironmentStart) {
        self.start = start;
    }

    /// Exits, syscalls and setup time of the last invocation.
    pub fn last_stats(&self) -> &RunStats {
        &self.last_stats
    }

    /// Runs one invocation (the inherent form of [`ExecutionEnvironment::invoke`]).
    pub fn run(&mut self, invocation: Invocation) -> Result<InvokeResult, VmmError> {
        let (result, stats) = match &self.snapshot {
            Some(snapshot) => run_restored(snapshot.frozen(), invocation, &self.options)?,
            None => run_once(
                &self.image,
                &self.package,
                &self.config,
                invocation,
                &self.options,
            )?,
        };
        self.last_stats = stats;
        Ok(result)
    }
}

impl ExecutionEnvironment for StdioEnvironment {
    /// Runs [`StdioEnvironment::run`]; a panic inside it is an [`EnvironmentError::Failed`]
    /// naming it (the invocation's VM went with the unwinding; the next one gets a new VM).
    fn invoke(&mut self, invocation: Invocation) -> Result<InvokeResult, EnvironmentError> {
        guarded("invoke", || {
            self.run(invocation).map_err(EnvironmentError::from)
        })
        .unwrap_or_else(Err)
    }

    fn init_duration(&self) -> Duration {
        // Each invocation builds (or restores) its own VM; that setup is reported as its
        // Init (or Restore) Duration.
        self.last_stats.setup
    }

    fn fresh_per_invocation(&self) -> bool {
        true
    }

    fn start(&self) -> EnvironmentStart {
        self.start.clone()
    }

    fn shutdown(self: Box<Self>) {}
}

/// Runs `image` once with the invocation's payload on stdin, in a fresh VM of `config`'s
/// memory size, stopping it at `config.timeout`.
fn run_once(
    image: &ProgramImage,
    package: &CodePackage,
    config: &FunctionConfig,
    invocation: Invocation,
    options: &MachineOptions,
) -> Result<(InvokeResult, RunStats), VmmError> {
    let envp = guest_environment(config, None);
    let fs = guest_file_system(package, config);
    let payload = invocation.payload;
    let log = LogCollector::start(&invocation.request_id, "$LATEST", DEFAULT_LOG_CAPACITY);
    let mut machine = Machine::boot(image, config, &envp, options, |tsc_offset| KernelSetup {
        tsc_offset,
        fs,
        stdin: Some(payload),
        api: None,
        log,
    })?;
    run_to_end(&mut machine, config, invocation.request_id, false)
}

/// Runs `machine` until its program ends (or `config`'s timeout), and puts the end in
/// Lambda's words: stdout is the response of an exit with status 0. Its setup is reported as
/// the invocation's Restore Duration if it was `restored`, else as its Init Duration.
fn run_to_end(
    machine: &mut Machine,
    config: &FunctionConfig,
    request_id: String,
    restored: bool,
) -> Result<(InvokeResult, RunStats), VmmError> {
    let start = Instant::now();
    let settled = machine.run(start + config.timeout, |_, _| false)?;
    let duration = start.elapsed();
    let stats = RunStats::since_boot(machine);
    let ending = match settled {
        Settled::Ended(Stop::Exited(0)) => {
            Ending::Answered(InvokeOutcome::Response(machine.kernel().take_response()))
        }
        Settled::Ended(stop) => Ending::stopped(stop),
        Settled::Waiting => unreachable!("a one-shot run never stops while waiting"),
    };
    let setup = Some(stats.setup);
    let measured = Measured {
        request_id,
        duration,
        max_memory_used_mb: machine.memory_used_mb(),
        init_duration: setup.filter(|_| !restored),
        restore_duration: setup.filter(|_| restored),
        out_of_memory: machine.out_of_memory(),
    };
    let log = machine.kernel().log_mut();
    note_unsupported(log, &stats.unsupported_syscalls);
    let result = ending::finish(ending, measured, config, log);
    Ok((result, stats))
}

/// Boots `image` with its event held back and runs it until it first waits to read stdin
/// with no thread able to run (at most Init's 10 s), then freezes it there.
pub(crate) fn snapshot(
    image: &ProgramImage,
    package: &CodePackage,
    config: &FunctionConfig,
    options: &MachineOptions,
) -> Result<Snapshot, SnapshotError> {
    let start = Instant::now();
    let envp = guest_environment(config, None);
    let fs = guest_file_system(package, config);
    let mut machine = Machine::boot(image, config, &envp, options, |tsc_offset| KernelSetup {
        tsc_offset,
        fs,
        stdin: Some(Vec::new()),
        api: None,
        log: LogCollector::new(DEFAULT_LOG_CAPACITY),
    })
    .map_err(|error| SnapshotError::Init(error.into()))?;
    machine.kernel().hold_stdin();
    let settled = machine
        .run(
            start + lambda_core::limits::INIT_TIMEOUT,
            |kernel, nothing_runnable| kernel.stdin_awaited() && nothing_runnable,
        )
        .map_err(|error| SnapshotError::Init(error.into()))?;
    let init_duration = start.elapsed();
    if let Settled::Ended(stop) = settled {
        let why = match stop {
            Stop::TimedOut => "it did not read stdin within Init's 10 s".to_string(),
            stop => format!(
                "it ended before reading stdin ({})",
                stop.error(config, false).0.message
            ),
        };
        return Err(SnapshotError::NotQuiescent(why));
    }
    let frozen = machine.snapshot()?;
    Ok(Snapshot::new(Frozen {
        machine: frozen,
        package: package.clone(),
        config: config.clone(),
        init_duration,
        ready: Default::default(),
        lesson: Default::default(),
    }))
}

/// Runs one invocation in a fresh VM restored from `frozen`, with the payload on stdin.
fn run_restored(
    frozen: &Frozen,
    invocation: Invocation,
    options: &MachineOptions,
) -> Result<(InvokeResult, RunStats), VmmError> {
    let config = &frozen.config;
    let log = LogCollector::start(&invocation.request_id, "$LATEST", DEFAULT_LOG_CAPACITY);
    let mut machine = frozen.machine(options, log)?;
    machine.kernel().deliver_stdin(invocation.payload);
    let ran = run_to_end(&mut machine, config, invocation.request_id, true);
    frozen.learn(&mut machine);
    ran
}
