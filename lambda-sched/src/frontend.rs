//! The frontend: invoke a function synchronously (`RequestResponse`), asynchronously
//! (`Event`) or as a dry run (`DryRun`).
//!
//! A synchronous invocation goes frontend -> control plane (resolve the version) -> counting
//! (a concurrency permit) -> worker manager (a warm, provisioned or new environment, placed by
//! the placement service on a worker) -> the environment (`ExecutionEnvironment::invoke`) and
//! back: the environment returns to its pool, the permit is released, metrics are counted.

use std::sync::atomic::Ordering;
use std::time::Duration;

use lambda_core::limits::{MAX_ASYNC_PAYLOAD_BYTES, MAX_SYNC_PAYLOAD_BYTES};
use lambda_core::{ErrorType, FunctionError, Invocation, InvokeOutcome, Report, new_request_id};

use crate::control_plane::Resolved;
use crate::error::{Error, Result};
use crate::ids::Version;
use crate::metrics::InvocationCounters;
use crate::service::Inner;
use crate::worker_manager::{AcquireError, StartKind};

/// Lambda's `X-Amz-Invocation-Type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InvocationType {
    /// Synchronous: run the function and return its response (HTTP 200).
    #[default]
    RequestResponse,
    /// Asynchronous: queue the event and acknowledge at once (HTTP 202).
    Event,
    /// Check the function, the payload and the limits; run nothing (HTTP 204).
    DryRun,
}

impl InvocationType {
    /// The name as Lambda spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            InvocationType::RequestResponse => "RequestResponse",
            InvocationType::Event => "Event",
            InvocationType::DryRun => "DryRun",
        }
    }
}

/// An invocation request: Lambda's `Invoke` API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeRequest {
    /// `name`, `name:qualifier`, a partial ARN or a full ARN.
    pub function_name: String,
    /// A version number, `$LATEST` or an alias.
    pub qualifier: Option<String>,
    /// How to invoke.
    pub invocation_type: InvocationType,
    /// Whether to return the last 4 KB of the log (`X-Amz-Log-Type: Tail`, synchronous only).
    pub log_tail: bool,
    /// The client context, passed to the function on synchronous invocations.
    pub client_context: Option<String>,
    /// The event.
    pub payload: Vec<u8>,
}

impl InvokeRequest {
    /// A synchronous invocation of `function_name` with `payload`.
    pub fn new(function_name: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        InvokeRequest {
            function_name: function_name.into(),
            qualifier: None,
            invocation_type: InvocationType::RequestResponse,
            log_tail: false,
            client_context: None,
            payload: payload.into(),
        }
    }

    /// An asynchronous invocation of `function_name` with `payload`.
    pub fn event(function_name: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        InvokeRequest::new(function_name, payload).with_invocation_type(InvocationType::Event)
    }

    /// Sets the qualifier.
    pub fn with_qualifier(mut self, qualifier: impl Into<String>) -> Self {
        self.qualifier = Some(qualifier.into());
        self
    }

    /// Sets the invocation type.
    pub fn with_invocation_type(mut self, invocation_type: InvocationType) -> Self {
        self.invocation_type = invocation_type;
        self
    }

    /// Asks for the log tail.
    pub fn with_log_tail(mut self) -> Self {
        self.log_tail = true;
        self
    }

    /// Sets the client context.
    pub fn with_client_context(mut self, context: impl Into<String>) -> Self {
        self.client_context = Some(context.into());
        self
    }
}

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

    fn accepted(status_code: u16, request_id: String) -> Self {
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

fn check_payload(size: usize, invocation_type: InvocationType) -> Result<()> {
    let limit = match invocation_type {
        InvocationType::Event => MAX_ASYNC_PAYLOAD_BYTES,
        _ => MAX_SYNC_PAYLOAD_BYTES,
    };
    if size > limit {
        return Err(Error::RequestTooLarge {
            size,
            limit,
            invocation_type: invocation_type.as_str(),
        });
    }
    Ok(())
}

impl Inner {
    /// The `Invoke` API.
    pub(crate) fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse> {
        if self.is_shutting_down() {
            return Err(Error::service("the service is shutting down"));
        }
        let InvokeRequest {
            function_name,
            qualifier,
            invocation_type,
            log_tail,
            client_context,
            payload,
        } = request;
        match invocation_type {
            InvocationType::DryRun => {
                let resolved = self
                    .control
                    .resolve_static(&function_name, qualifier.as_deref())?;
                check_payload(payload.len(), invocation_type)?;
                self.counting
                    .check(&resolved.function.name, &resolved.function.slots)?;
                Ok(InvokeResponse::accepted(204, new_request_id()))
            }
            InvocationType::Event => {
                let resolved = self
                    .control
                    .resolve_static(&function_name, qualifier.as_deref())?;
                check_payload(payload.len(), invocation_type)?;
                let request_id = new_request_id();
                self.queue.enqueue(
                    request_id.clone(),
                    resolved.function.name.clone(),
                    resolved.qualifier,
                    payload,
                    self.clock.now(),
                );
                self.counters.async_accepted.fetch_add(1, Ordering::Relaxed);
                Ok(InvokeResponse::accepted(202, request_id))
            }
            InvocationType::RequestResponse => {
                let resolved = self.control.resolve(&function_name, qualifier.as_deref())?;
                check_payload(payload.len(), invocation_type)?;
                let mut invocation = Invocation::new(payload);
                invocation.client_context = client_context;
                self.run(&resolved, invocation, log_tail)
            }
        }
    }

    fn count(
        &self,
        resolved: &Resolved,
        counter: impl Fn(&InvocationCounters) -> &std::sync::atomic::AtomicU64,
    ) {
        InvocationCounters::add(counter(&self.account));
        InvocationCounters::add(counter(&resolved.function.metrics));
    }

    /// Runs one invocation of a resolved version to its end.
    pub(crate) fn run(
        &self,
        resolved: &Resolved,
        mut invocation: Invocation,
        log_tail: bool,
    ) -> Result<InvokeResponse> {
        let function = &resolved.function;
        let version = &resolved.version;
        let permit = match self.counting.acquire(&function.name, &function.slots) {
            Ok(permit) => permit,
            Err(error) => {
                self.count(resolved, |c| &c.throttles);
                return Err(error);
            }
        };
        let now = self.clock.now();
        let lease = match self.workers.acquire(function, version, now) {
            Ok(lease) => lease,
            Err(AcquireError::Refused(error)) => {
                if matches!(error, Error::TooManyRequests { .. }) {
                    self.count(resolved, |c| &c.throttles);
                }
                return Err(error);
            }
            Err(AcquireError::Init(error)) => {
                // Init failed: Lambda reports it as the invocation's function error.
                drop(permit);
                self.count(resolved, |c| &c.cold_starts);
                let (init_duration, tail) = match &error {
                    lambda_core::EnvironmentError::Init {
                        init_duration,
                        log_tail,
                        ..
                    } => (Some(*init_duration), log_tail.clone()),
                    _ => (None, Vec::new()),
                };
                let report = Report {
                    request_id: invocation.request_id.clone(),
                    duration: Duration::ZERO,
                    memory_size_mb: version.config.memory_mb,
                    max_memory_used_mb: 0,
                    init_duration,
                    restore_duration: None,
                };
                return Ok(self.finish(
                    resolved,
                    invocation.request_id,
                    InvokeOutcome::Error(error.to_function_error()),
                    report,
                    log_tail.then_some(tail),
                    StartKind::Cold,
                ));
            }
        };
        if lease.spillover {
            self.count(resolved, |c| &c.provisioned_spillover_invocations);
        }
        let mut start = lease.start;
        let request_id = invocation.request_id.clone();
        invocation.invoked_function_arn = Some(resolved.invoked_arn(&self.control));
        let mut lease = lease;
        let started = self.clock.now();
        // An environment reset by its last invocation runs Init again, and a one-shot one
        // starts afresh every time: cold starts.
        if start == StartKind::Warm && (lease.env.reset || lease.env.env.fresh_per_invocation()) {
            start = StartKind::Cold;
        }
        let result = lease.env.env.invoke(invocation);
        lease.env.reset = matches!(&result, Ok(r) if r.reset.is_some());
        match start {
            StartKind::Cold => self.count(resolved, |c| &c.cold_starts),
            StartKind::Warm => self.count(resolved, |c| &c.warm_starts),
            StartKind::Provisioned => self.count(resolved, |c| &c.provisioned_invocations),
        }
        let ended = self.clock.now();
        let elapsed = ended.saturating_sub(started);
        let timeout = version.config.timeout;
        let (outcome, report, tail, discard) = match result {
            Ok(result) => {
                if result.reset.is_some() {
                    self.counters
                        .environment_resets
                        .fetch_add(1, Ordering::Relaxed);
                }
                let mut outcome = result.outcome;
                let mut discard = false;
                if elapsed > timeout + self.config.hang_grace {
                    // The backend did not stop the invocation at its deadline: report the
                    // timeout and never use the environment again.
                    self.counters
                        .hung_invocations
                        .fetch_add(1, Ordering::Relaxed);
                    outcome = InvokeOutcome::failed(
                        ErrorType::SandboxTimeout,
                        format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
                    );
                    discard = true;
                }
                if let InvokeOutcome::Response(body) = &outcome
                    && body.len() > MAX_SYNC_PAYLOAD_BYTES
                {
                    outcome = InvokeOutcome::failed(
                        ErrorType::FunctionResponseSizeTooLarge,
                        format!(
                            "Response payload size ({} bytes) exceeded maximum allowed payload \
                             size ({MAX_SYNC_PAYLOAD_BYTES} bytes).",
                            body.len()
                        ),
                    );
                }
                (outcome, result.report, result.log_tail, discard)
            }
            Err(error) => {
                let report = Report {
                    request_id: request_id.clone(),
                    duration: elapsed,
                    memory_size_mb: version.config.memory_mb,
                    max_memory_used_mb: 0,
                    init_duration: None,
                    restore_duration: None,
                };
                (
                    InvokeOutcome::Error(error.to_function_error()),
                    report,
                    Vec::new(),
                    true,
                )
            }
        };
        self.workers.release(lease, ended, discard);
        drop(permit);
        Ok(self.finish(
            resolved,
            request_id,
            outcome,
            report,
            log_tail.then_some(tail),
            start,
        ))
    }

    fn finish(
        &self,
        resolved: &Resolved,
        request_id: String,
        outcome: InvokeOutcome,
        report: Report,
        log_result: Option<Vec<u8>>,
        start: StartKind,
    ) -> InvokeResponse {
        self.count(resolved, |c| &c.invocations);
        self.account.durations.record(report.duration);
        resolved.function.metrics.durations.record(report.duration);
        let (payload, function_error) = match outcome {
            InvokeOutcome::Response(body) => (body, None),
            InvokeOutcome::Error(error) => {
                self.count(resolved, |c| &c.errors);
                (error.to_json().into_bytes(), Some(error))
            }
        };
        InvokeResponse {
            status_code: 200,
            request_id,
            executed_version: Some(resolved.version.version),
            payload,
            function_error,
            log_result,
            report: Some(report),
            start: Some(start),
        }
    }
}
