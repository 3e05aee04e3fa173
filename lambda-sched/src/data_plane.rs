//! The data plane: the path of one synchronous invocation of a resolved function version, in
//! three steps.
//!
//! 1. **acquire**: a concurrency permit from the [counting service](crate::counting), then an
//!    environment from the [worker manager](crate::worker_manager): an idle provisioned or
//!    warm one, or a new one on a worker chosen by [placement](crate::placement). Either may
//!    refuse (a throttle, no room on any worker); the request fails with that error. A new
//!    environment whose Init fails makes the invocation's function error instead, and so does
//!    a backend that panics creating one (`Sandbox.Failure`).
//! 2. **execute**: the invocation runs on the environment. One that runs past its timeout by
//!    more than the hang grace was not stopped by the backend: it is reported as timed out
//!    and its environment is never used again. An environment that breaks (`invoke` returns
//!    `Err`, or panics: the backend boundary catches the panic) fails the invocation with
//!    `Sandbox.Failure` and is shut down.
//! 3. **account**: how it started is counted, the environment goes back to its pool (where
//!    the [keep-alive](crate::keep_alive) policy decides how long it stays) or is shut down,
//!    the permit is released, the invocation and its duration are counted, and the answer is
//!    an [`InvokeResponse`].
//!
//! Synchronous requests of the [frontend](crate::frontend), events of the
//! [async queue](crate::async_queue) and batches of [event sources](crate::event_source) all
//! run here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lambda_core::limits::MAX_SYNC_PAYLOAD_BYTES;
use lambda_core::{EnvironmentError, ErrorType, FunctionError, Invocation, InvokeOutcome, Report};

use crate::clock::Clock;
use crate::control_plane::{ControlPlane, Resolved, VersionRecord};
use crate::counting::{CountingService, Permit};
use crate::error::{Error, Result};
use crate::ids::Version;
use crate::metrics::{InvocationCounters, ServiceCounters};
use crate::trace::span;
use crate::worker_manager::{AcquireError, Lease, StartKind, WorkerManager};

/// The answer to an invocation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeResponse {
    /// 200 (synchronous), 202 (queued) or 204 (dry run).
    pub status_code: u16,
    /// The request id (the same for every retry of an asynchronous event).
    pub request_id: String,
    /// `X-Amz-Executed-Version`: the version that ran (synchronous only).
    pub executed_version: Option<Version>,
    /// The function's response, or the error's JSON body when it failed.
    pub payload: Vec<u8>,
    /// The function error, if it failed (`X-Amz-Function-Error: Unhandled`).
    pub function_error: Option<FunctionError>,
    /// The log tail, when asked for.
    pub log_result: Option<Vec<u8>>,
    /// The invocation's figures (its `REPORT` line).
    pub report: Option<Report>,
    /// How the invocation got its environment.
    pub start: Option<StartKind>,
}

impl InvokeResponse {
    /// True unless the function failed.
    pub fn is_success(&self) -> bool {
        self.function_error.is_none()
    }

    /// The `X-Amz-Function-Error` header value: `Unhandled` when the function failed.
    pub fn function_error_header(&self) -> Option<&'static str> {
        self.function_error.as_ref().map(|_| "Unhandled")
    }

    /// An answer to a request that ran nothing (yet): a queued event or a dry run.
    pub(crate) fn accepted(status_code: u16, request_id: String) -> Self {
        InvokeResponse {
            status_code,
            request_id,
            executed_version: None,
            payload: Vec::new(),
            function_error: None,
            log_result: None,
            report: None,
            start: None,
        }
    }
}

/// What an invocation passes through, and what the layers above read while they invoke.
#[derive(Debug)]
pub(crate) struct DataPlane {
    /// The time every deadline and duration is measured with.
    pub clock: Arc<dyn Clock>,
    /// Functions, versions and aliases: resolves what is invoked and names it.
    pub control: ControlPlane,
    /// Concurrency limits: a permit per running invocation.
    pub counting: CountingService,
    /// The environments.
    pub workers: WorkerManager,
    /// Invocation counters of the whole account.
    pub account_counters: InvocationCounters,
    /// Environment, async-queue and event-source counters.
    pub counters: Arc<ServiceCounters>,
    /// How long past its timeout an invocation may run before it is declared hung.
    hang_grace: Duration,
}

/// What an invocation holds while it runs: a concurrency permit and an environment.
struct Claim<'a> {
    permit: Permit<'a>,
    lease: Lease,
}

/// What the acquire step got.
enum Acquired<'a> {
    /// An environment to run on.
    Environment(Claim<'a>),
    /// A new environment's Init failed: that is the invocation's function error.
    InitFailed(EnvironmentError),
}

/// How an invocation ended, for the account step.
struct Ran<'a> {
    request_id: String,
    start: StartKind,
    outcome: InvokeOutcome,
    report: Report,
    log_tail: Vec<u8>,
    /// The environment it ran on, to give back; `None` when Init failed.
    environment: Option<Used<'a>>,
}

/// An environment after its invocation, still claimed.
struct Used<'a> {
    claim: Claim<'a>,
    /// When the invocation ended.
    ended: Duration,
    /// The backend reset the environment (a crash, a timeout, an exit).
    reset: bool,
    /// The invocation ran past its timeout plus the hang grace.
    hung: bool,
    /// Shut the environment down instead of keeping it: it broke or hung.
    discard: bool,
}

impl DataPlane {
    pub(crate) fn new(
        clock: Arc<dyn Clock>,
        control: ControlPlane,
        counting: CountingService,
        workers: WorkerManager,
        counters: Arc<ServiceCounters>,
        hang_grace: Duration,
    ) -> Self {
        DataPlane {
            clock,
            control,
            counting,
            workers,
            account_counters: InvocationCounters::default(),
            counters,
            hang_grace,
        }
    }

    /// Runs one invocation of a resolved version to its end: acquire, execute, account.
    pub(crate) fn run(
        &self,
        resolved: &Resolved,
        invocation: Invocation,
        log_tail: bool,
    ) -> Result<InvokeResponse> {
        let ran = match self.acquire(resolved)? {
            Acquired::Environment(claim) => self.execute(resolved, claim, invocation),
            Acquired::InitFailed(error) => {
                Ran::init_failed(invocation.request_id, &resolved.version, error)
            }
        };
        Ok(self.account(resolved, ran, log_tail))
    }

    /// Step 1: a concurrency permit, then an environment. Refusals are counted as throttles
    /// when they are ones.
    fn acquire<'a>(&'a self, resolved: &'a Resolved) -> Result<Acquired<'a>> {
        span!("acquire");
        let function = &resolved.function;
        let permit = match self.counting.acquire(&function.name, &function.slots) {
            Ok(permit) => permit,
            Err(error) => {
                self.count(resolved, |c| &c.throttles);
                return Err(error);
            }
        };
        let now = self.clock.now();
        let lease = match self.workers.acquire(function, &resolved.version, now) {
            Ok(lease) => lease,
            Err(AcquireError::Refused(error)) => {
                if matches!(error, Error::TooManyRequests { .. }) {
                    self.count(resolved, |c| &c.throttles);
                }
                return Err(error);
            }
            // The permit is released here, before the failed Init is counted.
            Err(AcquireError::Init(error)) => return Ok(Acquired::InitFailed(error)),
        };
        if lease.spillover {
            self.count(resolved, |c| &c.provisioned_spillover_invocations);
        }
        Ok(Acquired::Environment(Claim { permit, lease }))
    }

    /// Step 2: runs the invocation on the claimed environment and judges how it ended.
    fn execute<'a>(
        &self,
        resolved: &Resolved,
        mut claim: Claim<'a>,
        mut invocation: Invocation,
    ) -> Ran<'a> {
        span!("execute", request_id = invocation.request_id.as_str());
        let version = &resolved.version;
        let request_id = invocation.request_id.clone();
        invocation.invoked_function_arn = Some(resolved.invoked_arn(&self.control));
        let started = self.clock.now();
        let start = start_kind(&mut claim.lease);
        let env = &mut claim.lease.env;
        let result = env.env.invoke(invocation);
        env.reset = matches!(&result, Ok(r) if r.reset.is_some());
        let ended = self.clock.now();
        let elapsed = ended.saturating_sub(started);
        let mut used = Used {
            claim,
            ended,
            reset: false,
            hung: false,
            discard: false,
        };
        let (outcome, report, log_tail) = match result {
            Ok(result) => {
                used.reset = result.reset.is_some();
                used.hung = self.is_hung(version, elapsed);
                // A hung environment is never used again.
                used.discard = used.hung;
                let outcome = outcome_of(result.outcome, used.hung, version.config.timeout);
                (outcome, result.report, result.log_tail)
            }
            Err(error) => {
                // The environment broke (or panicked): the invocation failed and the
                // environment goes.
                used.discard = true;
                let report = bare_report(request_id.clone(), elapsed, version, None);
                let outcome = InvokeOutcome::Error(error.to_function_error());
                (outcome, report, Vec::new())
            }
        };
        Ran {
            request_id,
            start,
            outcome,
            report,
            log_tail,
            environment: Some(used),
        }
    }

    /// Hang detection: an answer later than the timeout plus the hang grace means the backend
    /// did not stop the invocation at its deadline.
    fn is_hung(&self, version: &VersionRecord, elapsed: Duration) -> bool {
        elapsed > version.config.timeout + self.hang_grace
    }

    /// Step 3: counts the invocation, gives its environment back and answers.
    fn account(&self, resolved: &Resolved, ran: Ran<'_>, log_tail: bool) -> InvokeResponse {
        match ran.start {
            StartKind::Cold => self.count(resolved, |c| &c.cold_starts),
            StartKind::Warm => self.count(resolved, |c| &c.warm_starts),
            StartKind::Provisioned => self.count(resolved, |c| &c.provisioned_invocations),
        }
        if let Some(used) = ran.environment {
            self.give_back(used);
        }
        self.count(resolved, |c| &c.invocations);
        self.account_counters.durations.record(ran.report.duration);
        resolved
            .function
            .metrics
            .durations
            .record(ran.report.duration);
        let (payload, function_error) = match ran.outcome {
            InvokeOutcome::Response(body) => (body, None),
            InvokeOutcome::Error(error) => {
                self.count(resolved, |c| &c.errors);
                (error.to_json().into_bytes(), Some(error))
            }
        };
        InvokeResponse {
            status_code: 200,
            request_id: ran.request_id,
            executed_version: Some(resolved.version.version),
            payload,
            function_error,
            log_result: log_tail.then_some(ran.log_tail),
            report: Some(ran.report),
            start: Some(ran.start),
        }
    }

    /// The environment goes back to its pool, where the keep-alive policy decides how long it
    /// stays (a discarded one is shut down); then the permit is released.
    fn give_back(&self, used: Used<'_>) {
        if used.reset {
            add(&self.counters.environment_resets);
        }
        if used.hung {
            add(&self.counters.hung_invocations);
        }
        let Claim { permit, lease } = used.claim;
        self.workers.release(lease, used.ended, used.discard);
        drop(permit);
    }

    /// Adds one to a counter of the account and the same counter of the function.
    fn count(&self, resolved: &Resolved, counter: impl Fn(&InvocationCounters) -> &AtomicU64) {
        InvocationCounters::add(counter(&self.account_counters));
        InvocationCounters::add(counter(&resolved.function.metrics));
    }
}

impl Ran<'static> {
    /// Init failed: Lambda reports it as the invocation's function error, with the Init's
    /// duration and log.
    fn init_failed(request_id: String, version: &VersionRecord, error: EnvironmentError) -> Self {
        let (init_duration, log_tail) = match &error {
            EnvironmentError::Init {
                init_duration,
                log_tail,
                ..
            } => (Some(*init_duration), log_tail.clone()),
            _ => (None, Vec::new()),
        };
        let report = bare_report(request_id.clone(), Duration::ZERO, version, init_duration);
        Ran {
            request_id,
            start: StartKind::Cold,
            outcome: InvokeOutcome::Error(error.to_function_error()),
            report,
            log_tail,
            environment: None,
        }
    }
}

/// How an invocation starts on its environment. An environment reset by its last invocation
/// runs Init again, and a one-shot one starts afresh every time: cold starts.
fn start_kind(lease: &mut Lease) -> StartKind {
    let env = &mut lease.env;
    match lease.start {
        StartKind::Warm if env.reset || env.env.fresh_per_invocation() => StartKind::Cold,
        start => start,
    }
}

/// What the caller is told: a hung invocation timed out, whatever it answered late, and a
/// response over the synchronous payload limit is a function error.
fn outcome_of(answer: InvokeOutcome, hung: bool, timeout: Duration) -> InvokeOutcome {
    if hung {
        return InvokeOutcome::failed(
            ErrorType::SandboxTimedout,
            format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
        );
    }
    match answer {
        InvokeOutcome::Response(body) if body.len() > MAX_SYNC_PAYLOAD_BYTES => {
            InvokeOutcome::failed(
                ErrorType::FunctionResponseSizeTooLarge,
                format!(
                    "Response payload size ({} bytes) exceeded maximum allowed payload size \
                     ({MAX_SYNC_PAYLOAD_BYTES} bytes).",
                    body.len()
                ),
            )
        }
        answer => answer,
    }
}

/// The report of an invocation the environment did not report on (Init failed, or the
/// environment broke).
fn bare_report(
    request_id: String,
    duration: Duration,
    version: &VersionRecord,
    init_duration: Option<Duration>,
) -> Report {
    Report {
        request_id,
        duration,
        memory_size_mb: version.config.memory_mb,
        max_memory_used_mb: 0,
        init_duration,
        restore_duration: None,
    }
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
