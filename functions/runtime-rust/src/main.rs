//! `runtime-rust`: a function written against the official `lambda_runtime` crate.
//!
//! Proves that an unmodified, real-world Runtime API client runs inside the micro-VM, with
//! tokio's default multi-thread runtime as `cargo lambda new` generates it (worker threads,
//! a blocking pool, hyper). The handler answers `{"echo": <event>, "count": N}`, where N
//! counts the invocations this process has served: N > 1 shows a warm environment was reused.

use std::sync::atomic::{AtomicU64, Ordering};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// Invocations served by this process (survives between warm invocations).
static COUNT: AtomicU64 = AtomicU64::new(0);

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let count = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    Ok(json!({ "echo": event.payload, "count": count }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
