//! What `runtime-loop` does with one event, chosen by its `"action"` field.

use std::hint::black_box;
use std::io;

use serde_json::{Value, json};

/// The file the `write-tmp` and `read-tmp` actions (and `INIT_TMP`) use.
pub const STATE_FILE: &str = "/tmp/state.txt";

pub enum Reply {
    /// POSTed to `.../response` as is.
    Response(Vec<u8>),
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
