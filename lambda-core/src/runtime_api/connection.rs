//! The state of one connection to the Runtime API: its request reader, the bytes it has
//! received but not yet processed, and the bytes waiting to be read by the client.

use super::reader::RequestReader;

/// Most received bytes held for a connection that cannot process them yet (while its `next`
/// waits for an invocation, or while its client does not read its responses). Past this,
/// [`RuntimeApi::receive`](super::RuntimeApi::receive) accepts fewer bytes than offered, as a
/// full socket buffer would.
pub const INBOX_BYTES: usize = 64 * 1024;

/// Once this many response bytes wait unread, the connection processes no further requests
/// until the client reads some. A single response may be larger (an event up to 6 MB).
pub const OUTPUT_HIGH_WATER: usize = 64 * 1024;

/// Identifies one connection of a [`RuntimeApi`](super::RuntimeApi).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ConnectionId(pub(super) u64);

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection {}", self.0)
    }
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Connection {
    pub(super) reader: RequestReader,
    /// Received bytes not yet given to the reader.
    pub(super) inbox: Vec<u8>,
    output: Vec<u8>,
    /// How much of `output` the client has read.
    output_read: usize,
    /// `Some(keep_alive)` while a `next` on this connection waits for an invocation.
    pub(super) parked: Option<bool>,
    /// The server closes the connection once the client has read the pending output.
    pub(super) closing: bool,
    /// The streamed response whose body is being read on this connection.
    #[serde(default)]
    pub(super) stream: Option<Streaming>,
}

/// A response in streaming mode whose body is arriving on a connection.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Streaming {
    /// The invocation it answers.
    pub(super) request_id: String,
    /// Whether the connection stays open after the answer.
    pub(super) keep_alive: bool,
    /// The stream's sink said its reader is gone: the rest of the body is dropped.
    pub(super) reader_gone: bool,
}

impl Connection {
    /// Bytes this connection holds: unprocessed input, the request being read, and the
    /// output's buffer.
    pub(super) fn buffered_bytes(&self) -> usize {
        self.inbox
            .len()
            .saturating_add(self.reader.buffered_bytes())
            .saturating_add(self.output.len())
    }

    /// Whether the connection must not process another request now.
    pub(super) fn is_blocked(&self) -> bool {
        self.parked.is_some() || self.closing || self.pending().len() > OUTPUT_HIGH_WATER
    }

    /// The response bytes the client has not read yet.
    pub(super) fn pending(&self) -> &[u8] {
        self.output.get(self.output_read..).unwrap_or_default()
    }

    /// Queues bytes for the client.
    pub(super) fn push_output(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    /// Gives the queued output's buffer to a writer.
    pub(super) fn output_mut(&mut self) -> &mut Vec<u8> {
        &mut self.output
    }

    /// Marks `n` pending bytes as read by the client.
    pub(super) fn consume(&mut self, n: usize) {
        self.output_read = self.output_read.saturating_add(n).min(self.output.len());
        if self.output_read == self.output.len() {
            self.output_read = 0;
            if self.output.capacity() > OUTPUT_HIGH_WATER {
                // Do not keep a 6 MB event's buffer for the life of the connection.
                self.output = Vec::new();
            } else {
                self.output.clear();
            }
        }
    }

    /// Checks a connection read back from a snapshot: the bytes marked read are bytes it
    /// holds (no method marks more), it holds no more unprocessed input than
    /// [`INBOX_BYTES`] (as receiving keeps it), and no streamed response is being read on it
    /// (a snapshot is taken between invocations). Says what does not hold.
    pub(super) fn check(&self) -> Result<(), String> {
        if self.inbox.len() > INBOX_BYTES {
            return Err(format!(
                "holds {} bytes of unprocessed input, more than {INBOX_BYTES}",
                self.inbox.len()
            ));
        }
        if self.output_read > self.output.len() {
            return Err(format!(
                "marks {} bytes of its output read, of {}",
                self.output_read,
                self.output.len()
            ));
        }
        if self.stream.is_some() {
            return Err("is reading a streamed response".into());
        }
        Ok(())
    }

    /// Takes all pending output.
    pub(super) fn take(&mut self) -> Vec<u8> {
        let mut output = std::mem::take(&mut self.output);
        output.drain(..self.output_read.min(output.len()));
        self.output_read = 0;
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_consumed_in_pieces_and_released() {
        let mut connection = Connection::default();
        connection.push_output(b"hello world");
        connection.consume(6);
        assert_eq!(connection.pending(), b"world");
        connection.consume(100);
        assert_eq!(connection.pending(), b"");
        connection.push_output(&vec![0; OUTPUT_HIGH_WATER + 1]);
        assert!(connection.is_blocked());
        connection.consume(OUTPUT_HIGH_WATER + 1);
        assert!(!connection.is_blocked());
        assert_eq!(connection.output.capacity(), 0);
    }

    #[test]
    fn take_returns_only_unread_bytes() {
        let mut connection = Connection::default();
        connection.push_output(b"abcdef");
        connection.consume(2);
        assert_eq!(connection.take(), b"cdef");
        assert_eq!(connection.pending(), b"");
    }
}
