//! The Runtime API server (`RuntimeApi`) driven by a script read from the input: a
//! runtime's connections write arbitrary bytes and read their answers in arbitrary amounts,
//! while the host delivers invocations and drains events, as the VMM's loopback socket and
//! the development backend's sockets do.
//!
//! Each step is one byte, an operation, then its operands:
//! - 0: connect (the client keeps at most 8 connections; each connect is checked against
//!   the server's own limit)
//! - 1, i: disconnect connection i
//! - 2, n: deliver an invocation of n payload bytes, request id `r<k>` (k counts from 1);
//!   an odd n gives it a response stream (whose reader goes away at once when n & 2), which
//!   must get no empty piece and at most 20 MiB
//! - 3, i, n: the client of connection i reads n*64 bytes
//! - 4, i: the client of connection i reads everything
//! - 5..=255, i, hi, lo, bytes: the client of connection i writes hi*256+lo bytes (the
//!   next ones of the input)

#![no_main]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lambda_core::limits::MAX_STREAMED_RESPONSE_BYTES;
use lambda_core::runtime_api::{
    ConnectionId, INBOX_BYTES, MAX_CONNECTIONS, OUTPUT_HIGH_WATER, RuntimeApi,
};
use lambda_core::{Invocation, ResponseSink, ResponseStream};
use libfuzzer_sys::fuzz_target;

const DEADLINE_MS: u64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let mut api = RuntimeApi::new("arn:aws:lambda:us-east-1:012345678912:function:fuzz");
    let mut connections: Vec<ConnectionId> = vec![api.connect().expect("the first connection")];
    let mut delivered = 0u32;
    let mut accepted = 1usize;
    let mut cursor = Cursor(data);
    while let Some(op) = cursor.byte() {
        let pick = |cursor: &mut Cursor, connections: &[ConnectionId]| {
            connections[usize::from(cursor.byte().unwrap_or(0)) % connections.len()]
        };
        match op {
            0 => {
                let connected = api.connect();
                // Refused only once the server holds its limit (every connect so far counts
                // as an upper bound on what it holds).
                assert!(connected.is_ok() || accepted >= MAX_CONNECTIONS);
                accepted += usize::from(connected.is_ok());
                if let Ok(id) = connected
                    && connections.len() < 8
                {
                    connections.push(id);
                }
            }
            1 => {
                let id = pick(&mut cursor, &connections);
                api.disconnect(id);
                assert!(!api.is_connected(id));
                assert!(api.is_closing(id));
            }
            2 => {
                let size = usize::from(cursor.byte().unwrap_or(0));
                delivered += 1;
                let mut invocation = Invocation::new(vec![b'x'; size]);
                invocation.request_id = format!("r{delivered}");
                if size & 1 == 1 {
                    let sink = Counter {
                        bytes: Arc::new(AtomicUsize::new(0)),
                        gone: size & 2 == 2,
                    };
                    invocation = invocation.with_response_stream(ResponseStream::new(sink));
                }
                let _ = api.deliver(invocation, DEADLINE_MS);
            }
            3 => {
                let id = pick(&mut cursor, &connections);
                let n = usize::from(cursor.byte().unwrap_or(0)) * 64;
                let pending = api.pending_output(id).len();
                api.consume_output(id, n.min(pending));
            }
            4 => {
                let id = pick(&mut cursor, &connections);
                let _ = api.take_output(id);
            }
            _ => {
                let id = pick(&mut cursor, &connections);
                let hi = usize::from(cursor.byte().unwrap_or(0));
                let lo = usize::from(cursor.byte().unwrap_or(0));
                let bytes = cursor.take(hi * 256 + lo);
                let used = api.receive(id, bytes);
                assert!(used <= bytes.len());
            }
        }
        while api.next_event().is_some() {}
        let _ = api.phase();
        let _ = api.in_flight();
        for &id in &connections {
            let _ = api.is_parked(id);
            let _ = api.is_closing(id);
            // Output waiting to be read stays bounded: one response over the high-water
            // mark at most (an invocation's payload, or an answer to a whole inbox).
            assert!(
                api.pending_output(id).len() <= OUTPUT_HIGH_WATER + INBOX_BYTES + 64 * 1024,
                "{} bytes of output waiting",
                api.pending_output(id).len()
            );
        }
    }
});

/// A response stream's reader that counts what it is given.
struct Counter {
    bytes: Arc<AtomicUsize>,
    /// Whether the reader is gone (every write says so).
    gone: bool,
}

impl ResponseSink for Counter {
    fn write(&self, chunk: &[u8]) -> bool {
        assert!(!chunk.is_empty(), "an empty piece");
        let total = self.bytes.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len();
        assert!(
            total <= MAX_STREAMED_RESPONSE_BYTES,
            "{total} bytes streamed"
        );
        !self.gone
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&byte, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(byte)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}
