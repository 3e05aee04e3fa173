//! The function service on the KVM micro-VM backend: two functions, synchronous,
//! asynchronous and event-source invocations with concurrency, and nothing left behind.
//!
//! Skipped (with "skipped: /dev/kvm unusable") when KVM cannot be used, except under CI
//! (`CI` set), where that fails loudly.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{kvm_backend, stdio_config};
use lambda::sched::{
    EventInvokeConfig, EventSourceMappingConfig, InvocationRecord, InvokeRequest, MemoryQueue,
    Recorder, Service, StartKind,
};

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_service_runs_functions_in_micro_vms() {
    let Some(backend) = kvm_backend() else { return };
    let service = Service::builder(Arc::new(backend)).build().unwrap();
    service.create_function(stdio_config("hello")).unwrap();
    service.create_function(stdio_config("echo")).unwrap();

    // Synchronous, from four threads at once.
    std::thread::scope(|s| {
        for thread in 0..4 {
            let service = &service;
            s.spawn(move || {
                for call in 0..3 {
                    let name = format!("t{thread}c{call}");
                    let response = service
                        .invoke(InvokeRequest::new(
                            "hello",
                            format!(r#"{{"name":"{name}"}}"#),
                        ))
                        .unwrap();
                    assert!(response.is_success(), "{response:?}");
                    assert_eq!(
                        String::from_utf8_lossy(&response.payload),
                        format!(r#"{{"message":"Hello, {name}!"}}"#)
                    );
                    let report = response.report.unwrap().to_string();
                    assert!(report.starts_with("REPORT RequestId: "), "{report}");
                    assert!(matches!(
                        response.start,
                        Some(StartKind::Cold | StartKind::Warm)
                    ));
                }
            });
        }
    });
    // A function error from the guest is a response with the error, not an Err.
    let bad = service
        .invoke(InvokeRequest::new("hello", "not json"))
        .unwrap();
    assert_eq!(bad.function_error_header(), Some("Unhandled"));

    // Asynchronous.
    let delivered = Recorder::<InvocationRecord>::new();
    service
        .put_event_invoke_config(
            "echo",
            None,
            EventInvokeConfig::default().with_on_success(delivered.clone()),
        )
        .unwrap();
    for n in 0..5 {
        let accepted = service
            .invoke(InvokeRequest::event("echo", format!(r#"{{"n":{n}}}"#)))
            .unwrap();
        assert_eq!(accepted.status_code, 202);
    }
    wait_for("asynchronous events", || delivered.len() == 5);
    let mut echoed: Vec<String> = delivered
        .items()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.response_payload).into_owned())
        .collect();
    echoed.sort();
    assert_eq!(echoed[0], r#"{"n":0}"#);

    // Event source mapping.
    let queue = MemoryQueue::new();
    service
        .create_event_source_mapping(
            "echo",
            queue.clone(),
            EventSourceMappingConfig {
                batch_size: 4,
                poll_interval: Duration::from_millis(10),
                ..EventSourceMappingConfig::default()
            },
        )
        .unwrap();
    for n in 0..10 {
        queue.send(format!("record {n}"));
    }
    wait_for("the event source", || queue.acknowledged() == 10);

    let m = service.metrics();
    assert_eq!(m.invocations.invocations, 13 + 5 + m.event_source_batches);
    assert_eq!(m.invocations.errors, 1);
    assert!(m.event_source_batches >= 3);
    assert_eq!(m.invocations.concurrent_executions, 0);
    assert_eq!(m.environment_create_failures, 0);
    eprintln!("{m}");
    service.shutdown();
}
