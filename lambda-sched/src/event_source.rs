//! Event source mappings: pollers that read batches from a source and invoke a function
//! synchronously with them.
//!
//! A source implements [`EventSource`] (poll a batch, acknowledge, fail); [`MemoryQueue`] is an
//! in-memory, SQS-like one. A mapping gathers up to `batch_size` records, waiting at most
//! `maximum_batching_window` for a batch to fill, and invokes its function with
//! `{"Records": [...]}`. Then:
//!
//! - success: the records are acknowledged. With `report_batch_item_failures`, the response's
//!   `batchItemFailures` names the records that failed; only those are retried. A response
//!   that is not valid JSON, or names an unknown or empty `itemIdentifier`, fails the whole
//!   batch, as Lambda does.
//! - function error: the whole batch failed. With `bisect_batch_on_function_error` a failed
//!   batch of several records is split in two halves that are retried separately (splitting
//!   does not use up retries), which isolates a poison record.
//! - a failed record is retried until it has failed `maximum_retry_attempts` times beyond its
//!   first attempt (`None`: until it succeeds, Lambda's default for streams); then it is
//!   reported to the source with [`EventSource::fail`] and to the on-failure destination.
//! - throttles and service errors: the batch is kept and retried at the next poll without
//!   using up retries.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lambda_core::Invocation;
use lambda_core::limits::MAX_SYNC_PAYLOAD_BYTES;

use crate::data_plane::DataPlane;
use crate::destination::{Condition, Destination, InvocationRecord};
use crate::error::{Error, Result};
use crate::sync::lock;

/// One record read from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// The record's id (SQS message id, stream sequence number), unique within the source.
    pub id: String,
    /// The record's body.
    pub body: Vec<u8>,
    /// How many times the source has handed this record out, this time included.
    pub receive_count: u32,
}

/// A source of records for an event source mapping.
pub trait EventSource: Send + Sync + fmt::Debug {
    /// The `eventSource` value put in each record of the batch, e.g. `"aws:sqs"`.
    fn event_source_name(&self) -> &str {
        "lambda-sched:source"
    }

    /// Takes up to `max_records` records; they stay invisible to other pollers until
    /// acknowledged, failed or released.
    fn poll(&self, max_records: usize) -> Vec<SourceRecord>;

    /// The records were processed: delete them.
    fn acknowledge(&self, ids: &[String]);

    /// The records failed every retry: the source disposes of them (a redrive queue, a log).
    fn fail(&self, ids: &[String]);

    /// The records were not processed (the mapping was deleted): make them available again.
    fn release(&self, ids: &[String]);
}

#[derive(Debug, Default)]
struct QueueState {
    visible: VecDeque<SourceRecord>,
    in_flight: Vec<SourceRecord>,
    failed: Vec<SourceRecord>,
    acknowledged: u64,
    next_id: u64,
}

/// An in-memory queue source, like an SQS standard queue without visibility timeouts.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    state: Mutex<QueueState>,
}

impl MemoryQueue {
    /// An empty queue, ready to share.
    pub fn new() -> Arc<Self> {
        Arc::new(MemoryQueue::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        lock(&self.state)
    }

    /// Adds a record; returns its id.
    pub fn send(&self, body: impl Into<Vec<u8>>) -> String {
        let mut state = self.lock();
        state.next_id += 1;
        let id = format!("msg-{}", state.next_id);
        state.visible.push_back(SourceRecord {
            id: id.clone(),
            body: body.into(),
            receive_count: 0,
        });
        id
    }

    /// Records waiting to be polled.
    pub fn visible(&self) -> usize {
        self.lock().visible.len()
    }

    /// Records polled and not yet acknowledged, failed or released.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    /// Records acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.lock().acknowledged
    }

    /// Records given up on (this queue's dead-letter list).
    pub fn failed(&self) -> Vec<SourceRecord> {
        self.lock().failed.clone()
    }
}

impl EventSource for MemoryQueue {
    fn event_source_name(&self) -> &str {
        "lambda-sched:memory-queue"
    }

    fn poll(&self, max_records: usize) -> Vec<SourceRecord> {
        let mut state = self.lock();
        let take = max_records.min(state.visible.len());
        let mut batch = Vec::with_capacity(take);
        for _ in 0..take {
            if let Some(mut record) = state.visible.pop_front() {
                record.receive_count += 1;
                state.in_flight.push(record.clone());
                batch.push(record);
            }
        }
        batch
    }

    fn acknowledge(&self, ids: &[String]) {
        let mut state = self.lock();
        let before = state.in_flight.len();
        state.in_flight.retain(|r| !ids.contains(&r.id));
        state.acknowledged += (before - state.in_flight.len()) as u64;
    }

    fn fail(&self, ids: &[String]) {
        let mut state = self.lock();
        let (failed, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.in_flight)
            .into_iter()
            .partition(|r| ids.contains(&r.id));
        state.in_flight = kept;
        state.failed.extend(failed);
    }

    fn release(&self, ids: &[String]) {
        let mut state = self.lock();
        let (released, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.in_flight)
            .into_iter()
            .partition(|r| ids.contains(&r.id));
        state.in_flight = kept;
        for record in released.into_iter().rev() {
            state.visible.push_front(record);
        }
    }
}

/// An event source mapping's settings (Lambda's `CreateEventSourceMapping`).
#[derive(Debug, Clone)]
pub struct EventSourceMappingConfig {
    /// Records per batch: 1-10,000 (default 10).
    pub batch_size: usize,
    /// Longest wait for a batch to fill: 0-300 s (default 0: invoke with what is there).
    pub maximum_batching_window: Duration,
    /// Retries of a failed record: `None` until it succeeds (default), or 0-10,000.
    pub maximum_retry_attempts: Option<u32>,
    /// Split failed batches in two and retry the halves.
    pub bisect_batch_on_function_error: bool,
    /// Read `batchItemFailures` from the response (`ReportBatchItemFailures`).
    pub report_batch_item_failures: bool,
    /// Where records of discarded batches go.
    pub on_failure: Option<Arc<dyn Destination>>,
    /// How often a poller thread polls an empty source (background mode only).
    pub poll_interval: Duration,
}

impl Default for EventSourceMappingConfig {
    fn default() -> Self {
        EventSourceMappingConfig {
            batch_size: 10,
            maximum_batching_window: Duration::ZERO,
            maximum_retry_attempts: None,
            bisect_batch_on_function_error: false,
            report_batch_item_failures: false,
            on_failure: None,
            poll_interval: Duration::from_millis(100),
        }
    }
}

impl EventSourceMappingConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(1..=10_000).contains(&self.batch_size) {
            return Err(Error::invalid(format!(
                "batch size {} is out of range: choose 1-10000",
                self.batch_size
            )));
        }
        if self.maximum_batching_window > Duration::from_secs(300) {
            return Err(Error::invalid(format!(
                "maximum batching window {:?} is out of range: choose 0-300 seconds",
                self.maximum_batching_window
            )));
        }
        if self.maximum_retry_attempts.is_some_and(|n| n > 10_000) {
            return Err(Error::invalid(
                "maximum retry attempts is out of range: choose 0-10000, or None for unlimited",
            ));
        }
        if self.poll_interval.is_zero() {
            return Err(Error::invalid("the poll interval must be positive"));
        }
        Ok(())
    }
}

/// A record in a mapping's hands, with its failure count.
#[derive(Debug, Clone)]
struct Held {
    record: SourceRecord,
    failures: u32,
}

#[derive(Debug, Default)]
struct MappingState {
    /// Records gathered for the next batch and when the first arrived.
    buffer: Vec<Held>,
    buffer_since: Option<Duration>,
    /// Failed batches waiting for a retry, first to go first.
    retry: VecDeque<Vec<Held>>,
}

/// What one step of a mapping did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing to send (empty source, or a batch still filling).
    Idle,
    /// A batch was sent to the function.
    Invoked,
    /// The function could not be invoked (throttle, service error): try later.
    Blocked,
}

/// One event source mapping.
#[derive(Debug)]
pub(crate) struct Mapping {
    pub id: String,
    pub function: String,
    pub source: Arc<dyn EventSource>,
    pub config: EventSourceMappingConfig,
    pub deleted: AtomicBool,
    state: Mutex<MappingState>,
}

/// What [`crate::Service::event_source_mappings`] reports about a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSourceMappingInfo {
    /// The mapping's id.
    pub id: String,
    /// The function (with its qualifier, if any) the mapping invokes.
    pub function: String,
    /// Records held by the mapping: gathered for a batch or waiting for a retry.
    pub records_held: usize,
}

fn ids(records: &[Held]) -> Vec<String> {
    records.iter().map(|h| h.record.id.clone()).collect()
}

/// Parses `{"batchItemFailures":[{"itemIdentifier":"id"}]}`. `Ok` with the failed ids (empty
/// for a complete success), `Err` when the whole batch must be treated as failed.
pub(crate) fn parse_batch_item_failures(
    response: &[u8],
    batch: &HashSet<&str>,
) -> std::result::Result<Vec<String>, ()> {
    let trimmed = response.iter().all(|b| b.is_ascii_whitespace());
    if trimmed {
        return Ok(Vec::new());
    }
    let value: serde_json::Value = serde_json::from_slice(response).map_err(|_| ())?;
    let failures = match &value {
        serde_json::Value::Null => return Ok(Vec::new()),
        serde_json::Value::Object(map) => match map.get("batchItemFailures") {
            None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
            Some(serde_json::Value::Array(items)) => items,
            Some(_) => return Err(()),
        },
        _ => return Err(()),
    };
    let mut failed = Vec::with_capacity(failures.len());
    for item in failures {
        let id = item
            .get("itemIdentifier")
            .and_then(|v| v.as_str())
            .ok_or(())?;
        if id.is_empty() || !batch.contains(id) {
            return Err(());
        }
        failed.push(id.to_string());
    }
    Ok(failed)
}

impl Mapping {
    fn new(
        id: String,
        function: String,
        source: Arc<dyn EventSource>,
        config: EventSourceMappingConfig,
    ) -> Self {
        Mapping {
            id,
            function,
            source,
            config,
            deleted: AtomicBool::new(false),
            state: Mutex::new(MappingState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MappingState> {
        lock(&self.state)
    }

    pub(crate) fn info(&self) -> EventSourceMappingInfo {
        let state = self.lock();
        EventSourceMappingInfo {
            id: self.id.clone(),
            function: self.function.clone(),
            records_held: state.buffer.len() + state.retry.iter().map(Vec::len).sum::<usize>(),
        }
    }

    /// Gives every held record back to the source (the mapping is being deleted).
    pub(crate) fn release_all(&self) {
        let mut state = self.lock();
        let mut held: Vec<String> = ids(&state.buffer);
        for batch in &state.retry {
            held.extend(ids(batch));
        }
        state.buffer.clear();
        state.buffer_since = None;
        state.retry.clear();
        if !held.is_empty() {
            self.source.release(&held);
        }
    }

    /// When a batch still filling will be due.
    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        let state = self.lock();
        state
            .buffer_since
            .map(|since| since + self.config.maximum_batching_window)
    }

    /// Sends at most one batch.
    pub(crate) fn step(&self, data: &DataPlane) -> Step {
        let batch = {
            let mut state = self.lock();
            match state.retry.pop_front() {
                Some(batch) => batch,
                None => {
                    let now = data.clock.now();
                    let want = self.config.batch_size - state.buffer.len();
                    if want > 0 {
                        let polled = self.source.poll(want);
                        if !polled.is_empty() && state.buffer_since.is_none() {
                            state.buffer_since = Some(now);
                        }
                        state.buffer.extend(polled.into_iter().map(|record| Held {
                            record,
                            failures: 0,
                        }));
                    }
                    let full = state.buffer.len() >= self.config.batch_size;
                    let window_over = state
                        .buffer_since
                        .is_some_and(|since| now >= since + self.config.maximum_batching_window);
                    if state.buffer.is_empty() || !(full || window_over) {
                        return Step::Idle;
                    }
                    state.buffer_since = None;
                    std::mem::take(&mut state.buffer)
                }
            }
        };
        self.invoke(data, batch)
    }

    fn payload(&self, batch: &[Held]) -> Vec<u8> {
        let records: Vec<serde_json::Value> = batch
            .iter()
            .map(|h| {
                serde_json::json!({
                    "messageId": h.record.id,
                    "body": String::from_utf8_lossy(&h.record.body),
                    "attributes": {
                        "ApproximateReceiveCount": (h.record.receive_count + h.failures).to_string(),
                    },
                    "eventSource": self.source.event_source_name(),
                })
            })
            .collect();
        serde_json::json!({ "Records": records })
            .to_string()
            .into_bytes()
    }

    fn invoke(&self, data: &DataPlane, mut batch: Vec<Held>) -> Step {
        let mut payload = self.payload(&batch);
        // A batch over the synchronous payload limit is split before it is sent.
        while payload.len() > MAX_SYNC_PAYLOAD_BYTES && batch.len() > 1 {
            let back = batch.split_off(batch.len() / 2);
            self.lock().retry.push_front(back);
            payload = self.payload(&batch);
        }
        let resolved = match data.control.resolve(&self.function, None) {
            Ok(resolved) => resolved,
            Err(_) => {
                self.lock().retry.push_front(batch);
                return Step::Blocked;
            }
        };
        data.counters.esm_batches.fetch_add(1, Ordering::Relaxed);
        let response = match data.run(&resolved, Invocation::new(payload), false) {
            Ok(response) => response,
            Err(_) => {
                // Throttled or no environment: not the records' fault; keep and retry.
                self.lock().retry.push_front(batch);
                return Step::Blocked;
            }
        };
        let failed: Vec<Held> = if response.is_success() {
            if self.config.report_batch_item_failures {
                let in_batch: HashSet<&str> = batch.iter().map(|h| h.record.id.as_str()).collect();
                match parse_batch_item_failures(&response.payload, &in_batch) {
                    Ok(failed_ids) => {
                        let (failed, ok): (Vec<Held>, Vec<Held>) = batch
                            .into_iter()
                            .partition(|h| failed_ids.contains(&h.record.id));
                        self.succeed(data, &ok);
                        return self.handle_failure(data, failed, false, &response.payload);
                    }
                    Err(()) => batch,
                }
            } else {
                self.succeed(data, &batch);
                return Step::Invoked;
            }
        } else {
            batch
        };
        self.handle_failure(data, failed, true, &response.payload)
    }

    fn succeed(&self, data: &DataPlane, records: &[Held]) {
        if records.is_empty() {
            return;
        }
        self.source.acknowledge(&ids(records));
        data.counters
            .esm_records_succeeded
            .fetch_add(records.len() as u64, Ordering::Relaxed);
    }

    fn handle_failure(
        &self,
        data: &DataPlane,
        failed: Vec<Held>,
        whole_batch: bool,
        response: &[u8],
    ) -> Step {
        if failed.is_empty() {
            return Step::Invoked;
        }
        let bisect = whole_batch && self.config.bisect_batch_on_function_error && failed.len() > 1;
        if bisect {
            let mut first = failed;
            let second = first.split_off(first.len() / 2);
            let mut state = self.lock();
            state.retry.push_front(second);
            state.retry.push_front(first);
            return Step::Invoked;
        }
        let (exhausted, retry): (Vec<Held>, Vec<Held>) = failed
            .into_iter()
            .map(|mut h| {
                h.failures += 1;
                h
            })
            .partition(|h| {
                self.config
                    .maximum_retry_attempts
                    .is_some_and(|max| h.failures > max)
            });
        if !retry.is_empty() {
            self.lock().retry.push_back(retry);
        }
        if !exhausted.is_empty() {
            let exhausted_ids = ids(&exhausted);
            self.source.fail(&exhausted_ids);
            data.counters
                .esm_records_failed
                .fetch_add(exhausted.len() as u64, Ordering::Relaxed);
            if let Some(destination) = &self.config.on_failure {
                let body = serde_json::json!({ "failedRecordIds": exhausted_ids });
                destination.deliver(InvocationRecord {
                    request_id: lambda_core::new_request_id(),
                    function_arn: data.control.arn(&self.function, None),
                    condition: Condition::RetriesExhausted,
                    approximate_invoke_count: exhausted
                        .iter()
                        .map(|h| h.failures)
                        .max()
                        .unwrap_or(0),
                    timestamp: data.clock.now(),
                    request_payload: body.to_string().into_bytes(),
                    status_code: 200,
                    executed_version: None,
                    function_error: None,
                    response_payload: response.to_vec(),
                });
                data.counters
                    .destination_deliveries
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        Step::Invoked
    }
}

/// The service's event source mappings.
#[derive(Debug)]
pub(crate) struct Mappings {
    list: Mutex<Vec<Arc<Mapping>>>,
    next_id: AtomicU64,
}

impl Mappings {
    pub(crate) fn new() -> Self {
        Mappings {
            list: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// Adds a mapping from `source` to `function` under a new id.
    pub(crate) fn add(
        &self,
        function: &str,
        source: Arc<dyn EventSource>,
        config: EventSourceMappingConfig,
    ) -> Arc<Mapping> {
        let id = format!("esm-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let mapping = Arc::new(Mapping::new(id, function.to_string(), source, config));
        lock(&self.list).push(mapping.clone());
        mapping
    }

    /// Removes a mapping, stops it and gives the records it held back to the source.
    pub(crate) fn delete(&self, id: &str) -> Result<()> {
        let mapping = {
            let mut list = lock(&self.list);
            let index = list.iter().position(|m| m.id == id).ok_or_else(|| {
                Error::not_found(format!("event source mapping {id} does not exist"))
            })?;
            list.remove(index)
        };
        mapping.deleted.store(true, Ordering::Release);
        mapping.release_all();
        Ok(())
    }

    /// Every mapping, in the order they were made.
    pub(crate) fn all(&self) -> Vec<Arc<Mapping>> {
        lock(&self.list).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_item_failures_follow_lambdas_rules() {
        let batch: HashSet<&str> = ["a", "b"].into_iter().collect();
        let parse = |s: &str| parse_batch_item_failures(s.as_bytes(), &batch);
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(parse("null"), Ok(vec![]));
        assert_eq!(parse(r#"{"batchItemFailures":[]}"#), Ok(vec![]));
        assert_eq!(parse(r#"{"batchItemFailures":null}"#), Ok(vec![]));
        assert_eq!(
            parse(r#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#),
            Ok(vec!["b".to_string()])
        );
        assert_eq!(parse("not json"), Err(()));
        assert_eq!(
            parse(r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#),
            Err(())
        );
        assert_eq!(
            parse(r#"{"batchItemFailures":[{"itemIdentifier":"z"}]}"#),
            Err(())
        );
        assert_eq!(parse(r#"{"batchItemFailures":[{"id":"a"}]}"#), Err(()));
        assert_eq!(parse(r#"{"batchItemFailures":"a"}"#), Err(()));
    }

    #[test]
    fn memory_queue_polls_acknowledges_fails_and_releases() {
        let queue = MemoryQueue::new();
        let a = queue.send("a");
        let b = queue.send("b");
        let c = queue.send("c");
        let batch = queue.poll(2);
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].receive_count, 1);
        assert_eq!((queue.visible(), queue.in_flight()), (1, 2));
        queue.acknowledge(std::slice::from_ref(&a));
        queue.release(std::slice::from_ref(&b));
        assert_eq!(queue.acknowledged(), 1);
        let again = queue.poll(10);
        assert_eq!(
            again.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
            vec![b.clone(), c.clone()]
        );
        assert_eq!(again[0].receive_count, 2);
        queue.fail(std::slice::from_ref(&c));
        assert_eq!(queue.failed().len(), 1);
        assert_eq!(queue.in_flight(), 1);
    }
}
