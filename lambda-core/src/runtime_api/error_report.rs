//! The error a runtime reports with `POST .../invocation/{id}/error` or `.../init/error`.

use crate::outcome::{ErrorType, FunctionError};

/// The header naming the error type of a reported error.
pub const ERROR_TYPE_HEADER: &str = "Lambda-Runtime-Function-Error-Type";

/// Longest error message kept from a body that is not Lambda's error JSON.
const MAX_RAW_MESSAGE: usize = 64 * 1024;

/// Builds the [`FunctionError`] of a reported error from its `Lambda-Runtime-Function-Error-Type`
/// header and its body, Lambda's `{"errorMessage", "errorType", "stackTrace"}`.
///
/// The type is the body's `errorType` when it has one (runtimes such as `lambda_runtime` put
/// the precise type there and a generic one in the header), else the header, else
/// `default_type`. A body that is not that JSON is tolerated: its text (at most 64 KiB of it)
/// becomes the message.
pub fn error_from_report(
    header_type: Option<&str>,
    body: &[u8],
    default_type: &str,
) -> FunctionError {
    let json = serde_json::from_slice::<serde_json::Value>(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|value| value.get(name))
            .and_then(|value| value.as_str())
            .filter(|text| !text.is_empty())
    };
    let error_type = field("errorType")
        .or(header_type.map(str::trim).filter(|t| !t.is_empty()))
        .unwrap_or(default_type);
    let message = match (&json, field("errorMessage")) {
        (_, Some(message)) => message.to_string(),
        (Some(serde_json::Value::Object(_)), None) => String::new(),
        (Some(serde_json::Value::String(text)), None) => text.clone(),
        _ => {
            let raw = &body[..body.len().min(MAX_RAW_MESSAGE)];
            String::from_utf8_lossy(raw).into_owned()
        }
    };
    let stack_trace = match json.as_ref().and_then(|value| value.get("stackTrace")) {
        Some(serde_json::Value::Array(lines)) => lines
            .iter()
            .map(|line| match line {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(serde_json::Value::String(text)) => text.lines().map(str::to_string).collect(),
        _ => Vec::new(),
    };
    FunctionError {
        error_type: ErrorType::Function(error_type.to_string()),
        message,
        stack_trace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_error_json() {
        let body = br#"{"errorMessage":"boom","errorType":"MyError","stackTrace":["a","b"]}"#;
        let error = error_from_report(Some("Unhandled"), body, "Unhandled");
        assert_eq!(error.error_type.as_str(), "MyError");
        assert_eq!(error.message, "boom");
        assert_eq!(error.stack_trace, ["a", "b"]);
    }

    #[test]
    fn header_type_when_the_body_has_none() {
        let error = error_from_report(Some(" Runtime.Custom "), br#"{"errorMessage":"m"}"#, "X");
        assert_eq!(error.error_type.as_str(), "Runtime.Custom");
        assert_eq!(error.message, "m");
        assert!(error.stack_trace.is_empty());
    }

    #[test]
    fn non_json_and_empty_bodies_are_tolerated() {
        let error = error_from_report(None, b"plain text \xff failure", "Unhandled");
        assert_eq!(error.error_type.as_str(), "Unhandled");
        assert_eq!(error.message, "plain text \u{fffd} failure");

        let error = error_from_report(Some(""), b"", "Runtime.InitError");
        assert_eq!(error.error_type.as_str(), "Runtime.InitError");
        assert_eq!(error.message, "");

        let error = error_from_report(None, br#""just a string""#, "Unhandled");
        assert_eq!(error.message, "just a string");

        let error = error_from_report(None, br#"{"errorType":5,"stackTrace":"l1\nl2"}"#, "U");
        assert_eq!(error.error_type.as_str(), "U");
        assert_eq!(error.stack_trace, ["l1", "l2"]);
    }

    #[test]
    fn raw_messages_are_bounded() {
        let body = vec![b'x'; 1 << 20];
        let error = error_from_report(None, &body, "Unhandled");
        assert_eq!(error.message.len(), MAX_RAW_MESSAGE);
    }
}
