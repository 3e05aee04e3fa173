//! An environment for a one-shot stdio function: every invocation is a fresh run of the
//! program with the event on stdin, the response on stdout and the log on stderr.

use std::io::{Read, Write};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lambda_core::logs::LogCollector;
use lambda_core::runtime_api::{EnvironmentInfo, runtime_environment};
use lambda_core::{
    Ending, EnvironmentError, ErrorType, ExecutionEnvironment, FunctionConfig, Invocation,
    InvokeOutcome, InvokeResult, Measured, Stop, ending, limits,
};

use super::Options;
use super::bootstrap::{self, Program};
use super::child::{ChildProcess, Streams};
use super::exit;
use super::memory::max_memory_used_mb;
use super::workdir::WorkDir;
use crate::sync::{lock, wait_timeout};

/// Longest pause between looks at a running process (its exit status and memory); the first
/// looks come sooner, so that short runs are measured too.
const MAX_POLL: Duration = Duration::from_millis(10);

/// A stdio environment of the process backend.
pub(super) struct StdioEnvironment {
    config: FunctionConfig,
    options: Options,
    program: Program,
    env: Vec<(String, String)>,
    /// Dropped last: the directory must outlive the processes using it.
    workdir: WorkDir,
}

/// What the reader threads of one run share with the invoking thread.
struct Run {
    state: Mutex<RunState>,
    changed: Condvar,
}

struct RunState {
    stdout: Vec<u8>,
    stdout_done: bool,
    too_large: bool,
    stderr_done: bool,
    log: LogCollector,
}

impl Run {
    fn lock(&self) -> MutexGuard<'_, RunState> {
        lock(&self.state)
    }
}

/// What waiting on a run came to.
enum Waited {
    Exited(ExitStatus),
    TooLarge,
    TimedOut,
}

impl StdioEnvironment {
    /// Prepares the code; there is no Init for a one-shot function.
    pub(super) fn create(
        config: &FunctionConfig,
        options: &Options,
    ) -> Result<StdioEnvironment, EnvironmentError> {
        let (workdir, program) = bootstrap::stage(&config.code, &options.temp_root)?;
        let info =
            EnvironmentInfo::new("stdio").with_task_root(program.task_root.display().to_string());
        let mut env: Vec<(String, String)> = runtime_environment(config, None, &info);
        env.push(("TMPDIR".into(), workdir.tmp().display().to_string()));
        Ok(StdioEnvironment {
            config: config.clone(),
            options: options.clone(),
            program,
            env,
            workdir,
        })
    }
}

impl ExecutionEnvironment for StdioEnvironment {
    fn invoke(&mut self, invocation: Invocation) -> Result<InvokeResult, EnvironmentError> {
        let started = Instant::now();
        let request_id = invocation.request_id.clone();
        let run = Arc::new(Run {
            state: Mutex::new(RunState {
                stdout: Vec::new(),
                stdout_done: false,
                too_large: false,
                stderr_done: false,
                log: LogCollector::start(&request_id, "$LATEST", self.options.log_capacity),
            }),
            changed: Condvar::new(),
        });
        let spawned = ChildProcess::spawn(
            &self.program.path,
            &self.env,
            &self.workdir.tmp(),
            self.options.cpus(&self.config),
            Streams {
                stdin: Stdio::piped(),
                stdout: Stdio::piped(),
                stderr: Stdio::piped(),
            },
        );
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => {
                let message = format!("cannot start {}: {error}", self.program.path.display());
                let ending = Ending::Answered(InvokeOutcome::failed(
                    ErrorType::RuntimeInvalidEntrypoint,
                    message,
                ));
                return Ok(self.finish(&run, ending, request_id, started.elapsed(), 0));
            }
        };
        let threads = start_threads(&mut child, invocation.payload, &run)?;

        let deadline = started + self.config.timeout;
        let mut poll = Duration::from_micros(100);
        let mut memory_mb = 0;
        let waited = {
            let mut state = run.lock();
            loop {
                if state.too_large {
                    break Waited::TooLarge;
                }
                if let Some(status) = child.try_wait() {
                    // Anything it left running dies with it; then its pipes reach end of file.
                    child.kill();
                    if state.stdout_done && state.stderr_done {
                        break Waited::Exited(status);
                    }
                } else if let Some(mb) = max_memory_used_mb(child.pid()) {
                    memory_mb = memory_mb.max(mb);
                }
                if Instant::now() >= deadline {
                    break Waited::TimedOut;
                }
                let wake = (Instant::now() + poll).min(deadline);
                let timeout = wake.saturating_duration_since(Instant::now());
                state = wait_timeout(&run.changed, state, timeout);
                poll = (poll * 2).min(MAX_POLL);
            }
        };
        let duration = started.elapsed();
        child.kill();
        for thread in threads {
            let _ = thread.join();
        }
        let ending = match waited {
            Waited::Exited(status) if status.success() => {
                let stdout = std::mem::take(&mut run.lock().stdout);
                Ending::Answered(InvokeOutcome::Response(stdout))
            }
            Waited::Exited(status) => Ending::stopped(exit::stop(status)),
            Waited::TooLarge => Ending::stopped(Stop::ResponseTooLarge),
            Waited::TimedOut => Ending::stopped(Stop::TimedOut),
        };
        Ok(self.finish(&run, ending, request_id, duration, memory_mb))
    }

    fn init_duration(&self) -> Duration {
        Duration::ZERO
    }

    fn fresh_per_invocation(&self) -> bool {
        true
    }

    fn shutdown(self: Box<Self>) {
        drop(self);
    }
}

impl StdioEnvironment {
    /// Ends the run's log and assembles the result.
    fn finish(
        &self,
        run: &Run,
        ending: Ending,
        request_id: String,
        duration: Duration,
        memory_mb: u32,
    ) -> InvokeResult {
        let measured = Measured {
            request_id,
            duration,
            max_memory_used_mb: memory_mb,
            init_duration: None,
            restore_duration: None,
            out_of_memory: false,
        };
        ending::finish(ending, measured, &self.config, &mut run.lock().log)
    }
}

/// Feeds the payload to stdin, collects stdout (stopping past the size limit) and stderr.
fn start_threads(
    child: &mut ChildProcess,
    payload: Vec<u8>,
    run: &Arc<Run>,
) -> Result<Vec<JoinHandle<()>>, EnvironmentError> {
    let (stdin, stdout, stderr) = child.take_pipes();
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) = (stdin, stdout, stderr) else {
        return Err(EnvironmentError::failed("the child's pipes are missing"));
    };
    let failed = |error: std::io::Error| {
        EnvironmentError::failed_because("cannot start an I/O thread", error)
    };
    let mut threads = Vec::new();
    threads.push(
        std::thread::Builder::new()
            .name("fn-stdin".into())
            .spawn(move || {
                // A program that exits without reading its input is not an error here.
                let _ = stdin.write_all(&payload);
            })
            .map_err(failed)?,
    );
    let out_run = Arc::clone(run);
    threads.push(
        std::thread::Builder::new()
            .name("fn-stdout".into())
            .spawn(move || {
                let limit = limits::MAX_SYNC_PAYLOAD_BYTES;
                let mut buffer = vec![0; 64 * 1024];
                loop {
                    let n = match stdout.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let mut state = out_run.lock();
                    if state.stdout.len() + n > limit {
                        // Stop reading: the invoker kills the process.
                        state.too_large = true;
                        break;
                    }
                    state.stdout.extend_from_slice(&buffer[..n]);
                }
                out_run.lock().stdout_done = true;
                out_run.changed.notify_all();
            })
            .map_err(failed)?,
    );
    let err_run = Arc::clone(run);
    threads.push(
        std::thread::Builder::new()
            .name("fn-stderr".into())
            .spawn(move || {
                let mut buffer = vec![0; 64 * 1024];
                loop {
                    let n = match stderr.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    err_run.lock().log.write(&buffer[..n]);
                }
                err_run.lock().stderr_done = true;
                err_run.changed.notify_all();
            })
            .map_err(failed)?,
    );
    Ok(threads)
}
