//! An environment for a Runtime API function: a long-lived child process, its localhost
//! Runtime API server and its output capture; Init once, then invocation after invocation.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_core::logs::LogCollector;
use lambda_core::runtime_api::{
    ApiEvent, EnvironmentInfo, RuntimeApi, log_stream_name, runtime_environment,
};
use lambda_core::{
    Ending, EnvironmentError, ExecutionEnvironment, FunctionConfig, FunctionError, Invocation,
    InvokeOutcome, InvokeResult, Measured, Stop, ending, limits,
};

use super::Options;
use super::api_server::ApiServer;
use super::bootstrap::{self, Program};
use super::capture::Capture;
use super::child::{ChildProcess, Streams};
use super::exit;
use super::hub::Hub;
use super::memory::max_memory_used_mb;
use super::workdir::WorkDir;

/// How often a waiting invoker looks at the child's exit status; a response or an init event
/// wakes it at once.
const EXIT_POLL: Duration = Duration::from_millis(5);

/// One running process of the environment.
struct Instance {
    /// Declared first so that it is dropped (killed) first: the capture's reader can only
    /// finish once the process is gone.
    child: ChildProcess,
    capture: Capture,
}

impl Instance {
    /// Kills the process group and collects the rest of its output.
    fn stop(mut self) {
        self.child.kill();
        self.capture.finish();
    }
}

/// A Runtime API environment of the process backend.
pub(super) struct RuntimeEnvironment {
    config: FunctionConfig,
    options: Options,
    program: Program,
    hub: Arc<Hub>,
    server: ApiServer,
    instance: Option<Instance>,
    /// Init Duration of the current instance, reported by its first invocation.
    init_duration: Duration,
    report_init: bool,
    last_memory_mb: u32,
    info: EnvironmentInfo,
    /// Dropped last: the directory must outlive the process using it.
    workdir: WorkDir,
}

impl RuntimeEnvironment {
    /// Prepares the code, starts the server and runs Init.
    pub(super) fn create(
        config: &FunctionConfig,
        options: &Options,
    ) -> Result<RuntimeEnvironment, EnvironmentError> {
        let (workdir, program) = bootstrap::stage(&config.code, &options.temp_root)?;
        let hub = Arc::new(Hub::new(
            RuntimeApi::for_function(config),
            LogCollector::new(options.log_capacity),
        ));
        let server = ApiServer::start(Arc::clone(&hub)).map_err(|error| {
            EnvironmentError::failed_because("cannot start the Runtime API server", error)
        })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let instance = format!(
            "{:016x}{:016x}",
            now.as_nanos() as u64,
            server.addr().port()
        );
        let info = EnvironmentInfo::new(log_stream_name(now.as_secs(), "$LATEST", &instance))
            .with_task_root(program.task_root.display().to_string());
        let mut environment = RuntimeEnvironment {
            config: config.clone(),
            options: options.clone(),
            program,
            hub,
            server,
            instance: None,
            init_duration: Duration::ZERO,
            report_init: false,
            last_memory_mb: 0,
            info,
            workdir,
        };
        environment.init()?;
        Ok(environment)
    }

    /// Starts a fresh process and waits for its first `next` (at most 10 s).
    fn init(&mut self) -> Result<(), EnvironmentError> {
        let started = Instant::now();
        self.server.reset(RuntimeApi::for_function(&self.config));
        self.hub.lock().log = LogCollector::new(self.options.log_capacity);
        let (capture, stdout, stderr) = Capture::start(Arc::clone(&self.hub)).map_err(|error| {
            EnvironmentError::failed_because("cannot capture the function's output", error)
        })?;
        let mut env = runtime_environment(
            &self.config,
            Some(&self.server.addr().to_string()),
            &self.info,
        );
        env.push(("TMPDIR".into(), self.workdir.tmp().display().to_string()));
        let spawned = ChildProcess::spawn(
            &self.program.path,
            &env,
            &self.workdir.tmp(),
            self.options.cpus(&self.config),
            Streams {
                stdin: Stdio::null(),
                stdout,
                stderr,
            },
        );
        let child = match spawned {
            Ok(child) => child,
            Err(error) => {
                capture.finish();
                return Err(EnvironmentError::Code(format!(
                    "cannot start {}: {error}",
                    self.program.path.display()
                )));
            }
        };
        let mut instance = Instance { child, capture };
        let deadline = started + limits::INIT_TIMEOUT;
        let failure = {
            let mut state = self.hub.lock();
            loop {
                let mut done = false;
                let mut reported = None;
                while let Some(event) = state.api.next_event() {
                    match event {
                        ApiEvent::InitDone => done = true,
                        ApiEvent::InitError(error) => reported = Some(error),
                        _ => {}
                    }
                }
                if reported.is_some() || done {
                    break reported;
                }
                if let Some(status) = instance.child.try_wait() {
                    drop(state);
                    let (error, _) = exit::stop(status).error(&self.config, false);
                    // A runtime that reported its error just before exiting: prefer the report.
                    break Some(self.settle_after_exit().unwrap_or(error));
                }
                if Instant::now() >= deadline {
                    break Some(ending::init_timed_out());
                }
                state = self
                    .hub
                    .wait_until(state, (Instant::now() + EXIT_POLL).min(deadline));
            }
        };
        let init_duration = started.elapsed();
        match failure {
            None => {
                // What the runtime printed during Init is in the log before the first START.
                instance.capture.flush();
                self.init_duration = init_duration;
                self.report_init = true;
                self.last_memory_mb = max_memory_used_mb(instance.child.pid()).unwrap_or(0);
                self.instance = Some(instance);
                Ok(())
            }
            Some(error) => {
                instance.stop();
                let mut state = self.hub.lock();
                Err(ending::init_failed(error, init_duration, &mut state.log))
            }
        }
    }

    /// After the process exited: lets the connection threads finish the requests it sent
    /// (at most 100 ms), and returns an init error it reported.
    fn settle_after_exit(&self) -> Option<FunctionError> {
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut state = self.hub.lock();
        while !state.streams.is_empty() && Instant::now() < deadline {
            state = self.hub.wait_until(state, deadline);
        }
        let mut reported = None;
        while let Some(event) = state.api.next_event() {
            if let ApiEvent::InitError(error) = event {
                reported = Some(error);
            }
        }
        reported
    }

    /// Stops the current process, if any.
    fn stop_instance(&mut self) {
        if let Some(instance) = self.instance.take() {
            instance.stop();
        }
    }

    /// Runs one invocation on a live instance.
    fn run(&mut self, invocation: Invocation) -> Result<InvokeResult, EnvironmentError> {
        let request_id = invocation.request_id.clone();
        let timeout = self.config.timeout;
        let started = Instant::now();
        let deadline = started + timeout;
        let deadline_ms = (SystemTime::now() + timeout)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        {
            let mut state = self.hub.lock();
            // After what the function printed during Init or since the last invocation.
            state.log.begin(&request_id, "$LATEST");
            state
                .api
                .deliver(invocation, deadline_ms)
                .map_err(|error| {
                    EnvironmentError::failed_because(
                        "the Runtime API refused the invocation",
                        error,
                    )
                })?;
        }
        self.hub.notify();
        let instance = self.instance.as_mut().expect("a live instance");
        let waited = {
            let mut state = self.hub.lock();
            // The result, once posted. The invocation is over when the runtime then asks for
            // its next event (as the micro-VM backend and Lambda have it), exits, or runs out
            // of time.
            let mut outcome = None;
            loop {
                while let Some(event) = state.api.next_event() {
                    if let ApiEvent::InvocationDone {
                        request_id: done,
                        outcome: result,
                    } = event
                    {
                        if done == request_id {
                            outcome = Some(result);
                        }
                    }
                }
                if outcome.is_some() && state.api.next_parked() {
                    break Waited::Done(outcome.take().expect("checked"));
                }
                if let Some(status) = instance.child.try_wait() {
                    break match outcome.take() {
                        // It exits after its result: the next invocation finds it gone.
                        Some(outcome) => Waited::Done(outcome),
                        None => Waited::Exited(status),
                    };
                }
                if Instant::now() >= deadline {
                    break match outcome.take() {
                        Some(outcome) => Waited::Done(outcome),
                        None => Waited::TimedOut,
                    };
                }
                state = self
                    .hub
                    .wait_until(state, (Instant::now() + EXIT_POLL).min(deadline));
            }
        };
        let duration = started.elapsed();
        let ending = match waited {
            Waited::Done(outcome) => {
                let instance = self.instance.as_mut().expect("a live instance");
                instance.capture.flush();
                if let Some(mb) = max_memory_used_mb(instance.child.pid()) {
                    self.last_memory_mb = mb;
                }
                Ending::Answered(outcome)
            }
            Waited::Exited(status) => {
                self.stop_instance();
                Ending::stopped(exit::stop(status))
            }
            Waited::TimedOut => {
                let pid = self.instance.as_ref().map(|instance| instance.child.pid());
                if let Some(mb) = pid.and_then(max_memory_used_mb) {
                    self.last_memory_mb = mb;
                }
                self.stop_instance();
                Ending::stopped(Stop::TimedOut)
            }
        };
        let measured = Measured {
            request_id,
            duration,
            max_memory_used_mb: self.last_memory_mb,
            init_duration: std::mem::take(&mut self.report_init).then_some(self.init_duration),
            restore_duration: None,
            out_of_memory: false,
        };
        // What the function prints from now on goes to the next invocation's log.
        let mut log = std::mem::replace(
            &mut self.hub.lock().log,
            LogCollector::new(self.options.log_capacity),
        );
        Ok(ending::finish(ending, measured, &self.config, &mut log))
    }
}

/// What waiting on a running invocation came to.
enum Waited {
    Done(InvokeOutcome),
    Exited(std::process::ExitStatus),
    TimedOut,
}

impl ExecutionEnvironment for RuntimeEnvironment {
    fn invoke(&mut self, invocation: Invocation) -> Result<InvokeResult, EnvironmentError> {
        // A process that ended between invocations is replaced before this one.
        let exited = self
            .instance
            .as_mut()
            .is_some_and(|instance| instance.child.try_wait().is_some());
        if exited {
            self.stop_instance();
        }
        if self.instance.is_none() {
            self.init()?;
        }
        self.run(invocation)
    }

    fn init_duration(&self) -> Duration {
        self.init_duration
    }

    fn shutdown(self: Box<Self>) {
        drop(self);
    }
}

impl Drop for RuntimeEnvironment {
    fn drop(&mut self) {
        self.stop_instance();
        self.server.stop();
    }
}
