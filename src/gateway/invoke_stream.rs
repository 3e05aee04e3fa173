//! `InvokeWithResponseStream`: the function's response goes to the client as the function
//! writes it, framed as `application/vnd.amazon.eventstream` (`event_stream`): a
//! `PayloadChunk` per piece, then `InvokeComplete` (with `ErrorCode` and `ErrorDetails` when
//! the function failed, `LogResult` when the log tail was asked for).
//!
//! The invocation runs on a blocking thread as any other; its [`ResponseStream`] sends each
//! piece, framed, through a channel to the connection. The HTTP answer starts when the first
//! piece arrives (or the invocation ends): a request refused before the function ran (an
//! unknown function, a throttle) still gets Lambda's error status and body.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hyper::body::{Body, Frame};
use lambda_core::{ResponseSink, ResponseStream};
use lambda_sched::{InvocationType, InvokeRequest, InvokeResponse};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::api_error::ApiError;
use super::context::Context;
use super::event_stream::{invoke_complete, payload_chunks};
use super::invoke;
use super::message::{Request, Response};

/// What the invocation sends the connection.
pub(super) enum Piece {
    /// Framed `PayloadChunk` messages.
    Chunk(Bytes),
    /// The invocation is over (or was refused).
    End(Box<Result<InvokeResponse, ApiError>>),
}

/// The sink the runtime's response pieces go to: frames them and hands them on. Never
/// blocks; the 20 MB limit on a streamed response bounds what the channel holds.
struct ChannelSink(UnboundedSender<Piece>);

impl ResponseSink for ChannelSink {
    fn write(&self, chunk: &[u8]) -> bool {
        self.0
            .send(Piece::Chunk(Bytes::from(payload_chunks(chunk))))
            .is_ok()
    }
}

/// The service's request for `request` to `reference`, streaming into `sender`.
fn invoke_request(
    request: &Request,
    reference: &str,
    sender: UnboundedSender<Piece>,
) -> Result<InvokeRequest, ApiError> {
    let invoke = invoke::invoke_request(request, reference)?;
    if invoke.invocation_type == InvocationType::Event {
        return Err(ApiError::invalid_parameter(
            "InvokeWithResponseStream takes X-Amz-Invocation-Type RequestResponse or DryRun",
        ));
    }
    Ok(invoke.with_response_stream(ResponseStream::new(ChannelSink(sender))))
}

/// Runs the invocation (on the caller's blocking thread): its pieces, then its end, go to
/// `sender`.
pub(super) fn run(
    context: &Context,
    request: &Request,
    reference: &str,
    sender: UnboundedSender<Piece>,
) {
    let result = invoke_request(request, reference, sender.clone())
        .and_then(|invoke| context.service.invoke(invoke).map_err(ApiError::from));
    // The connection may be gone; the invocation is over either way.
    let _ = sender.send(Piece::End(Box::new(result)));
}

/// A channel for [`run`].
pub(super) fn channel() -> (UnboundedSender<Piece>, UnboundedReceiver<Piece>) {
    unbounded_channel()
}

/// How the answer begins, from the first thing the invocation sent.
pub(super) enum Start {
    /// A plain response: a refusal, a dry run, or (`Response` with a body) the whole stream.
    Whole(Response),
    /// A stream: the event-stream body follows from `pieces`.
    Stream(StreamBody),
}

/// The content type of a streamed answer.
pub(super) const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// Waits for the invocation's first piece and decides how the answer begins.
pub(super) async fn start(mut pieces: UnboundedReceiver<Piece>) -> Start {
    match pieces.recv().await {
        Some(Piece::Chunk(first)) => Start::Stream(StreamBody {
            first: Some(first),
            pieces,
            ended: false,
        }),
        Some(Piece::End(end)) => match *end {
            Err(error) => Start::Whole(error.response()),
            // A dry run (204).
            Ok(answer) if answer.status_code != 200 => {
                Start::Whole(Response::empty(answer.status_code))
            }
            Ok(answer) => {
                // Over before anything was streamed: a function error, an empty response, or a
                // backend that answers whole (the body then comes as chunks here).
                let mut body = Vec::new();
                if answer.function_error.is_none() {
                    body.extend(payload_chunks(&answer.payload));
                }
                let request_id = answer.request_id.clone();
                body.extend(complete(&Ok(answer)));
                Start::Whole(
                    Response {
                        status: 200,
                        headers: vec![("Content-Type".into(), EVENT_STREAM.into())],
                        body,
                    }
                    .with_header("x-amzn-RequestId", request_id),
                )
            }
        },
        None => Start::Whole(
            ApiError::service("the invocation ended inside the gateway without an answer")
                .response(),
        ),
    }
}

/// The `InvokeComplete` message for how the invocation ended.
fn complete(result: &Result<InvokeResponse, ApiError>) -> Vec<u8> {
    match result {
        Ok(answer) => {
            let log = answer.log_result.as_ref().map(|tail| STANDARD.encode(tail));
            let error = answer
                .function_error
                .as_ref()
                .map(|e| (e.error_type.as_str(), e.message.as_str()));
            invoke_complete(error, log.as_deref())
        }
        Err(error) => invoke_complete(Some((error.name, &error.message)), None),
    }
}

/// The event-stream body of a streamed answer: the pieces as they come, then
/// `InvokeComplete`.
pub(super) struct StreamBody {
    first: Option<Bytes>,
    pieces: UnboundedReceiver<Piece>,
    ended: bool,
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        let frame = match self.pieces.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Piece::Chunk(bytes))) => bytes,
            Poll::Ready(Some(Piece::End(result))) => {
                self.ended = true;
                Bytes::from(complete(&result))
            }
            Poll::Ready(None) => {
                self.ended = true;
                let error = ApiError::service("the invocation ended inside the gateway");
                Bytes::from(complete(&Err(error)))
            }
        };
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }
}
