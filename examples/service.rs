//! A function service on real execution environments, the way Lambda runs them: each
//! environment runs Init once and then serves invocation after invocation (warm starts).
//!
//! ```text
//! cargo run --release --example service
//! ```
//!
//! Two Runtime API functions: `echo-loop` (the hand-written `runtime-loop` runtime) and
//! `rust-echo` (the official `lambda_runtime` crate). Both count the invocations their
//! environment has served, so a count above 1 is a warm environment reused. The example runs
//! synchronous invocations (one after another, then from several threads at once), a function
//! error and a crash, asynchronous invocations and an event source mapping, and prints REPORT
//! lines (the first invocation of each environment carries its Init Duration) and metrics.
//!
//! Functions run in KVM micro-VMs; without a usable `/dev/kvm` the example falls back to the
//! development backend (child processes, no isolation) and says so on stderr.

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use lambda::core::{Backend, CodeLocation, FunctionConfig};
use lambda::sched::{
    EventInvokeConfig, EventSourceMappingConfig, InvocationRecord, InvokeRequest, InvokeResponse,
    MemoryQueue, Recorder, Service, StartKind,
};
use lambda::vmm::{MicroVmBackend, ProcessBackend};

/// The backend, chosen in one place: KVM micro-VMs when possible.
fn backend() -> Arc<dyn Backend> {
    match MicroVmBackend::new() {
        Ok(kvm) => Arc::new(kvm),
        Err(error) => {
            eprintln!(
                "warning: KVM is unusable ({error}); falling back to the development backend: \
                 functions run as child processes of this user, WITHOUT isolation"
            );
            Arc::new(ProcessBackend::new())
        }
    }
}

/// A Runtime API function (the default contract) running guest program `program`.
fn function(name: &str, program: &str) -> FunctionConfig {
    let path = PathBuf::from(env!("LAMBDA_FUNCTIONS_DIR")).join(program);
    FunctionConfig::new(name, CodeLocation::Executable(path)).with_timeout(Duration::from_secs(5))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn start(response: &InvokeResponse) -> &'static str {
    match response.start {
        Some(StartKind::Cold) => "cold",
        Some(StartKind::Warm) => "warm",
        Some(StartKind::Provisioned) => "prov",
        None => "-",
    }
}

/// The response body, or the function error's type and message.
fn outcome(response: &InvokeResponse) -> String {
    match &response.function_error {
        None => String::from_utf8_lossy(&response.payload).into_owned(),
        Some(error) => format!("function error {error}"),
    }
}

/// One invocation in two lines: how it started and what it returned, then its REPORT.
fn show(label: &str, response: &InvokeResponse) {
    let report = response
        .report
        .as_ref()
        .map_or_else(String::new, ToString::to_string);
    println!(
        "{label} {} {}\n    {report}",
        start(response),
        outcome(response)
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let began = Instant::now();
    let backend = backend();
    println!("backend: {}", backend.name());
    let service = Service::builder(backend).build()?;
    service.create_function(function("echo-loop", "runtime-loop"))?;
    service.create_function(function("rust-echo", "runtime-rust"))?;

    // One after another: one environment, Init once, then warm invocations.
    println!("\n== synchronous, one after another: echo-loop x4 {{\"action\":\"count\"}}");
    for call in 0..4 {
        let response = service.invoke(InvokeRequest::new("echo-loop", r#"{"action":"count"}"#))?;
        show(&format!("#{call}"), &response);
    }

    // From three threads at once: the first calls overlap, so each thread's first call needs
    // an environment of its own; later calls reuse whichever environment is idle.
    println!("\n== synchronous, 3 threads x 3 calls at once: rust-echo");
    let barrier = Barrier::new(3);
    let mut results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|thread| {
                let (service, barrier) = (&service, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    (0..3)
                        .map(|call| {
                            let payload = format!(r#"{{"thread":{thread},"call":{call}}}"#);
                            let response = service.invoke(InvokeRequest::new("rust-echo", payload));
                            (thread, call, response)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("an invoking thread panicked"))
            .collect::<Vec<_>>()
    });
    results.sort_by_key(|(thread, call, _)| (*thread, *call));
    for (thread, call, response) in results {
        match response {
            Ok(response) => show(&format!("t{thread}#{call}"), &response),
            Err(error) => println!("t{thread}#{call} refused: {error}"),
        }
    }
    let (idle, busy) = service.environment_counts("rust-echo")?;
    println!("rust-echo environments: {idle} idle, {busy} busy");

    // Failures: a function error keeps the environment; a crash resets it, and the next
    // invocation runs Init again in a fresh VM (its count starts over at 1).
    println!("\n== failures: echo-loop");
    for action in ["error", "count", "crash", "count"] {
        let payload = format!(r#"{{"action":"{action}"}}"#);
        let response = service.invoke(InvokeRequest::new("echo-loop", payload))?;
        show(&format!("{action:>5}"), &response);
    }
    println!(
        "resets: {} (after the error the count went on; after the crash it started over)",
        service.metrics().environment_resets
    );

    // Asynchronous invocations: acknowledged at once (202), run by the queue's dispatchers.
    println!("\n== asynchronous: echo-loop, 4 events");
    let delivered = Recorder::<InvocationRecord>::new();
    service.put_event_invoke_config(
        "echo-loop",
        None,
        EventInvokeConfig::default().with_on_success(delivered.clone()),
    )?;
    for n in 0..4 {
        let payload = format!(r#"{{"event":{n}}}"#);
        let accepted = service.invoke(InvokeRequest::event("echo-loop", payload))?;
        println!("accepted with status {}", accepted.status_code);
    }
    wait_for("the asynchronous events", || delivered.len() == 4)?;
    let mut records = delivered.items();
    records.sort_by(|a, b| a.request_payload.cmp(&b.request_payload));
    for record in records {
        println!(
            "delivered (status {}) {}",
            record.status_code,
            String::from_utf8_lossy(&record.response_payload)
        );
    }

    // An event source mapping: a queue polled in batches of up to four records.
    println!("\n== event source: 10 records to echo-loop, batches of up to 4");
    let queue = MemoryQueue::new();
    service.create_event_source_mapping(
        "echo-loop",
        queue.clone(),
        EventSourceMappingConfig {
            batch_size: 4,
            poll_interval: Duration::from_millis(10),
            ..EventSourceMappingConfig::default()
        },
    )?;
    for n in 0..10 {
        queue.send(format!("record {n}"));
    }
    wait_for("the event source", || queue.acknowledged() == 10)?;
    println!(
        "acknowledged {} records in {} batches",
        queue.acknowledged(),
        service.metrics().event_source_batches
    );

    println!("\n== metrics");
    println!("{}", service.metrics());
    for name in ["echo-loop", "rust-echo"] {
        let m = service.function_metrics(name)?;
        let (idle, busy) = service.environment_counts(name)?;
        println!(
            "{name}: invocations {} errors {} cold {} warm {} environments {idle} idle {busy} busy, \
             mean duration {:?}",
            m.invocations,
            m.errors,
            m.cold_starts,
            m.warm_starts,
            m.durations.mean()
        );
    }
    service.shutdown();
    println!("\ndone in {:.2?}", began.elapsed());
    Ok(())
}
