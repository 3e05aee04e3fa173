//! Panics, through the service. The fake backend panics on command: in `create`
//! (`FAKE_CREATE=panic`), in `invoke` (`fake:panic`, or a batch record whose body is `panic`)
//! and in `shutdown` (`FAKE_SHUTDOWN=panic`). Each panic fails only the invocation it happened
//! in (`Sandbox.Failure`), an environment it broke is discarded, and afterwards nothing is
//! left running: no concurrency, no busy environment, and the workers hold exactly the memory
//! of the idle environments. Synchronous invocations, asynchronous events (on a manual clock
//! and on the background threads) and event-source batches are all covered, and so are panics
//! from outside the backend (a source, a destination, the clock), which the service's threads
//! survive.
//!
//! The default panic hook prints each panic the fake raises; that output is expected.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{config, fake_service};
use lambda_core::ErrorType;
use lambda_sched::fake::FakeBackend;
use lambda_sched::{
    Clock, Condition, DeadLetter, Destination, EventInvokeConfig, EventSource,
    EventSourceMappingConfig, FixedTtl, InvocationRecord, InvokeRequest, ManualClock, MemoryQueue,
    Recorder, Service, SourceRecord, StartKind, SystemClock, WorkerSpec,
};

/// Nothing runs and the workers hold the memory of the idle environments and nothing else;
/// the fake's live environments are the idle ones.
#[track_caller]
fn assert_settled(service: &Service, fake: &FakeBackend) {
    let m = service.metrics();
    assert_eq!(m.invocations.concurrent_executions, 0, "{m}");
    assert_eq!(m.environments_busy, 0, "{m}");
    let held: u64 = service.workers().iter().map(|w| w.used_mb).sum();
    let idle_memory: u64 = service
        .list_functions()
        .iter()
        .map(|f| service.environment_counts(&f.name).unwrap().0 * u64::from(f.config.memory_mb))
        .sum();
    assert_eq!(held, idle_memory, "worker memory is the idle environments'");
    assert_eq!(fake.stats().live(), m.environments_idle, "{m}");
}

/// Waits (a minute at most) for something the service's threads are bound to do.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn sandbox_failure(response: &lambda_sched::InvokeResponse, names: &str) {
    let error = response
        .function_error
        .as_ref()
        .expect("the invocation failed");
    assert_eq!(error.error_type, ErrorType::SandboxFailure);
    assert!(
        error.message.contains(names),
        "{:?} names {names:?}",
        error.message
    );
    assert_eq!(response.function_error_header(), Some("Unhandled"));
}

// ----- synchronous invocations -----

#[test]
fn a_panic_in_invoke_is_a_sandbox_failure_and_its_environment_is_discarded() {
    let (service, _clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    assert!(
        service
            .invoke(InvokeRequest::new("f", "x"))
            .unwrap()
            .is_success()
    );
    assert_eq!(service.environment_counts("f").unwrap(), (1, 0));

    let panicked = service
        .invoke(InvokeRequest::new("f", "fake:panic"))
        .unwrap();
    assert_eq!(panicked.status_code, 200);
    assert_eq!(panicked.start, Some(StartKind::Warm));
    sandbox_failure(&panicked, "panicked during invoke: fake: told to panic");
    let m = service.metrics();
    assert_eq!((m.backend_panics, m.job_panics), (1, 0));
    assert_eq!(m.invocations.errors, 1);
    assert_eq!(
        m.environments_shut_down, 1,
        "the broken environment is gone"
    );
    assert_eq!(service.environment_counts("f").unwrap(), (0, 0));
    assert_eq!(fake.stats().live(), 0);
    assert_settled(&service, &fake);

    // The next invocation gets a new environment, and keeps it.
    let next = service.invoke(InvokeRequest::new("f", "again")).unwrap();
    assert_eq!(next.payload, b"again");
    assert_eq!(next.start, Some(StartKind::Cold));
    assert_eq!(service.environment_counts("f").unwrap(), (1, 0));
    assert_settled(&service, &fake);
    assert_eq!(fake.stats().panics, 1);
}

#[test]
fn a_panic_in_create_is_a_sandbox_failure_and_gives_the_memory_back() {
    let clock = Arc::new(ManualClock::new());
    let fake = FakeBackend::with_clock(clock.clone());
    // Room for two environments: a leaked reservation would refuse the third invocation.
    let service = common::builder(fake.clone(), &clock)
        .configure(|c| {
            c.workers = vec![WorkerSpec {
                capacity_mb: 256,
                ..WorkerSpec::default()
            }]
        })
        .build()
        .unwrap();
    service
        .create_function(config("bad").with_env("FAKE_CREATE", "panic"))
        .unwrap();
    service.create_function(config("good")).unwrap();
    for attempt in 1..=5 {
        let panicked = service.invoke(InvokeRequest::new("bad", "x")).unwrap();
        assert_eq!(panicked.start, Some(StartKind::Cold));
        sandbox_failure(
            &panicked,
            "panicked during create: fake: told to panic in create",
        );
        let m = service.metrics();
        assert_eq!(m.backend_panics, attempt);
        assert_eq!(m.environment_create_failures, attempt);
        assert_settled(&service, &fake);
        assert!(service.workers().iter().all(|w| w.used_mb == 0));
    }
    // A healthy function still gets its memory.
    for payload in ["one", "two"] {
        assert_eq!(
            service
                .invoke(InvokeRequest::new("good", payload))
                .unwrap()
                .payload,
            payload.as_bytes()
        );
    }
    assert_eq!(fake.stats().panics, 5);
    assert_eq!(fake.stats().created, 1);
    assert_settled(&service, &fake);
    assert_eq!(service.workers()[0].used_mb, 128);
}

#[test]
fn a_panic_in_shutdown_is_swallowed_and_the_memory_comes_back() {
    let (service, clock, fake) = fake_service();
    let panicky = |name: &str| config(name).with_env("FAKE_SHUTDOWN", "panic");
    service.create_function(panicky("f")).unwrap();

    // Reaped after its keep-alive, by the maintenance pass.
    service.invoke(InvokeRequest::new("f", "x")).unwrap();
    clock.advance(Duration::from_secs(11 * 60));
    service.run_pending();
    let m = service.metrics();
    assert_eq!((m.backend_panics, m.job_panics), (1, 0));
    assert_eq!((m.environments_shut_down, m.environments_idle), (1, 0));
    assert_settled(&service, &fake);

    // Discarded after a panic in invoke: its shutdown panics too, and both are caught.
    let panicked = service
        .invoke(InvokeRequest::new("f", "fake:panic"))
        .unwrap();
    sandbox_failure(&panicked, "fake: told to panic");
    assert_eq!(service.metrics().backend_panics, 3);
    assert_settled(&service, &fake);

    // Retired when the function is deleted, on the caller's thread.
    service.invoke(InvokeRequest::new("f", "x")).unwrap();
    assert_eq!(service.metrics().environments_idle, 1);
    service.delete_function("f", None).unwrap();
    assert_eq!(service.metrics().backend_panics, 4);
    assert_settled(&service, &fake);
    assert!(service.workers().iter().all(|w| w.used_mb == 0));

    // And at service shutdown.
    service.create_function(panicky("g")).unwrap();
    service.invoke(InvokeRequest::new("g", "x")).unwrap();
    service.shutdown();
    let stats = fake.stats();
    assert_eq!((stats.panics, stats.live()), (5, 0));
}

// ----- asynchronous events -----

/// Where the async tests' events end.
struct EventDestinations {
    /// Failures of the failing functions.
    on_failure: Arc<Recorder<InvocationRecord>>,
    /// Dead letters of the failing functions.
    dead_letters: Arc<Recorder<DeadLetter>>,
    /// Successes of `good`.
    on_success: Arc<Recorder<InvocationRecord>>,
}

/// Sends the failures and dead letters of each of the `failing` functions, and the
/// successes of `good`, to recorders.
fn event_destinations(service: &Service, failing: &[&str]) -> EventDestinations {
    let on_failure = Recorder::<InvocationRecord>::new();
    let dead_letters = Recorder::<DeadLetter>::new();
    let on_success = Recorder::<InvocationRecord>::new();
    for &name in failing {
        service
            .put_event_invoke_config(
                name,
                None,
                EventInvokeConfig::default().with_on_failure(on_failure.clone()),
            )
            .unwrap();
        service
            .set_dead_letter_sink(name, Some(dead_letters.clone()))
            .unwrap();
    }
    service
        .put_event_invoke_config(
            "good",
            None,
            EventInvokeConfig::default().with_on_success(on_success.clone()),
        )
        .unwrap();
    EventDestinations {
        on_failure,
        dead_letters,
        on_success,
    }
}

#[test]
fn panicking_events_are_retried_then_dead_lettered_and_other_functions_still_run() {
    let (service, clock, fake) = fake_service();
    service.create_function(config("bad")).unwrap();
    service
        .create_function(config("badinit").with_env("FAKE_CREATE", "panic"))
        .unwrap();
    service.create_function(config("good")).unwrap();
    let EventDestinations {
        on_failure,
        dead_letters,
        on_success,
    } = event_destinations(&service, &["bad", "badinit"]);

    // Two events whose invocation panics, one whose environment's creation panics, then one
    // for a healthy function.
    let mut failing = Vec::new();
    for (name, payload) in [
        ("bad", "fake:panic"),
        ("bad", "fake:panic"),
        ("badinit", "x"),
    ] {
        let accepted = service.invoke(InvokeRequest::event(name, payload)).unwrap();
        failing.push(accepted.request_id);
    }
    service
        .invoke(InvokeRequest::event("good", "healthy"))
        .unwrap();
    assert_eq!(service.run_pending().async_events_run, 4);
    assert_eq!(on_success.len(), 1, "the healthy event ran");
    assert_eq!(on_success.items()[0].response_payload, b"healthy");
    assert_eq!(service.metrics().backend_panics, 3);
    assert_settled(&service, &fake);

    // Lambda's retries: after one minute, then two more.
    clock.advance(Duration::from_secs(60));
    assert_eq!(service.run_pending().async_events_run, 3);
    assert_settled(&service, &fake);
    clock.advance(Duration::from_secs(120));
    assert_eq!(service.run_pending().async_events_run, 3);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(service.run_pending().async_events_run, 0, "no more retries");

    let letters = dead_letters.items();
    assert_eq!(letters.len(), 3);
    for letter in &letters {
        assert!(failing.contains(&letter.request_id));
        assert_eq!(letter.condition, Condition::RetriesExhausted);
        assert_eq!(letter.attempts, 3);
        assert_eq!(letter.error_type, "Sandbox.Failure");
        let during = if letter.function_arn.ends_with(":badinit") {
            "panicked during create: fake: told to panic in create"
        } else {
            "panicked during invoke: fake: told to panic"
        };
        assert!(letter.error_message.contains(during), "{letter:?}");
    }
    let records = on_failure.items();
    assert_eq!(records.len(), 3);
    for record in &records {
        assert_eq!(record.condition, Condition::RetriesExhausted);
        assert_eq!(record.approximate_invoke_count, 3);
        let error = record.function_error.as_ref().unwrap();
        assert_eq!(error.error_type, ErrorType::SandboxFailure);
    }
    let m = service.metrics();
    assert_eq!((m.backend_panics, m.job_panics), (9, 0));
    assert_eq!(m.environment_create_failures, 3);
    assert_eq!((m.async_succeeded, m.async_failed), (1, 3));
    assert_eq!((m.async_retries, m.dead_letters), (6, 3));
    assert_eq!(m.async_queue_depth, 0);
    assert_eq!(fake.stats().panics, 9);
    assert_settled(&service, &fake);
}

#[test]
fn the_dispatcher_threads_survive_panicking_events() {
    let fake = FakeBackend::new();
    let service = Service::builder(fake.clone())
        .configure(|c| {
            c.tick = Duration::from_millis(5);
            c.async_queue.retry_delays = vec![Duration::from_millis(10)];
        })
        .build()
        .unwrap();
    assert_eq!(service.config().async_queue.dispatchers, 2);
    service.create_function(config("bad")).unwrap();
    service.create_function(config("good")).unwrap();
    let EventDestinations {
        on_failure,
        dead_letters,
        on_success,
    } = event_destinations(&service, &["bad"]);

    // As many panicking events as there are dispatchers, then a healthy one.
    for _ in 0..2 {
        service
            .invoke(InvokeRequest::event("bad", "fake:panic"))
            .unwrap();
    }
    service
        .invoke(InvokeRequest::event("good", "healthy"))
        .unwrap();
    wait_for("the healthy event's success", || on_success.len() == 1);
    wait_for("both panicking events' dead letters", || {
        dead_letters.len() == 2
    });
    wait_for("an empty queue", || {
        service.metrics().async_queue_depth == 0
    });

    assert_eq!(on_failure.len(), 2);
    assert!(
        dead_letters
            .items()
            .iter()
            .all(|l| l.attempts == 3 && l.error_type == "Sandbox.Failure")
    );
    let m = service.metrics();
    assert_eq!((m.backend_panics, m.job_panics), (6, 0));
    assert_eq!((m.async_succeeded, m.async_failed), (1, 2));
    assert_settled(&service, &fake);
    service.shutdown();
    assert_eq!(fake.stats().live(), 0);
}

// ----- event-source batches -----

#[test]
fn a_panicking_record_is_isolated_retried_and_reported_as_failed() {
    let (service, _clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let queue = MemoryQueue::new();
    for body in ["a", "panic", "b"] {
        queue.send(body);
    }
    let on_failure = Recorder::<InvocationRecord>::new();
    service
        .create_event_source_mapping(
            "f",
            queue.clone(),
            EventSourceMappingConfig {
                maximum_retry_attempts: Some(1),
                bisect_batch_on_function_error: true,
                on_failure: Some(on_failure.clone()),
                ..EventSourceMappingConfig::default()
            },
        )
        .unwrap();
    // [a, panic, b] panics and is split; [a] succeeds; [panic, b] panics and is split; [panic]
    // panics; [b] succeeds; [panic] panics again and has used up its one retry.
    assert_eq!(service.run_pending().event_source_batches, 6);
    assert_eq!(queue.acknowledged(), 2);
    let failed = queue.failed();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].body, b"panic");
    assert_eq!((queue.visible(), queue.in_flight()), (0, 0));
    assert_eq!(on_failure.len(), 1);
    let m = service.metrics();
    assert_eq!((m.backend_panics, m.job_panics), (4, 0));
    assert_eq!(
        (
            m.event_source_records_succeeded,
            m.event_source_records_failed
        ),
        (2, 1)
    );
    assert_eq!(fake.stats().panics, 4);
    assert_eq!(service.event_source_mappings()[0].records_held, 0);
    assert_settled(&service, &fake);
}

#[test]
fn a_batch_whose_environment_panics_at_creation_fails_like_a_function_error() {
    let (service, _clock, fake) = fake_service();
    service
        .create_function(config("f").with_env("FAKE_CREATE", "panic"))
        .unwrap();
    let queue = MemoryQueue::new();
    queue.send("x");
    queue.send("y");
    service
        .create_event_source_mapping(
            "f",
            queue.clone(),
            EventSourceMappingConfig {
                maximum_retry_attempts: Some(2),
                ..EventSourceMappingConfig::default()
            },
        )
        .unwrap();
    // The first attempt and two retries, then the records are given up.
    assert_eq!(service.run_pending().event_source_batches, 3);
    assert_eq!(queue.failed().len(), 2);
    assert_eq!(queue.acknowledged(), 0);
    let m = service.metrics();
    assert_eq!(m.backend_panics, 3);
    assert_eq!(m.environment_create_failures, 3);
    assert_eq!(m.event_source_records_failed, 2);
    assert_settled(&service, &fake);
    assert!(service.workers().iter().all(|w| w.used_mb == 0));
}

// ----- panics from outside the backend -----

/// A memory queue whose first poll panics.
#[derive(Debug)]
struct PanickingSource {
    queue: Arc<MemoryQueue>,
    panicked: AtomicBool,
}

impl EventSource for PanickingSource {
    fn poll(&self, max_records: usize) -> Vec<SourceRecord> {
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("test: the source panics");
        }
        self.queue.poll(max_records)
    }

    fn acknowledge(&self, ids: &[String]) {
        self.queue.acknowledge(ids);
    }

    fn fail(&self, ids: &[String]) {
        self.queue.fail(ids);
    }

    fn release(&self, ids: &[String]) {
        self.queue.release(ids);
    }
}

/// A destination whose first delivery panics; it records the others.
#[derive(Debug)]
struct PanickingDestination {
    recorder: Arc<Recorder<InvocationRecord>>,
    panicked: AtomicBool,
}

impl Destination for PanickingDestination {
    fn deliver(&self, record: InvocationRecord) {
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("test: the destination panics");
        }
        self.recorder.deliver(record);
    }
}

/// The system clock, except that the maintenance thread's first reading panics.
#[derive(Debug, Default)]
struct PanickingClock {
    clock: SystemClock,
    panicked: AtomicBool,
}

impl Clock for PanickingClock {
    fn now(&self) -> Duration {
        let maintenance = std::thread::current().name() == Some("sched-maintenance");
        if maintenance && !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("test: the clock panics on the maintenance thread");
        }
        self.clock.now()
    }
}

#[test]
fn run_pending_survives_a_panicking_source_and_destination() {
    let (service, _clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let recorder = Recorder::<InvocationRecord>::new();
    let destination = Arc::new(PanickingDestination {
        recorder: recorder.clone(),
        panicked: AtomicBool::new(false),
    });
    service
        .put_event_invoke_config(
            "f",
            None,
            EventInvokeConfig::default().with_on_success(destination),
        )
        .unwrap();
    let queue = MemoryQueue::new();
    queue.send("record");
    let source = Arc::new(PanickingSource {
        queue: queue.clone(),
        panicked: AtomicBool::new(false),
    });
    service
        .create_event_source_mapping("f", source, EventSourceMappingConfig::default())
        .unwrap();
    service.invoke(InvokeRequest::event("f", "first")).unwrap();
    service.invoke(InvokeRequest::event("f", "second")).unwrap();

    let progress = service.run_pending();
    assert_eq!(progress.async_events_run, 2);
    assert_eq!(progress.event_source_batches, 0, "the poll panicked");
    let m = service.metrics();
    assert_eq!((m.backend_panics, m.job_panics), (0, 2));
    // The first event ran, but its record panicked on the way: it leaves the queue. The
    // second one's record arrived.
    assert_eq!(m.async_succeeded, 2);
    assert_eq!(m.async_queue_depth, 0);
    assert_eq!(recorder.len(), 1);
    assert_eq!(recorder.items()[0].request_payload, b"second");
    assert_settled(&service, &fake);

    // The mapping's lock was poisoned by the panicking poll; it still works.
    assert_eq!(service.run_pending().event_source_batches, 1);
    assert_eq!(queue.acknowledged(), 1);
    assert_eq!(service.metrics().job_panics, 2);
    assert_settled(&service, &fake);
}

#[test]
fn the_background_threads_survive_panics_outside_the_backend() {
    let fake = FakeBackend::new();
    let service = Service::builder(fake.clone())
        .clock(Arc::new(PanickingClock::default()))
        .keep_alive(Arc::new(FixedTtl::new(Duration::from_millis(20))))
        .configure(|c| c.tick = Duration::from_millis(5))
        .build()
        .unwrap();
    service.create_function(config("f")).unwrap();
    let recorder = Recorder::<InvocationRecord>::new();
    service
        .put_event_invoke_config(
            "f",
            None,
            EventInvokeConfig::default().with_on_success(Arc::new(PanickingDestination {
                recorder: recorder.clone(),
                panicked: AtomicBool::new(false),
            })),
        )
        .unwrap();
    let queue = MemoryQueue::new();
    let source = Arc::new(PanickingSource {
        queue: queue.clone(),
        panicked: AtomicBool::new(false),
    });
    service
        .create_event_source_mapping(
            "f",
            source,
            EventSourceMappingConfig {
                poll_interval: Duration::from_millis(5),
                ..EventSourceMappingConfig::default()
            },
        )
        .unwrap();

    // The poller's first poll panics; it polls again and runs the record.
    queue.send("record");
    wait_for("the record", || queue.acknowledged() == 1);
    // The first event's destination panics; the dispatchers go on with the second.
    service.invoke(InvokeRequest::event("f", "first")).unwrap();
    wait_for("the first event", || service.metrics().async_succeeded == 1);
    service.invoke(InvokeRequest::event("f", "second")).unwrap();
    wait_for("the second event's record", || recorder.len() == 1);
    // The maintenance thread's first pass panicked (its clock); it still reaps.
    wait_for("the reaper", || {
        service.metrics().environments_idle == 0 && fake.stats().live() == 0
    });
    assert!(fake.stats().shut_down >= 1);

    let m = service.metrics();
    assert_eq!((m.backend_panics, m.job_panics), (0, 3));
    assert_eq!(m.async_queue_depth, 0);
    assert_settled(&service, &fake);
    service.shutdown();
    assert_eq!(fake.stats().live(), 0);
}
