//! Where the outcome of an asynchronous invocation goes.
//!
//! A [`Destination`] (on success or on failure) receives an [`InvocationRecord`], Lambda's
//! JSON record of the invocation; an event source mapping also sends one to its on-failure
//! destination for records it gives up on. A [`DeadLetterSink`] (Lambda's dead-letter queue)
//! receives a failed event itself as a [`DeadLetter`]. [`Recorder`] is an in-memory
//! destination or sink that keeps what it receives.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lambda_core::FunctionError;

use crate::clock::format_timestamp;
use crate::ids::Version;
use crate::sync::lock;

/// Why an invocation record was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// The invocation succeeded (on-success destination).
    Success,
    /// Every attempt failed.
    RetriesExhausted,
    /// The event grew older than the maximum event age before it could succeed.
    EventAgeExceeded,
    /// The function has reserved concurrency 0: events are not retried. (Engine-specific.)
    FunctionDisabled,
    /// The function, version or alias was deleted while the event waited. (Engine-specific.)
    FunctionNotFound,
    /// The service shut down with the event still queued. (Engine-specific.)
    ServiceShutdown,
}

impl Condition {
    /// The condition's name in an invocation record.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Success => "Success",
            Condition::RetriesExhausted => "RetriesExhausted",
            Condition::EventAgeExceeded => "EventAgeExceeded",
            Condition::FunctionDisabled => "FunctionDisabled",
            Condition::FunctionNotFound => "FunctionNotFound",
            Condition::ServiceShutdown => "ServiceShutdown",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a destination receives: Lambda's invocation record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationRecord {
    /// The event's request id.
    pub request_id: String,
    /// The ARN the event was sent to.
    pub function_arn: String,
    /// Why the record was sent.
    pub condition: Condition,
    /// How many times the function was invoked with the event.
    pub approximate_invoke_count: u32,
    /// When the record was made.
    pub timestamp: Duration,
    /// The event.
    pub request_payload: Vec<u8>,
    /// 200 when the function ran, otherwise the status of the last error.
    pub status_code: u16,
    /// The version that ran last, if any did.
    pub executed_version: Option<Version>,
    /// The function error of the last attempt, if it failed.
    pub function_error: Option<FunctionError>,
    /// The last response (or error body).
    pub response_payload: Vec<u8>,
}

fn json_or_string(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

impl InvocationRecord {
    /// The record as Lambda's JSON (`version`, `timestamp`, `requestContext`,
    /// `requestPayload`, `responseContext`, `responsePayload`).
    pub fn to_json(&self) -> serde_json::Value {
        let mut response_context = serde_json::json!({
            "statusCode": self.status_code,
            "executedVersion": self.executed_version.map(|v| v.to_string()),
        });
        if self.function_error.is_some() {
            response_context["functionError"] = "Unhandled".into();
        }
        serde_json::json!({
            "version": "1.0",
            "timestamp": format_timestamp(self.timestamp),
            "requestContext": {
                "requestId": self.request_id,
                "functionArn": self.function_arn,
                "condition": self.condition.as_str(),
                "approximateInvokeCount": self.approximate_invoke_count,
            },
            "requestPayload": json_or_string(&self.request_payload),
            "responseContext": response_context,
            "responsePayload": json_or_string(&self.response_payload),
        })
    }
}

/// What a dead-letter sink receives: the event and why it failed (Lambda's DLQ message
/// attributes `RequestID`, `ErrorCode`, `ErrorMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event's request id.
    pub request_id: String,
    /// The ARN the event was sent to.
    pub function_arn: String,
    /// The event, unchanged.
    pub payload: Vec<u8>,
    /// The HTTP status of the last error (200 for a function error).
    pub error_code: u16,
    /// The error type: a function error type such as `Sandbox.Timedout`, or an exception name.
    pub error_type: String,
    /// The error message, cut to its first 1 KB.
    pub error_message: String,
    /// Why the event was given up.
    pub condition: Condition,
    /// How many times the function was invoked with the event.
    pub attempts: u32,
}

/// An on-success or on-failure destination.
pub trait Destination: Send + Sync + fmt::Debug {
    /// Receives one invocation record.
    fn deliver(&self, record: InvocationRecord);
}

/// A dead-letter queue.
pub trait DeadLetterSink: Send + Sync + fmt::Debug {
    /// Receives one failed event.
    fn send(&self, letter: DeadLetter);
}

/// An in-memory destination or dead-letter sink that keeps what it receives.
#[derive(Debug)]
pub struct Recorder<T> {
    items: Mutex<Vec<T>>,
}

impl<T: Clone> Recorder<T> {
    /// An empty recorder, ready to share.
    pub fn new() -> Arc<Self> {
        Arc::new(Recorder {
            items: Mutex::new(Vec::new()),
        })
    }

    /// Everything received so far.
    pub fn items(&self) -> Vec<T> {
        lock(&self.items).clone()
    }

    /// How many items were received.
    pub fn len(&self) -> usize {
        lock(&self.items).len()
    }

    /// True when nothing was received.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&self, item: T) {
        lock(&self.items).push(item);
    }
}

impl Destination for Recorder<InvocationRecord> {
    fn deliver(&self, record: InvocationRecord) {
        self.push(record);
    }
}

impl DeadLetterSink for Recorder<DeadLetter> {
    fn send(&self, letter: DeadLetter) {
        self.push(letter);
    }
}
