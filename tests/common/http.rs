//! A minimal HTTP/1.1 client over a plain socket, for the gateway tests: it writes requests
//! byte for byte (so a test can send malformed, partial or oversized ones) and reads one
//! response at a time by its `Content-Length`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One response.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Lambda's error type (`x-amzn-ErrorType`).
    pub fn error_type(&self) -> Option<&str> {
        self.header("x-amzn-errortype")
    }
}

/// A kept-alive connection.
pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Connects to `address`; reads give up after 30 s.
    pub fn open(address: SocketAddr) -> Connection {
        let stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Connection {
            reader: BufReader::new(stream),
        }
    }

    /// Writes raw bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Closes the writing half (a half-closed connection).
    pub fn shutdown_write(&mut self) {
        self.reader
            .get_mut()
            .shutdown(std::net::Shutdown::Write)
            .unwrap();
    }

    /// Sends a request with a `Content-Length` body.
    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: gateway\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        // One write: a second small one would wait for the first's ACK (Nagle).
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        self.write(&request);
    }

    /// Reads one response; `None` when the server closed the connection first.
    pub fn read(&mut self) -> Option<HttpResponse> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status = line.split(' ').nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).ok()?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':')?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).ok()?;
        Some(HttpResponse {
            status,
            headers,
            body,
        })
    }

    /// Reads until the server closes the connection, and returns what it sent until then;
    /// panics if it is still open after the read timeout.
    pub fn rest(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => rest,
            Err(error) => panic!("the server kept the connection open: {error}"),
        }
    }
}

/// One request on a connection of its own.
pub fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut connection = Connection::open(address);
    connection.send(method, path, headers, body);
    connection
        .read()
        .unwrap_or_else(|| panic!("no response to {method} {path}"))
}

/// The messages of an `application/vnd.amazon.eventstream` body: each message's
/// `:event-type` and payload, with both of its CRC-32s checked.
pub fn event_messages(mut body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut messages = Vec::new();
    while !body.is_empty() {
        let be32 = |at: usize| u32::from_be_bytes(body[at..at + 4].try_into().unwrap());
        let (total, headers_len) = (be32(0) as usize, be32(4) as usize);
        assert_eq!(be32(8), crc32fast::hash(&body[..8]), "prelude CRC");
        assert_eq!(
            be32(total - 4),
            crc32fast::hash(&body[..total - 4]),
            "message CRC"
        );
        let mut event_type = String::new();
        let mut at = 12;
        while at < 12 + headers_len {
            let name_len = body[at] as usize;
            let name = &body[at + 1..at + 1 + name_len];
            at += 1 + name_len;
            assert_eq!(body[at], 7, "string headers only");
            let value_len = u16::from_be_bytes([body[at + 1], body[at + 2]]) as usize;
            let value = &body[at + 3..at + 3 + value_len];
            at += 3 + value_len;
            if name == b":event-type" {
                event_type = String::from_utf8(value.to_vec()).unwrap();
            }
        }
        messages.push((event_type, body[at..total - 4].to_vec()));
        body = &body[total..];
    }
    messages
}
