//! The `application/vnd.amazon.eventstream` framing of `InvokeWithResponseStream`: each
//! message is a prelude (total length, headers length, the prelude's CRC-32), headers,
//! a payload and the CRC-32 of all that came before, big-endian throughout.

/// One header: a name and a string value (type 7, the only type these messages use).
fn header(out: &mut Vec<u8>, name: &str, value: &str) {
    // Names and values are the constants below: short enough for their length fields.
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out.push(7);
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// One event message of type `event_type` carrying `payload`.
fn message(event_type: &str, content_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut headers = Vec::new();
    header(&mut headers, ":event-type", event_type);
    header(&mut headers, ":content-type", content_type);
    header(&mut headers, ":message-type", "event");
    // Prelude (12) + headers + payload + message CRC (4). A payload is at most one chunk
    // of a 20 MB response, far below the 4 GiB the length field holds.
    let total = 12 + headers.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&headers);
    out.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    out
}

/// The largest payload one `PayloadChunk` carries; longer pieces are split.
pub(super) const MAX_CHUNK_BYTES: usize = 1 << 20;

/// `PayloadChunk` messages for `bytes` of the function's response (one per
/// [`MAX_CHUNK_BYTES`]).
pub(super) fn payload_chunks(bytes: &[u8]) -> Vec<u8> {
    bytes
        .chunks(MAX_CHUNK_BYTES)
        .flat_map(|piece| message("PayloadChunk", "application/octet-stream", piece))
        .collect()
}

/// The `InvokeComplete` message that ends the stream: `ErrorCode` and `ErrorDetails` when
/// the function failed, `LogResult` (base64 of the log's tail) when it was asked for.
pub(super) fn invoke_complete(error: Option<(&str, &str)>, log_result: Option<&str>) -> Vec<u8> {
    let mut body = serde_json::Map::new();
    if let Some((code, details)) = error {
        body.insert("ErrorCode".into(), code.into());
        body.insert("ErrorDetails".into(), details.into());
    }
    if let Some(log) = log_result {
        body.insert("LogResult".into(), log.into());
    }
    let json = serde_json::Value::Object(body).to_string();
    message("InvokeComplete", "application/json", json.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one message back: (headers, payload), checking both CRCs.
    fn read(message: &[u8]) -> (Vec<(String, String)>, Vec<u8>, usize) {
        let be32 = |at: usize| u32::from_be_bytes(message[at..at + 4].try_into().unwrap());
        let total = be32(0) as usize;
        let headers_len = be32(4) as usize;
        assert_eq!(be32(8), crc32fast::hash(&message[..8]), "prelude CRC");
        assert_eq!(
            be32(total - 4),
            crc32fast::hash(&message[..total - 4]),
            "message CRC"
        );
        let mut headers = Vec::new();
        let mut at = 12;
        while at < 12 + headers_len {
            let name_len = message[at] as usize;
            let name = String::from_utf8(message[at + 1..at + 1 + name_len].to_vec()).unwrap();
            at += 1 + name_len;
            assert_eq!(message[at], 7, "a string header");
            let value_len = u16::from_be_bytes([message[at + 1], message[at + 2]]) as usize;
            let value = String::from_utf8(message[at + 3..at + 3 + value_len].to_vec()).unwrap();
            at += 3 + value_len;
            headers.push((name, value));
        }
        (headers, message[at..total - 4].to_vec(), total)
    }

    #[test]
    fn a_chunk_is_framed_as_the_sdks_read_it() {
        let framed = payload_chunks(b"hello");
        let (headers, payload, total) = read(&framed);
        assert_eq!(total, framed.len());
        assert_eq!(payload, b"hello");
        assert_eq!(
            headers,
            [
                (":event-type".into(), "PayloadChunk".into()),
                (":content-type".into(), "application/octet-stream".into()),
                (":message-type".into(), "event".into()),
            ]
        );
        // The CRC-32 is IEEE's (the check value of "123456789" is cbf43926).
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn long_pieces_are_split_and_the_end_says_how_it_went() {
        let big = vec![b'x'; MAX_CHUNK_BYTES + 10];
        let framed = payload_chunks(&big);
        let (_, first, used) = read(&framed);
        let (_, second, rest) = read(&framed[used..]);
        assert_eq!((first.len(), second.len()), (MAX_CHUNK_BYTES, 10));
        assert_eq!(used + rest, framed.len());
        let (headers, payload, _) = read(&invoke_complete(
            Some(("Sandbox.Timedout", "late")),
            Some("bG9n"),
        ));
        assert_eq!(headers[0].1, "InvokeComplete");
        let body: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"ErrorCode": "Sandbox.Timedout", "ErrorDetails": "late", "LogResult": "bG9n"})
        );
        let (_, clean, _) = read(&invoke_complete(None, None));
        assert_eq!(clean, b"{}");
    }
}
