//! `runtime-rust`: a function written against the official `lambda_runtime` crate.
//!
//! Proves that an unmodified, real-world Runtime API client runs inside the micro-VM, with
//! tokio's default multi-thread runtime as `cargo lambda new` generates it (worker threads,
//! a blocking pool, hyper). The handler answers `{"echo": <event>, "count": N}`, where N
//! counts the invocations this process has served: N > 1 shows a warm environment was reused.
//!
//! An event `{"stream": ["a", "b", ...]}` is answered with the crate's streaming response
//! instead: its metadata prelude, eight NUL bytes, then each string as a piece of the body.

use std::sync::atomic::{AtomicU64, Ordering};

use lambda_runtime::streaming::{Body, Response, channel};
use lambda_runtime::{Error, FunctionResponse, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// Invocations served by this process (survives between warm invocations).
static COUNT: AtomicU64 = AtomicU64::new(0);

async fn handler(event: LambdaEvent<Value>) -> Result<FunctionResponse<Value, Body>, Error> {
    let count = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    if let Some(pieces) = event.payload.get("stream").and_then(Value::as_array) {
        let pieces: Vec<String> = pieces
            .iter()
            .filter_map(|piece| piece.as_str().map(str::to_string))
            .collect();
        let (mut sender, body) = channel();
        tokio::spawn(async move {
            for piece in pieces {
                if sender.send_data(piece.into()).await.is_err() {
                    break;
                }
            }
        });
        return Ok(FunctionResponse::StreamingResponse(Response::from(body)));
    }
    Ok(FunctionResponse::BufferedResponse(
        json!({ "echo": event.payload, "count": count }),
    ))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
