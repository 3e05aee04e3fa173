//! An incremental HTTP/1.1 request reader for one connection.

use super::chunked::{ChunkError, ChunkedDecoder};
use super::request::{Body, Request};
use super::route::Route;
use super::{MAX_BODY_BYTES, MAX_HEAD_BYTES, MAX_HEADERS};
use crate::limits::MAX_STREAMED_RESPONSE_BYTES;

/// How many of `available` input bytes belong to a `Content-Length` body with `remaining`
/// bytes still to come; counts them off `remaining`.
fn take_length(remaining: &mut u64, available: usize) -> usize {
    let take = usize::try_from(*remaining).map_or(available, |r| r.min(available));
    *remaining = remaining.saturating_sub(u64::try_from(take).unwrap_or(u64::MAX));
    take
}

/// Why a request could not be read. After one, the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The request line or a header field is not valid HTTP/1.x.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The header block is over 16 KiB.
    #[error("request header block is larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] header fields.
    #[error("request has more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    /// A `Transfer-Encoding` other than `chunked`.
    #[error("unsupported transfer encoding {0:?}: only chunked is accepted")]
    UnsupportedTransferEncoding(String),
    /// A chunked body with broken framing.
    #[error("malformed chunked body: {0}")]
    Chunk(#[from] ChunkError),
}

impl ReadError {
    /// The HTTP status to answer with before closing the connection.
    pub fn status(&self) -> u16 {
        match self {
            ReadError::Malformed(_) | ReadError::Chunk(_) => 400,
            ReadError::HeadTooLarge | ReadError::TooManyHeaders => 431,
            ReadError::UnsupportedTransferEncoding(_) => 501,
        }
    }
}

/// Something the reader found in the bytes fed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEvent {
    /// A whole request (or one whose body is over the limit).
    Request(Request),
    /// The client sent `Expect: 100-continue` and waits for `100 Continue` before its body.
    ExpectContinue,
    /// The input is not a valid request; answer with [`ReadError::status`] and close.
    Error(ReadError),
    /// The head of a response in streaming mode whose body is handed out in pieces (see
    /// [`RequestReader::feed_streaming`]): [`StreamData`](Self::StreamData) events follow,
    /// then [`StreamEnd`](Self::StreamEnd) or [`StreamTooLarge`](Self::StreamTooLarge) (or an
    /// [`Error`](Self::Error) for broken chunk framing, after a `StreamData` of every piece
    /// before it, wherever the input was cut). The request's body is empty.
    StreamStart {
        /// The request line and header fields.
        request: Request,
        /// The client sent `Expect: 100-continue` and waits for `100 Continue` before its
        /// body.
        expect_continue: bool,
    },
    /// The next bytes of a streamed body (never empty).
    StreamData(Vec<u8>),
    /// The streamed body ended.
    StreamEnd {
        /// Its last bytes (possibly none).
        data: Vec<u8>,
        /// The trailer fields of a chunked body, in the order received.
        trailers: Vec<(String, String)>,
    },
    /// The streamed body grew past
    /// [`MAX_STREAMED_RESPONSE_BYTES`](crate::limits::MAX_STREAMED_RESPONSE_BYTES); the bytes
    /// past the last [`StreamData`](Self::StreamData) were not handed out. The rest of the body
    /// is read and discarded, and the connection stays usable.
    StreamTooLarge,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum State {
    /// Reading a header block; holds its bytes so far.
    Head(Vec<u8>),
    /// Reading a `Content-Length` body into the request.
    Length { request: Request, remaining: u64 },
    /// Reading a chunked body into the request.
    Chunked {
        request: Request,
        decoder: ChunkedDecoder,
    },
    /// Handing out a streamed chunked body; holds the bytes handed out so far.
    StreamChunked {
        decoder: ChunkedDecoder,
        received: usize,
    },
    /// Handing out a streamed `Content-Length` body (of at most
    /// `MAX_STREAMED_RESPONSE_BYTES`).
    StreamLength { remaining: u64 },
    /// Discarding the rest of an oversized `Content-Length` body.
    DrainLength(u64),
    /// Discarding the rest of an oversized chunked body.
    DrainChunked(ChunkedDecoder),
    /// A streamed chunked body broke after pieces that were handed out first: the error is
    /// reported by the next call.
    Broken(ChunkError),
    /// After an error or an unframeable request: all input is ignored.
    Closed,
}

/// An incremental HTTP/1.1 request reader for one connection.
///
/// Bytes go in as they arrive, in pieces of any size (a request split across many writes,
/// several requests in one write); whole requests come out one at a time. Memory is bounded:
/// the header block is at most [`MAX_HEAD_BYTES`] with at most [`MAX_HEADERS`] fields, and a
/// body is kept only up to [`MAX_BODY_BYTES`].
///
/// A body over the limit is not buffered: the request is handed out as soon as that is known
/// (at once for a `Content-Length` body, at the first byte past the limit for a chunked one)
/// with [`Body::TooLarge`], and the rest of the body is read and discarded, so the connection
/// stays usable for the next request (keep-alive). The one exception is a request that sent
/// `Expect: 100-continue` with an oversized `Content-Length`: its client may never send the
/// body, so the reader cannot tell where the next request starts; it marks the request
/// `keep_alive: false` and ignores everything after it.
///
/// A response in Lambda's streaming mode can instead be handed out as it arrives, with a
/// larger limit: see [`feed_streaming`](Self::feed_streaming).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RequestReader {
    state: State,
}

impl Default for RequestReader {
    fn default() -> Self {
        RequestReader {
            state: State::Head(Vec::new()),
        }
    }
}

impl RequestReader {
    /// A reader at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes the reader holds: the header block read so far, or the body of the request
    /// being read.
    pub fn buffered_bytes(&self) -> usize {
        match &self.state {
            State::Head(head) => head.len(),
            State::Length { request, .. } | State::Chunked { request, .. } => request.held_bytes(),
            State::StreamChunked { .. }
            | State::StreamLength { .. }
            | State::DrainLength(_)
            | State::DrainChunked(_)
            | State::Broken(_)
            | State::Closed => 0,
        }
    }

    /// Whether the reader has stopped reading (after an error, or after a request whose end
    /// cannot be found); it then ignores all input.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether the reader is between requests with nothing of the next one seen yet.
    pub fn is_idle(&self) -> bool {
        matches!(&self.state, State::Head(head) if head.is_empty())
    }

    /// Reads from `input` until the end of the input or the first [`ReadEvent`], whichever
    /// comes first. Returns how many bytes were consumed and the event, if any; feed the rest
    /// of the input again after handling the event. Once closed, the reader consumes and
    /// ignores everything.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<ReadEvent>) {
        self.feed_streaming(input, None)
    }

    /// Like [`feed`](Self::feed), but a request whose head completes in this call and that is
    /// `POST .../invocation/{stream_for}/response` with
    /// `Lambda-Runtime-Function-Response-Mode: streaming` and a body (chunked, or a
    /// `Content-Length` of at most
    /// [`MAX_STREAMED_RESPONSE_BYTES`](crate::limits::MAX_STREAMED_RESPONSE_BYTES)) is not
    /// collected: its head comes out as [`ReadEvent::StreamStart`] and its body as
    /// [`ReadEvent::StreamData`] pieces as they are decoded, ending with
    /// [`ReadEvent::StreamEnd`] (with the trailer fields), or with
    /// [`ReadEvent::StreamTooLarge`] once more than `MAX_STREAMED_RESPONSE_BYTES` arrived (the
    /// rest is then discarded). Nothing of such a body is held between calls.
    ///
    /// `stream_for` matters only where a head completes; every other request is read as
    /// [`feed`](Self::feed) reads it.
    pub fn feed_streaming(
        &mut self,
        input: &[u8],
        stream_for: Option<&str>,
    ) -> (usize, Option<ReadEvent>) {
        let mut pos: usize = 0;
        loop {
            let (used, event) = self.step(input.get(pos..).unwrap_or_default(), stream_for);
            pos = pos.saturating_add(used);
            if event.is_some() || pos == input.len() || (used == 0 && !self.is_closed()) {
                return (pos, event);
            }
        }
    }

    /// One state's worth of progress.
    fn step(&mut self, input: &[u8], stream_for: Option<&str>) -> (usize, Option<ReadEvent>) {
        match &mut self.state {
            State::Closed => (input.len(), None),
            State::Broken(error) => {
                let error = *error;
                (input.len(), Some(self.fail(error.into())))
            }
            State::Head(head) => {
                let (used, complete) = read_head(head, input);
                if !complete {
                    if head.len() >= MAX_HEAD_BYTES {
                        return (used, Some(self.fail(ReadError::HeadTooLarge)));
                    }
                    return (used, None);
                }
                let head = std::mem::take(head);
                match parse_head(&head) {
                    Ok(parsed) => (used, self.start_body(parsed, stream_for)),
                    Err(error) => (used, Some(self.fail(error))),
                }
            }
            State::Length { request, remaining } => {
                let take = take_length(remaining, input.len());
                if let Body::Complete(body) = &mut request.body {
                    body.extend_from_slice(input.get(..take).unwrap_or_default());
                }
                if *remaining > 0 {
                    return (take, None);
                }
                let request = self.finish_request();
                (take, request)
            }
            State::Chunked { request, decoder } => {
                let mut overflow = false;
                let Body::Complete(body) = &mut request.body else {
                    unreachable!("a chunked request being read has a complete body")
                };
                let result = decoder.decode(input, &mut |data| {
                    if overflow || body.len().saturating_add(data.len()) > MAX_BODY_BYTES {
                        overflow = true;
                    } else {
                        body.extend_from_slice(data);
                    }
                });
                let used = match result {
                    Ok(used) => used,
                    Err(error) => return (input.len(), Some(self.fail(error.into()))),
                };
                if overflow {
                    let State::Chunked {
                        mut request,
                        decoder,
                    } = std::mem::replace(&mut self.state, State::Head(Vec::new()))
                    else {
                        unreachable!()
                    };
                    request.body = Body::TooLarge { declared: None };
                    if !decoder.is_done() {
                        self.state = State::DrainChunked(decoder);
                    }
                    return (used, Some(ReadEvent::Request(request)));
                }
                if decoder.is_done() {
                    request.trailers = decoder.take_trailers();
                    let request = self.finish_request();
                    return (used, request);
                }
                (used, None)
            }
            State::StreamChunked { decoder, received } => {
                let mut data = Vec::new();
                let mut overflow = false;
                let room = MAX_STREAMED_RESPONSE_BYTES.saturating_sub(*received);
                let result = decoder.decode(input, &mut |piece| {
                    if overflow || data.len().saturating_add(piece.len()) > room {
                        overflow = true;
                    } else {
                        data.extend_from_slice(piece);
                    }
                });
                let used = match result {
                    Ok(used) => used,
                    Err(error) if data.is_empty() || overflow => {
                        return (input.len(), Some(self.fail(error.into())));
                    }
                    Err(error) => {
                        // The pieces before the broken framing go out first, as they would
                        // have had the input been cut just before it; the error follows on
                        // the next call (which gets this input again: none of it is used).
                        self.state = State::Broken(error);
                        return (0, Some(ReadEvent::StreamData(data)));
                    }
                };
                if overflow {
                    // What came in this call is dropped: the sink gets at most the limit.
                    let State::StreamChunked { decoder, .. } =
                        std::mem::replace(&mut self.state, State::Head(Vec::new()))
                    else {
                        unreachable!()
                    };
                    if !decoder.is_done() {
                        self.state = State::DrainChunked(decoder);
                    }
                    return (used, Some(ReadEvent::StreamTooLarge));
                }
                *received = received.saturating_add(data.len());
                if decoder.is_done() {
                    let trailers = decoder.take_trailers();
                    self.state = State::Head(Vec::new());
                    return (used, Some(ReadEvent::StreamEnd { data, trailers }));
                }
                (
                    used,
                    (!data.is_empty()).then_some(ReadEvent::StreamData(data)),
                )
            }
            State::StreamLength { remaining } => {
                let take = take_length(remaining, input.len());
                let data = input.get(..take).unwrap_or_default().to_vec();
                if *remaining == 0 {
                    self.state = State::Head(Vec::new());
                    return (
                        take,
                        Some(ReadEvent::StreamEnd {
                            data,
                            trailers: Vec::new(),
                        }),
                    );
                }
                (
                    take,
                    (!data.is_empty()).then_some(ReadEvent::StreamData(data)),
                )
            }
            State::DrainLength(remaining) => {
                let take = take_length(remaining, input.len());
                if *remaining == 0 {
                    self.state = State::Head(Vec::new());
                }
                (take, None)
            }
            State::DrainChunked(decoder) => match decoder.decode(input, &mut |_| {}) {
                Ok(used) => {
                    if decoder.is_done() {
                        self.state = State::Head(Vec::new());
                    }
                    (used, None)
                }
                Err(error) => (input.len(), Some(self.fail(error.into()))),
            },
        }
    }

    fn fail(&mut self, error: ReadError) -> ReadEvent {
        self.state = State::Closed;
        ReadEvent::Error(error)
    }

    /// Hands out the request being read and goes back to reading a header block.
    fn finish_request(&mut self) -> Option<ReadEvent> {
        match std::mem::replace(&mut self.state, State::Head(Vec::new())) {
            State::Length { request, .. } | State::Chunked { request, .. } => {
                Some(ReadEvent::Request(request))
            }
            _ => None,
        }
    }

    /// Decides how the body of a freshly parsed head is read.
    fn start_body(&mut self, parsed: ParsedHead, stream_for: Option<&str>) -> Option<ReadEvent> {
        let ParsedHead {
            mut request,
            framing,
            expect_continue,
        } = parsed;
        let streamed = stream_for.is_some_and(|id| {
            request.is_streaming_response()
                && matches!(
                    Route::find(&request.method, request.path()),
                    Route::Response(found) if found == id
                )
        });
        if streamed {
            let state = match framing {
                Framing::Chunked => Some(State::StreamChunked {
                    decoder: ChunkedDecoder::new(),
                    received: 0,
                }),
                Framing::Length(length)
                    if length > 0
                        && usize::try_from(length)
                            .is_ok_and(|length| length <= MAX_STREAMED_RESPONSE_BYTES) =>
                {
                    Some(State::StreamLength { remaining: length })
                }
                _ => None,
            };
            if let Some(state) = state {
                self.state = state;
                return Some(ReadEvent::StreamStart {
                    request,
                    expect_continue,
                });
            }
        }
        match framing {
            Framing::None | Framing::Length(0) => {
                self.state = State::Head(Vec::new());
                Some(ReadEvent::Request(request))
            }
            Framing::Length(length) if length > MAX_BODY_BYTES as u64 => {
                request.body = Body::TooLarge {
                    declared: Some(length),
                };
                if expect_continue {
                    // The client may never send the body: the next request's start is unknown.
                    request.keep_alive = false;
                    self.state = State::Closed;
                } else {
                    self.state = State::DrainLength(length);
                }
                Some(ReadEvent::Request(request))
            }
            Framing::Length(length) => {
                request.body = Body::Complete(Vec::with_capacity(length.min(64 * 1024) as usize));
                self.state = State::Length {
                    request,
                    remaining: length,
                };
                expect_continue.then_some(ReadEvent::ExpectContinue)
            }
            Framing::Chunked => {
                self.state = State::Chunked {
                    request,
                    decoder: ChunkedDecoder::new(),
                };
                expect_continue.then_some(ReadEvent::ExpectContinue)
            }
        }
    }
}

/// Appends header bytes from `input` to `head` until the blank line that ends the header
/// block, without going past [`MAX_HEAD_BYTES`]. Returns the bytes consumed and whether the
/// block is complete. Blank lines before a request line are skipped (RFC 9112 section 2.2).
fn read_head(head: &mut Vec<u8>, input: &[u8]) -> (usize, bool) {
    let mut skipped = 0;
    if head.is_empty() {
        skipped = input
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
    }
    let input = input.get(skipped..).unwrap_or_default();
    let scan_from = head.len().saturating_sub(3);
    let take = input.len().min(MAX_HEAD_BYTES.saturating_sub(head.len()));
    head.extend_from_slice(input.get(..take).unwrap_or_default());
    let consumed = skipped.saturating_add(take);
    match find_head_end(head.get(scan_from..).unwrap_or_default()) {
        Some(end) => {
            let end = scan_from.saturating_add(end);
            let excess = head.len().saturating_sub(end);
            head.truncate(end);
            (consumed.saturating_sub(excess), true)
        }
        None => (consumed, false),
    }
}

/// The end (exclusive) of the first `LF LF` or `LF CR LF` in `bytes`.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.iter().enumerate().find_map(|(i, &b)| {
        if b != b'\n' {
            return None;
        }
        match bytes.get(i.saturating_add(1)..) {
            Some([b'\n', ..]) => Some(i.saturating_add(2)),
            Some([b'\r', b'\n', ..]) => Some(i.saturating_add(3)),
            _ => None,
        }
    })
}

enum Framing {
    None,
    Length(u64),
    Chunked,
}

struct ParsedHead {
    request: Request,
    framing: Framing,
    expect_continue: bool,
}

fn parse_head(head: &[u8]) -> Result<ParsedHead, ReadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        Ok(_) => return Err(ReadError::Malformed("incomplete header block".into())),
        Err(httparse::Error::TooManyHeaders) => return Err(ReadError::TooManyHeaders),
        Err(error) => return Err(ReadError::Malformed(error.to_string())),
    }
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(ReadError::Malformed("incomplete request line".into()));
    };
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|field| {
            (
                field.name.to_string(),
                String::from_utf8_lossy(field.value).into_owned(),
            )
        })
        .collect();
    let framing = framing(&headers)?;
    let has_token = |name: &str, token: &str| {
        headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .flat_map(|(_, value)| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    };
    let keep_alive = if version == 1 {
        !has_token("connection", "close")
    } else {
        has_token("connection", "keep-alive")
    };
    let expect_continue = version == 1 && has_token("expect", "100-continue");
    Ok(ParsedHead {
        request: Request {
            method: method.to_string(),
            target: target.to_string(),
            headers,
            body: Body::Complete(Vec::new()),
            trailers: Vec::new(),
            keep_alive,
        },
        framing,
        expect_continue,
    })
}

/// How the body is delimited: RFC 9112 section 6, refusing the ambiguous cases (both
/// `Transfer-Encoding` and `Content-Length`, or disagreeing lengths) that allow request
/// smuggling.
fn framing(headers: &[(String, String)]) -> Result<Framing, ReadError> {
    fn values<'h>(
        headers: &'h [(String, String)],
        name: &'static str,
    ) -> impl Iterator<Item = &'h str> {
        headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
    }
    let encodings: Vec<&str> = values(headers, "transfer-encoding").collect();
    let mut length = None;
    for value in values(headers, "content-length") {
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ReadError::Malformed(format!(
                "invalid Content-Length {value:?}"
            )));
        }
        let parsed: u64 = value
            .parse()
            .map_err(|_| ReadError::Malformed(format!("Content-Length {value} is too large")))?;
        if length.is_some_and(|seen| seen != parsed) {
            return Err(ReadError::Malformed(
                "conflicting Content-Length fields".into(),
            ));
        }
        length = Some(parsed);
    }
    if !encodings.is_empty() {
        if length.is_some() {
            return Err(ReadError::Malformed(
                "both Transfer-Encoding and Content-Length".into(),
            ));
        }
        let joined = encodings.join(", ");
        if !joined.eq_ignore_ascii_case("chunked") {
            return Err(ReadError::UnsupportedTransferEncoding(joined));
        }
        return Ok(Framing::Chunked);
    }
    Ok(length.map_or(Framing::None, Framing::Length))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `split` bytes, collecting every event.
    fn read_all(input: &[u8], split: usize) -> Vec<ReadEvent> {
        let mut reader = RequestReader::new();
        let mut events = Vec::new();
        for piece in input.chunks(split.max(1)) {
            let mut pos = 0;
            while pos < piece.len() {
                let (used, event) = reader.feed(&piece[pos..]);
                pos += used;
                events.extend(event);
                assert!(used > 0 || pos == piece.len() || reader.is_closed());
            }
        }
        events
    }

    fn request(event: &ReadEvent) -> &Request {
        match event {
            ReadEvent::Request(request) => request,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn pipelined_requests_at_any_split() {
        let wire = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
            POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
            GET /d HTTP/1.0\r\n\r\n";
        for split in [1, 2, 3, 7, 16, 1000] {
            let events = read_all(wire, split);
            assert_eq!(events.len(), 4, "split {split}");
            assert_eq!(request(&events[0]).target, "/a");
            assert_eq!(request(&events[0]).header("host"), Some("x"));
            assert_eq!(request(&events[1]).body, Body::Complete(b"hello".to_vec()));
            assert_eq!(request(&events[2]).body, Body::Complete(b"abc".to_vec()));
            assert!(request(&events[2]).keep_alive);
            assert_eq!(request(&events[3]).method, "GET");
            assert!(
                !request(&events[3]).keep_alive,
                "HTTP/1.0 closes by default"
            );
        }
    }

    #[test]
    fn bare_lf_line_endings_and_leading_blank_lines() {
        let events = read_all(b"\r\n\r\nGET /x HTTP/1.1\nA: b\n\nGET /y HTTP/1.1\n\n", 5);
        assert_eq!(events.len(), 2);
        assert_eq!(request(&events[0]).target, "/x");
        assert_eq!(request(&events[1]).target, "/y");
    }

    #[test]
    fn connection_header_decides_keep_alive() {
        let events = read_all(
            b"GET / HTTP/1.1\r\nConnection: Keep-Alive, Close\r\n\r\n\
              GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            100,
        );
        assert!(!request(&events[0]).keep_alive);
        assert!(request(&events[1]).keep_alive);
    }

    #[test]
    fn oversized_length_body_is_drained_not_kept() {
        let length = MAX_BODY_BYTES + 1;
        let mut wire = format!("POST /r HTTP/1.1\r\nContent-Length: {length}\r\n\r\n").into_bytes();
        wire.extend(std::iter::repeat_n(b'x', length));
        wire.extend_from_slice(b"GET /after HTTP/1.1\r\n\r\n");
        let events = read_all(&wire, 65536);
        assert_eq!(events.len(), 2);
        assert_eq!(
            request(&events[0]).body,
            Body::TooLarge {
                declared: Some(length as u64)
            }
        );
        assert!(request(&events[0]).keep_alive);
        assert_eq!(request(&events[1]).target, "/after");
    }

    #[test]
    fn oversized_chunked_body_is_reported_at_the_limit_then_drained() {
        let mut wire = b"POST /r HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let chunk = vec![b'y'; 1 << 20];
        for _ in 0..7 {
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(&chunk);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\nGET /after HTTP/1.1\r\n\r\n");
        let mut reader = RequestReader::new();
        let mut events = Vec::new();
        let mut pos = 0;
        let mut first_event_at = None;
        while pos < wire.len() {
            let end = (pos + 4096).min(wire.len());
            let (used, event) = reader.feed(&wire[pos..end]);
            pos += used;
            if event.is_some() && first_event_at.is_none() {
                first_event_at = Some(pos);
            }
            events.extend(event);
        }
        assert_eq!(events.len(), 2);
        assert_eq!(request(&events[0]).body, Body::TooLarge { declared: None });
        // Reported as soon as the limit was crossed, not at the end of the body.
        assert!(first_event_at.unwrap() < MAX_BODY_BYTES + 64 * 1024);
        assert_eq!(request(&events[1]).target, "/after");
    }

    #[test]
    fn expect_continue_is_announced_and_oversized_expect_closes() {
        let events = read_all(
            b"POST /r HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
            100,
        );
        assert_eq!(events[0], ReadEvent::ExpectContinue);
        assert_eq!(request(&events[1]).body, Body::Complete(b"ok".to_vec()));

        let head = format!(
            "POST /r HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        let mut reader = RequestReader::new();
        let (used, event) = reader.feed(head.as_bytes());
        let ReadEvent::Request(request) = event.unwrap() else {
            panic!()
        };
        assert!(!request.keep_alive);
        assert!(matches!(request.body, Body::TooLarge { .. }));
        assert!(reader.is_closed());
        assert_eq!(
            reader.feed(&head.as_bytes()[used..]),
            (head.len() - used, None)
        );
    }

    #[test]
    fn malformed_heads_are_errors_with_statuses() {
        let cases: [(&[u8], u16); 8] = [
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                400,
            ),
            (
                b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
                400,
            ),
            (b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (
                b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                400,
            ),
        ];
        for (wire, status) in cases {
            let events = read_all(wire, 3);
            match events.as_slice() {
                [ReadEvent::Error(error)] => assert_eq!(error.status(), status, "{error}"),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(wire)),
            }
        }
    }

    #[test]
    fn head_limits() {
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES));
        let events = read_all(&huge, 4096);
        assert!(matches!(
            events.as_slice(),
            [ReadEvent::Error(ReadError::HeadTooLarge)]
        ));

        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let events = read_all(&many, 4096);
        assert!(matches!(
            events.as_slice(),
            [ReadEvent::Error(ReadError::TooManyHeaders)]
        ));
    }

    #[test]
    fn after_an_error_input_is_ignored() {
        let mut reader = RequestReader::new();
        let (_, event) = reader.feed(b"BAD\r\n\r\n");
        assert!(matches!(event, Some(ReadEvent::Error(_))));
        assert_eq!(reader.feed(b"GET / HTTP/1.1\r\n\r\n"), (18, None));
    }

    const STREAMED: &[u8] = b"POST /2018-06-01/runtime/invocation/abc/response HTTP/1.1\r\n\
        Lambda-Runtime-Function-Response-Mode: Streaming\r\nTransfer-Encoding: chunked\r\n\r\n\
        3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: v\r\n\r\nGET /after HTTP/1.1\r\n\r\n";

    /// Feeds `input` in pieces of `split` bytes with `stream_for`, collecting every event.
    fn stream_all(input: &[u8], split: usize, stream_for: Option<&str>) -> Vec<ReadEvent> {
        let mut reader = RequestReader::new();
        let mut events = Vec::new();
        for piece in input.chunks(split.max(1)) {
            let mut pos = 0;
            while pos < piece.len() {
                let (used, event) = reader.feed_streaming(&piece[pos..], stream_for);
                pos += used;
                assert!(used > 0 || event.is_some());
                events.extend(event);
            }
        }
        events
    }

    #[test]
    fn pieces_before_broken_framing_go_out_wherever_the_input_was_cut() {
        let broken: &[u8] = b"POST /2018-06-01/runtime/invocation/abc/response HTTP/1.1\r\n\
            Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\r\n\
            5\r\naaaaa\r\nzz\r\n";
        for split in [1, 3, 1000] {
            let events = stream_all(broken, split, Some("abc"));
            let data: Vec<u8> = events
                .iter()
                .filter_map(|e| match e {
                    ReadEvent::StreamData(d) => Some(d.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            assert_eq!(data, b"aaaaa", "split {split}: {events:?}");
            assert!(
                matches!(events.last(), Some(ReadEvent::Error(ReadError::Chunk(_)))),
                "split {split}: {events:?}"
            );
        }
    }

    #[test]
    fn streaming_responses_for_the_id_come_out_in_pieces() {
        for split in [1, 2, 7, 1000] {
            let events = stream_all(STREAMED, split, Some("abc"));
            let ReadEvent::StreamStart {
                request: head,
                expect_continue: false,
            } = &events[0]
            else {
                panic!("{events:?}")
            };
            assert_eq!(head.body, Body::Complete(Vec::new()));
            let mut data = Vec::new();
            for event in &events[1..events.len() - 2] {
                let ReadEvent::StreamData(piece) = event else {
                    panic!("{event:?}")
                };
                assert!(!piece.is_empty());
                data.extend_from_slice(piece);
            }
            let ReadEvent::StreamEnd {
                data: last,
                trailers,
            } = &events[events.len() - 2]
            else {
                panic!("{events:?}")
            };
            data.extend_from_slice(last);
            assert_eq!(data, b"abcde", "split {split}");
            assert_eq!(trailers, &[("X-T".to_string(), "v".to_string())]);
            assert_eq!(request(&events[events.len() - 1]).target, "/after");
        }
        // Split finely, the first piece comes out before the body ends.
        let events = stream_all(STREAMED, 1, Some("abc"));
        assert!(matches!(&events[1], ReadEvent::StreamData(piece) if piece == b"a"));
    }

    #[test]
    fn other_requests_are_read_whole_with_their_trailers() {
        // Not streaming for this id (or at all): the request is read whole, trailers kept.
        for stream_for in [None, Some("other")] {
            let events = stream_all(STREAMED, 5, stream_for);
            assert_eq!(events.len(), 2);
            assert_eq!(request(&events[0]).body, Body::Complete(b"abcde".to_vec()));
            assert_eq!(request(&events[0]).trailer("x-t"), Some("v"));
            assert!(request(&events[0]).is_streaming_response());
        }
        // A non-streaming response to the id is read whole too.
        let plain = b"POST /2018-06-01/runtime/invocation/abc/response HTTP/1.1\r\n\
            Content-Length: 2\r\n\r\nok";
        let events = stream_all(plain, 3, Some("abc"));
        assert_eq!(request(&events[0]).body, Body::Complete(b"ok".to_vec()));
    }

    #[test]
    fn streamed_bodies_stop_at_the_streaming_limit_then_drain() {
        let mut wire = b"POST /2018-06-01/runtime/invocation/abc/response HTTP/1.1\r\n\
            Lambda-Runtime-Function-Response-Mode: streaming\r\n\
            Transfer-Encoding: chunked\r\n\r\n"
            .to_vec();
        let chunk = vec![b'q'; 1 << 20];
        for _ in 0..21 {
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(&chunk);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\nGET /after HTTP/1.1\r\n\r\n");
        let mut reader = RequestReader::new();
        let (mut pos, mut data, mut events) = (0, 0usize, Vec::new());
        while pos < wire.len() {
            let end = (pos + 65536).min(wire.len());
            let (used, event) = reader.feed_streaming(&wire[pos..end], Some("abc"));
            pos += used;
            assert!(reader.buffered_bytes() < MAX_HEAD_BYTES);
            match event {
                Some(ReadEvent::StreamData(piece)) => data += piece.len(),
                Some(other) => events.push(other),
                None => {}
            }
        }
        assert!(data <= MAX_STREAMED_RESPONSE_BYTES && data > MAX_STREAMED_RESPONSE_BYTES - 65536);
        assert!(matches!(events[0], ReadEvent::StreamStart { .. }));
        assert_eq!(events[1], ReadEvent::StreamTooLarge);
        assert_eq!(request(&events[2]).target, "/after");
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn idle_between_requests() {
        let mut reader = RequestReader::new();
        assert!(reader.is_idle());
        reader.feed(b"GET / HT");
        assert!(!reader.is_idle());
        let (_, event) = reader.feed(b"TP/1.1\r\n\r\n");
        assert!(event.is_some());
        assert!(reader.is_idle());
    }
}
