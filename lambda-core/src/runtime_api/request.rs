//! One parsed HTTP/1.1 request, as the Runtime API sees it.

/// A request read from a connection by [`RequestReader`](super::RequestReader).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Request {
    /// The method, such as `GET` or `POST`.
    pub method: String,
    /// The request target as sent: usually a path, possibly with a query string.
    pub target: String,
    /// The header fields in the order received; names keep their case, values are decoded
    /// lossily as UTF-8.
    pub headers: Vec<(String, String)>,
    /// The body, or the fact that it was over the limit.
    pub body: Body,
    /// The trailer fields of a chunked body read whole, in the order received (see
    /// [`ChunkedDecoder::trailers`](super::ChunkedDecoder::trailers)); empty otherwise.
    pub trailers: Vec<(String, String)>,
    /// Whether the connection stays open after the response: HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`.
    pub keep_alive: bool,
}

impl Request {
    /// Bytes the request holds in memory: its method, target, header fields and body.
    pub fn held_bytes(&self) -> usize {
        let body = match &self.body {
            Body::Complete(body) => body.len(),
            Body::TooLarge { .. } => 0,
        };
        self.headers
            .iter()
            .chain(&self.trailers)
            .map(|(name, value)| name.len().saturating_add(value.len()))
            .fold(body, usize::saturating_add)
            .saturating_add(self.method.len())
            .saturating_add(self.target.len())
    }

    /// The value of the first header field named `name` (compared without regard to case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The value of the first trailer field named `name` (compared without regard to case).
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Whether the request is a response in Lambda's streaming mode: it has
    /// `Lambda-Runtime-Function-Response-Mode: streaming`.
    pub fn is_streaming_response(&self) -> bool {
        self.header(super::RESPONSE_MODE_HEADER)
            .is_some_and(|mode| mode.trim().eq_ignore_ascii_case("streaming"))
    }

    /// The path of the target: without a query string or fragment, and without the scheme and
    /// authority of an absolute-form target (`http://host/path`).
    pub fn path(&self) -> &str {
        let target = self.target.as_str();
        let target = match target.find("://") {
            Some(scheme_end) if !target[..scheme_end].contains('/') => {
                let rest = target
                    .get(scheme_end.saturating_add(3)..)
                    .unwrap_or_default();
                rest.find('/').map_or("/", |slash| &rest[slash..])
            }
            _ => target,
        };
        let end = target.find(['?', '#']).unwrap_or(target.len());
        &target[..end]
    }
}

/// A request body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Body {
    /// The whole body, at most [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES) long.
    Complete(Vec<u8>),
    /// The body was longer than [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES). It was not kept:
    /// the request is handed over as soon as that is known, and the rest of the body is
    /// discarded as it arrives.
    TooLarge {
        /// The length the client declared with `Content-Length`, if it did (a chunked body
        /// has no declared length).
        declared: Option<u64>,
    },
}

impl Body {
    /// The body's bytes, if it was complete.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Body::Complete(bytes) => Some(bytes),
            Body::TooLarge { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str) -> Request {
        Request {
            method: "GET".into(),
            target: target.into(),
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: Body::Complete(Vec::new()),
            trailers: Vec::new(),
            keep_alive: true,
        }
    }

    #[test]
    fn header_lookup_ignores_case() {
        assert_eq!(request("/").header("content-type"), Some("text/plain"));
        assert_eq!(request("/").header("accept"), None);
    }

    #[test]
    fn path_strips_query_fragment_and_authority() {
        assert_eq!(request("/a/b?x=1").path(), "/a/b");
        assert_eq!(request("/a#frag").path(), "/a");
        assert_eq!(request("http://127.0.0.1:9001/a/b?q").path(), "/a/b");
        assert_eq!(request("http://127.0.0.1:9001").path(), "/");
        assert_eq!(request("/x://y").path(), "/x://y");
        assert_eq!(request("").path(), "");
    }
}
