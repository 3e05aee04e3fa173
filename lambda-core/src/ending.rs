//! How an invocation ends, written once for every environment of every backend.
//!
//! An environment says what happened ([`Ending`]: the function answered, or its runtime
//! stopped and how) and what it measured ([`Measured`]); [`finish`] puts that in Lambda's
//! words: the outcome and its error type, whether the environment is reset, the platform's
//! line in the log (`RequestId: ... Error: ...`, `... Task timed out after 3.00 seconds`),
//! the `END` and `REPORT` lines, and the tail. [`init_failed`] does the same for an Init that
//! failed (`INIT_REPORT ... Status: error`).

use std::time::Duration;

use crate::config::FunctionConfig;
use crate::lifecycle::{EnvironmentError, InvokeResult, ResetReason};
use crate::limits;
use crate::logs::{LogCollector, timeout_message};
use crate::outcome::{ErrorType, FunctionError, InvokeOutcome};
use crate::report::Report;
use crate::signal::Signal;

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The function answered and its runtime carries on: a Runtime API function posted its
    /// response or error and asked for the next event; a one-shot function exited with
    /// status 0 (its standard output is the response).
    Answered(InvokeOutcome),
    /// The runtime stopped during the invocation; the environment is reset. A Runtime API
    /// function may have answered before it stopped: then `answer` is what the caller gets.
    Stopped {
        /// Why it stopped.
        stop: Stop,
        /// What it answered first, if anything.
        answer: Option<InvokeOutcome>,
    },
}

impl Ending {
    /// The runtime stopped without answering.
    pub fn stopped(stop: Stop) -> Ending {
        Ending::Stopped { stop, answer: None }
    }
}

/// Why a runtime stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// It exited with this status (a one-shot function: a non-zero one).
    Exited(i32),
    /// It was killed by a signal: one it raised itself (`abort`), or the one a CPU exception
    /// raises. `detail` (such as `page fault at address 0x0 by the instruction at 0x401000`)
    /// is added to the message.
    Signaled {
        /// The signal.
        signal: Signal,
        /// More about the fault, when the backend knows it.
        detail: Option<String>,
    },
    /// Its response passed the 6 MB limit and it was stopped.
    ResponseTooLarge,
    /// The invocation ran out of time and it was stopped.
    TimedOut,
}

impl Stop {
    /// The error a caller sees when a runtime stopped this way, and why the environment is
    /// reset. `out_of_memory` says that the function had used all of its memory: an exit or
    /// crash is then `Runtime.OutOfMemory`.
    pub fn error(
        &self,
        config: &FunctionConfig,
        out_of_memory: bool,
    ) -> (FunctionError, ResetReason) {
        let exited = |message: String, reason: ResetReason| {
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
        match self {
            Stop::Exited(status) => exited(format!("exit status {status}"), ResetReason::Exit),
            Stop::Signaled { signal, detail } => {
                let message = match detail {
                    Some(detail) => format!("{signal}: {detail}"),
                    None => signal.to_string(),
                };
                exited(message, ResetReason::Crash)
            }
            Stop::ResponseTooLarge => (
                FunctionError::new(
                    ErrorType::FunctionResponseSizeTooLarge,
                    format!(
                        "Response payload size exceeded maximum allowed payload size ({} bytes).",
                        limits::MAX_SYNC_PAYLOAD_BYTES
                    ),
                ),
                ResetReason::Exit,
            ),
            Stop::TimedOut => (
                FunctionError::new(ErrorType::SandboxTimedout, timeout_message(config.timeout)),
                ResetReason::Timeout,
            ),
        }
    }

    /// The platform's line in the log for a runtime that stopped this way, if Lambda writes
    /// one.
    fn log_line(&self, request_id: &str, error: &FunctionError) -> Option<String> {
        match self {
            Stop::Exited(_) | Stop::Signaled { .. } => Some(format!(
                "RequestId: {request_id} Error: {}\n{}",
                error.message, error.error_type
            )),
            Stop::TimedOut => Some(format!("{request_id} {}", error.message)),
            Stop::ResponseTooLarge => None,
        }
    }
}

/// What an environment measured of one invocation, besides how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    /// The invocation's request id.
    pub request_id: String,
    /// From the event's delivery to the function until its end.
    pub duration: Duration,
    /// Memory the function has used, in MB (capped at its memory size in the report).
    pub max_memory_used_mb: u32,
    /// Init Duration, for the first invocation after an Init.
    pub init_duration: Option<Duration>,
    /// Restore Duration, for the first invocation of an environment restored from a
    /// snapshot (which had no Init of its own).
    pub restore_duration: Option<Duration>,
    /// Whether the function ran out of memory (an allocation failed for lack of it).
    pub out_of_memory: bool,
}

/// Puts the end of an invocation in Lambda's words and closes its log: the outcome, the reset
/// (for a stopped runtime), the platform's line, `END` and `REPORT`, and the log's tail.
/// `log` holds the invocation's log so far (from its `START` line, after any output the
/// function printed since the previous invocation).
pub fn finish(
    ending: Ending,
    measured: Measured,
    config: &FunctionConfig,
    log: &mut LogCollector,
) -> InvokeResult {
    let (outcome, reset) = match ending {
        Ending::Answered(outcome) => (outcome, None),
        Ending::Stopped { stop, answer } => {
            let (error, reset) = stop.error(config, measured.out_of_memory);
            if let Some(line) = stop.log_line(&measured.request_id, &error) {
                log.platform_line(&line);
            }
            (answer.unwrap_or(InvokeOutcome::Error(error)), Some(reset))
        }
    };
    let report = Report {
        request_id: measured.request_id,
        duration: measured.duration,
        memory_size_mb: config.memory_mb,
        max_memory_used_mb: measured.max_memory_used_mb.min(config.memory_mb),
        init_duration: measured.init_duration,
        restore_duration: measured.restore_duration,
    };
    log.end(&report);
    InvokeResult {
        outcome,
        report,
        log_tail: log.tail(),
        reset,
    }
}

/// The error for an Init that failed with `error` after `init_duration`: writes Lambda's
/// `INIT_REPORT ... Status: error` line to `log` (the Init phase's log) and returns
/// [`EnvironmentError::Init`] with the log's tail.
pub fn init_failed(
    error: FunctionError,
    init_duration: Duration,
    log: &mut LogCollector,
) -> EnvironmentError {
    log.platform_line(&format!(
        "INIT_REPORT Init Duration: {:.2} ms\tPhase: init\tStatus: error\tError Type: {}",
        init_duration.as_secs_f64() * 1e3,
        error.error_type
    ));
    EnvironmentError::Init {
        error,
        init_duration,
        log_tail: log.tail(),
    }
}

/// The error for an Init that did not finish within [`limits::INIT_TIMEOUT`].
pub fn init_timed_out() -> FunctionError {
    FunctionError::new(
        ErrorType::RuntimeUnknown,
        format!(
            "Init did not finish within {:.2} seconds",
            limits::INIT_TIMEOUT.as_secs_f64()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CodeLocation;

    fn config() -> FunctionConfig {
        FunctionConfig::new("f", CodeLocation::Executable("/f".into()))
    }

    fn measured() -> Measured {
        Measured {
            request_id: "id".into(),
            duration: Duration::from_millis(3),
            max_memory_used_mb: 1000,
            init_duration: Some(Duration::from_millis(7)),
            restore_duration: None,
            out_of_memory: false,
        }
    }

    fn log_text(log: &LogCollector) -> String {
        String::from_utf8(log.log().to_vec()).unwrap()
    }

    #[test]
    fn an_answer_ends_the_log_with_end_and_report() {
        let mut log = LogCollector::start("id", "$LATEST", 1024);
        let result = finish(
            Ending::Answered(InvokeOutcome::Response(b"ok".to_vec())),
            measured(),
            &config(),
            &mut log,
        );
        assert_eq!(result.outcome.response(), Some(&b"ok"[..]));
        assert_eq!(result.reset, None);
        assert_eq!(
            result.report.max_memory_used_mb, 128,
            "capped at the memory size"
        );
        assert_eq!(result.report.init_duration, Some(Duration::from_millis(7)));
        let text = log_text(&log);
        assert!(
            text.starts_with("START RequestId: id Version: $LATEST\nEND RequestId: id\nREPORT")
        );
        assert_eq!(result.log_tail, log.tail());
    }

    #[test]
    fn stopped_runtimes_read_like_lambda() {
        let cases = [
            (
                Stop::Exited(2),
                ErrorType::RuntimeExitError,
                "Runtime exited with error: exit status 2",
                ResetReason::Exit,
                Some(
                    "RequestId: id Error: Runtime exited with error: exit status 2\nRuntime.ExitError",
                ),
            ),
            (
                Stop::Signaled {
                    signal: Signal::SIGSEGV,
                    detail: Some("page fault at address 0x0".into()),
                },
                ErrorType::RuntimeExitError,
                "Runtime exited with error: signal: segmentation fault (SIGSEGV): page fault at address 0x0",
                ResetReason::Crash,
                Some(
                    "RequestId: id Error: Runtime exited with error: signal: segmentation fault (SIGSEGV): page fault at address 0x0\nRuntime.ExitError",
                ),
            ),
            (
                Stop::TimedOut,
                ErrorType::SandboxTimedout,
                "Task timed out after 3.00 seconds",
                ResetReason::Timeout,
                Some("id Task timed out after 3.00 seconds"),
            ),
            (
                Stop::ResponseTooLarge,
                ErrorType::FunctionResponseSizeTooLarge,
                "Response payload size exceeded maximum allowed payload size (6291456 bytes).",
                ResetReason::Exit,
                None,
            ),
        ];
        for (stop, error_type, message, reset, line) in cases {
            let mut log = LogCollector::start("id", "$LATEST", 1024);
            let result = finish(Ending::stopped(stop), measured(), &config(), &mut log);
            let error = result.outcome.error().unwrap();
            assert_eq!(
                (&error.error_type, error.message.as_str()),
                (&error_type, message)
            );
            assert_eq!(result.reset, Some(reset));
            let text = log_text(&log);
            match line {
                Some(line) => assert!(
                    text.contains(&format!("\n{line}\nEND RequestId: id\n")),
                    "{text}"
                ),
                None => assert!(text.starts_with("START RequestId: id Version: $LATEST\nEND")),
            }
        }
    }

    #[test]
    fn out_of_memory_turns_an_exit_into_runtime_out_of_memory() {
        let mut log = LogCollector::new(1024);
        let result = finish(
            Ending::stopped(Stop::Signaled {
                signal: Signal::SIGABRT,
                detail: None,
            }),
            Measured {
                out_of_memory: true,
                ..measured()
            },
            &config(),
            &mut log,
        );
        let error = result.outcome.error().unwrap();
        assert_eq!(error.error_type, ErrorType::RuntimeOutOfMemory);
        assert_eq!(
            error.message,
            "Runtime exited with error: signal: aborted (SIGABRT): the function used all of its 128 MB of memory"
        );
        assert_eq!(result.reset, Some(ResetReason::OutOfMemory));
    }

    #[test]
    fn an_answer_before_the_runtime_stopped_is_what_the_caller_gets() {
        let mut log = LogCollector::new(1024);
        let result = finish(
            Ending::Stopped {
                stop: Stop::Exited(0),
                answer: Some(InvokeOutcome::Response(b"done".to_vec())),
            },
            measured(),
            &config(),
            &mut log,
        );
        assert_eq!(result.outcome.response(), Some(&b"done"[..]));
        assert_eq!(result.reset, Some(ResetReason::Exit));
        assert!(log_text(&log).contains("Error: Runtime exited with error: exit status 0\n"));
    }

    #[test]
    fn a_failed_init_writes_its_init_report() {
        let mut log = LogCollector::new(1024);
        log.write(b"starting\n");
        let error = init_failed(init_timed_out(), Duration::from_millis(10_000), &mut log);
        let EnvironmentError::Init {
            error,
            init_duration,
            log_tail,
        } = error
        else {
            panic!("an Init error");
        };
        assert_eq!(error.error_type, ErrorType::RuntimeUnknown);
        assert_eq!(error.message, "Init did not finish within 10.00 seconds");
        assert_eq!(init_duration, Duration::from_secs(10));
        assert_eq!(
            String::from_utf8(log_tail).unwrap(),
            "starting\nINIT_REPORT Init Duration: 10000.00 ms\tPhase: init\tStatus: error\tError Type: Runtime.Unknown\n"
        );
    }
}
