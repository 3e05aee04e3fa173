//! The execution-environment lifecycle: create (and Init), invoke, shut down.
//!
//! A [`Backend`] makes [`ExecutionEnvironment`]s for a function; each environment serves one
//! invocation at a time until it is shut down or reset. The KVM micro-VM backend lives in
//! `lambda-vmm`; the scheduler in `lambda-sched` drives any backend through these traits.

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

    /// Whether every invocation starts the function afresh (the one-shot stdio contract):
    /// then no invocation is warm, however long the environment lives.
    fn fresh_per_invocation(&self) -> bool {
        false
    }

    /// Tears the environment down, releasing everything it holds.
    fn shutdown(self: Box<Self>);
}

/// What one invocation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeResult {
    /// The response or the error.
    pub outcome: InvokeOutcome,
    /// The figures of the invocation (its `REPORT` line).
    pub report: Report,
    /// The last bytes of the invocation's log (at most [`crate::limits::LOG_TAIL_BYTES`]), as
    /// Lambda's `X-Amz-Log-Result` tail.
    pub log_tail: Vec<u8>,
    /// Set when the environment was reset by this invocation: the next invocation it serves
    /// starts from a fresh Init.
    pub reset: Option<ResetReason>,
}

/// Why an environment was reset after an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The function's code cannot be run: not a static x86-64 ELF, unreadable, and so on.
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

impl InvokeOutcome {
    /// Shorthand for an error outcome.
    pub fn failed(error_type: crate::outcome::ErrorType, message: impl Into<String>) -> Self {
        InvokeOutcome::Error(FunctionError::new(error_type, message))
    }
}
