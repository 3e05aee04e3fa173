//! The panic boundary: the one place where the service calls into a backend. Every call
//! (creating an environment and running its Init, invoking it, shutting it down, and the small
//! questions in between) runs under `catch_unwind`; a panic becomes a failure of that call
//! (`EnvironmentError::panicked`), is counted in `MetricsSnapshot::backend_panics`, and the
//! environment it happened in is discarded: never invoked again, only shut down (under the
//! guard too) so it can release what it holds, and its concurrency slot and its worker's
//! memory are released as for any broken environment.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lambda_core::{
    Backend, EnvironmentError, ExecutionEnvironment, FunctionConfig, Invocation, InvokeResult,
};

use crate::metrics::ServiceCounters;

/// A backend whose calls cannot unwind into the service.
pub(crate) struct GuardedBackend {
    inner: Arc<dyn Backend>,
    counters: Arc<ServiceCounters>,
}

impl GuardedBackend {
    /// Guards `inner`, counting its panics in `counters`.
    pub(crate) fn new(inner: Arc<dyn Backend>, counters: Arc<ServiceCounters>) -> GuardedBackend {
        GuardedBackend { inner, counters }
    }
}

fn counted(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Backend for GuardedBackend {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn create(
        &self,
        config: &FunctionConfig,
    ) -> Result<Box<dyn ExecutionEnvironment>, EnvironmentError> {
        match catch_unwind(AssertUnwindSafe(|| self.inner.create(config))) {
            Ok(Ok(env)) => Ok(Box::new(GuardedEnvironment {
                inner: env,
                broken: false,
                counters: Arc::clone(&self.counters),
            })),
            Ok(Err(error)) => Err(error),
            Err(payload) => {
                counted(&self.counters.backend_panics);
                Err(EnvironmentError::panicked(
                    "creating an environment",
                    payload.as_ref(),
                ))
            }
        }
    }
}

/// An environment whose calls cannot unwind into the service. After a panic it is broken:
/// it is never invoked again (the call fails at once), and only its shutdown still reaches
/// the backend.
struct GuardedEnvironment {
    inner: Box<dyn ExecutionEnvironment>,
    broken: bool,
    counters: Arc<ServiceCounters>,
}

impl ExecutionEnvironment for GuardedEnvironment {
    fn invoke(&mut self, invocation: Invocation) -> Result<InvokeResult, EnvironmentError> {
        if self.broken {
            return Err(EnvironmentError::failed(
                "the environment is broken: its backend panicked in an earlier call",
            ));
        }
        match catch_unwind(AssertUnwindSafe(|| self.inner.invoke(invocation))) {
            Ok(result) => result,
            Err(payload) => {
                self.broken = true;
                counted(&self.counters.backend_panics);
                Err(EnvironmentError::panicked("invoking", payload.as_ref()))
            }
        }
    }

    fn init_duration(&self) -> Duration {
        catch_unwind(AssertUnwindSafe(|| self.inner.init_duration())).unwrap_or_else(|_| {
            counted(&self.counters.backend_panics);
            Duration::ZERO
        })
    }

    fn fresh_per_invocation(&self) -> bool {
        catch_unwind(AssertUnwindSafe(|| self.inner.fresh_per_invocation())).unwrap_or_else(|_| {
            counted(&self.counters.backend_panics);
            true
        })
    }

    fn shutdown(self: Box<Self>) {
        let GuardedEnvironment {
            inner, counters, ..
        } = *self;
        if catch_unwind(AssertUnwindSafe(move || inner.shutdown())).is_err() {
            counted(&counters.backend_panics);
        }
    }
}
