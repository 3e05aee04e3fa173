//! The execution-environment lifecycle: create (and Init), invoke, shut down.
//!
//! A [`Backend`] makes [`ExecutionEnvironment`]s for a function; each environment serves one
//! invocation at a time until it is shut down or reset. The KVM micro-VM backend lives in
//! `lambda-vmm`; the scheduler in `lambda-sched` drives any backend through these traits.
//!
//! # What a panic becomes
//!
//! A backend should not panic, but one that does must not take its caller down with it or
//! leave an environment half-used. `lambda-vmm` (inside its backend and environments) and
//! `lambda-sched` (around every call it makes into any backend) catch a panic at that boundary
//! and turn it into an error of the one invocation it happened in: an
//! [`EnvironmentError::Failed`] made by [`EnvironmentError::panicked`], whose message names the
//! panic's text, and which reaches the caller as a `Sandbox.Failure` function error
//! ([`EnvironmentError::to_function_error`]):
//!
//! - in [`Backend::create`] (Init included): `create` fails; the scheduler answers the
//!   invocation that wanted the environment with `Sandbox.Failure`;
//! - in [`ExecutionEnvironment::invoke`]: `invoke` fails and the environment counts as broken:
//!   the scheduler shuts it down and never uses it again, and `lambda-vmm`'s own environments
//!   drop their VM, so an invocation after that starts afresh;
//! - in [`ExecutionEnvironment::shutdown`]: the scheduler swallows (and counts) the panic; the
//!   environment is gone either way and is not shut down again.
//!
//! A panic is caught by unwinding: a program built with `panic = "abort"` still aborts.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::config::FunctionConfig;
use crate::invocation::Invocation;
use crate::outcome::{FunctionError, InvokeOutcome};
use crate::report::Report;

/// Something that creates execution environments: the micro-VM backend, the development
/// (child process) backend, or a fake in tests.
pub trait Backend: Send + Sync {
    /// A short name for logs and metrics, such as `"kvm"` or `"process"`.
    fn name(&self) -> &str;

    /// Creates an environment for `config` and runs its Init phase, returning once the
    /// environment is ready for its first invocation.
    ///
    /// Errors: [`EnvironmentError::Code`] when the function's code cannot run at all (checked
    /// before anything is created), [`EnvironmentError::Init`] when Init failed,
    /// [`EnvironmentError::Unavailable`] when this backend cannot run on the host.
    fn create(
        &self,
        config: &FunctionConfig,
    ) -> Result<Box<dyn ExecutionEnvironment>, EnvironmentError>;
}

/// One execution environment: an initialised function that serves one invocation at a time.
pub trait ExecutionEnvironment: Send {
    /// Runs one invocation to its end: response, function error, crash or timeout.
    ///
    /// Function failures are outcomes, not `Err`: a crash or timeout gives
    /// `Ok` with an error outcome and [`InvokeResult::reset`] set. `Err` means the environment
    /// itself broke (a host-side failure); it must not be used again.
    fn invoke(&mut self, invocation: Invocation) -> Result<InvokeResult, EnvironmentError>;

    /// How long Init took for this environment.
    fn init_duration(&self) -> Duration;

    /// How the environment started: with an Init, or restored from a snapshot.
    fn start(&self) -> EnvironmentStart {
        EnvironmentStart::Init
    }

    /// Whether every invocation starts the function afresh (the one-shot stdio contract):
    /// then no invocation is warm, however long the environment lives.
    fn fresh_per_invocation(&self) -> bool {
        false
    }

    /// Tears the environment down, releasing everything it holds.
    fn shutdown(self: Box<Self>);
}

/// How an environment started.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EnvironmentStart {
    /// It booted and ran the function's Init.
    Init,
    /// It was restored from a snapshot taken after an Init (SnapStart).
    Restored,
    /// SnapStart was asked for, but the function could not be snapshotted, so it booted and
    /// ran its Init; the text says why.
    SnapshotRefused(String),
}

/// What one invocation produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InvokeResult {
    /// The response or the error.
    pub outcome: InvokeOutcome,
    /// The figures of the invocation (its `REPORT` line).
    pub report: Report,
    /// The last bytes of the invocation's log (at most [`crate::limits::LOG_TAIL_BYTES`]), as
    /// Lambda's `X-Amz-Log-Result` tail.
    #[serde(with = "serde_bytes")]
    pub log_tail: Vec<u8>,
    /// Set when the environment was reset by this invocation: the next invocation it serves
    /// starts from a fresh Init.
    pub reset: Option<ResetReason>,
}

/// Why an environment was reset after an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ResetReason {
    /// The function crashed (a CPU exception or a fatal signal).
    Crash,
    /// The invocation ran past its timeout.
    Timeout,
    /// The runtime exited during the invocation.
    Exit,
    /// The function ran out of memory.
    OutOfMemory,
}

/// Why an environment could not be created or used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnvironmentError {
    /// The backend cannot run on this host (for example `/dev/kvm` is missing).
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The function's code cannot be run: not an x86-64 ELF, unreadable, a dynamic program
    /// without a base image, and so on.
    #[error("invalid function code: {0}")]
    Code(String),
    /// The configuration is out of range.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Init failed: the runtime reported an init error, crashed, exited or ran past 10 s.
    #[error("init failed: {error}")]
    Init {
        /// The error, with Lambda's type name.
        error: FunctionError,
        /// How long Init ran before it failed.
        init_duration: Duration,
        /// The last bytes of the Init log.
        log_tail: Vec<u8>,
    },
    /// The environment failed on the host side (a KVM call failed, a thread could not start).
    #[error("execution environment failed: {message}")]
    Failed {
        /// What failed, in one line a person can act on (including what `source` says).
        message: String,
        /// The typed error underneath, when there is one, for programs that inspect it.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
}

impl EnvironmentError {
    /// A host-side failure described by `message`.
    pub fn failed(message: impl Into<String>) -> Self {
        EnvironmentError::Failed {
            message: message.into(),
            source: None,
        }
    }

    /// A host-side failure: `message`, caused by `source` (whose text is added to the
    /// message).
    pub fn failed_because(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        EnvironmentError::Failed {
            message: format!("{}: {source}", message.into()),
            source: Some(Arc::new(source)),
        }
    }

    /// A host-side failure for a panic caught while the backend was doing `during` (such as
    /// `"create"` or `"invoke"`): the message names the panic's text (see
    /// [`panic_message`]).
    pub fn panicked(during: &str, payload: &(dyn Any + Send)) -> Self {
        EnvironmentError::failed(format!(
            "the backend panicked during {during}: {}",
            panic_message(payload)
        ))
    }

    /// The function error a caller should see when this error stops an invocation.
    pub fn to_function_error(&self) -> FunctionError {
        use crate::outcome::ErrorType;
        match self {
            EnvironmentError::Init { error, .. } => error.clone(),
            EnvironmentError::Code(message) => {
                FunctionError::new(ErrorType::RuntimeInvalidEntrypoint, message.clone())
            }
            other => FunctionError::new(ErrorType::SandboxFailure, other.to_string()),
        }
    }
}

/// The text of a caught panic's payload (what `std::panic::catch_unwind` returns as its
/// error): the message of `panic!("...")` or `panic!("{x}")`, or a placeholder when the payload
/// is not text.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "a panic whose payload is not text"
    }
}

impl InvokeOutcome {
    /// Shorthand for an error outcome.
    pub fn failed(error_type: crate::outcome::ErrorType, message: impl Into<String>) -> Self {
        InvokeOutcome::Error(FunctionError::new(error_type, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_failure_that_names_its_text() {
        let caught = |f: fn()| std::panic::catch_unwind(f).unwrap_err();
        let literal = caught(|| panic!("plain words"));
        assert_eq!(panic_message(&*literal), "plain words");
        let formatted = caught(|| panic!("formatted {}", 42));
        assert_eq!(panic_message(&*formatted), "formatted 42");
        let opaque = caught(|| std::panic::panic_any(7_u32));
        assert_eq!(panic_message(&*opaque), "a panic whose payload is not text");
        let error = EnvironmentError::panicked("invoke", &*formatted);
        assert!(matches!(
            error,
            EnvironmentError::Failed { source: None, .. }
        ));
        assert_eq!(
            error.to_string(),
            "execution environment failed: the backend panicked during invoke: formatted 42"
        );
        let function_error = error.to_function_error();
        assert_eq!(
            function_error.error_type,
            crate::outcome::ErrorType::SandboxFailure
        );
        assert!(function_error.message.contains("formatted 42"));
    }
}
