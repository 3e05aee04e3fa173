//! The service with its background threads on the system clock: async events are run by the
//! dispatchers, maintenance runs on its own, and shutdown joins every thread.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::config;
use lambda_sched::fake::FakeBackend;
use lambda_sched::{
    EventInvokeConfig, FixedTtl, InvocationRecord, InvokeRequest, Recorder, Service,
};

const HOUR: Duration = Duration::from_secs(3600);

/// Waits (a minute at most) for something the service's threads are bound to do.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn dispatchers_run_events_and_shutdown_joins_everything() {
    let fake = FakeBackend::new();
    // The dispatchers wake for events; the maintenance thread ticks once an hour, so that
    // shutdown returning at all shows it woke the sleeping thread.
    let service = Service::builder(fake.clone())
        .configure(|c| c.tick = HOUR)
        .build()
        .unwrap();
    service.create_function(config("f")).unwrap();
    let on_success = Recorder::<InvocationRecord>::new();
    service
        .put_event_invoke_config(
            "f",
            None,
            EventInvokeConfig::default().with_on_success(on_success.clone()),
        )
        .unwrap();
    for i in 0..20 {
        let r = service
            .invoke(InvokeRequest::event("f", format!("{i}")))
            .unwrap();
        assert_eq!(r.status_code, 202);
    }
    wait_for("20 events", || on_success.len() == 20);
    assert_eq!(service.metrics().async_queue_depth, 0);
    let started = Instant::now();
    service.shutdown();
    assert!(
        started.elapsed() < HOUR / 60,
        "shutdown woke the maintenance thread instead of waiting out its tick"
    );
    assert_eq!(
        fake.stats().live(),
        0,
        "shutdown shut every environment down"
    );
}

#[test]
fn the_maintenance_thread_reaps_on_its_own() {
    let fake = FakeBackend::new();
    let service = Arc::new(
        Service::builder(fake.clone())
            .keep_alive(Arc::new(FixedTtl::new(Duration::from_millis(20))))
            .configure(|c| c.tick = Duration::from_millis(5))
            .build()
            .unwrap(),
    );
    service.create_function(config("f")).unwrap();
    service.invoke(InvokeRequest::new("f", "x")).unwrap();
    assert_eq!(fake.stats().live(), 1);
    wait_for("the reaper", || fake.stats().shut_down == 1);
    assert_eq!(service.environment_counts("f").unwrap(), (0, 0));
}
