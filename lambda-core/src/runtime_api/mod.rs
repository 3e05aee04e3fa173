//! Lambda's Runtime API 2018-06-01, sans I/O.
//!
//! A function built for Lambda's custom runtimes reads `AWS_LAMBDA_RUNTIME_API` from its
//! environment and speaks HTTP/1.1 to it: `GET /2018-06-01/runtime/invocation/next` for an
//! event, `POST .../invocation/{id}/response` or `.../invocation/{id}/error` for its result,
//! `POST .../runtime/init/error` when it cannot start. This module is the server side of that
//! protocol as pure state machines: no sockets, threads or clocks. Bytes the runtime sends go
//! in, bytes it should read and [`ApiEvent`]s for the host come out. The same code serves a
//! real localhost socket (the development backend) and the loopback socket a VMM emulates.
//!
//! - [`RuntimeApi`]: one per execution environment, shared by all of its connections; knows
//!   the lifecycle (Init, idle, invocation in flight) and routes requests.
//! - [`RequestReader`]: the per-connection HTTP/1.1 request reader (used by `RuntimeApi`).
//! - [`runtime_environment`]: the standard environment variables of a function.
//!
//! # Driving it
//!
//! ```
//! use lambda_core::runtime_api::{ApiEvent, RuntimeApi};
//! use lambda_core::Invocation;
//!
//! let mut api = RuntimeApi::new("arn:aws:lambda:us-east-1:012345678912:function:f");
//! let conn = api.connect().unwrap(); // the runtime connected (at most 64 at once)
//! // The runtime writes a request; `receive` says how many bytes it took (all, here).
//! let request = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n";
//! assert_eq!(api.receive(conn, request), request.len());
//! assert_eq!(api.next_event(), Some(ApiEvent::InitDone)); // Init is over
//! assert!(api.is_parked(conn) && api.pending_output(conn).is_empty()); // the runtime waits
//! // The host delivers an invocation with its deadline (ms since the epoch).
//! api.deliver(Invocation::new(b"{}".to_vec()), 1_700_000_000_000).unwrap();
//! let answer = api.take_output(conn); // what the runtime reads: `HTTP/1.1 200 OK ...{}`
//! assert!(answer.starts_with(b"HTTP/1.1 200 OK"));
//! assert!(matches!(api.next_event(), Some(ApiEvent::InvocationStarted { .. })));
//! ```
//!
//! A VMM emulating the socket calls [`RuntimeApi::receive`] for the guest's `write`/`send`
//! (a short count means "socket buffer full"), copies [`RuntimeApi::pending_output`] for its
//! `read`/`recv` and reports the count with [`RuntimeApi::consume_output`]; a read finding no
//! output blocks while [`RuntimeApi::is_parked`], and returns end of file once
//! [`RuntimeApi::is_closing`]. After every call the host drains [`RuntimeApi::next_event`].
//! Whatever the runtime does, the API holds at most [`MAX_CONNECTIONS`] connections and
//! [`MAX_BUFFERED_BYTES`] of their input and output (plus the event delivered).
//!
//! # Limits
//!
//! A header block is at most [`MAX_HEAD_BYTES`] with at most [`MAX_HEADERS`] fields (else 431
//! and the connection closes). A body is kept up to [`MAX_BODY_BYTES`] (6 MB plus 100 bytes,
//! as the Runtime Interface Emulator allows); a longer one is answered 413 as soon as that is
//! known and the rest of it is read and discarded, keeping the connection (see
//! [`RequestReader`]); a streamed response is limited to 20 MB instead (see below).
//! Unprocessed input and unread output per connection are bounded too
//! ([`INBOX_BYTES`], [`OUTPUT_HIGH_WATER`]).
//!
//! # Response streaming
//!
//! A function in Lambda's response streaming mode answers with
//! `POST .../invocation/{id}/response`, [`RESPONSE_MODE_HEADER`]`: streaming` and
//! `Transfer-Encoding: chunked`, and writes the body as it produces it. If it fails midway it
//! ends the body with the trailer fields [`ERROR_TYPE_HEADER`] and [`ERROR_BODY_TRAILER`] (the
//! base64 of its error JSON); they are read whether or not a `Trailer:` header announced them.
//!
//! - When the invocation carries a [`ResponseStream`](crate::ResponseStream)
//!   ([`Invocation::with_response_stream`](crate::Invocation::with_response_stream)), the body
//!   is not collected: each piece goes to the stream as soon as it is decoded (the reader hands
//!   it out as [`ReadEvent::StreamData`]), up to
//!   [`MAX_STREAMED_RESPONSE_BYTES`](crate::limits::MAX_STREAMED_RESPONSE_BYTES) (20 MB). At the
//!   end of the body the runtime gets 202 and [`ApiEvent::InvocationDone`] carries an empty
//!   [`Response`](crate::InvokeOutcome::Response), or the error the trailers report
//!   ([`error_from_trailers`]). Past 20 MB nothing more reaches the stream, the invocation
//!   completes with `Function.ResponseSizeTooLarge`, and the runtime gets 413 while the rest
//!   of the body is discarded (the connection stays usable). A streaming-mode body with a
//!   `Content-Length` is streamed the same way.
//! - Without a stream, a streamed response is read whole like any other (6 MB limit, as Lambda
//!   does for a plain `Invoke` of a streaming function), its error trailers still honoured.
//! - A response sent whole to an invocation that has a stream is written to the stream in one
//!   piece, and the outcome's payload is empty: a caller that streams always reads the body
//!   from its stream.
//! - A connection that breaks in the middle of a streamed body (closed, or broken chunk
//!   framing: 400) leaves the invocation in flight, as for any body cut short; the bytes
//!   already streamed stay streamed.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

mod chunked;
mod connection;
mod environment;
mod error_report;
pub mod headers;
mod reader;
mod request;
mod response;
mod route;
mod server;

#[cfg(test)]
mod tests;

pub use chunked::{ChunkError, ChunkedDecoder};
pub use connection::{ConnectionId, INBOX_BYTES, OUTPUT_HIGH_WATER};
pub use environment::{
    ACCOUNT_ID, DEFAULT_REGION, EnvironmentInfo, TASK_ROOT, function_arn, log_stream_name, region,
    runtime_environment,
};
pub use error_report::{
    ERROR_BODY_TRAILER, ERROR_TYPE_HEADER, error_from_report, error_from_trailers,
};
pub use reader::{ReadError, ReadEvent, RequestReader};
pub use request::{Body, Request};
pub use response::{CONTINUE, Response};
pub use route::{API_PREFIX, Route};
pub use server::{
    ApiEvent, DeliverError, MAX_BUFFERED_BYTES, MAX_CONNECTIONS, Phase, RuntimeApi,
    TooManyConnections,
};

/// Largest request header block accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The header with which a runtime answers in Lambda's response streaming mode
/// (`Lambda-Runtime-Function-Response-Mode: streaming`).
pub const RESPONSE_MODE_HEADER: &str = "Lambda-Runtime-Function-Response-Mode";

/// Most header fields accepted in one request.
pub const MAX_HEADERS: usize = 64;

/// Largest request body accepted: a response of at most 6 MB, plus the 100 bytes of slack the
/// Runtime Interface Emulator allows (6,291,556 bytes, the figure in Lambda's
/// `Function.ResponseSizeTooLarge` message).
pub const MAX_BODY_BYTES: usize = crate::limits::MAX_SYNC_PAYLOAD_BYTES + 100;
