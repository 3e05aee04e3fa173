//! What `runtime-loop` does with one event, chosen by its `"action"` field.

use std::hint::black_box;
use std::io;

use serde_json::{Value, json};

/// The file the `write-tmp` and `read-tmp` actions (and `INIT_TMP`) use.
pub const STATE_FILE: &str = "/tmp/state.txt";

pub enum Reply {
    /// POSTed to `.../response` as is.
    Response(Vec<u8>),
    /// POSTed to `.../response` in Lambda's streaming mode.
    Stream(Stream),
    /// POSTed to `.../error` with this error type.
    Error {
        error_type: &'static str,
        message: &'static str,
    },
}

pub fn handle(body: &[u8], count: u64) -> Reply {
    let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |name: &str| event.get(name);
    match field("action").and_then(Value::as_str).unwrap_or("echo") {
        "count" => respond(json!({ "count": count })),
        "error" => Reply::Error {
            error_type: "Custom.Failure",
            message: "requested failure",
        },
        "crash" => crash(),
        "spin" => spin(),
        "exit" => std::process::exit(2),
        // Over the 6 MB response limit, as valid JSON: a string of 7 MiB in total.
        "big" => {
            let mut big = vec![b'b'; 7 << 20];
            big[0] = b'"';
            big[(7 << 20) - 1] = b'"';
            Reply::Response(big)
        }
        "write-tmp" => {
            let data = text(field("data"));
            respond(match std::fs::write(STATE_FILE, data) {
                Ok(()) => json!({ "ok": true }),
                Err(err) => json!({ "ok": false, "error": describe(&err) }),
            })
        }
        // /tmp outlives invocations of one environment, like Lambda's.
        "read-tmp" => respond(match std::fs::read(STATE_FILE) {
            Ok(data) => json!({ "data": String::from_utf8_lossy(&data) }),
            Err(_) => json!({ "data": null }),
        }),
        "read-file" => {
            let path = text(field("path"));
            respond(match std::fs::read(&path) {
                Ok(data) => json!({ "ok": true, "len": data.len() }),
                Err(err) => json!({ "ok": false, "error": describe(&err) }),
            })
        }
        // 16 bytes from the kernel's generator, asked for now (not a cached seed).
        "random" => respond(json!({ "random": random_hex() })),
        "stream" => stream(&event),
        "log-after" | "log-after-thread" | "hoard" => respond(json!({ "ok": true })),
        "log" => {
            let message = text(field("message"));
            println!("{message}");
            eprintln!("{message}");
            respond(json!({ "ok": true }))
        }
        // "echo" and anything unknown.
        _ => Reply::Response(body.to_vec()),
    }
}

/// A response to stream: `chunks` pieces of `size` bytes, piece `i` all `b'a' + i % 26`;
/// then error trailers if `error`; or, if `spin`, nothing after the first piece (the
/// runtime spins until the host's timeout ends it).
pub struct Stream {
    pub chunks: usize,
    pub size: usize,
    pub error: bool,
    pub spin: bool,
}

/// Most bytes a `stream` action sends (more than Lambda's 20 MB, so the limit can be hit).
const MAX_STREAM: usize = 32 << 20;

fn stream(event: &Value) -> Reply {
    let number = |name: &str, default: u64| {
        event
            .get(name)
            .and_then(Value::as_u64)
            .unwrap_or(default)
            .min(MAX_STREAM as u64) as usize
    };
    let (chunks, size) = (number("chunks", 3), number("size", 5));
    if chunks.saturating_mul(size) > MAX_STREAM {
        return Reply::Error {
            error_type: "Custom.TooBig",
            message: "a stream is at most 32 MiB",
        };
    }
    Reply::Stream(Stream {
        chunks,
        size,
        error: event.get("error") == Some(&Value::Bool(true)),
        spin: event.get("then").and_then(Value::as_str) == Some("spin"),
    })
}

/// Piece `index` of a stream.
pub fn piece(index: usize, size: usize) -> Vec<u8> {
    vec![b'a' + (index % 26) as u8; size]
}

/// Standard base64 with padding (for the error-body trailer).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn spin_forever() -> ! {
    spin()
}

/// Whether the event asks for `action`.
pub fn is(body: &[u8], action: &str) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|event| Some(event.get("action")?.as_str()? == action))
        .unwrap_or(false)
}

/// For a `log-after` or `log-after-thread` event, what to print once the response is
/// posted, and whether a second thread waits meanwhile.
pub fn log_after(body: &[u8]) -> Option<(String, bool)> {
    let event: Value = serde_json::from_slice(body).ok()?;
    let threaded = match event.get("action")?.as_str()? {
        "log-after" => false,
        "log-after-thread" => true,
        _ => return None,
    };
    Some((text(event.get("message")), threaded))
}

/// The JSON error document the Runtime API expects on its error endpoints.
pub fn error_body(error_type: &str, message: &str) -> Vec<u8> {
    json!({ "errorMessage": message, "errorType": error_type, "stackTrace": [] })
        .to_string()
        .into_bytes()
}

pub fn crash() -> ! {
    // black_box hides the constant so the compiler cannot turn the store into a trap of its own.
    let null = black_box(0usize) as *mut u8;
    // SAFETY: none; faulting is the point.
    unsafe { std::ptr::write_volatile(null, 1) };
    eprintln!("runtime-loop: write to address 0 did not fault");
    std::process::exit(1)
}

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = black_box(n.wrapping_add(1));
        std::hint::spin_loop();
    }
}

fn respond(value: Value) -> Reply {
    Reply::Response(value.to_string().into_bytes())
}

/// A string field as is; any other JSON as its text; absent as "".
fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// `NotFound (os error 2)`: the kind for people, the errno for tests that want it exact.
fn describe(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => format!("{:?} (os error {code})", err.kind()),
        None => format!("{:?}", err.kind()),
    }
}

/// 16 bytes from `getrandom(2)` in hex (the standard library keeps no public way to ask
/// the kernel each time, and this program has no dependency that does).
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    let ret: isize;
    // SAFETY: getrandom writes at most `bytes.len()` bytes to `bytes`, which outlives the
    // call; `syscall` clobbers only rcx and r11 besides rax.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") 318isize => ret,
            in("rdi") bytes.as_mut_ptr(),
            in("rsi") bytes.len(),
            in("rdx") 0usize,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret != bytes.len() as isize {
        return format!("getrandom failed: {ret}");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
