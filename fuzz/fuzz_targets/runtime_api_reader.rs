//! The Runtime API's HTTP/1.1 request reader and chunked decoder on arbitrary bytes, fed
//! whole and again split at arbitrary points: a TCP stream can be cut anywhere, so both ways
//! must give the same requests and the same errors, and every call must make progress. The
//! reader is driven twice: collecting bodies, and streaming the responses of invocation `x`
//! (where the pieces it hands out depend on the cuts, but not what they add up to).
//!
//! The first two bytes choose the cut points (pieces alternate between two lengths); the
//! rest is the connection's input.

#![no_main]

use lambda_core::limits::MAX_STREAMED_RESPONSE_BYTES;
use lambda_core::runtime_api::{Body, ChunkedDecoder, MAX_BODY_BYTES, ReadEvent, RequestReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (cuts, input) = match data {
        [a, b, rest @ ..] => ((usize::from(*a) + 1, usize::from(*b % 8) + 1), rest),
        _ => return,
    };
    let whole = read(&[input]);
    let split = read(&pieces(input, cuts));
    assert_eq!(
        whole, split,
        "the requests depend on where the input was cut"
    );

    let whole = read_streaming(&[input]);
    let split = read_streaming(&pieces(input, cuts));
    assert_eq!(
        whole, split,
        "the streamed responses depend on where the input was cut"
    );

    let whole = decode(&[input]);
    let split = decode(&pieces(input, cuts));
    assert_eq!(
        whole, split,
        "the chunked body depends on where the input was cut"
    );
});

/// `input` cut into pieces whose lengths alternate between `cuts.0` and `cuts.1`.
fn pieces(mut input: &[u8], cuts: (usize, usize)) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut lengths = [cuts.0, cuts.1].into_iter().cycle();
    while !input.is_empty() {
        let (piece, rest) = input.split_at(lengths.next().unwrap().min(input.len()));
        out.push(piece);
        input = rest;
    }
    out
}

/// The events a fresh reader gives for `pieces`, fed one after the other as a server does:
/// each piece until it is used up, the rest fed again after each event.
fn read(pieces: &[&[u8]]) -> Vec<ReadEvent> {
    let mut reader = RequestReader::new();
    let mut events = Vec::new();
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() {
            let (used, event) = reader.feed(rest);
            assert!(used <= rest.len());
            // A call that neither consumes nor reports would spin a server forever.
            assert!(used > 0 || event.is_some(), "no progress");
            rest = &rest[used..];
            if let Some(ReadEvent::Request(request)) = &event
                && let Body::Complete(body) = &request.body
            {
                assert!(body.len() <= MAX_BODY_BYTES);
            }
            events.extend(event);
        }
    }
    if reader.is_closed() {
        assert_eq!(reader.feed(b"GET / HTTP/1.1\r\n\r\n"), (18, None));
    }
    events
}

/// The events a fresh reader gives for `pieces` when responses of invocation `x` are
/// streamed, with the pieces of each streamed body joined (into its `StreamEnd`, or a
/// `StreamData` before an error): the pieces depend on the cuts, their sum must not.
fn read_streaming(pieces: &[&[u8]]) -> Vec<ReadEvent> {
    let mut reader = RequestReader::new();
    let mut events = Vec::new();
    let mut streamed: Vec<u8> = Vec::new();
    let mut total = 0usize;
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() {
            let (used, event) = reader.feed_streaming(rest, Some("x"));
            assert!(used <= rest.len());
            assert!(used > 0 || event.is_some(), "no progress");
            rest = &rest[used..];
            match event {
                None => {}
                Some(ReadEvent::StreamData(data)) => {
                    assert!(!data.is_empty(), "an empty piece");
                    total += data.len();
                    streamed.extend_from_slice(&data);
                }
                Some(ReadEvent::StreamEnd { data, trailers }) => {
                    total += data.len();
                    assert!(total <= MAX_STREAMED_RESPONSE_BYTES);
                    streamed.extend_from_slice(&data);
                    events.push(ReadEvent::StreamEnd {
                        data: std::mem::take(&mut streamed),
                        trailers,
                    });
                    total = 0;
                }
                Some(ReadEvent::StreamTooLarge) => {
                    assert!(total <= MAX_STREAMED_RESPONSE_BYTES);
                    // Where the cut fell decides how much was handed out; not compared.
                    streamed.clear();
                    total = 0;
                    events.push(ReadEvent::StreamTooLarge);
                }
                Some(other) => {
                    if !streamed.is_empty() {
                        events.push(ReadEvent::StreamData(std::mem::take(&mut streamed)));
                    }
                    total = 0;
                    events.push(other);
                }
            }
        }
    }
    if !streamed.is_empty() {
        events.push(ReadEvent::StreamData(streamed));
    }
    events
}

/// What a fresh chunked decoder makes of `pieces`: the data, the bytes consumed and whether
/// the body ended, or the error.
fn decode(
    pieces: &[&[u8]],
) -> Result<(Vec<u8>, usize, bool), lambda_core::runtime_api::ChunkError> {
    let mut decoder = ChunkedDecoder::new();
    let mut data = Vec::new();
    let mut used = 0;
    for piece in pieces {
        let n = decoder.decode(piece, &mut |bytes| data.extend_from_slice(bytes))?;
        assert!(n <= piece.len());
        used += n;
        if decoder.is_done() {
            assert!(data.len() <= used);
            return Ok((data, used, true));
        }
        assert_eq!(
            n,
            piece.len(),
            "a body that has not ended must take all its input"
        );
    }
    assert!(data.len() <= used);
    Ok((data, used, decoder.is_done()))
}
