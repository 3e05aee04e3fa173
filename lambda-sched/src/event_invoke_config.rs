//! The asynchronous invocation settings of a function, a version or an alias (Lambda's
//! `PutFunctionEventInvokeConfig`): how often the [async queue](crate::async_queue) retries an
//! event after a function error, how old an event may grow, and its
//! [destinations](crate::destination).

use std::sync::Arc;
use std::time::Duration;

use crate::destination::Destination;
use crate::error::{Error, Result};

/// Asynchronous invocation settings of a function, version or alias
/// (Lambda's `PutFunctionEventInvokeConfig`).
#[derive(Debug, Clone)]
pub struct EventInvokeConfig {
    /// Retries after a function error: 0-2 (default 2).
    pub maximum_retry_attempts: u32,
    /// How long an event may wait in the queue: 60 s-6 h (default 6 h).
    pub maximum_event_age: Duration,
    /// Where records of successful invocations go.
    pub on_success: Option<Arc<dyn Destination>>,
    /// Where records of failed (or expired) events go.
    pub on_failure: Option<Arc<dyn Destination>>,
}

impl Default for EventInvokeConfig {
    fn default() -> Self {
        EventInvokeConfig {
            maximum_retry_attempts: 2,
            maximum_event_age: Duration::from_secs(6 * 3600),
            on_success: None,
            on_failure: None,
        }
    }
}

impl EventInvokeConfig {
    /// Sets the function-error retries.
    pub fn with_maximum_retry_attempts(mut self, attempts: u32) -> Self {
        self.maximum_retry_attempts = attempts;
        self
    }

    /// Sets the maximum event age.
    pub fn with_maximum_event_age(mut self, age: Duration) -> Self {
        self.maximum_event_age = age;
        self
    }

    /// Sets the on-success destination.
    pub fn with_on_success(mut self, destination: Arc<dyn Destination>) -> Self {
        self.on_success = Some(destination);
        self
    }

    /// Sets the on-failure destination.
    pub fn with_on_failure(mut self, destination: Arc<dyn Destination>) -> Self {
        self.on_failure = Some(destination);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.maximum_retry_attempts > 2 {
            return Err(Error::invalid(format!(
                "maximum retry attempts {} is out of range: choose 0-2",
                self.maximum_retry_attempts
            )));
        }
        let age = self.maximum_event_age;
        if age < Duration::from_secs(60) || age > Duration::from_secs(21_600) {
            return Err(Error::invalid(format!(
                "maximum event age {age:?} is out of range: choose 60-21600 seconds"
            )));
        }
        Ok(())
    }
}
