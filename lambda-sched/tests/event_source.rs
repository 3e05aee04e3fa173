//! Event source mappings on a manual clock: batch size and window, partial batch responses,
//! retries, bisect-on-error, on-failure destinations, throttles, deletion, and a background
//! poller.

mod common;

use std::time::{Duration, Instant};

use common::{config, fake_service};
use lambda_sched::fake::FakeBackend;
use lambda_sched::{
    Error, EventSourceMappingConfig, InvocationRecord, MemoryQueue, Recorder, Service,
};

const HOUR: Duration = Duration::from_secs(3600);

fn mapping(batch_size: usize) -> EventSourceMappingConfig {
    EventSourceMappingConfig {
        batch_size,
        ..EventSourceMappingConfig::default()
    }
}

#[test]
fn batches_are_at_most_batch_size_and_all_records_are_acknowledged() {
    let (service, _clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let queue = MemoryQueue::new();
    for i in 0..25 {
        queue.send(format!("record {i}"));
    }
    service
        .create_event_source_mapping("f", queue.clone(), mapping(10))
        .unwrap();
    let progress = service.run_pending();
    assert_eq!(progress.event_source_batches, 3);
    assert_eq!(fake.stats().invocations, 3);
    assert_eq!(queue.acknowledged(), 25);
    assert_eq!((queue.visible(), queue.in_flight()), (0, 0));
    let m = service.metrics();
    assert_eq!(
        (m.event_source_batches, m.event_source_records_succeeded),
        (3, 25)
    );
}

#[test]
fn the_batching_window_waits_for_a_batch_to_fill() {
    let (service, clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let queue = MemoryQueue::new();
    service
        .create_event_source_mapping(
            "f",
            queue.clone(),
            EventSourceMappingConfig {
                batch_size: 5,
                maximum_batching_window: Duration::from_secs(30),
                ..EventSourceMappingConfig::default()
            },
        )
        .unwrap();
    for i in 0..3 {
        queue.send(format!("{i}"));
    }
    service.run_pending();
    assert_eq!(fake.stats().invocations, 0);
    assert_eq!(service.event_source_mappings()[0].records_held, 3);
    clock.advance(Duration::from_secs(29));
    service.run_pending();
    assert_eq!(fake.stats().invocations, 0);
    clock.advance(Duration::from_secs(1));
    service.run_pending();
    assert_eq!(fake.stats().invocations, 1);
    assert_eq!(queue.acknowledged(), 3);
    // A full batch does not wait.
    for i in 0..5 {
        queue.send(format!("{i}"));
    }
    service.run_pending();
    assert_eq!(fake.stats().invocations, 2);
    assert!(matches!(
        service.create_event_source_mapping("f", queue.clone(), mapping(0)),
        Err(Error::InvalidParameterValue { .. })
    ));
    assert!(matches!(
        service.create_event_source_mapping("nope", queue, mapping(1)),
        Err(Error::ResourceNotFound { .. })
    ));
}

#[test]
fn partial_batch_responses_retry_only_the_failed_records() {
    let (service, _clock, fake) = fake_service();
    service
        .create_function(config("f").with_env("FAKE_PARTIAL", "1"))
        .unwrap();
    let queue = MemoryQueue::new();
    let on_failure = Recorder::<InvocationRecord>::new();
    queue.send("ok");
    let bad = queue.send("fail");
    queue.send("ok");
    service
        .create_event_source_mapping(
            "f",
            queue.clone(),
            EventSourceMappingConfig {
                report_batch_item_failures: true,
                maximum_retry_attempts: Some(2),
                on_failure: Some(on_failure.clone()),
                ..mapping(10)
            },
        )
        .unwrap();
    service.run_pending();
    // One batch of three, then the failed record alone twice more.
    assert_eq!(fake.stats().invocations, 3);
    assert_eq!(queue.acknowledged(), 2);
    let failed = queue.failed();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, bad);
    let record = on_failure.items()[0].to_json();
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestPayload"]["failedRecordIds"][0], bad.as_str());
    let m = service.metrics();
    assert_eq!(
        (
            m.event_source_records_succeeded,
            m.event_source_records_failed
        ),
        (2, 1)
    );
}

#[test]
fn bisect_on_error_isolates_a_poison_record() {
    let run = |bisect: bool| {
        let (service, _clock, _fake) = fake_service();
        service.create_function(config("f")).unwrap();
        let queue = MemoryQueue::new();
        for i in 0..8 {
            queue.send(if i == 5 {
                "fail".to_string()
            } else {
                format!("ok {i}")
            });
        }
        service
            .create_event_source_mapping(
                "f",
                queue.clone(),
                EventSourceMappingConfig {
                    bisect_batch_on_function_error: bisect,
                    maximum_retry_attempts: Some(1),
                    ..mapping(8)
                },
            )
            .unwrap();
        service.run_pending();
        (queue.acknowledged(), queue.failed().len())
    };
    assert_eq!(run(true), (7, 1));
    assert_eq!(run(false), (0, 8));
}

#[test]
fn throttled_batches_are_kept_without_using_retries_and_deleting_releases_them() {
    let (service, _clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    service.put_function_concurrency("f", 0).unwrap();
    let queue = MemoryQueue::new();
    queue.send("a");
    queue.send("b");
    let id = service
        .create_event_source_mapping(
            "f",
            queue.clone(),
            EventSourceMappingConfig {
                maximum_retry_attempts: Some(0),
                ..mapping(10)
            },
        )
        .unwrap();
    for _ in 0..5 {
        service.run_pending();
    }
    assert_eq!(fake.stats().invocations, 0);
    assert!(queue.failed().is_empty(), "throttles do not use up retries");
    assert_eq!(queue.in_flight(), 2);
    assert_eq!(service.metrics().invocations.throttles, 5);
    service.delete_event_source_mapping(&id).unwrap();
    assert_eq!((queue.visible(), queue.in_flight()), (2, 0));
    assert!(service.event_source_mappings().is_empty());
    assert!(matches!(
        service.delete_event_source_mapping(&id),
        Err(Error::ResourceNotFound { .. })
    ));
    // A new mapping picks the records up once the function is enabled.
    service.delete_function_concurrency("f").unwrap();
    service
        .create_event_source_mapping("f", queue.clone(), mapping(10))
        .unwrap();
    service.run_pending();
    assert_eq!(queue.acknowledged(), 2);
}

#[test]
fn a_background_poller_processes_records_and_stops_on_shutdown() {
    let fake = FakeBackend::new();
    let service = Service::builder(fake.clone()).build().unwrap();
    service.create_function(config("f")).unwrap();
    let queue = MemoryQueue::new();
    for i in 0..10 {
        queue.send(format!("{i}"));
    }
    // The poller takes the ten records in three batches back to back, then sleeps for its
    // poll interval: an hour, so that shutdown returning at all shows it woke the poller.
    service
        .create_event_source_mapping(
            "f",
            queue.clone(),
            EventSourceMappingConfig {
                poll_interval: HOUR,
                ..mapping(4)
            },
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while queue.acknowledged() < 10 {
        assert!(
            Instant::now() < deadline,
            "the poller never took the records"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let started = Instant::now();
    service.shutdown();
    assert!(
        started.elapsed() < HOUR / 60,
        "shutdown woke the sleeping poller instead of waiting out its interval"
    );
    assert_eq!(fake.stats().live(), 0);
}
