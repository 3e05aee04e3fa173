//! Capturing a long-lived runtime's stdout and stderr into the environment's current log.
//!
//! The child's stdout and stderr are one end of a Unix socket pair; a thread reads the other
//! end into the hub's [`LogCollector`](lambda_core::logs::LogCollector). So that a line the
//! function printed just before posting its response lands in that invocation's log and not
//! the next one's, [`Capture::flush`] writes a random marker into the stream (through a kept
//! clone of the child's end) and waits until the thread has read up to it: everything the
//! function wrote before the flush is then in the log.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::hub::Hub;

/// How long [`Capture::flush`] waits for the reader to catch up.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// The capture of one process's output.
pub(super) struct Capture {
    hub: Arc<Hub>,
    /// Our clone of the child's end of the stream, to write markers into.
    marker_in: Option<UnixStream>,
    marker: [u8; 16],
    markers_sent: u64,
    reader: Option<JoinHandle<()>>,
}

impl Capture {
    /// Starts capturing; returns the capture and the child's stdout and stderr, two
    /// descriptors of one stream, so the log keeps the order the function wrote in (as
    /// Lambda's single log stream does) and one reader and one marker suffice.
    pub(super) fn start(hub: Arc<Hub>) -> io::Result<(Capture, Stdio, Stdio)> {
        let marker = random_marker();
        let markers_sent = hub.lock().markers_seen;
        let (ours, theirs) = UnixStream::pair()?;
        let marker_in = theirs.try_clone()?;
        let stdout = Stdio::from(OwnedFd::from(theirs.try_clone()?));
        let stderr = Stdio::from(OwnedFd::from(theirs));
        let reader_hub = Arc::clone(&hub);
        let reader = std::thread::Builder::new()
            .name("fn-output".into())
            .spawn(move || pump(ours, marker, reader_hub))?;
        let capture = Capture {
            hub,
            marker_in: Some(marker_in),
            marker,
            markers_sent,
            reader: Some(reader),
        };
        Ok((capture, stdout, stderr))
    }

    /// Waits until everything written to the stream so far is in the log (at most a second).
    pub(super) fn flush(&mut self) {
        let Some(stream) = &mut self.marker_in else {
            return;
        };
        if stream.write_all(&self.marker).is_err() {
            return;
        }
        self.markers_sent += 1;
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        let mut state = self.hub.lock();
        while state.markers_seen < self.markers_sent && Instant::now() < deadline {
            state = self.hub.wait_until(state, deadline);
        }
    }

    /// Closes our end and joins the reader. Call after the process (group) is dead, so the
    /// stream reaches end of file; everything it wrote is then in the log. Dropping a
    /// capture does the same.
    pub(super) fn finish(self) {
        drop(self);
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.marker_in = None;
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Reads one stream into the log until end of file, taking out markers.
fn pump(mut stream: UnixStream, marker: [u8; 16], hub: Arc<Hub>) {
    let mut buffer = vec![0; 64 * 1024];
    // Bytes held back because they may be the start of a marker.
    let mut held: Vec<u8> = Vec::new();
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        held.extend_from_slice(&buffer[..n]);
        let mut markers = 0;
        let mut state = hub.lock();
        while let Some(at) = find(&held, &marker) {
            state.log.write(&held[..at]);
            held.drain(..at + marker.len());
            markers += 1;
        }
        let keep = partial_marker_suffix(&held, &marker);
        state.log.write(&held[..held.len() - keep]);
        held.drain(..held.len() - keep);
        state.markers_seen += markers;
        drop(state);
        if markers > 0 {
            hub.notify();
        }
    }
    if !held.is_empty() {
        hub.lock().log.write(&held);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The length of the longest end of `bytes` that is a proper start of `marker`.
fn partial_marker_suffix(bytes: &[u8], marker: &[u8]) -> usize {
    (1..marker.len().min(bytes.len() + 1))
        .rev()
        .find(|&len| bytes.ends_with(&marker[..len]))
        .unwrap_or(0)
}

/// 16 bytes no function will print by chance: random, and not valid UTF-8.
fn random_marker() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let mut marker = [0u8; 16];
    for (i, chunk) in marker.chunks_mut(8).enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(i);
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    marker[0] = 0xff;
    marker[15] = 0xfe;
    marker
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_suffixes() {
        let marker = b"ABCD";
        assert_eq!(partial_marker_suffix(b"xxAB", marker), 2);
        assert_eq!(partial_marker_suffix(b"xxABC", marker), 3);
        assert_eq!(
            partial_marker_suffix(b"xxABCD", marker),
            0,
            "a whole marker is found, not held"
        );
        assert_eq!(partial_marker_suffix(b"A", marker), 1);
        assert_eq!(partial_marker_suffix(b"", marker), 0);
        assert_eq!(partial_marker_suffix(b"xyz", marker), 0);
    }

    #[test]
    fn markers_differ_per_capture() {
        assert_ne!(random_marker(), random_marker());
    }
}
