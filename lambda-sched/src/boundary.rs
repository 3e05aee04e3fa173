//! The backend boundary: the one place the scheduler calls into a [`Backend`] and the
//! [`ExecutionEnvironment`]s it makes. Every call goes through `catch_unwind`, so a backend
//! that panics fails one invocation instead of the thread that ran it:
//!
//! - a panic in `create` (Init included) is a failed creation: the worker's memory goes back,
//!   and the invocation that wanted the environment fails with `Sandbox.Failure`, the way an
//!   invocation whose Init failed does (its error names the panic);
//! - a panic in `invoke` is a broken environment, as an `Err` from `invoke` is: the invocation
//!   fails with `Sandbox.Failure`, and the environment is marked broken, so it is shut down
//!   instead of going back to its pool;
//! - a panic in a getter (`fresh_per_invocation`) gives the trait's default answer and marks
//!   the environment broken;
//! - a panic in `shutdown` is swallowed: the environment is gone either way.
//!
//! Each caught panic is counted in [`MetricsSnapshot::backend_panics`]. The caller's
//! bookkeeping (the concurrency permit, the pool's busy count, the worker's memory) is then
//! released on the ordinary path of a failed creation or a broken environment.
//!
//! [`MetricsSnapshot::backend_panics`]: crate::MetricsSnapshot::backend_panics

use std::sync::Arc;
use std::sync::atomic::Ordering;

use lambda_core::{Backend, EnvironmentError, ExecutionEnvironment, FunctionConfig, Invocation};
use lambda_core::{EnvironmentStart, InvokeResult, panic_message};

use crate::metrics::ServiceCounters;
use crate::sync::catch_panic;

/// A backend, called only through `catch_unwind`.
pub(crate) struct BackendBoundary {
    backend: Arc<dyn Backend>,
    counters: Arc<ServiceCounters>,
}

/// Why the backend gave no environment.
#[derive(Debug)]
pub(crate) enum CreateFailure {
    /// The backend returned this error.
    Returned(EnvironmentError),
    /// The backend panicked: a [`EnvironmentError::Failed`] naming the panic.
    Panicked(EnvironmentError),
}

/// Counts one caught panic.
fn count(counters: &ServiceCounters) {
    counters.backend_panics.fetch_add(1, Ordering::Relaxed);
}

impl BackendBoundary {
    pub(crate) fn new(backend: Arc<dyn Backend>, counters: Arc<ServiceCounters>) -> Self {
        BackendBoundary { backend, counters }
    }

    /// The backend's name, for messages.
    pub(crate) fn name(&self) -> String {
        catch_panic(|| self.backend.name().to_string()).unwrap_or_else(|payload| {
            count(&self.counters);
            format!("unnamed ({})", panic_message(&*payload))
        })
    }

    /// Creates an environment for `config` and runs its Init.
    pub(crate) fn create(&self, config: &FunctionConfig) -> Result<Environment, CreateFailure> {
        match catch_panic(|| self.backend.create(config)) {
            Ok(Ok(inner)) => {
                self.count_start(&*inner);
                Ok(Environment {
                    inner,
                    counters: self.counters.clone(),
                    broken: false,
                })
            }
            Ok(Err(error)) => Err(CreateFailure::Returned(error)),
            Err(payload) => {
                count(&self.counters);
                Err(CreateFailure::Panicked(EnvironmentError::panicked(
                    "create", &*payload,
                )))
            }
        }
    }
}

impl BackendBoundary {
    /// Counts how a new environment started: restored from a snapshot, or with an Init
    /// because its function could not be snapshotted (and why).
    fn count_start(&self, environment: &dyn ExecutionEnvironment) {
        let start = match catch_panic(|| environment.start()) {
            Ok(start) => start,
            Err(_) => {
                count(&self.counters);
                EnvironmentStart::Init
            }
        };
        match start {
            EnvironmentStart::Init => {}
            EnvironmentStart::Restored => {
                self.counters
                    .environments_restored
                    .fetch_add(1, Ordering::Relaxed);
            }
            EnvironmentStart::SnapshotRefused(why) => {
                self.counters
                    .snapshots_refused
                    .fetch_add(1, Ordering::Relaxed);
                *self
                    .counters
                    .last_snapshot_refusal
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(why);
            }
        }
    }
}

impl std::fmt::Debug for BackendBoundary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BackendBoundary")
            .field(&self.name())
            .finish()
    }
}

/// An environment, called only through `catch_unwind`.
pub(crate) struct Environment {
    inner: Box<dyn ExecutionEnvironment>,
    counters: Arc<ServiceCounters>,
    /// A call into it panicked: it must not serve again.
    broken: bool,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Environment {
    /// Runs one invocation. A panic is an `Err` naming it, and breaks the environment.
    pub(crate) fn invoke(
        &mut self,
        invocation: Invocation,
    ) -> Result<InvokeResult, EnvironmentError> {
        catch_panic(|| self.inner.invoke(invocation)).unwrap_or_else(|payload| {
            self.broke();
            Err(EnvironmentError::panicked("invoke", &*payload))
        })
    }

    /// Whether every invocation starts the function afresh; `false` after a panic, which
    /// breaks the environment.
    pub(crate) fn fresh_per_invocation(&mut self) -> bool {
        catch_panic(|| self.inner.fresh_per_invocation()).unwrap_or_else(|_| {
            self.broke();
            false
        })
    }

    /// Whether a call into the environment panicked: then it is shut down, never reused.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    /// Tears the environment down; a panic is swallowed (and counted).
    pub(crate) fn shutdown(self) {
        let Environment {
            inner, counters, ..
        } = self;
        if catch_panic(|| inner.shutdown()).is_err() {
            count(&counters);
        }
    }

    fn broke(&mut self) {
        self.broken = true;
        count(&self.counters);
    }
}

#[cfg(test)]
mod tests {
    use lambda_core::CodeLocation;

    use super::*;
    use crate::fake::FakeBackend;

    fn config(name: &str) -> FunctionConfig {
        FunctionConfig::new(name, CodeLocation::Executable("/fake".into()))
    }

    fn boundary(fake: &Arc<FakeBackend>) -> (BackendBoundary, Arc<ServiceCounters>) {
        let counters = Arc::new(ServiceCounters::default());
        (
            BackendBoundary::new(fake.clone(), counters.clone()),
            counters,
        )
    }

    fn panics(counters: &ServiceCounters) -> u64 {
        counters.backend_panics.load(Ordering::Relaxed)
    }

    #[test]
    fn a_panic_in_create_is_a_failure_that_names_it() {
        let fake = FakeBackend::new();
        let (boundary, counters) = boundary(&fake);
        let failure = boundary
            .create(&config("f").with_env("FAKE_CREATE", "panic"))
            .expect_err("create panicked");
        let CreateFailure::Panicked(error) = failure else {
            panic!("{failure:?}");
        };
        assert!(
            error
                .to_string()
                .contains("panicked during create: fake: told to panic in create"),
            "{error}"
        );
        assert_eq!(panics(&counters), 1);
        // An error the backend returns is not a panic.
        let failure = boundary
            .create(&config("f").with_env("FAKE_CREATE", "unavailable"))
            .expect_err("create failed");
        assert!(matches!(
            failure,
            CreateFailure::Returned(EnvironmentError::Unavailable(_))
        ));
        assert_eq!(panics(&counters), 1);
    }

    #[test]
    fn a_panic_in_invoke_breaks_the_environment_and_shutdown_swallows_its_own() {
        let fake = FakeBackend::new();
        let (boundary, counters) = boundary(&fake);
        let mut env = boundary
            .create(&config("f").with_env("FAKE_SHUTDOWN", "panic"))
            .unwrap();
        let ok = env.invoke(Invocation::new(b"hi".to_vec())).unwrap();
        assert_eq!(
            ok.outcome,
            lambda_core::InvokeOutcome::Response(b"hi".to_vec())
        );
        assert!(!env.is_broken());
        assert!(!env.fresh_per_invocation());
        let error = env
            .invoke(Invocation::new(b"fake:panic".to_vec()))
            .expect_err("invoke panicked");
        assert!(matches!(error, EnvironmentError::Failed { .. }));
        assert!(
            error
                .to_string()
                .contains("panicked during invoke: fake: told to panic"),
            "{error}"
        );
        assert!(env.is_broken());
        assert_eq!(panics(&counters), 1);
        env.shutdown();
        assert_eq!(panics(&counters), 2);
        assert_eq!(fake.stats().live(), 0);
        assert_eq!(fake.stats().panics, 2);
        assert_eq!(boundary.name(), "fake");
    }
}
