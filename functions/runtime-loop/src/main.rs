//! `runtime-loop`: a Lambda custom runtime (`provided` style) written by hand on `std` only.
//!
//! It speaks the Runtime API 2018-06-01 at `AWS_LAMBDA_RUNTIME_API` over one keep-alive
//! HTTP/1.1 connection: `GET .../invocation/next`, then `POST .../{id}/response` or
//! `.../{id}/error`, forever. Unlike the official crate it makes only the syscalls it needs,
//! so it is the baseline for warm-invoke cost, and its event-selected actions exercise the
//! engine's lifecycle: warm state, function errors, crashes, timeouts, limits and /tmp.
//!
//! Event `{"action": ...}` (anything else, or no action, is echoed back verbatim):
//! `echo`, `count` (`{"count":N}`, invocations served by this process), `error` (a
//! `Custom.Failure` function error), `crash` (null write), `spin` (never returns), `exit`
//! (status 2), `big` (a 7 MiB response), `write-tmp` + `data`, `read-tmp`, `read-file` +
//! `path`, `log` + `message` (to stdout and stderr), `log-after` + `message` (to stderr after
//! the response is posted, before the next `next`), `log-after-thread` + `message` (the
//! same while a second thread waits for it), `hoard` (after the response, takes all
//! the kernel state it can and holds it until the next event; see `hoard.rs`), `stream`
//! (`{"action":"stream","chunks":N,"size":S,"error":bool,"then":"spin"|"return"}`,
//! defaults 3, 5, false, "return": a response in Lambda's streaming mode, N chunks of S
//! bytes, chunk i all `'a' + i % 26`, each in its own write; `error` adds the error
//! trailers of a `Custom.StreamFailure`; `then: "spin"` spins after the first chunk).
//!
//! Environment: `INIT_FAIL` reports `Runtime.InitError` and exits 1 before the first
//! `next`; `INIT_CRASH` writes to a null pointer during init; `INIT_LOG` is printed to
//! stdout during init; `INIT_TMP` is written to `/tmp/state.txt` during init.

mod actions;
mod hoard;
mod http;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use actions::Reply;
use http::Client;

const API: &str = "/2018-06-01/runtime";
const ERROR_TYPE_HEADER: &str = "Lambda-Runtime-Function-Error-Type";
const JSON: (&str, &str) = ("Content-Type", "application/json");

/// Invocations served by this process: it survives between warm invocations.
static SERVED: AtomicU64 = AtomicU64::new(0);

fn main() -> ExitCode {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        eprintln!("runtime-loop: AWS_LAMBDA_RUNTIME_API is not set");
        return ExitCode::FAILURE;
    };
    let mut client = Client::new(api);
    if let Ok(message) = std::env::var("INIT_LOG") {
        println!("{message}");
    }
    if let Ok(data) = std::env::var("INIT_TMP") {
        // State an Init leaves behind in /tmp (a snapshot after Init keeps it).
        let _ = std::fs::write(actions::STATE_FILE, data);
    }
    if std::env::var_os("INIT_CRASH").is_some() {
        actions::crash();
    }
    if std::env::var_os("INIT_FAIL").is_some() {
        let body = actions::error_body("Runtime.InitError", "INIT_FAIL is set");
        let headers = [JSON, (ERROR_TYPE_HEADER, "Runtime.InitError")];
        if let Err(err) = client.request("POST", &format!("{API}/init/error"), &headers, &body) {
            eprintln!("runtime-loop: reporting the init error failed: {err}");
        }
        return ExitCode::FAILURE;
    }
    loop {
        let (id, event) = match next(&mut client) {
            Ok(invocation) => invocation,
            Err(err) => {
                eprintln!("runtime-loop: {err}");
                return ExitCode::FAILURE;
            }
        };
        hoard::release();
        let count = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
        let (path, headers, body) = match actions::handle(&event, count) {
            Reply::Stream(stream) => {
                let path = format!("{API}/invocation/{id}/response");
                match send_stream(&mut client, &path, &stream) {
                    Ok(r) if (200..300).contains(&r.status) => {}
                    Ok(r) => eprintln!("runtime-loop: streamed {path} answered {}", r.status),
                    Err(err) => eprintln!("runtime-loop: streaming {path} failed: {err}"),
                }
                continue;
            }
            Reply::Response(body) => (format!("{API}/invocation/{id}/response"), vec![JSON], body),
            Reply::Error {
                error_type,
                message,
            } => (
                format!("{API}/invocation/{id}/error"),
                vec![JSON, (ERROR_TYPE_HEADER, error_type)],
                actions::error_body(error_type, message),
            ),
        };
        // A refused result (e.g. 413 for a response over the limit) is the engine's verdict
        // on this invocation only: note it and carry on serving, as real runtimes do.
        match client.request("POST", &path, &headers, &body) {
            Ok(r) if (200..300).contains(&r.status) => {}
            Ok(r) => eprintln!("runtime-loop: {path} answered {}", r.status),
            Err(err) => eprintln!("runtime-loop: POST {path} failed: {err}"),
        }
        if let Some((message, threaded)) = actions::log_after(&event) {
            if threaded {
                // A second thread blocks until the message is out: the invocation is not
                // over while this one still works towards its next `next`.
                let (tx, rx) = std::sync::mpsc::channel::<()>();
                let waiter = std::thread::spawn(move || rx.recv().is_ok());
                std::thread::yield_now();
                eprintln!("{message}");
                let _ = tx.send(());
                let _ = waiter.join();
            } else {
                eprintln!("{message}");
            }
        }
        if actions::is(&event, "hoard") {
            eprintln!("{}", hoard::hoard());
        }
    }
}

/// Posts a response in Lambda's streaming mode, chunk by chunk.
fn send_stream(
    client: &mut Client,
    path: &str,
    stream: &actions::Stream,
) -> std::io::Result<http::Response> {
    let mut headers = vec![
        ("Lambda-Runtime-Function-Response-Mode", "streaming"),
        ("Content-Type", "application/octet-stream"),
    ];
    if stream.error {
        headers.push((
            "Trailer",
            "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
        ));
    }
    client.start_chunked(path, &headers)?;
    for index in 0..stream.chunks {
        client.chunk(&actions::piece(index, stream.size))?;
        if stream.spin {
            actions::spin_forever();
        }
    }
    let error_body;
    let mut trailers = Vec::new();
    if stream.error {
        error_body = actions::base64(&actions::error_body(
            "Custom.StreamFailure",
            "failed mid-stream",
        ));
        trailers.push((ERROR_TYPE_HEADER, "Custom.StreamFailure"));
        trailers.push(("Lambda-Runtime-Function-Error-Body", error_body.as_str()));
    }
    client.finish_chunks(&trailers)
}

/// Waits for the next event: its request id and body.
fn next(client: &mut Client) -> Result<(String, Vec<u8>), String> {
    let path = format!("{API}/invocation/next");
    // A second try covers a keep-alive connection the server dropped while we were idle.
    let response = client
        .request("GET", &path, &[], b"")
        .or_else(|_| client.request("GET", &path, &[], b""))
        .map_err(|err| format!("GET {path} failed: {err}"))?;
    if response.status != 200 {
        return Err(format!("GET {path} answered {}", response.status));
    }
    let id = response
        .header("Lambda-Runtime-Aws-Request-Id")
        .ok_or("the event has no Lambda-Runtime-Aws-Request-Id")?
        .to_string();
    Ok((id, response.body))
}
