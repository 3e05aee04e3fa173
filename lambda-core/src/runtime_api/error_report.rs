//! The error a runtime reports with `POST .../invocation/{id}/error` or `.../init/error`, or in
//! the trailers of a streamed response.

use crate::outcome::{ErrorType, FunctionError};

/// The header naming the error type of a reported error; also the trailer naming the error
/// type of a streamed response that failed midway.
pub const ERROR_TYPE_HEADER: &str = "Lambda-Runtime-Function-Error-Type";

/// The trailer carrying the base64 of a failed streamed response's error JSON,
/// `{"errorMessage", "errorType", "stackTrace"}`.
pub const ERROR_BODY_TRAILER: &str = "Lambda-Runtime-Function-Error-Body";

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

/// The error a streamed response reported in its trailer fields, if it did: `None` without a
/// [`ERROR_TYPE_HEADER`] trailer. The error comes from the JSON in [`ERROR_BODY_TRAILER`] as
/// [`error_from_report`] reads it (the trailer's type standing in for the header); when that
/// trailer is missing or is not base64 of a JSON object, it is an error of the trailer's type
/// (`Unhandled` if empty) whose message says so.
pub fn error_from_trailers(trailers: &[(String, String)]) -> Option<FunctionError> {
    let find = |name: &str| {
        trailers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    let error_type = find(ERROR_TYPE_HEADER)?;
    let encoded = find(ERROR_BODY_TRAILER);
    let json = encoded.and_then(decode_base64).filter(|bytes| {
        serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|value| value.is_object())
    });
    if let Some(json) = json {
        return Some(error_from_report(Some(error_type), &json, "Unhandled"));
    }
    let message = if encoded.is_some() {
        format!(
            "the {ERROR_BODY_TRAILER} trailer could not be read: it is not base64 of an error JSON object"
        )
    } else {
        format!("the streamed response reported an error without a {ERROR_BODY_TRAILER} trailer")
    };
    let error_type = Some(error_type.trim())
        .filter(|name| !name.is_empty())
        .unwrap_or("Unhandled");
    Some(FunctionError::new(
        ErrorType::Function(error_type.to_string()),
        message,
    ))
}

/// Decodes standard base64 (RFC 4648 section 4), with or without padding, ignoring leading and
/// trailing whitespace.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len().saturating_mul(3).checked_div(4).unwrap_or(0));
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte.wrapping_sub(b'A'),
            b'a'..=b'z' => byte.wrapping_sub(b'a').wrapping_add(26),
            b'0'..=b'9' => byte.wrapping_sub(b'0').wrapping_add(52),
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc.wrapping_shl(6) | u32::from(value)) & 0xffff;
        bits = bits.wrapping_add(6);
        if bits >= 8 {
            bits = bits.wrapping_sub(8);
            out.push(acc.wrapping_shr(bits).to_le_bytes()[0]);
        }
    }
    // One character past a whole group carries only 6 bits: not a byte.
    (bits < 6).then_some(out)
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
    fn base64_decodes() {
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("Zg==").unwrap(), b"f");
        assert_eq!(decode_base64("Zm8").unwrap(), b"fo");
        assert_eq!(decode_base64(" Zm9v ").unwrap(), b"foo");
        assert_eq!(decode_base64("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
        assert_eq!(decode_base64("Zm9vY"), None);
        assert_eq!(decode_base64("Zm!v"), None);
        assert_eq!(decode_base64("Zg==Zg=="), None);
    }

    #[test]
    fn errors_from_trailers() {
        let trailers = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(error_from_trailers(&trailers(&[("X-Other", "1")])), None);
        // {"errorMessage":"boom","errorType":"MyError","stackTrace":["a"]}
        let body = "eyJlcnJvck1lc3NhZ2UiOiJib29tIiwiZXJyb3JUeXBlIjoiTXlFcnJvciIsInN0YWNrVHJhY2UiOlsiYSJdfQ==";
        let error = error_from_trailers(&trailers(&[
            ("lambda-runtime-function-error-type", "Runtime.Stream"),
            ("Lambda-Runtime-Function-Error-Body", body),
        ]))
        .unwrap();
        assert_eq!(error.error_type.as_str(), "MyError");
        assert_eq!(error.message, "boom");
        assert_eq!(error.stack_trace, ["a"]);
        for bad in ["%%%", "cGxhaW4="] {
            let error = error_from_trailers(&trailers(&[
                (ERROR_TYPE_HEADER, "Runtime.Stream"),
                (ERROR_BODY_TRAILER, bad),
            ]))
            .unwrap();
            assert_eq!(error.error_type.as_str(), "Runtime.Stream");
            assert!(error.message.contains("could not be read"), "{error}");
        }
        let error = error_from_trailers(&trailers(&[(ERROR_TYPE_HEADER, "")])).unwrap();
        assert_eq!(error.error_type.as_str(), "Unhandled");
        assert!(error.message.contains("without"), "{error}");
    }

    #[test]
    fn raw_messages_are_bounded() {
        let body = vec![b'x'; 1 << 20];
        let error = error_from_report(None, &body, "Unhandled");
        assert_eq!(error.message.len(), MAX_RAW_MESSAGE);
    }
}
