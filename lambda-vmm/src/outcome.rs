//! How the end of a run reads in Lambda's vocabulary.

use lambda_core::{ErrorType, FunctionConfig, FunctionError, ResetReason, limits, logs};

use crate::kernel::ProcessEnd;
use crate::machine::End;
use crate::signals::Signal;

/// The error a caller sees when a run ended with `end` (never for a clean exit), and why the
/// environment is reset. `out_of_memory` says whether an allocation failed for lack of memory.
pub fn failure(
    end: &End,
    config: &FunctionConfig,
    out_of_memory: bool,
) -> (FunctionError, ResetReason) {
    let exit_error = |message: String, reason: ResetReason| {
        if out_of_memory {
            (
                FunctionError::new(
                    ErrorType::RuntimeOutOfMemory,
                    format!(
                        "Runtime exited with error: {message}: the function used all of its \
                         {} MB of memory",
                        config.memory_mb
                    ),
                ),
                ResetReason::OutOfMemory,
            )
        } else {
            (
                FunctionError::new(
                    ErrorType::RuntimeExitError,
                    format!("Runtime exited with error: {message}"),
                ),
                reason,
            )
        }
    };
    match end {
        End::Process(ProcessEnd::Exited(status)) => {
            exit_error(format!("exit status {status}"), ResetReason::Exit)
        }
        End::Process(ProcessEnd::Signaled(signal)) => {
            exit_error(Signal(*signal).exit_message(), ResetReason::Crash)
        }
        End::Process(ProcessEnd::ResponseTooLarge) => (
            FunctionError::new(
                ErrorType::FunctionResponseSizeTooLarge,
                format!(
                    "Response payload size exceeded maximum allowed payload size ({} bytes).",
                    limits::MAX_SYNC_PAYLOAD_BYTES
                ),
            ),
            ResetReason::Exit,
        ),
        End::Crash(description) => exit_error(description.clone(), ResetReason::Crash),
        End::Timeout => (
            FunctionError::new(
                ErrorType::SandboxTimeout,
                logs::timeout_message(config.timeout),
            ),
            ResetReason::Timeout,
        ),
    }
}
