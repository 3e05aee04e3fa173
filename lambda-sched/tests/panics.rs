//! The panic boundary: a backend that panics in `create`, `invoke` or `shutdown` (the fake,
//! told to) costs the invocation, never the service. The environment is discarded, its
//! concurrency slot and worker memory come back, asynchronous events still reach their
//! retries, destinations and dead-letter queue, event sources go on, and the background
//! threads keep serving.

mod common;

use std::time::{Duration, Instant};

use common::{config, fake_service};
use lambda_core::ErrorType;
use lambda_sched::fake::FakeBackend;
use lambda_sched::{
    Condition, DeadLetter, Error, EventInvokeConfig, EventSourceMappingConfig, InvocationRecord,
    InvokeRequest, MemoryQueue, Recorder, Service,
};

/// Nothing is running, nothing is counted as running, and every worker's memory is held by
/// idle environments alone.
fn assert_quiet(service: &Service, functions: &[&str]) {
    let m = service.metrics();
    assert_eq!(m.invocations.concurrent_executions, 0, "{m}");
    assert_eq!(m.environments_busy, 0, "{m}");
    for name in functions {
        let f = service.function_metrics(name).unwrap();
        assert_eq!(f.concurrent_executions, 0, "{name}");
    }
    let held: u64 = service.workers().iter().map(|w| w.used_mb).sum();
    let idle: u64 = functions
        .iter()
        .map(|name| {
            let memory = u64::from(service.get_function(name).unwrap().config.memory_mb);
            service.environment_counts(name).unwrap().0 * memory
        })
        .sum();
    assert_eq!(
        held, idle,
        "worker memory is held by idle environments only"
    );
}

#[test]
fn a_panic_in_create_is_a_service_error_and_releases_everything() {
    let (service, _clock, fake) = fake_service();
    service
        .create_function(config("f").with_env("FAKE_CREATE", "panic"))
        .unwrap();
    let error = service.invoke(InvokeRequest::new("f", "x")).unwrap_err();
    assert!(matches!(error, Error::Service { .. }), "{error}");
    assert!(
        error.to_string().contains("panicked while creating"),
        "{error}"
    );
    let m = service.metrics();
    assert_eq!((m.backend_panics, m.environment_create_failures), (1, 1));
    assert_eq!(fake.stats().live(), 0);
    assert_quiet(&service, &["f"]);
}

#[test]
fn a_panic_in_invoke_fails_that_invocation_and_discards_the_environment() {
    let (service, _clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    assert!(
        service
            .invoke(InvokeRequest::new("f", "warm"))
            .unwrap()
            .is_success()
    );
    let failed = service
        .invoke(InvokeRequest::new("f", "fake:panic"))
        .unwrap();
    let error = failed.function_error.clone().expect("a function error");
    assert_eq!(error.error_type, ErrorType::SandboxFailure);
    assert!(error.message.contains("panicked while invoking"), "{error}");
    assert_eq!(failed.function_error_header(), Some("Unhandled"));
    // The environment went: shut down, its memory back, and the next invocation is cold.
    assert_eq!(service.environment_counts("f").unwrap(), (0, 0));
    assert_eq!(fake.stats().live(), 0);
    assert_quiet(&service, &["f"]);
    let next = service.invoke(InvokeRequest::new("f", "after")).unwrap();
    assert_eq!(next.payload, b"after");
    assert_eq!(next.start, Some(lambda_sched::StartKind::Cold));
    assert_eq!(service.metrics().backend_panics, 1);
}

#[test]
fn a_panic_in_shutdown_is_counted_and_the_memory_still_comes_back() {
    let (service, _clock, fake) = fake_service();
    service
        .create_function(config("f").with_env("FAKE_SHUTDOWN", "panic"))
        .unwrap();
    assert!(
        service
            .invoke(InvokeRequest::new("f", "x"))
            .unwrap()
            .is_success()
    );
    assert_eq!(service.environment_counts("f").unwrap(), (1, 0));
    service.delete_function("f", None).unwrap();
    assert_eq!(service.metrics().backend_panics, 1);
    assert_eq!(fake.stats().live(), 0);
    assert!(
        service
            .workers()
            .iter()
            .all(|w| w.used_mb == 0 && w.environments == 0)
    );
}

#[test]
fn panicking_events_reach_their_retries_destination_and_dead_letter_queue() {
    let (service, clock, _fake) = fake_service();
    service.create_function(config("bad")).unwrap();
    service.create_function(config("good")).unwrap();
    let failures = Recorder::<InvocationRecord>::new();
    let successes = Recorder::<InvocationRecord>::new();
    let dead_letters = Recorder::<DeadLetter>::new();
    service
        .put_event_invoke_config(
            "bad",
            None,
            EventInvokeConfig::default().with_on_failure(failures.clone()),
        )
        .unwrap();
    service
        .set_dead_letter_sink("bad", Some(dead_letters.clone()))
        .unwrap();
    service
        .put_event_invoke_config(
            "good",
            None,
            EventInvokeConfig::default().with_on_success(successes.clone()),
        )
        .unwrap();
    for _ in 0..2 {
        let accepted = service
            .invoke(InvokeRequest::event("bad", "fake:panic"))
            .unwrap();
        assert_eq!(accepted.status_code, 202);
    }
    service.run_pending();
    clock.advance(Duration::from_secs(60));
    service.run_pending();
    clock.advance(Duration::from_secs(120));
    service.run_pending();
    let m = service.metrics();
    assert_eq!(m.backend_panics, 6, "two events, three attempts each");
    assert_eq!((m.async_retries, m.async_failed), (4, 2), "{m}");
    assert_eq!((failures.len(), dead_letters.len()), (2, 2));
    let record = &failures.items()[0];
    assert_eq!(record.condition, Condition::RetriesExhausted);
    assert_eq!(
        record.function_error.as_ref().unwrap().error_type,
        ErrorType::SandboxFailure
    );
    // The service goes on: a healthy event of another function runs.
    service
        .invoke(InvokeRequest::event("good", "fine"))
        .unwrap();
    service.run_pending();
    assert_eq!(successes.len(), 1);
    assert_eq!(m.async_queue_depth, 0);
    assert_quiet(&service, &["bad", "good"]);
}

#[test]
fn a_batch_that_panics_is_bisected_like_a_failed_one() {
    let (service, _clock, _fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let queue = MemoryQueue::new();
    for i in 0..8 {
        queue.send(if i == 3 {
            "panic".to_string()
        } else {
            format!("ok {i}")
        });
    }
    service
        .create_event_source_mapping(
            "f",
            queue.clone(),
            EventSourceMappingConfig {
                bisect_batch_on_function_error: true,
                maximum_retry_attempts: Some(1),
                batch_size: 8,
                ..EventSourceMappingConfig::default()
            },
        )
        .unwrap();
    service.run_pending();
    assert_eq!((queue.acknowledged(), queue.failed().len()), (7, 1));
    assert!(service.metrics().backend_panics >= 1);
    assert_quiet(&service, &["f"]);
}

/// With its background threads on the system clock: events that panic do not take the async
/// dispatchers down; a healthy event sent after them still runs.
#[test]
fn the_background_threads_survive_panicking_backends() {
    let fake = FakeBackend::new();
    let service = Service::builder(fake.clone()).build().unwrap();
    service.create_function(config("bad")).unwrap();
    service.create_function(config("good")).unwrap();
    let failures = Recorder::<InvocationRecord>::new();
    let successes = Recorder::<InvocationRecord>::new();
    service
        .put_event_invoke_config(
            "bad",
            None,
            EventInvokeConfig::default()
                .with_maximum_retry_attempts(0)
                .with_on_failure(failures.clone()),
        )
        .unwrap();
    service
        .put_event_invoke_config(
            "good",
            None,
            EventInvokeConfig::default().with_on_success(successes.clone()),
        )
        .unwrap();
    // More panicking events than there are dispatcher threads.
    let dispatchers = service.config().async_queue.dispatchers;
    for _ in 0..dispatchers * 2 {
        service
            .invoke(InvokeRequest::event("bad", "fake:panic"))
            .unwrap();
    }
    service
        .invoke(InvokeRequest::event("good", "fine"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while successes.is_empty() || failures.len() < dispatchers * 2 {
        assert!(Instant::now() < deadline, "the dispatchers stopped serving");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(service.metrics().backend_panics, (dispatchers * 2) as u64);
    assert_eq!(service.metrics().internal_panics, 0);
    service.shutdown();
    assert_eq!(fake.stats().live(), 0);
}
