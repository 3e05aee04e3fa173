//! A fake backend: a **test double** for [`lambda_core::Backend`], public so that tests,
//! benches and examples of other crates can use it. It runs no code.
//!
//! Each fake environment answers according to its invocation's payload:
//!
//! | payload                 | what the fake does                                              |
//! |-------------------------|-----------------------------------------------------------------|
//! | `fake:error`            | a function error of type `FakeError`                            |
//! | `fake:crash`            | `Runtime.ExitError`, environment reset (crash)                  |
//! | `fake:timeout`          | `Sandbox.Timedout`, environment reset (the backend enforced it)  |
//! | `fake:hang`             | runs past its timeout without stopping: advances the attached   |
//! |                         | [`ManualClock`] by timeout + 5 s (or sleeps that long), answers |
//! | `fake:broken`           | `Err(EnvironmentError::Failed)`: the environment broke          |
//! | `fake:panic`            | panics inside `invoke` (the service answers `Sandbox.Failure`   |
//! |                         | and discards the environment, as for `fake:broken`)             |
//! | `fake:sleep:<ms>`       | sleeps `ms` real milliseconds, then echoes                      |
//! | `fake:advance:<ms>`     | advances the attached manual clock by `ms`, then echoes         |
//! | `fake:large`            | a response one byte over 6 MB                                   |
//! | `{"Records": [...]}`    | an event-source batch: records whose body is `fail` fail; with  |
//! |                         | `FAKE_PARTIAL=1` they are named in `batchItemFailures`, else    |
//! |                         | the whole invocation fails. A record whose body is `panic`      |
//! |                         | makes `invoke` panic, as `fake:panic` does                      |
//! | anything else           | echoed back                                                     |
//!
//! Creation is steered by the function's environment variables: `FAKE_CREATE=init-error`
//! (Init fails), `FAKE_CREATE=code` (invalid code), `FAKE_CREATE=unavailable` (the backend
//! is unavailable), `FAKE_CREATE=panic` (`create` panics: the service answers the invocation
//! that wanted the environment with `Sandbox.Failure`); `FAKE_CREATE_FAIL_EVERY=<n>` fails
//! every n-th creation of that function's environments with a host-side failure.
//! [`FakeBackend::fail_next_creates`] fails the next creations of any function.
//! `FAKE_SHUTDOWN=panic` makes the function's environments panic inside `shutdown` (after
//! counting themselves shut down: the service swallows the panic, the environment is gone).
//!
//! [`FakeBackend::stats`] counts creations, failures, shutdowns, invocations and panics, so a
//! test can check that every environment created was shut down or is still held by the
//! service.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lambda_core::limits::MAX_SYNC_PAYLOAD_BYTES;
use lambda_core::{
    Backend, EnvironmentError, ErrorType, ExecutionEnvironment, FunctionConfig, FunctionError,
    Invocation, InvokeOutcome, InvokeResult, Report, ResetReason,
};

use crate::clock::{Clock, ManualClock};
use crate::sync::lock;

/// Counts kept by a [`FakeBackend`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FakeStats {
    /// Environments created.
    pub created: u64,
    /// Calls to `create` that failed.
    pub create_failures: u64,
    /// Environments shut down.
    pub shut_down: u64,
    /// Invocations run.
    pub invocations: u64,
    /// Invocations an environment received for a function other than its own (always 0
    /// unless the scheduler mixes environments up).
    pub foreign_invocations: u64,
    /// Panics the fake raised on command (`FAKE_CREATE=panic`, `fake:panic` or a batch record
    /// `panic`, `FAKE_SHUTDOWN=panic`). A panicking `create` also counts as a failed one.
    pub panics: u64,
}

impl FakeStats {
    /// Environments created and not yet shut down.
    pub fn live(&self) -> u64 {
        self.created - self.shut_down
    }
}

#[derive(Debug, Default)]
struct Counters {
    created: AtomicU64,
    create_failures: AtomicU64,
    shut_down: AtomicU64,
    invocations: AtomicU64,
    foreign_invocations: AtomicU64,
    panics: AtomicU64,
    fail_next: AtomicU64,
}

impl Counters {
    /// Counts a panic, then raises it.
    fn panic(&self, message: &str) -> ! {
        self.panics.fetch_add(1, Ordering::SeqCst);
        panic!("{message}");
    }
}

/// The fake backend. See the module documentation for its behaviour.
#[derive(Debug)]
pub struct FakeBackend {
    counters: Arc<Counters>,
    clock: Option<Arc<ManualClock>>,
    init_duration: Duration,
    noop: bool,
    creates_by_function: Mutex<HashMap<String, u64>>,
}

impl FakeBackend {
    /// A fake that interprets payloads and sleeps for real when asked to hang.
    pub fn new() -> Arc<Self> {
        Arc::new(FakeBackend::build(None, false))
    }

    /// A fake that advances `clock` instead of sleeping for hangs and `fake:advance`.
    pub fn with_clock(clock: Arc<ManualClock>) -> Arc<Self> {
        Arc::new(FakeBackend::build(Some(clock), false))
    }

    /// A fake that answers every invocation with an empty response at once, interpreting
    /// nothing: for measuring the scheduler's own overhead.
    pub fn noop() -> Arc<Self> {
        Arc::new(FakeBackend::build(None, true))
    }

    fn build(clock: Option<Arc<ManualClock>>, noop: bool) -> Self {
        FakeBackend {
            counters: Arc::new(Counters::default()),
            clock,
            init_duration: Duration::from_millis(5),
            noop,
            creates_by_function: Mutex::new(HashMap::new()),
        }
    }

    /// The counts so far.
    pub fn stats(&self) -> FakeStats {
        let c = &self.counters;
        FakeStats {
            created: c.created.load(Ordering::SeqCst),
            create_failures: c.create_failures.load(Ordering::SeqCst),
            shut_down: c.shut_down.load(Ordering::SeqCst),
            invocations: c.invocations.load(Ordering::SeqCst),
            foreign_invocations: c.foreign_invocations.load(Ordering::SeqCst),
            panics: c.panics.load(Ordering::SeqCst),
        }
    }

    /// Makes the next `n` calls to `create` fail with a host-side failure.
    pub fn fail_next_creates(&self, n: u64) {
        self.counters.fail_next.store(n, Ordering::SeqCst);
    }

    fn create_failure(&self, config: &FunctionConfig) -> Option<EnvironmentError> {
        let take_one =
            self.counters
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if take_one.is_ok() {
            return Some(EnvironmentError::failed("fake: told to fail"));
        }
        match config.environment.get("FAKE_CREATE").map(String::as_str) {
            Some("init-error") => {
                return Some(EnvironmentError::Init {
                    error: FunctionError::new(
                        ErrorType::Function("Runtime.InitError".into()),
                        "fake: init failed",
                    ),
                    init_duration: Duration::from_millis(7),
                    log_tail: b"init log".to_vec(),
                });
            }
            Some("code") => {
                return Some(EnvironmentError::Code("fake: not an executable".into()));
            }
            Some("unavailable") => {
                return Some(EnvironmentError::Unavailable("fake: unavailable".into()));
            }
            _ => {}
        }
        if let Some(every) = config
            .environment
            .get("FAKE_CREATE_FAIL_EVERY")
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 0)
        {
            let mut creates = lock(&self.creates_by_function);
            let count = creates.entry(config.name.clone()).or_insert(0);
            *count += 1;
            if *count % every == 0 {
                return Some(EnvironmentError::failed(format!(
                    "fake: creation {count} of {} fails",
                    config.name
                )));
            }
        }
        None
    }
}

impl Backend for FakeBackend {
    fn name(&self) -> &str {
        "fake"
    }

    fn create(
        &self,
        config: &FunctionConfig,
    ) -> Result<Box<dyn ExecutionEnvironment>, EnvironmentError> {
        if let Some(error) = self.create_failure(config) {
            self.counters.create_failures.fetch_add(1, Ordering::SeqCst);
            return Err(error);
        }
        if config.environment.get("FAKE_CREATE").map(String::as_str) == Some("panic") {
            self.counters.create_failures.fetch_add(1, Ordering::SeqCst);
            self.counters.panic("fake: told to panic in create");
        }
        self.counters.created.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(FakeEnvironment {
            counters: self.counters.clone(),
            clock: self.clock.clone(),
            name: config.name.clone(),
            memory_mb: config.memory_mb,
            timeout: config.timeout,
            partial: config
                .environment
                .get("FAKE_PARTIAL")
                .is_some_and(|v| v == "1"),
            panic_on_shutdown: config
                .environment
                .get("FAKE_SHUTDOWN")
                .is_some_and(|v| v == "panic"),
            init_duration: self.init_duration,
            first: true,
            noop: self.noop,
            one_shot: config.contract == lambda_core::Contract::Stdio,
        }))
    }
}

/// One fake environment.
#[derive(Debug)]
struct FakeEnvironment {
    counters: Arc<Counters>,
    clock: Option<Arc<ManualClock>>,
    name: String,
    memory_mb: u32,
    timeout: Duration,
    partial: bool,
    /// `FAKE_SHUTDOWN=panic`.
    panic_on_shutdown: bool,
    init_duration: Duration,
    first: bool,
    noop: bool,
    /// A `Contract::Stdio` function: every invocation starts afresh.
    one_shot: bool,
}

/// What the fake makes of a payload.
enum Action {
    Respond(Vec<u8>),
    Fail(FunctionError, Option<ResetReason>),
    Broken,
}

impl FakeEnvironment {
    fn advance(&self, by: Duration) {
        match &self.clock {
            Some(clock) => clock.advance(by),
            None => std::thread::sleep(by),
        }
    }

    fn act(&self, payload: &[u8]) -> Action {
        let command = payload.strip_prefix(b"fake:");
        match command {
            Some(b"error") => Action::Fail(
                FunctionError::new(
                    ErrorType::Function("FakeError".into()),
                    "fake: told to fail",
                ),
                None,
            ),
            Some(b"crash") => Action::Fail(
                FunctionError::new(
                    ErrorType::RuntimeExitError,
                    "RequestId: fake Error: Runtime exited with error: signal: segmentation fault",
                ),
                Some(ResetReason::Crash),
            ),
            Some(b"timeout") => Action::Fail(
                FunctionError::new(
                    ErrorType::SandboxTimedout,
                    format!(
                        "Task timed out after {:.2} seconds",
                        self.timeout.as_secs_f64()
                    ),
                ),
                Some(ResetReason::Timeout),
            ),
            Some(b"hang") => {
                self.advance(self.timeout + Duration::from_secs(5));
                Action::Respond(b"too late".to_vec())
            }
            Some(b"broken") => Action::Broken,
            Some(b"panic") => self.counters.panic("fake: told to panic"),
            Some(b"large") => Action::Respond(vec![b'x'; MAX_SYNC_PAYLOAD_BYTES + 1]),
            Some(rest) => {
                let text = String::from_utf8_lossy(rest);
                let millis = |prefix: &str| {
                    text.strip_prefix(prefix)
                        .and_then(|n| n.parse::<u64>().ok())
                        .map(Duration::from_millis)
                };
                if let Some(ms) = millis("sleep:") {
                    std::thread::sleep(ms);
                } else if let Some(ms) = millis("advance:") {
                    self.advance(ms);
                }
                Action::Respond(payload.to_vec())
            }
            None if payload.starts_with(b"{\"Records\"") => self.batch(payload),
            None => Action::Respond(payload.to_vec()),
        }
    }

    fn batch(&self, payload: &[u8]) -> Action {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return Action::Respond(payload.to_vec());
        };
        let failed: Vec<String> = value["Records"]
            .as_array()
            .map(|records| {
                records
                    .iter()
                    .filter(|r| r["body"] == "fail" || r["body"] == "panic")
                    .filter_map(|r| r["messageId"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if failed.is_empty() {
            return Action::Respond(b"{}".to_vec());
        }
        let poisoned = value["Records"]
            .as_array()
            .is_some_and(|records| records.iter().any(|r| r["body"] == "panic"));
        if poisoned {
            self.counters.panic("fake: told to panic by a record");
        }
        if self.partial {
            let items: Vec<serde_json::Value> = failed
                .iter()
                .map(|id| serde_json::json!({ "itemIdentifier": id }))
                .collect();
            let body = serde_json::json!({ "batchItemFailures": items });
            return Action::Respond(body.to_string().into_bytes());
        }
        Action::Fail(
            FunctionError::new(
                ErrorType::Function("BatchError".into()),
                format!("records {failed:?} failed"),
            ),
            None,
        )
    }
}

impl ExecutionEnvironment for FakeEnvironment {
    fn invoke(&mut self, invocation: Invocation) -> Result<InvokeResult, EnvironmentError> {
        self.counters.invocations.fetch_add(1, Ordering::Relaxed);
        let init_duration = std::mem::take(&mut self.first).then_some(self.init_duration);
        if self.noop {
            return Ok(InvokeResult {
                outcome: InvokeOutcome::Response(Vec::new()),
                report: Report {
                    request_id: invocation.request_id,
                    duration: Duration::ZERO,
                    memory_size_mb: self.memory_mb,
                    max_memory_used_mb: 1,
                    init_duration,
                    restore_duration: None,
                },
                log_tail: Vec::new(),
                reset: None,
            });
        }
        if let Some(arn) = &invocation.invoked_function_arn {
            let function = arn.split(':').nth(6).unwrap_or_default();
            if function != self.name {
                self.counters
                    .foreign_invocations
                    .fetch_add(1, Ordering::SeqCst);
            }
        }
        let started_clock = self.clock.as_ref().map(|c| c.now());
        let started = Instant::now();
        let action = self.act(&invocation.payload);
        let duration = match (&self.clock, started_clock) {
            (Some(clock), Some(start)) => clock.now().saturating_sub(start).max(started.elapsed()),
            _ => started.elapsed(),
        };
        let report = Report {
            request_id: invocation.request_id.clone(),
            duration,
            memory_size_mb: self.memory_mb,
            max_memory_used_mb: 1,
            init_duration,
            restore_duration: None,
        };
        let log_tail = format!("fake log of {}", invocation.request_id).into_bytes();
        match action {
            Action::Respond(body) => Ok(InvokeResult {
                outcome: InvokeOutcome::Response(body),
                report,
                log_tail,
                reset: None,
            }),
            Action::Fail(error, reset) => {
                if reset.is_some() {
                    self.first = true;
                }
                Ok(InvokeResult {
                    outcome: InvokeOutcome::Error(error),
                    report,
                    log_tail,
                    reset,
                })
            }
            Action::Broken => Err(EnvironmentError::failed("fake: environment broke")),
        }
    }

    fn fresh_per_invocation(&self) -> bool {
        self.one_shot
    }

    fn init_duration(&self) -> Duration {
        self.init_duration
    }

    fn shutdown(self: Box<Self>) {
        self.counters.shut_down.fetch_add(1, Ordering::SeqCst);
        if self.panic_on_shutdown {
            self.counters.panic("fake: told to panic in shutdown");
        }
    }
}
