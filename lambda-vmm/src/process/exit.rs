//! How a child process's end reads in the words every backend shares.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use lambda_core::{Signal, Stop};

/// The runtime exited with a status or was killed by a signal.
pub(super) fn stop(status: ExitStatus) -> Stop {
    match (status.code(), status.signal()) {
        (Some(code), _) => Stop::Exited(code),
        (None, Some(signal)) => Stop::Signaled {
            signal: Signal(signal),
            detail: None,
        },
        // Neither an exit nor a signal: not on Linux. Say what the status was.
        (None, None) => Stop::Signaled {
            signal: Signal(0),
            detail: Some(format!("{status}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_and_signals_read_like_lambda() {
        assert_eq!(stop(ExitStatus::from_raw(3 << 8)), Stop::Exited(3));
        assert_eq!(
            stop(ExitStatus::from_raw(libc::SIGSEGV)),
            Stop::Signaled {
                signal: Signal::SIGSEGV,
                detail: None
            }
        );
        let config = lambda_core::FunctionConfig::new(
            "f",
            lambda_core::CodeLocation::Executable("/f".into()),
        );
        let (error, reason) = stop(ExitStatus::from_raw(libc::SIGKILL)).error(&config, false);
        assert_eq!(error.error_type, lambda_core::ErrorType::RuntimeExitError);
        assert_eq!(
            error.message,
            "Runtime exited with error: signal: killed (SIGKILL)"
        );
        assert_eq!(reason, lambda_core::ResetReason::Crash);
        let (error, _) = stop(ExitStatus::from_raw(60)).error(&config, false);
        assert_eq!(
            error.message,
            "Runtime exited with error: signal: signal (signal 60)"
        );
    }
}
