//! A function service on real execution environments: two functions, synchronous,
//! asynchronous and event-source invocations with concurrency, REPORT lines and metrics.
//!
//! ```text
//! cargo run --release --example service
//! ```
//!
//! Functions run in KVM micro-VMs; without a usable `/dev/kvm` the example falls back to the
//! development backend (child processes) and says so. The guest programs are the `echo` and
//! `hello` programs of `functions/`, built by the build script.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda::core::{Backend, CodeLocation, Contract, FunctionConfig};
use lambda::sched::{
    EventInvokeConfig, EventSourceMappingConfig, InvocationRecord, InvokeRequest, MemoryQueue,
    Recorder, Service,
};
use lambda::vmm::{MicroVmBackend, ProcessBackend};

/// The backend, chosen in one place: KVM micro-VMs when possible.
fn backend() -> Arc<dyn Backend> {
    match MicroVmBackend::new() {
        Ok(kvm) => Arc::new(kvm),
        Err(error) => {
            eprintln!("KVM unusable ({error}); using the development (process) backend");
            Arc::new(ProcessBackend::new())
        }
    }
}

fn program(name: &str) -> PathBuf {
    PathBuf::from(env!("LAMBDA_FUNCTIONS_DIR")).join(name)
}

fn function(name: &str) -> FunctionConfig {
    FunctionConfig::new(name, CodeLocation::Executable(program(name)))
        .with_contract(Contract::Stdio)
        .with_timeout(Duration::from_secs(10))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = backend();
    println!("backend: {}", backend.name());
    let service = Service::builder(backend).build()?;
    service.create_function(function("hello"))?;
    service.create_function(function("echo"))?;

    // Synchronous invocations from four threads at once.
    println!("\n== synchronous: hello, 4 threads x 3 invocations");
    std::thread::scope(|s| {
        for thread in 0..4 {
            let service = &service;
            s.spawn(move || {
                for call in 0..3 {
                    let payload = format!(r#"{{"name":"thread {thread} call {call}"}}"#);
                    match service.invoke(InvokeRequest::new("hello", payload)) {
                        Ok(response) => println!(
                            "{} -> {} ({:?})\n  {}",
                            thread,
                            String::from_utf8_lossy(&response.payload),
                            response.start.expect("a synchronous start"),
                            response.report.expect("a report")
                        ),
                        Err(error) => println!("{thread} -> {error}"),
                    }
                }
            });
        }
    });

    // Asynchronous invocations: acknowledged at once, run by the queue's dispatchers.
    println!("\n== asynchronous: echo, 5 events");
    let delivered = Recorder::<InvocationRecord>::new();
    service.put_event_invoke_config(
        "echo",
        None,
        EventInvokeConfig::default().with_on_success(delivered.clone()),
    )?;
    for n in 0..5 {
        let accepted = service.invoke(InvokeRequest::event("echo", format!(r#"{{"n":{n}}}"#)))?;
        println!(
            "accepted {} with status {}",
            accepted.request_id, accepted.status_code
        );
    }
    wait_for("the asynchronous events", || delivered.len() == 5)?;
    for record in delivered.items() {
        println!(
            "delivered {} -> {}",
            record.request_id,
            String::from_utf8_lossy(&record.response_payload)
        );
    }

    // An event source mapping: a queue polled in batches of four.
    println!("\n== event source: 10 records, batches of 4");
    let queue = MemoryQueue::new();
    service.create_event_source_mapping(
        "echo",
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
    println!("acknowledged {} records", queue.acknowledged());

    println!("\n== metrics");
    println!("{}", service.metrics());
    for name in ["hello", "echo"] {
        let m = service.function_metrics(name)?;
        println!(
            "{name}: invocations {} errors {} cold {} warm {} mean duration {:?}",
            m.invocations,
            m.errors,
            m.cold_starts,
            m.warm_starts,
            m.durations.mean()
        );
    }
    service.shutdown();
    Ok(())
}
