//! An incremental decoder for `Transfer-Encoding: chunked` bodies.
//!
//! It consumes the wire bytes as they arrive, in pieces of any size, and hands the decoded
//! data to a sink; it never buffers data itself. Chunk extensions are read and ignored; trailer
//! fields are parsed and kept ([`ChunkedDecoder::trailers`]). Every line it has to hold (a
//! chunk-size line, the trailer fields) is bounded.

/// Longest chunk-size line (size, extensions and CRLF) accepted.
const MAX_SIZE_LINE: usize = 1024;
/// Most bytes of trailer fields accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

/// Why a chunked body could not be decoded.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize,
)]
pub enum ChunkError {
    /// A chunk-size line that is not a hexadecimal number (or does not fit in 64 bits).
    #[error("invalid chunk size line")]
    InvalidSize,
    /// A chunk-size line longer than 1 KiB.
    #[error("chunk size line longer than {MAX_SIZE_LINE} bytes")]
    SizeLineTooLong,
    /// Chunk data not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    MissingCrlf,
    /// Trailer fields longer than 16 KiB.
    #[error("chunked trailer fields longer than {MAX_TRAILERS} bytes")]
    TrailersTooLong,
    /// A trailer line that is not a `name: value` field.
    #[error("invalid chunked trailer field")]
    InvalidTrailer,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum State {
    /// Reading a chunk-size line; holds the bytes seen so far on it.
    Size(Vec<u8>),
    /// Inside chunk data, with this many bytes to go.
    Data(u64),
    /// After chunk data: expecting CR (or a bare LF).
    DataCr,
    /// After chunk data and CR: expecting LF.
    DataLf,
    /// After the last chunk: reading trailer lines. Holds the current line so far and the
    /// total trailer bytes so far.
    Trailers { line: Vec<u8>, total: usize },
    /// The body has ended.
    Done,
}

/// Decodes one chunked body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkedDecoder {
    state: State,
    /// The trailer fields read so far.
    #[serde(default)]
    trailers: Vec<(String, String)>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size(Vec::new()),
            trailers: Vec::new(),
        }
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the body has ended (the last chunk and the trailers have been read).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The trailer fields read so far (all of them once [`is_done`](Self::is_done)), as
    /// name and value: names keep their case, values are trimmed and decoded lossily as UTF-8.
    pub fn trailers(&self) -> &[(String, String)] {
        &self.trailers
    }

    /// Takes the trailer fields read so far, leaving none.
    pub fn take_trailers(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.trailers)
    }

    /// Decodes from `input`, passing decoded data to `sink`. Returns how many bytes of `input`
    /// were consumed: all of them, unless the body ended first, in which case the bytes after
    /// its end are left for the next request.
    pub fn decode(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut pos: usize = 0;
        while let Some(&byte) = input.get(pos) {
            match &mut self.state {
                State::Done => break,
                State::Size(line) => {
                    pos = pos.saturating_add(1);
                    if byte == b'\n' {
                        let size = parse_size_line(line)?;
                        self.state = if size == 0 {
                            State::Trailers {
                                line: Vec::new(),
                                total: 0,
                            }
                        } else {
                            State::Data(size)
                        };
                    } else if line.len() >= MAX_SIZE_LINE {
                        return Err(ChunkError::SizeLineTooLong);
                    } else {
                        line.push(byte);
                    }
                }
                State::Data(remaining) => {
                    let rest = input.get(pos..).unwrap_or_default();
                    let take =
                        usize::try_from(*remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    sink(rest.get(..take).unwrap_or_default());
                    pos = pos.saturating_add(take);
                    *remaining = remaining.saturating_sub(u64::try_from(take).unwrap_or(u64::MAX));
                    if *remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr => {
                    pos = pos.saturating_add(1);
                    self.state = match byte {
                        b'\r' => State::DataLf,
                        b'\n' => State::Size(Vec::new()),
                        _ => return Err(ChunkError::MissingCrlf),
                    };
                }
                State::DataLf => {
                    pos = pos.saturating_add(1);
                    if byte != b'\n' {
                        return Err(ChunkError::MissingCrlf);
                    }
                    self.state = State::Size(Vec::new());
                }
                State::Trailers { line, total } => {
                    pos = pos.saturating_add(1);
                    *total = total.saturating_add(1);
                    if *total > MAX_TRAILERS {
                        return Err(ChunkError::TrailersTooLong);
                    }
                    if byte != b'\n' {
                        line.push(byte);
                        continue;
                    }
                    let field = std::mem::take(line);
                    let field = field.strip_suffix(b"\r").unwrap_or(&field);
                    if field.is_empty() {
                        self.state = State::Done;
                    } else {
                        self.trailers.push(parse_trailer(field)?);
                    }
                }
            }
        }
        Ok(pos)
    }
}

/// Parses a trailer line (without its line ending) into a field's name and value.
fn parse_trailer(line: &[u8]) -> Result<(String, String), ChunkError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(ChunkError::InvalidTrailer)?;
    let (name, value) = (&line[..colon], &line[colon..]);
    let value = value.get(1..).unwrap_or_default();
    // A token: no whitespace (which also refuses obsolete line folding) or separators.
    let token = |b: &u8| b.is_ascii_graphic() && !b"\"(),/:;<=>?@[\\]{}".contains(b);
    if name.is_empty() || !name.iter().all(token) {
        return Err(ChunkError::InvalidTrailer);
    }
    Ok((
        String::from_utf8_lossy(name).into_owned(),
        String::from_utf8_lossy(value.trim_ascii()).into_owned(),
    ))
}

/// Parses `size [; extensions] [CR]` into the chunk size.
fn parse_size_line(line: &[u8]) -> Result<u64, ChunkError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let size_end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let digits = line[..size_end].trim_ascii();
    if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(ChunkError::InvalidSize);
    }
    let text = std::str::from_utf8(digits).map_err(|_| ChunkError::InvalidSize)?;
    u64::from_str_radix(text, 16).map_err(|_| ChunkError::InvalidSize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut decoder = ChunkedDecoder::new();
        let mut out = Vec::new();
        let used = decoder.decode(input, &mut |data| out.extend_from_slice(data))?;
        Ok((out, used, decoder.is_done()))
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let (out, used, done) = decode_all(wire).unwrap();
        assert_eq!(out, b"hello world");
        assert!(done);
        assert_eq!(&wire[used..], b"NEXT");
    }

    #[test]
    fn trailer_fields_are_parsed_at_any_split() {
        let wire = b"1\r\na\r\n0\r\nLambda-Runtime-Function-Error-Type: Oops \r\nX-B:\tv:2\n\r\n";
        for split in [1, 2, 5, wire.len()] {
            let mut decoder = ChunkedDecoder::new();
            for piece in wire.chunks(split) {
                decoder.decode(piece, &mut |_| {}).unwrap();
            }
            assert!(decoder.is_done());
            assert_eq!(
                decoder.trailers(),
                [
                    (
                        "Lambda-Runtime-Function-Error-Type".to_string(),
                        "Oops".to_string()
                    ),
                    ("X-B".to_string(), "v:2".to_string())
                ]
            );
            assert_eq!(decoder.take_trailers().len(), 2);
            assert!(decoder.trailers().is_empty());
        }
    }

    #[test]
    fn malformed_trailer_lines_are_errors() {
        for wire in [
            &b"0\r\nno colon\r\n\r\n"[..],
            b"0\r\n: empty name\r\n\r\n",
            b"0\r\nA: 1\r\n folded\r\n\r\n",
            b"0\r\nBad Name: 1\r\n\r\n",
        ] {
            assert_eq!(
                decode_all(wire),
                Err(ChunkError::InvalidTrailer),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn accepts_bare_lf_and_uppercase_hex() {
        let (out, _, done) = decode_all(b"A\nabcdefghij\n0\n\n").unwrap();
        assert_eq!(out, b"abcdefghij");
        assert!(done);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_result() {
        let wire = b"3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n";
        let mut decoder = ChunkedDecoder::new();
        let mut out = Vec::new();
        for byte in wire.chunks(1) {
            assert_eq!(
                decoder
                    .decode(byte, &mut |d| out.extend_from_slice(d))
                    .unwrap(),
                1
            );
        }
        assert!(decoder.is_done());
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn rejects_bad_framing() {
        assert_eq!(decode_all(b"zz\r\n"), Err(ChunkError::InvalidSize));
        assert_eq!(decode_all(b"\r\n"), Err(ChunkError::InvalidSize));
        assert_eq!(
            decode_all(b"11111111111111111\r\n"),
            Err(ChunkError::InvalidSize)
        );
        assert_eq!(decode_all(b"1\r\naXY"), Err(ChunkError::MissingCrlf));
        assert_eq!(decode_all(&[b'1'; 2000]), Err(ChunkError::SizeLineTooLong));
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(b'x', MAX_TRAILERS + 1));
        assert_eq!(decode_all(&trailers), Err(ChunkError::TrailersTooLong));
    }

    #[test]
    fn huge_declared_chunk_is_streamed_not_buffered() {
        let mut decoder = ChunkedDecoder::new();
        let mut seen = 0usize;
        decoder
            .decode(b"ffffffffffffffff\r\n", &mut |d| seen += d.len())
            .unwrap();
        let block = vec![b'x'; 4096];
        for _ in 0..10 {
            assert_eq!(
                decoder.decode(&block, &mut |d| seen += d.len()).unwrap(),
                4096
            );
        }
        assert_eq!(seen, 40_960);
        assert!(!decoder.is_done());
    }
}
