//! How a process's end reads in an outcome: Lambda's `Runtime.ExitError` messages.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use lambda_core::{ErrorType, FunctionError, ResetReason};

use crate::signals::Signal;

/// `exit status N` or `signal: segmentation fault (SIGSEGV)`, and whether that was an exit
/// or a crash.
pub(super) fn describe(status: ExitStatus) -> (String, ResetReason) {
    match (status.code(), status.signal()) {
        (Some(code), _) => (format!("exit status {code}"), ResetReason::Exit),
        (None, Some(signal)) => (Signal(signal).exit_message(), ResetReason::Crash),
        (None, None) => (format!("{status}"), ResetReason::Crash),
    }
}

/// Lambda's error for a runtime that ended: `Runtime.ExitError` with `Runtime exited with
/// error: ...`.
pub(super) fn exit_error(status: ExitStatus) -> (FunctionError, ResetReason) {
    let (message, reason) = describe(status);
    (
        FunctionError::new(
            ErrorType::RuntimeExitError,
            format!("Runtime exited with error: {message}"),
        ),
        reason,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_and_signals_read_like_lambda() {
        let exited = ExitStatus::from_raw(3 << 8);
        assert_eq!(
            describe(exited),
            ("exit status 3".into(), ResetReason::Exit)
        );
        let segv = ExitStatus::from_raw(libc::SIGSEGV);
        assert_eq!(
            describe(segv),
            (
                "signal: segmentation fault (SIGSEGV)".into(),
                ResetReason::Crash
            )
        );
        let (error, reason) = exit_error(ExitStatus::from_raw(libc::SIGKILL));
        assert_eq!(error.error_type, ErrorType::RuntimeExitError);
        assert_eq!(
            error.message,
            "Runtime exited with error: signal: killed (SIGKILL)"
        );
        assert_eq!(reason, ResetReason::Crash);
        assert_eq!(
            describe(ExitStatus::from_raw(60)).0,
            "signal: signal (signal 60)"
        );
    }
}
