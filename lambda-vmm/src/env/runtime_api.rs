//! A warm execution environment: one micro-VM running a Runtime API function through Init,
//! then invocation after invocation, until it is shut down or reset.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_core::logs::{DEFAULT_LOG_CAPACITY, LogCollector};
use lambda_core::runtime_api::{ApiEvent, RuntimeApi};
use lambda_core::{
    Ending, EnvironmentError, EnvironmentStart, ExecutionEnvironment, FunctionConfig,
    FunctionError, Invocation, InvokeOutcome, InvokeResult, Measured, Report, ResetReason, Stop,
    ending, limits,
};

use super::file_system::guest_file_system;
use super::guard::guarded;
use super::stats::{RunStats, note_unsupported};
use super::variables::guest_environment;
use crate::error::VmmError;
use crate::kernel::{Kernel, KernelSetup, RUNTIME_API_ENDPOINT};
use crate::machine::{Machine, MachineOptions, Settled};
use crate::program::{CodePackage, ProgramImage};
use crate::snapshot::{Frozen, QUIESCE_TIMEOUT, Snapshot, SnapshotError};
use crate::trace::span;

/// A Runtime API function in its own micro-VM, kept warm between invocations: globals,
/// connections and `/tmp` survive from one invocation to the next. A crash, timeout or exit
/// during an invocation resets it: the next invocation boots a fresh VM and runs Init again
/// (or, for an environment restored from a snapshot, restores it again).
pub struct RuntimeApiEnvironment {
    image: ProgramImage,
    package: CodePackage,
    config: FunctionConfig,
    options: MachineOptions,
    machine: Option<Machine>,
    init_duration: Duration,
    /// Init Duration to report on the next invocation (the first after each Init).
    unreported_init: Option<Duration>,
    init_stats: RunStats,
    last_stats: RunStats,
    /// The snapshot it was restored from, which a reset restores again.
    snapshot: Option<Snapshot>,
    /// Restore Duration to report on the next invocation (the first after each restore).
    unreported_restore: Option<Duration>,
    /// How it started.
    start: EnvironmentStart,
}

fn epoch_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// What the Runtime API has told the host so far in one phase (Init or an invocation).
#[derive(Default)]
struct Observed {
    init_done: bool,
    init_error: Option<FunctionError>,
    done: Option<InvokeOutcome>,
}

impl Observed {
    /// Takes every event the API has queued.
    fn drain(&mut self, kernel: &mut Kernel) {
        let api = kernel
            .api_mut()
            .expect("a Runtime API environment has its API");
        while let Some(event) = api.next_event() {
            match event {
                ApiEvent::InitDone => self.init_done = true,
                ApiEvent::InitError(error) => self.init_error = Some(error),
                ApiEvent::InvocationDone { outcome, .. } => self.done = Some(outcome),
                ApiEvent::InvocationStarted { .. } => {}
            }
        }
    }
}

/// Boots a VM and runs the function's Init: until its first `next`, an init error, a crash or
/// the 10 s limit.
fn init(
    image: &ProgramImage,
    package: &CodePackage,
    config: &FunctionConfig,
    options: &MachineOptions,
) -> Result<(Machine, Duration), EnvironmentError> {
    span!("init", function = config.name.as_str());
    let start = Instant::now();
    let envp = guest_environment(config, Some(RUNTIME_API_ENDPOINT));
    let fs = guest_file_system(package, config);
    let mut machine = Machine::boot(image, config, &envp, options, |tsc_offset| KernelSetup {
        tsc_offset,
        fs,
        stdin: None,
        api: Some(RuntimeApi::for_function(config)),
        log: LogCollector::new(DEFAULT_LOG_CAPACITY),
    })
    .map_err(EnvironmentError::from)?;
    let mut seen = Observed::default();
    let settled = machine
        .run(start + limits::INIT_TIMEOUT, |kernel, _| {
            // Init ends when the runtime first asks for an event (or reports its failure).
            seen.drain(kernel);
            seen.init_done || seen.init_error.is_some()
        })
        .map_err(EnvironmentError::from)?;
    let init_duration = start.elapsed();
    // A runtime that reports its init error usually exits at once.
    seen.drain(machine.kernel());
    let error = match (settled, seen.init_error) {
        (Settled::Waiting, None) => return Ok((machine, init_duration)),
        (_, Some(error)) => error,
        (Settled::Ended(Stop::TimedOut), None) => ending::init_timed_out(),
        (Settled::Ended(stop), None) => {
            let out_of_memory = machine.out_of_memory();
            stop.error(config, out_of_memory).0
        }
    };
    Err(ending::init_failed(
        error,
        init_duration,
        machine.kernel().log_mut(),
    ))
}

/// A machine restored from `frozen` (one restored ahead if one is ready), with an empty log.
fn restore_machine(frozen: &Frozen, options: &MachineOptions) -> Result<Machine, EnvironmentError> {
    span!("restore", function = frozen.config.name.as_str());
    frozen
        .machine(options, LogCollector::new(DEFAULT_LOG_CAPACITY))
        .map_err(EnvironmentError::from)
}

impl RuntimeApiEnvironment {
    /// Boots the function and runs its Init.
    pub(crate) fn start(
        image: ProgramImage,
        package: CodePackage,
        config: FunctionConfig,
        options: MachineOptions,
    ) -> Result<RuntimeApiEnvironment, EnvironmentError> {
        let (machine, init_duration) = init(&image, &package, &config, &options)?;
        Ok(RuntimeApiEnvironment {
            image,
            package,
            config,
            options,
            init_stats: RunStats::since_boot(&machine),
            machine: Some(machine),
            init_duration,
            unreported_init: Some(init_duration),
            last_stats: RunStats::default(),
            snapshot: None,
            unreported_restore: None,
            start: EnvironmentStart::Init,
        })
    }

    /// An environment in the state `snapshot` froze, in a micro-VM of its own.
    pub(crate) fn restore(
        snapshot: &Snapshot,
        options: MachineOptions,
    ) -> Result<RuntimeApiEnvironment, EnvironmentError> {
        let frozen = snapshot.frozen();
        let machine = restore_machine(frozen, &options)?;
        let restore_duration = machine.setup_time();
        Ok(RuntimeApiEnvironment {
            image: frozen.machine.image().clone(),
            package: frozen.package.clone(),
            config: frozen.config.clone(),
            options,
            init_stats: RunStats::since_boot(&machine),
            machine: Some(machine),
            init_duration: restore_duration,
            unreported_init: None,
            last_stats: RunStats::default(),
            snapshot: Some(snapshot.clone()),
            unreported_restore: Some(restore_duration),
            start: EnvironmentStart::Restored,
        })
    }

    /// Records how the environment started (SnapStart's refusal, for one).
    pub(crate) fn set_start(&mut self, start: EnvironmentStart) {
        self.start = start;
    }

    /// Freezes the environment where it waits for its next invocation (see
    /// [`crate::Snapshot`]); it goes on serving invocations afterwards. The function gets
    /// up to [`QUIESCE_TIMEOUT`] for every thread to wait in a call; one that keeps a thread
    /// running longer cannot be snapshotted, and is reset (its next invocation runs Init
    /// again).
    pub fn snapshot(&mut self) -> Result<Snapshot, SnapshotError> {
        span!("snapshot", function = self.config.name.as_str());
        let machine = self.machine.as_mut().ok_or(SnapshotError::NoMachine)?;
        let settled = machine.settle(Instant::now() + QUIESCE_TIMEOUT);
        let why = match settled {
            Ok(Ok(())) => None,
            Ok(Err(Stop::TimedOut)) => Some(format!(
                "a thread was still running {} ms after the runtime asked for its next \
                 invocation",
                QUIESCE_TIMEOUT.as_millis()
            )),
            Ok(Err(stop)) => Some(format!(
                "it ended before its next invocation ({})",
                stop.error(&self.config, false).0.message
            )),
            Err(error) => Some(crate::error::chain(&error)),
        };
        if let Some(why) = why {
            self.machine = None;
            return Err(SnapshotError::NotQuiescent(why));
        }
        let machine = machine.snapshot()?;
        Ok(Snapshot::new(Frozen {
            machine,
            package: self.package.clone(),
            config: self.config.clone(),
            init_duration: self.init_duration,
            ready: Default::default(),
            lesson: Default::default(),
        }))
    }

    /// Exits and syscalls of the latest Init (the runtime's start until its first `next`),
    /// the VM's setup time, and whether it came from the spare pool.
    pub fn init_stats(&self) -> &RunStats {
        &self.init_stats
    }

    /// Exits and syscalls of the last invocation (the guest's work between its `next`s).
    pub fn last_stats(&self) -> &RunStats {
        &self.last_stats
    }

    /// Bytes the function keeps in `/tmp`.
    pub fn tmp_used(&mut self) -> u64 {
        self.machine.as_mut().map_or(0, |m| m.kernel().tmp_used())
    }

    /// Runs one invocation (the inherent form of [`ExecutionEnvironment::invoke`]).
    pub fn run(&mut self, invocation: Invocation) -> Result<InvokeResult, VmmError> {
        let request_id = invocation.request_id.clone();
        if self.machine.is_none()
            && let Some(snapshot) = &self.snapshot
        {
            let machine =
                restore_machine(snapshot.frozen(), &self.options).map_err(VmmError::Restart)?;
            self.init_stats = RunStats::since_boot(&machine);
            self.unreported_restore = Some(machine.setup_time());
            self.machine = Some(machine);
        }
        if self.machine.is_none() {
            match init(&self.image, &self.package, &self.config, &self.options) {
                Ok((machine, init_duration)) => {
                    self.init_stats = RunStats::since_boot(&machine);
                    self.machine = Some(machine);
                    self.init_duration = init_duration;
                    self.unreported_init = Some(init_duration);
                }
                Err(EnvironmentError::Init {
                    error,
                    init_duration,
                    log_tail,
                }) => {
                    return Ok(self.failed_result(request_id, error, init_duration, log_tail));
                }
                Err(other) => return Err(VmmError::Restart(other)),
            }
        }
        let config = &self.config;
        let machine = self.machine.as_mut().expect("booted above");
        let (exits_before, syscalls_before, direct_before, faults_before) = (
            machine.exits(),
            machine.stats().syscalls,
            machine.direct_syscalls(),
            machine.page_faults(),
        );
        let kernel = machine.kernel();
        // After what the function printed during Init or since the last invocation.
        kernel.log_mut().begin(&request_id, "$LATEST");
        let deadline_ms = epoch_millis(SystemTime::now() + config.timeout);
        let api = kernel
            .api_mut()
            .expect("a Runtime API environment has its API");
        api.deliver(invocation, deadline_ms)
            .map_err(VmmError::Deliver)?;
        let start = Instant::now();
        let mut seen = Observed::default();
        let settled = machine.run(start + config.timeout, |kernel, nothing_runnable| {
            // The invocation is over once its result is posted and the runtime asks for the
            // next event, as Lambda freezes it then: another thread blocking after the result
            // is not the end (a runtime's other threads go on until it asks). A runtime that
            // never asks is stopped once none of its threads can run.
            seen.drain(kernel);
            let next_asked = kernel.api_mut().is_some_and(|api| api.next_parked());
            seen.done.is_some() && (next_asked || nothing_runnable)
        })?;
        let duration = start.elapsed();
        // A runtime may post its result and then exit or crash.
        seen.drain(machine.kernel());
        let ending = match (settled, seen.done) {
            (Settled::Waiting, Some(outcome)) => Ending::Answered(outcome),
            (Settled::Ended(stop), answer) => Ending::Stopped { stop, answer },
            (Settled::Waiting, None) => unreachable!("the run stops waiting only once done"),
        };
        if let Some(snapshot) = &self.snapshot {
            snapshot.frozen().learn(machine);
        }
        self.last_stats = RunStats {
            exits: machine.exits() - exits_before,
            syscalls: machine.stats().syscalls - syscalls_before,
            direct_syscalls: machine.direct_syscalls() - direct_before,
            page_faults: machine.page_faults() - faults_before,
            unsupported_syscalls: machine.stats().unsupported.clone(),
            setup: Duration::ZERO,
            spare_vm: false,
            vcpus: machine.vcpus_used(),
            warmed_pages: 0,
            copied_pages: 0,
        };
        let measured = Measured {
            request_id,
            duration,
            max_memory_used_mb: machine.memory_used_mb(),
            init_duration: self.unreported_init.take(),
            restore_duration: self.unreported_restore.take(),
            out_of_memory: machine.out_of_memory(),
        };
        // What the function prints from now on goes to the next invocation's log.
        let mut log = machine
            .kernel()
            .replace_log(LogCollector::new(DEFAULT_LOG_CAPACITY));
        note_unsupported(&mut log, &self.last_stats.unsupported_syscalls);
        let result = ending::finish(ending, measured, config, &mut log);
        if result.reset.is_some() {
            self.machine = None;
        }
        Ok(result)
    }

    fn failed_result(
        &self,
        request_id: String,
        error: FunctionError,
        init_duration: Duration,
        log_tail: Vec<u8>,
    ) -> InvokeResult {
        let report = Report {
            request_id,
            duration: Duration::ZERO,
            memory_size_mb: self.config.memory_mb,
            max_memory_used_mb: 0,
            init_duration: Some(init_duration),
            restore_duration: None,
        };
        InvokeResult {
            outcome: InvokeOutcome::Error(error),
            report,
            log_tail,
            reset: Some(ResetReason::Crash),
        }
    }
}

impl ExecutionEnvironment for RuntimeApiEnvironment {
    /// Runs [`RuntimeApiEnvironment::run`]; a panic inside it is an
    /// [`EnvironmentError::Failed`] naming it, and the VM is dropped, so the next invocation
    /// boots a fresh one and runs Init again.
    fn invoke(&mut self, invocation: Invocation) -> Result<InvokeResult, EnvironmentError> {
        guarded("invoke", || {
            self.run(invocation).map_err(EnvironmentError::from)
        })
        .unwrap_or_else(|panicked| {
            self.machine = None;
            Err(panicked)
        })
    }

    fn init_duration(&self) -> Duration {
        self.init_duration
    }

    fn start(&self) -> EnvironmentStart {
        self.start.clone()
    }

    fn shutdown(self: Box<Self>) {
        if let Some(machine) = self.machine {
            machine.destroy();
        }
    }
}
