//! The internal queue of asynchronous (`Event`) invocations: retries, maximum event age, and
//! the final outcome sent to [destinations and dead-letter sinks](crate::destination).
//!
//! An accepted event waits in the queue until a dispatcher runs it through the same path as a
//! synchronous invocation. Then:
//!
//! - success: an invocation record goes to the on-success destination, if any;
//! - function error (including timeouts and crashes): retried up to
//!   `maximum_retry_attempts` times (0-2, default 2) after the configured delays (Lambda's are
//!   1 and 2 minutes);
//! - throttle or service error (the event could not start): retried with exponential backoff
//!   (1 s doubling to 5 min), without using up the function-error retries;
//! - reserved concurrency 0: no retries, straight to failure handling, as Lambda does;
//! - when retries run out or the event is older than `maximum_event_age` (60 s-6 h,
//!   default 6 h): a record goes to the on-failure destination and the event, with its
//!   request id, error type and message, to the function's dead-letter sink.
//!
//! **Delivery guarantees.** While the service runs, an event is run at least once, and may
//! run more than once: a function error that happened after the function did its work (a
//! timeout, a crash while answering) is retried. Destinations and dead-letter sinks are
//! called once per final outcome. The queue lives in memory: events still queued when the
//! service shuts down are not run; they are handed to the on-failure destination and the
//! dead-letter sink with the condition `ServiceShutdown` (or counted as dropped when neither
//! exists), and events of a process that dies are lost.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use lambda_core::{FunctionError, Invocation};

use crate::control_plane::{ControlPlane, FunctionEntry, Resolved};
use crate::data_plane::{DataPlane, InvokeResponse};
use crate::destination::{Condition, DeadLetter, DeadLetterSink, InvocationRecord};
use crate::error::{Error, ThrottleReason};
use crate::event_invoke_config::EventInvokeConfig;
use crate::sync::{catch_job, lock};

/// Service-wide settings of the async queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncQueueConfig {
    /// Delay before the first, second, ... retry after a function error (Lambda: 1 min, 2 min;
    /// the last delay repeats).
    pub retry_delays: Vec<Duration>,
    /// First delay after a throttle or service error; it doubles each time (Lambda: 1 s).
    pub backoff_initial: Duration,
    /// Longest delay after a throttle or service error (Lambda: 5 min).
    pub backoff_max: Duration,
    /// Threads running queued events when the service runs in the background.
    pub dispatchers: usize,
}

impl Default for AsyncQueueConfig {
    fn default() -> Self {
        AsyncQueueConfig {
            retry_delays: vec![Duration::from_secs(60), Duration::from_secs(120)],
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            dispatchers: 2,
        }
    }
}

/// What an event goes by: its asynchronous invocation settings and its function's
/// dead-letter sink.
struct Settings {
    config: EventInvokeConfig,
    dead_letter: Option<Arc<dyn DeadLetterSink>>,
}

impl Settings {
    /// The settings of an event of `function` sent with `qualifier`; the defaults when the
    /// function is gone.
    fn of(function: Option<&FunctionEntry>, qualifier: Option<&str>) -> Self {
        let (config, dead_letter) = match function {
            Some(function) => ControlPlane::event_invoke_config(function, qualifier),
            None => (EventInvokeConfig::default(), None),
        };
        Settings {
            config,
            dead_letter,
        }
    }
}

/// One queued event.
#[derive(Debug, Clone)]
pub(crate) struct QueuedEvent {
    seq: u64,
    request_id: String,
    function: String,
    qualifier: Option<String>,
    payload: Vec<u8>,
    enqueued_at: Duration,
    attempts: u32,
    function_error_retries: u32,
    backoffs: u32,
    last_error: Option<(u16, String, String)>,
    last_response: Option<InvokeResponse>,
}

#[derive(Debug)]
struct Delayed {
    due: Duration,
    event: QueuedEvent,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl Eq for Delayed {}

impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Delayed {
    /// Reversed, so that the max-heap pops the earliest due event.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.event.seq).cmp(&(self.due, self.event.seq))
    }
}

/// The queue: ready events in a channel, delayed ones in a heap by due time.
#[derive(Debug)]
pub(crate) struct AsyncQueue {
    config: AsyncQueueConfig,
    ready_tx: Sender<QueuedEvent>,
    ready_rx: Receiver<QueuedEvent>,
    delayed: Mutex<BinaryHeap<Delayed>>,
    /// Every event not yet finished, by sequence number, with its enqueue time.
    live: Mutex<BTreeMap<u64, Duration>>,
    next_seq: AtomicU64,
}

impl AsyncQueue {
    pub(crate) fn new(config: AsyncQueueConfig) -> Self {
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
        AsyncQueue {
            config,
            ready_tx,
            ready_rx,
            delayed: Mutex::new(BinaryHeap::new()),
            live: Mutex::new(BTreeMap::new()),
            next_seq: AtomicU64::new(0),
        }
    }

    pub(crate) fn receiver(&self) -> &Receiver<QueuedEvent> {
        &self.ready_rx
    }

    pub(crate) fn enqueue(
        &self,
        request_id: String,
        function: String,
        qualifier: Option<String>,
        payload: Vec<u8>,
        now: Duration,
    ) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        lock(&self.live).insert(seq, now);
        let event = QueuedEvent {
            seq,
            request_id,
            function,
            qualifier,
            payload,
            enqueued_at: now,
            attempts: 0,
            function_error_retries: 0,
            backoffs: 0,
            last_error: None,
            last_response: None,
        };
        // The receiver lives as long as the queue: sending cannot fail.
        let _ = self.ready_tx.send(event);
    }

    fn schedule(&self, event: QueuedEvent, due: Duration) {
        lock(&self.delayed).push(Delayed { due, event });
    }

    fn finish(&self, event: &QueuedEvent) {
        lock(&self.live).remove(&event.seq);
    }

    /// Moves delayed events that are due into the ready channel; returns how many.
    pub(crate) fn promote_due(&self, now: Duration) -> usize {
        let mut delayed = lock(&self.delayed);
        let mut moved = 0;
        while delayed.peek().is_some_and(|d| d.due <= now) {
            if let Some(d) = delayed.pop() {
                let _ = self.ready_tx.send(d.event);
                moved += 1;
            }
        }
        moved
    }

    /// Events not yet finished.
    pub(crate) fn depth(&self) -> u64 {
        lock(&self.live).len() as u64
    }

    /// Age of the oldest unfinished event.
    pub(crate) fn oldest_age(&self, now: Duration) -> Option<Duration> {
        let live = lock(&self.live);
        live.values().min().map(|t| now.saturating_sub(*t))
    }

    /// Takes every event out of the queue (for shutdown).
    fn drain(&self) -> Vec<QueuedEvent> {
        let mut events: Vec<QueuedEvent> = self.ready_rx.try_iter().collect();
        let mut delayed = lock(&self.delayed);
        events.extend(std::mem::take(&mut *delayed).into_iter().map(|d| d.event));
        events
    }
}

fn truncate_message(message: &str) -> String {
    if message.len() <= 1024 {
        return message.to_string();
    }
    let mut end = 1024;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_string()
}

impl AsyncQueue {
    /// Runs ready events on this thread until none is left; returns how many ran.
    pub(crate) fn dispatch_ready(&self, data: &DataPlane) -> usize {
        let mut ran = 0;
        while let Ok(event) = self.receiver().try_recv() {
            self.dispatch_guarded(data, event);
            ran += 1;
        }
        ran
    }

    /// [`AsyncQueue::dispatch`], surviving a panic that escapes it. The backend's panics are
    /// errors of the invocation already (the event goes on to its retries, destinations and
    /// dead-letter sink); one that escapes came from elsewhere (a destination, a sink, a
    /// policy): it is counted as a job panic and the event leaves the queue, so that its
    /// depth and age do not count it forever.
    pub(crate) fn dispatch_guarded(&self, data: &DataPlane, event: QueuedEvent) {
        let seq = event.seq;
        if catch_job(&data.counters.job_panics, || self.dispatch(data, event)).is_none() {
            lock(&self.live).remove(&seq);
        }
    }

    /// Runs one queued event and decides what happens to it next: it expired, its function is
    /// gone, or it ran (then [`AsyncQueue::succeeded`], [`AsyncQueue::function_failed`] or
    /// [`AsyncQueue::refused`] decide).
    pub(crate) fn dispatch(&self, data: &DataPlane, mut event: QueuedEvent) {
        let now = data.clock.now();
        let resolved = data
            .control
            .resolve(&event.function, event.qualifier.as_deref());
        let function = resolved.as_ref().ok().map(|r| &*r.function);
        let settings = Settings::of(function, event.qualifier.as_deref());
        let expires_at = event
            .enqueued_at
            .saturating_add(settings.config.maximum_event_age);
        if now >= expires_at {
            data.counters.async_expired.fetch_add(1, Ordering::Relaxed);
            return self.give_up(data, event, Condition::EventAgeExceeded, settings);
        }
        let resolved = match resolved {
            Ok(resolved) => resolved,
            Err(error) => {
                event.last_error = Some(error_triple(&error));
                return self.give_up(data, event, Condition::FunctionNotFound, settings);
            }
        };
        let mut invocation = Invocation::new(event.payload.clone());
        invocation.request_id = event.request_id.clone();
        event.attempts += 1;
        // A retry is never due after the event expires.
        let retry_at = |delay: Duration| now.saturating_add(delay).min(expires_at);
        match data.run(&resolved, invocation, false) {
            Ok(response) if response.is_success() => {
                self.succeeded(data, event, &settings.config, response)
            }
            Ok(response) => self.function_failed(data, event, settings, response, retry_at),
            Err(error) => self.refused(data, event, settings, &resolved, error, retry_at),
        }
    }

    /// The function succeeded: a record to the on-success destination, if any.
    fn succeeded(
        &self,
        data: &DataPlane,
        event: QueuedEvent,
        config: &EventInvokeConfig,
        response: InvokeResponse,
    ) {
        data.counters
            .async_succeeded
            .fetch_add(1, Ordering::Relaxed);
        if let Some(destination) = &config.on_success {
            let record = record(data, &event, Condition::Success, Some(&response));
            destination.deliver(record);
            data.counters
                .destination_deliveries
                .fetch_add(1, Ordering::Relaxed);
        }
        self.finish(&event);
    }

    /// The function failed (an error, a timeout, a crash): retried after the configured delays
    /// until the retries run out.
    fn function_failed(
        &self,
        data: &DataPlane,
        mut event: QueuedEvent,
        settings: Settings,
        response: InvokeResponse,
        retry_at: impl Fn(Duration) -> Duration,
    ) {
        let error = response.function_error.clone().unwrap_or_else(|| {
            FunctionError::new(lambda_core::ErrorType::RuntimeUnknown, "unknown")
        });
        event.last_error = Some((200, error.error_type.to_string(), error.message));
        event.last_response = Some(response);
        if event.function_error_retries >= settings.config.maximum_retry_attempts {
            return self.give_up(data, event, Condition::RetriesExhausted, settings);
        }
        let delays = &self.config.retry_delays;
        let index = (event.function_error_retries as usize).min(delays.len().saturating_sub(1));
        let delay = delays.get(index).copied().unwrap_or_default();
        event.function_error_retries += 1;
        data.counters.async_retries.fetch_add(1, Ordering::Relaxed);
        self.schedule(event, retry_at(delay));
    }

    /// The event could not run (a throttle, a service error): that was no attempt. Retried
    /// with exponential backoff, except for a function with reserved concurrency 0 and errors
    /// that retrying cannot cure.
    fn refused(
        &self,
        data: &DataPlane,
        mut event: QueuedEvent,
        settings: Settings,
        resolved: &Resolved,
        error: Error,
        retry_at: impl Fn(Duration) -> Duration,
    ) {
        event.attempts -= 1;
        event.last_error = Some(error_triple(&error));
        let disabled = matches!(
            error,
            Error::TooManyRequests {
                reason: ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
                ..
            }
        ) && resolved.function.slots.reserved() == Some(0);
        if disabled {
            return self.give_up(data, event, Condition::FunctionDisabled, settings);
        }
        if !error.is_retryable() {
            return self.give_up(data, event, Condition::RetriesExhausted, settings);
        }
        let factor = 1u32.checked_shl(event.backoffs.min(30)).unwrap_or(u32::MAX);
        let delay = self
            .config
            .backoff_initial
            .saturating_mul(factor)
            .min(self.config.backoff_max);
        event.backoffs += 1;
        data.counters.async_retries.fetch_add(1, Ordering::Relaxed);
        self.schedule(event, retry_at(delay));
    }

    /// Final failure: on-failure destination and dead-letter sink.
    fn give_up(
        &self,
        data: &DataPlane,
        event: QueuedEvent,
        condition: Condition,
        settings: Settings,
    ) {
        let Settings {
            config,
            dead_letter,
        } = settings;
        if condition != Condition::EventAgeExceeded {
            data.counters.async_failed.fetch_add(1, Ordering::Relaxed);
        }
        let mut delivered = false;
        if let Some(destination) = &config.on_failure {
            destination.deliver(record(data, &event, condition, None));
            data.counters
                .destination_deliveries
                .fetch_add(1, Ordering::Relaxed);
            delivered = true;
        }
        if let Some(sink) = dead_letter {
            let (error_code, error_type, message) = event.last_error.clone().unwrap_or((
                0,
                condition.as_str().to_string(),
                format!("the event was given up: {condition}"),
            ));
            sink.send(DeadLetter {
                request_id: event.request_id.clone(),
                function_arn: data
                    .control
                    .arn(&event.function, event.qualifier.as_deref()),
                payload: event.payload.clone(),
                error_code,
                error_type,
                error_message: truncate_message(&message),
                condition,
                attempts: event.attempts,
            });
            data.counters.dead_letters.fetch_add(1, Ordering::Relaxed);
            delivered = true;
        }
        if !delivered {
            data.counters.async_dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.finish(&event);
    }

    /// Hands every still-queued event to failure handling (service shutdown).
    pub(crate) fn abandon_queued_events(&self, data: &DataPlane) {
        for event in self.drain() {
            let function = data.control.entry(&event.function).ok();
            let settings = Settings::of(function.as_deref(), event.qualifier.as_deref());
            self.give_up(data, event, Condition::ServiceShutdown, settings);
        }
    }
}

/// The invocation record of an event, with the last response unless `response` is given.
fn record(
    data: &DataPlane,
    event: &QueuedEvent,
    condition: Condition,
    response: Option<&InvokeResponse>,
) -> InvocationRecord {
    let response = response.or(event.last_response.as_ref());
    let status_code = match (response, &event.last_error) {
        (Some(_), _) => 200,
        (None, Some((code, _, _))) => *code,
        (None, None) => 0,
    };
    InvocationRecord {
        request_id: event.request_id.clone(),
        function_arn: data
            .control
            .arn(&event.function, event.qualifier.as_deref()),
        condition,
        approximate_invoke_count: event.attempts,
        timestamp: data.clock.now(),
        request_payload: event.payload.clone(),
        status_code,
        executed_version: response.and_then(|r| r.executed_version),
        function_error: response.and_then(|r| r.function_error.clone()),
        response_payload: response.map(|r| r.payload.clone()).unwrap_or_default(),
    }
}

fn error_triple(error: &Error) -> (u16, String, String) {
    (
        error.status_code(),
        error.exception_name().to_string(),
        error.to_string(),
    )
}
