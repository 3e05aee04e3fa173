//! What an invocation produced: a response, or an error named the way Lambda names it.

use std::fmt;

/// The result of running one event: the function's response or its error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InvokeOutcome {
    /// The function's response payload.
    Response(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The invocation failed; Lambda answers with `X-Amz-Function-Error: Unhandled`.
    Error(FunctionError),
}

impl InvokeOutcome {
    /// The response payload, if the invocation succeeded.
    pub fn response(&self) -> Option<&[u8]> {
        match self {
            InvokeOutcome::Response(payload) => Some(payload),
            InvokeOutcome::Error(_) => None,
        }
    }

    /// The error, if the invocation failed.
    pub fn error(&self) -> Option<&FunctionError> {
        match self {
            InvokeOutcome::Response(_) => None,
            InvokeOutcome::Error(error) => Some(error),
        }
    }
}

/// The error types the platform itself reports, with Lambda's names, plus the types a
/// function reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ErrorType {
    /// `Runtime.ExitError`: the runtime exited or crashed (a signal, a non-zero exit status).
    RuntimeExitError,
    /// `Runtime.OutOfMemory`: the function used all of its memory.
    RuntimeOutOfMemory,
    /// `Runtime.InvalidEntrypoint`: the function's code could not be started.
    RuntimeInvalidEntrypoint,
    /// `Runtime.Unknown`: Init did not finish in time, or the runtime broke the protocol.
    RuntimeUnknown,
    /// `Sandbox.Timedout`: the invocation ran past the function's timeout.
    SandboxTimedout,
    /// `Sandbox.Failure`: the execution environment itself failed.
    SandboxFailure,
    /// `Function.ResponseSizeTooLarge`: the response was larger than 6 MB.
    FunctionResponseSizeTooLarge,
    /// A type reported by the function or its runtime, e.g. `Runtime.InitError` or `MyError`.
    Function(String),
}

impl ErrorType {
    /// The error type's name as Lambda prints it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorType::RuntimeExitError => "Runtime.ExitError",
            ErrorType::RuntimeOutOfMemory => "Runtime.OutOfMemory",
            ErrorType::RuntimeInvalidEntrypoint => "Runtime.InvalidEntrypoint",
            ErrorType::RuntimeUnknown => "Runtime.Unknown",
            ErrorType::SandboxTimedout => "Sandbox.Timedout",
            ErrorType::SandboxFailure => "Sandbox.Failure",
            ErrorType::FunctionResponseSizeTooLarge => "Function.ResponseSizeTooLarge",
            ErrorType::Function(name) => name,
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed invocation: Lambda's `{errorMessage, errorType, stackTrace}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FunctionError {
    /// The error's type.
    pub error_type: ErrorType,
    /// What went wrong, for a person.
    pub message: String,
    /// The function's stack trace, when it reported one.
    pub stack_trace: Vec<String>,
}

impl FunctionError {
    /// An error of `error_type` with `message` and no stack trace.
    pub fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
        FunctionError {
            error_type,
            message: message.into(),
            stack_trace: Vec::new(),
        }
    }

    /// The JSON body Lambda returns for this error.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "errorMessage": self.message,
            "errorType": self.error_type.as_str(),
            "stackTrace": self.stack_trace,
        })
        .to_string()
    }
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for FunctionError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_lambda() {
        assert_eq!(ErrorType::SandboxTimedout.to_string(), "Sandbox.Timedout");
        assert_eq!(
            ErrorType::FunctionResponseSizeTooLarge.to_string(),
            "Function.ResponseSizeTooLarge"
        );
        assert_eq!(ErrorType::Function("MyError".into()).to_string(), "MyError");
    }

    #[test]
    fn json_body_escapes() {
        let error = FunctionError::new(ErrorType::RuntimeExitError, "quote \" and\nnewline");
        let body: serde_json::Value = serde_json::from_str(&error.to_json()).unwrap();
        assert_eq!(body["errorType"], "Runtime.ExitError");
        assert_eq!(body["errorMessage"], "quote \" and\nnewline");
        assert_eq!(body["stackTrace"], serde_json::json!([]));
    }
}
