//! Where the body of a streamed response goes while the runtime is still writing it.
//!
//! A function in Lambda's response streaming mode answers its invocation with
//! `Lambda-Runtime-Function-Response-Mode: streaming` and a chunked body that it writes as it
//! produces it. An [`Invocation`](crate::Invocation) that carries a [`ResponseStream`]
//! ([`Invocation::with_response_stream`](crate::Invocation::with_response_stream)) gets that
//! body piece by piece, as the Runtime API decodes it, instead of whole in its outcome.

use std::fmt;
use std::sync::Arc;

/// Receives the body of a streamed response, piece by piece.
///
/// [`write`](Self::write) is called on the thread driving the Runtime API (the one calling
/// [`RuntimeApi::receive`](crate::runtime_api::RuntimeApi::receive)), with each piece of the
/// body in order as soon as it is decoded. It must not block: hand the bytes to another
/// thread (a channel) and return.
pub trait ResponseSink: Send + Sync {
    /// Takes the next piece of the body (never empty). Returns `false` once whoever reads the
    /// stream is gone; later pieces are then dropped without being offered, which is not an
    /// error: the invocation completes as usual.
    fn write(&self, chunk: &[u8]) -> bool;
}

/// A shared handle to a [`ResponseSink`]: what an [`Invocation`](crate::Invocation) carries
/// to have its response streamed. Clones share the sink; two streams are equal when they
/// share one.
#[derive(Clone)]
pub struct ResponseStream(Arc<dyn ResponseSink>);

impl ResponseStream {
    /// A stream writing to `sink`.
    pub fn new(sink: impl ResponseSink + 'static) -> Self {
        ResponseStream(Arc::new(sink))
    }

    /// Passes `chunk` to the sink; `false` once the reader is gone (see
    /// [`ResponseSink::write`]).
    pub fn write(&self, chunk: &[u8]) -> bool {
        self.0.write(chunk)
    }
}

impl fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseStream")
    }
}

impl PartialEq for ResponseStream {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ResponseStream {}

/// Sends each piece as its own `Vec`; the reader is gone once the receiver is dropped.
/// Sending on an unbounded channel never blocks.
impl ResponseSink for std::sync::mpsc::Sender<Vec<u8>> {
    fn write(&self, chunk: &[u8]) -> bool {
        self.send(chunk.to_vec()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_sink_and_equality() {
        let (sender, receiver) = std::sync::mpsc::channel();
        let stream = ResponseStream::new(sender);
        assert!(stream.write(b"ab"));
        assert!(stream.clone().write(b"c"));
        assert_eq!(
            receiver.try_iter().collect::<Vec<_>>(),
            [b"ab".to_vec(), b"c".to_vec()]
        );
        assert_eq!(stream, stream.clone());
        let (other, _keep) = std::sync::mpsc::channel();
        assert_ne!(stream, ResponseStream::new(other));
        assert_eq!(format!("{stream:?}"), "ResponseStream");
        drop(receiver);
        assert!(!stream.write(b"d"), "the reader is gone");
    }
}
