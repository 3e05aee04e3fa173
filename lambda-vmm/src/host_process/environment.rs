//! An environment that lives in a VM host process: each call on it is a request to that
//! process, answered over its pipe.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lambda_core::{
    EnvironmentError, EnvironmentStart, ExecutionEnvironment, Invocation, InvokeResult,
};

use super::process::HostProcess;
use super::wire::{ReplyBody, RequestBody};

/// One environment made by a host process, named by its number there.
pub(crate) struct RemoteEnvironment {
    pub host: Arc<HostProcess>,
    pub number: u64,
    /// The function's timeout: an invocation's answer is awaited this long plus `patience`.
    pub timeout: Duration,
    /// See [`Patience::invoke`](super::Patience::invoke).
    pub patience: Duration,
    pub init_duration: Duration,
    pub start: EnvironmentStart,
    pub fresh_per_invocation: bool,
    /// Set once the host no longer holds the environment (shut down, or broken by an
    /// invocation), so it is not asked to shut it down again.
    pub released: bool,
}

impl ExecutionEnvironment for RemoteEnvironment {
    fn invoke(&mut self, mut invocation: Invocation) -> Result<InvokeResult, EnvironmentError> {
        if self.released {
            return Err(EnvironmentError::failed(
                "this environment broke in an earlier invocation and cannot be used again",
            ));
        }
        let stream = invocation.response_stream.take();
        let replies = self
            .host
            .call(RequestBody::Invoke {
                environment: self.number,
                invocation,
                streamed: stream.is_some(),
            })
            .map_err(|why| {
                self.released = true;
                EnvironmentError::failed(why)
            })?;
        let deadline = Instant::now() + self.timeout + self.patience;
        let mut reading = true;
        loop {
            let reply = self.host.next_reply(&replies, deadline, "an invocation");
            match reply {
                Ok(ReplyBody::Chunk(piece)) => {
                    if let (Some(stream), true) = (&stream, reading) {
                        reading = stream.write(&piece);
                    }
                }
                Ok(ReplyBody::Invoked(result)) => return Ok(result),
                Ok(ReplyBody::Failed(error)) => {
                    // The host shut the broken environment down.
                    self.released = true;
                    return Err(error.into());
                }
                Ok(_) => {
                    self.released = true;
                    return Err(self.host.unexpected_reply("an invocation"));
                }
                Err(error) => {
                    self.released = true;
                    return Err(error);
                }
            }
        }
    }

    fn init_duration(&self) -> Duration {
        self.init_duration
    }

    fn start(&self) -> EnvironmentStart {
        self.start.clone()
    }

    fn fresh_per_invocation(&self) -> bool {
        self.fresh_per_invocation
    }

    /// Asks the host to shut the environment down, and waits until it has.
    fn shutdown(mut self: Box<Self>) {
        if !self.released {
            self.released = true;
            let request = RequestBody::Shutdown {
                environment: self.number,
            };
            let _ = self.host.request(request, self.patience, "a shutdown");
        }
    }
}

impl Drop for RemoteEnvironment {
    /// An environment dropped without [`shutdown`](ExecutionEnvironment::shutdown) is shut
    /// down all the same, without waiting for the host.
    fn drop(&mut self) {
        if !self.released {
            let _ = self.host.call(RequestBody::Shutdown {
                environment: self.number,
            });
        }
        self.host.environments.fetch_sub(1, Ordering::Relaxed);
    }
}
