//! HTTP/1.1 responses of the Runtime API, rendered to bytes.

/// The interim response that lets a client waiting on `Expect: 100-continue` send its body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// One response: a status, header fields and a body. `Content-Length` is always added, and
/// `Connection: close` when the connection is to be closed after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields other than `Content-Length` and `Connection`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a JSON body.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    /// The Runtime API's error shape, `{"errorMessage": ..., "errorType": ...}`, as RIE
    /// renders it.
    pub fn error(status: u16, error_type: &str, message: &str) -> Self {
        let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
        Self::json(status, body.to_string())
    }

    /// `202 Accepted` with `{"status":"OK"}`, the answer to a posted response or error.
    pub fn accepted() -> Self {
        Self::json(202, r#"{"status":"OK"}"#)
    }

    /// Adds a header field.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Appends the response's bytes to `out`, announcing `Connection: close` if `close`.
    pub fn write_to(&self, out: &mut Vec<u8>, close: bool) {
        self.write_with_body(out, &self.body, close);
    }

    /// Appends the response's bytes to `out` with `body` in place of its own body, so a large
    /// body (an event of up to 6 MB) is copied once, straight into the output.
    pub fn write_with_body(&self, out: &mut Vec<u8>, body: &[u8], close: bool) {
        out.reserve(body.len().saturating_add(256));
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            push_field(out, name, value);
        }
        push_field(out, "Content-Length", &body.len().to_string());
        if close {
            push_field(out, "Connection", "close");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    /// The response's bytes.
    pub fn to_bytes(&self, close: bool) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out, close);
        out
    }
}

/// Writes one header field, dropping CR and LF from the value so that a value taken from an
/// invocation (a trace id, a client context) can never inject a header or end the head.
fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend(value.bytes().filter(|&b| b != b'\r' && b != b'\n'));
    out.extend_from_slice(b"\r\n");
}

/// The reason phrase for the statuses this API uses.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_status_headers_length_and_body() {
        let bytes = Response::accepted().to_bytes(false);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n\
             Content-Length: 15\r\n\r\n{\"status\":\"OK\"}"
        );
    }

    #[test]
    fn close_is_announced() {
        let text = String::from_utf8(Response::json(400, "{}").to_bytes(true)).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
    }

    #[test]
    fn header_values_cannot_inject_lines() {
        let response = Response::json(200, "").with_header("X", "a\r\nEvil: 1\r\n\r\nbody");
        let text = String::from_utf8(response.to_bytes(false)).unwrap();
        assert!(text.contains("X: aEvil: 1body\r\n"));
        assert_eq!(text.matches("\r\n\r\n").count(), 1);
    }

    #[test]
    fn error_body_is_json() {
        let response = Response::error(400, "InvalidRequestID", "Invalid request ID");
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["errorType"], "InvalidRequestID");
        assert_eq!(body["errorMessage"], "Invalid request ID");
    }
}
