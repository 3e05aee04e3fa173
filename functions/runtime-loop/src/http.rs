//! Just enough HTTP/1.1 to speak the Lambda Runtime API.
//!
//! One keep-alive connection carries every request (opened lazily, reopened only after the
//! server closes it or an I/O error leaves it in an unknown state). Each request goes out in
//! a single write and responses are read through a buffer: every syscall is a VM exit inside
//! the micro-VM, so fewer is faster.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// Longest status or header line accepted.
const MAX_LINE: u64 = 64 * 1024;
/// Largest body accepted (the Runtime API's payloads are at most 6 MB).
const MAX_BODY: usize = 32 * 1024 * 1024;

pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this name (names are case-insensitive in HTTP).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn closes(&self) -> bool {
        self.header("Connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

pub struct Client {
    /// `host:port`, as found in `AWS_LAMBDA_RUNTIME_API`.
    api: String,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    pub fn new(api: String) -> Self {
        Client { api, conn: None }
    }

    /// Sends one request and reads its response on the shared connection.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let result = self.exchange(method, path, headers, body);
        self.settle(result)
    }

    /// Keeps the connection for the next request unless `result` leaves it unusable: after
    /// an error its state is unknown; after `close` it is gone.
    fn settle(&mut self, result: io::Result<Response>) -> io::Result<Response> {
        match &result {
            Ok(response) if !response.closes() => {}
            _ => self.conn = None,
        }
        result
    }

    /// The shared connection, opened if there is none.
    fn connection(&mut self) -> io::Result<&mut BufReader<TcpStream>> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(&self.api)?;
            // Requests are written whole, so Nagle's algorithm would only add latency.
            stream.set_nodelay(true)?;
            self.conn = Some(BufReader::with_capacity(64 * 1024, stream));
        }
        Ok(self.conn.as_mut().expect("opened above"))
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.api);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if method != "GET" || !body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let conn = self.connection()?;
        conn.get_mut().write_all(&request)?;
        read_response(conn)
    }

    /// Starts a `POST` whose body follows in chunks ([`Client::chunk`], then
    /// [`Client::finish_chunks`]).
    pub fn start_chunked(&mut self, path: &str, headers: &[(&str, &str)]) -> io::Result<()> {
        let mut head = format!("POST {path} HTTP/1.1\r\nHost: {}\r\n", self.api);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        let result = self.connection()?.get_mut().write_all(head.as_bytes());
        self.forget_on_error(result)
    }

    /// Sends one chunk of the body, in one write: the server sees it as it is produced.
    pub fn chunk(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(()); // an empty chunk would end the body
        }
        let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
        framed.extend_from_slice(data);
        framed.extend_from_slice(b"\r\n");
        let result = self.connection()?.get_mut().write_all(&framed);
        self.forget_on_error(result)
    }

    /// Ends the chunked body with `trailers` and reads the response.
    pub fn finish_chunks(&mut self, trailers: &[(&str, &str)]) -> io::Result<Response> {
        let mut end = String::from("0\r\n");
        for (name, value) in trailers {
            end.push_str(&format!("{name}: {value}\r\n"));
        }
        end.push_str("\r\n");
        let result = self.connection().and_then(|conn| {
            conn.get_mut().write_all(end.as_bytes())?;
            read_response(conn)
        });
        self.settle(result)
    }

    fn forget_on_error(&mut self, result: io::Result<()>) -> io::Result<()> {
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

fn read_response(conn: &mut BufReader<TcpStream>) -> io::Result<Response> {
    let status_line = read_line(conn)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(conn)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let chunked = response
        .header("Transfer-Encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        response.body = read_chunked(conn)?;
    } else if let Some(length) = response.header("Content-Length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {length:?}")))?;
        response.body = read_exact(conn, length)?;
    } else if !(status < 200 || status == 204 || status == 304) {
        // No length given: the body runs until the server closes the connection.
        conn.take(MAX_BODY as u64).read_to_end(&mut response.body)?;
        response
            .headers
            .push(("Connection".to_string(), "close".to_string()));
    }
    Ok(response)
}

fn read_chunked(conn: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(conn)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Skip trailers up to the blank line that ends the message.
            while !read_line(conn)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(invalid("chunked body too large".to_string()));
        }
        body.extend_from_slice(&read_exact(conn, size)?);
        read_line(conn)?;
    }
}

fn read_exact(conn: &mut BufReader<TcpStream>, length: usize) -> io::Result<Vec<u8>> {
    if length > MAX_BODY {
        return Err(invalid(format!("body of {length} bytes is too large")));
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body)?;
    Ok(body)
}

/// One CRLF-terminated line without its terminator; EOF before it is an error.
fn read_line(conn: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = String::new();
    conn.take(MAX_LINE).read_line(&mut line)?;
    if !line.ends_with('\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed mid-response",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
