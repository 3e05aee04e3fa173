//! The one-shot contract's three streams: the event on stdin, the response on stdout (at most
//! 6 MB), the log on stderr (only its tail is kept).

use std::collections::VecDeque;

use lambda_core::limits;

/// The last bytes of a log, and how many were written in all.
#[derive(Debug, Clone, Default)]
pub struct LogTail {
    tail: VecDeque<u8>,
    total: u64,
}

impl LogTail {
    /// Appends `data`, keeping only the last [`limits::LOG_TAIL_BYTES`].
    pub fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let keep = data.len().min(limits::LOG_TAIL_BYTES);
        let overflow = (self.tail.len() + keep).saturating_sub(limits::LOG_TAIL_BYTES);
        self.tail.drain(..overflow);
        self.tail.extend(&data[data.len() - keep..]);
    }

    /// The kept tail.
    pub fn tail(&self) -> Vec<u8> {
        self.tail.iter().copied().collect()
    }

    /// Bytes written in all, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// What a stdio write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Stored (or logged).
    Written,
    /// Stdout went past the response limit.
    ResponseTooLarge,
}

/// Stdin, stdout and stderr of a one-shot run.
#[derive(Debug, Clone)]
pub struct Stdio {
    stdin: Vec<u8>,
    stdin_read: usize,
    stdout: Vec<u8>,
    log: LogTail,
    open: [bool; 3],
}

impl Stdio {
    /// Streams whose stdin holds `stdin`.
    pub fn new(stdin: Vec<u8>) -> Stdio {
        Stdio {
            stdin,
            stdin_read: 0,
            stdout: Vec::new(),
            log: LogTail::default(),
            open: [true; 3],
        }
    }

    /// Whether `fd` is one of the three streams and still open.
    pub fn is_open(&self, fd: u64) -> bool {
        fd < 3 && self.open[fd as usize]
    }

    /// Closes one of the streams.
    pub fn close(&mut self, fd: u64) -> bool {
        let was_open = self.is_open(fd);
        if was_open {
            self.open[fd as usize] = false;
        }
        was_open
    }

    /// The next at most `max` bytes of stdin (empty at end of input).
    pub fn read_stdin(&mut self, max: usize) -> &[u8] {
        let start = self.stdin_read;
        let end = start + max.min(self.stdin.len() - start);
        self.stdin_read = end;
        &self.stdin[start..end]
    }

    /// Appends to stdout, refusing to grow past the synchronous response limit.
    pub fn write_stdout(&mut self, data: &[u8]) -> WriteOutcome {
        if self.stdout.len() + data.len() > limits::MAX_SYNC_PAYLOAD_BYTES {
            return WriteOutcome::ResponseTooLarge;
        }
        self.stdout.extend_from_slice(data);
        WriteOutcome::Written
    }

    /// Appends to the log.
    pub fn write_log(&mut self, data: &[u8]) {
        self.log.push(data);
    }

    /// Records a log write of which only the last `data` bytes are kept; the `skipped` bytes
    /// before them are counted but never copied.
    pub fn write_log_with_skipped(&mut self, skipped: u64, data: &[u8]) {
        self.log.total += skipped;
        if skipped > 0 {
            self.log.tail.clear();
        }
        self.log.push(data);
    }

    /// Everything written to stdout.
    pub fn stdout(&self) -> &[u8] {
        &self.stdout
    }

    /// Takes stdout.
    pub fn take_stdout(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.stdout)
    }

    /// The log.
    pub fn log(&self) -> &LogTail {
        &self.log
    }

    /// The log, for adding platform lines.
    pub fn log_mut(&mut self) -> &mut LogTail {
        &mut self.log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keeps_only_the_tail() {
        let mut log = LogTail::default();
        log.push(b"start ");
        log.push(&vec![b'x'; limits::LOG_TAIL_BYTES]);
        log.push(b" end");
        let tail = log.tail();
        assert_eq!(tail.len(), limits::LOG_TAIL_BYTES);
        assert!(tail.ends_with(b"x end"));
        assert_eq!(log.total(), 6 + limits::LOG_TAIL_BYTES as u64 + 4);
    }

    #[test]
    fn stdout_is_bounded() {
        let mut stdio = Stdio::new(b"event".to_vec());
        assert_eq!(stdio.read_stdin(3), b"eve");
        assert_eq!(stdio.read_stdin(100), b"nt");
        assert_eq!(stdio.read_stdin(100), b"");
        let chunk = vec![0; 1 << 20];
        for _ in 0..6 {
            assert_eq!(stdio.write_stdout(&chunk), WriteOutcome::Written);
        }
        assert_eq!(stdio.write_stdout(b"!"), WriteOutcome::ResponseTooLarge);
        assert_eq!(stdio.stdout().len(), 6 << 20);
    }
}
