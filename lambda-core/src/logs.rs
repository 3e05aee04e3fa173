//! The log of one invocation: the function's output between Lambda's `START`, `END` and
//! `REPORT` lines, bounded in size, with its tail kept for [`InvokeResult::log_tail`].
//!
//! [`InvokeResult::log_tail`]: crate::lifecycle::InvokeResult::log_tail

use std::collections::VecDeque;
use std::time::Duration;

use crate::limits::LOG_TAIL_BYTES;
use crate::report::Report;

/// How much of a function's own output one invocation's log keeps by default (1 MiB).
pub const DEFAULT_LOG_CAPACITY: usize = 1 << 20;

/// Lambda's message for an invocation that ran out of time: `Task timed out after 3.00
/// seconds`.
pub fn timeout_message(timeout: Duration) -> String {
    format!("Task timed out after {:.2} seconds", timeout.as_secs_f64())
}

/// Collects one invocation's log.
///
/// The function's output is kept up to a capacity; past it, bytes are counted and dropped
/// (never buffered), and a line saying how many were dropped is added before `END`. The
/// platform's own lines (`START`, `END`, `REPORT`, a timeout notice) are always kept. The
/// last [`LOG_TAIL_BYTES`] of everything, dropped bytes included, are kept apart as the tail,
/// as Lambda's `X-Amz-Log-Result` returns them.
///
/// ```
/// # use std::time::Duration;
/// # use lambda_core::{Report, logs::LogCollector};
/// let mut log = LogCollector::start("id-1", "$LATEST", 1024);
/// log.write(b"hello from the function\n");
/// log.end(&Report {
///     request_id: "id-1".into(),
///     duration: Duration::from_millis(2),
///     memory_size_mb: 128,
///     max_memory_used_mb: 5,
///     init_duration: None,
///     restore_duration: None,
/// });
/// let text = String::from_utf8(log.log().to_vec()).unwrap();
/// assert!(text.starts_with("START RequestId: id-1 Version: $LATEST\nhello from the function\nEND RequestId: id-1\nREPORT RequestId: id-1\t"));
/// assert_eq!(log.tail(), log.log());
/// ```
#[derive(Debug, Clone)]
pub struct LogCollector {
    capacity: usize,
    log: Vec<u8>,
    /// Bytes of function output kept in `log` so far (platform lines not counted).
    kept: usize,
    dropped: u64,
    tail: VecDeque<u8>,
    /// Whether the last byte written ended a line (or nothing was written).
    at_line_start: bool,
}

impl LogCollector {
    /// An empty log keeping up to `capacity` bytes of function output.
    pub fn new(capacity: usize) -> Self {
        LogCollector {
            capacity,
            log: Vec::new(),
            kept: 0,
            dropped: 0,
            tail: VecDeque::with_capacity(LOG_TAIL_BYTES),
            at_line_start: true,
        }
    }

    /// A log that begins with `START RequestId: ID Version: VERSION`.
    pub fn start(request_id: &str, version: &str, capacity: usize) -> Self {
        let mut log = Self::new(capacity);
        log.begin(request_id, version);
        log
    }

    /// Starts an invocation's part of the log: `START RequestId: ID Version: VERSION`, after
    /// whatever the function printed before it (during Init, or since the last invocation),
    /// as Lambda's log stream shows it.
    pub fn begin(&mut self, request_id: &str, version: &str) {
        self.platform_line(&format!("START RequestId: {request_id} Version: {version}"));
    }

    /// Appends function output.
    pub fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let room = self.capacity.saturating_sub(self.kept);
        let keep = bytes.len().min(room);
        self.log.extend_from_slice(&bytes[..keep]);
        self.kept += keep;
        self.dropped += (bytes.len() - keep) as u64;
        self.push_tail(bytes);
        self.at_line_start = bytes.ends_with(b"\n");
    }

    /// Appends a line of the platform's own (such as a timeout notice), on a line of its own
    /// and always kept.
    pub fn platform_line(&mut self, line: &str) {
        if !self.at_line_start {
            self.log.push(b'\n');
            self.push_tail(b"\n");
        }
        self.log.extend_from_slice(line.as_bytes());
        self.log.push(b'\n');
        self.push_tail(line.as_bytes());
        self.push_tail(b"\n");
        self.at_line_start = true;
    }

    /// Ends the log: a note of dropped bytes if any, then `END RequestId: ID` and the
    /// `REPORT` line.
    pub fn end(&mut self, report: &Report) {
        if self.dropped > 0 {
            let note = format!(
                "[log truncated: {} bytes past the {}-byte limit were dropped]",
                self.dropped, self.capacity
            );
            self.platform_line(&note);
        }
        self.platform_line(&format!("END RequestId: {}", report.request_id));
        self.platform_line(&report.to_string());
    }

    /// The log kept so far.
    pub fn log(&self) -> &[u8] {
        &self.log
    }

    /// How many bytes of function output were dropped for want of room.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped
    }

    /// The last [`LOG_TAIL_BYTES`] written (dropped output included).
    pub fn tail(&self) -> Vec<u8> {
        self.tail.iter().copied().collect()
    }

    /// The kept log and the tail.
    pub fn into_parts(self) -> (Vec<u8>, Vec<u8>) {
        let tail = self.tail();
        (self.log, tail)
    }

    fn push_tail(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(LOG_TAIL_BYTES)..];
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(LOG_TAIL_BYTES);
        self.tail.drain(..overflow);
        self.tail.extend(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str) -> Report {
        Report {
            request_id: id.into(),
            duration: Duration::from_micros(1500),
            memory_size_mb: 128,
            max_memory_used_mb: 10,
            init_duration: Some(Duration::from_millis(20)),
            restore_duration: None,
        }
    }

    #[test]
    fn lines_in_lambdas_order() {
        let mut log = LogCollector::start("abc", "$LATEST", 100);
        log.write(b"no newline at end");
        log.platform_line(&format!("abc {}", timeout_message(Duration::from_secs(3))));
        log.end(&report("abc"));
        let text = String::from_utf8(log.log().to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "START RequestId: abc Version: $LATEST");
        assert_eq!(lines[1], "no newline at end");
        assert_eq!(lines[2], "abc Task timed out after 3.00 seconds");
        assert_eq!(lines[3], "END RequestId: abc");
        assert_eq!(lines[4], report("abc").to_string());
        assert!(lines[4].contains("Init Duration: 20.00 ms"));
        assert_eq!(lines.len(), 5);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn output_past_capacity_is_counted_and_dropped() {
        let mut log = LogCollector::start("id", "$LATEST", 1000);
        let before = log.log().len();
        for _ in 0..1000 {
            log.write(&[b'z'; 1000]);
        }
        assert_eq!(log.log().len(), before + 1000);
        assert_eq!(log.dropped_bytes(), 999_000);
        log.end(&report("id"));
        let text = String::from_utf8(log.log().to_vec()).unwrap();
        assert!(
            text.contains("[log truncated: 999000 bytes past the 1000-byte limit were dropped]")
        );
        assert!(text.len() < 2000 + 300);
    }

    #[test]
    fn tail_is_the_last_bytes_including_end_and_report() {
        let mut log = LogCollector::start("id", "$LATEST", 10);
        let mut flood = vec![b'a'; 10_000];
        flood.extend_from_slice(b"LAST WORDS\n");
        log.write(&flood);
        log.end(&report("id"));
        let tail = log.tail();
        assert_eq!(tail.len(), LOG_TAIL_BYTES);
        let text = String::from_utf8(tail).unwrap();
        assert!(text.contains("LAST WORDS\n[log truncated: "));
        assert!(text.contains("\nEND RequestId: id\nREPORT RequestId: id"));
        assert!(!text.contains("START"));
    }

    #[test]
    fn small_writes_keep_the_tail_bounded() {
        let mut log = LogCollector::new(0);
        for i in 0..10_000u32 {
            log.write(i.to_string().as_bytes());
        }
        assert_eq!(log.tail().len(), LOG_TAIL_BYTES);
        assert!(log.log().is_empty());
        assert!(log.tail().ends_with(b"9999"));
    }
}
