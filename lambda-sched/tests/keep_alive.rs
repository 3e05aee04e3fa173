//! Keep-alive through the service, on a manual clock: fixed TTL reaping, warm-first routing
//! and the hybrid histogram's pre-warming.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{builder, config, fake_service, gate_service};
use lambda_sched::fake::FakeBackend;
use lambda_sched::{FixedTtl, HybridHistogram, InvokeRequest, ManualClock, StartKind};

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn idle_environments_live_for_the_ttl_then_are_reaped() {
    let (service, clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    service.invoke(InvokeRequest::new("f", "x")).unwrap();
    clock.advance(MINUTE * 9);
    service.run_pending();
    assert_eq!(service.environment_counts("f").unwrap(), (1, 0));
    // Used again at 9 minutes: the TTL starts over.
    let warm = service.invoke(InvokeRequest::new("f", "x")).unwrap();
    assert_eq!(warm.start, Some(StartKind::Warm));
    clock.advance(MINUTE * 10 - Duration::from_millis(1));
    service.run_pending();
    assert_eq!(fake.stats().shut_down, 0);
    clock.advance(Duration::from_millis(1));
    service.run_pending();
    assert_eq!(fake.stats().shut_down, 1);
    assert_eq!(service.environment_counts("f").unwrap(), (0, 0));
    let m = service.metrics();
    // Idle 9 min, then 10 min, at 128 MB.
    assert!(
        (m.idle_memory_mb_seconds - 19.0 * 60.0 * 128.0).abs() < 1.0,
        "{m:?}"
    );
    assert_eq!(
        service.invoke(InvokeRequest::new("f", "x")).unwrap().start,
        Some(StartKind::Cold)
    );
}

#[test]
fn an_expired_environment_is_never_handed_out_even_before_the_reaper_runs() {
    let clock = Arc::new(ManualClock::new());
    let fake = FakeBackend::with_clock(clock.clone());
    let service = builder(fake.clone(), &clock)
        .keep_alive(Arc::new(FixedTtl::new(MINUTE)))
        .build()
        .unwrap();
    service.create_function(config("f")).unwrap();
    service.invoke(InvokeRequest::new("f", "x")).unwrap();
    clock.advance(MINUTE);
    let r = service.invoke(InvokeRequest::new("f", "x")).unwrap();
    assert_eq!(r.start, Some(StartKind::Cold));
    assert_eq!(fake.stats().shut_down, 1);
}

#[test]
fn warm_environments_are_preferred_to_new_ones() {
    let (service, _clock, gate) = gate_service(|b| b);
    let service = Arc::new(service);
    service.create_function(config("f")).unwrap();
    std::thread::scope(|s| {
        let held: Vec<_> = (0..3)
            .map(|_| s.spawn(|| service.invoke(InvokeRequest::new("f", "gate")).unwrap()))
            .collect();
        gate.wait_entered(3);
        gate.open(3);
        for h in held {
            h.join().unwrap();
        }
    });
    assert_eq!(gate.fake.stats().created, 3);
    for _ in 0..20 {
        let r = service.invoke(InvokeRequest::new("f", "x")).unwrap();
        assert_eq!(r.start, Some(StartKind::Warm));
    }
    assert_eq!(gate.fake.stats().created, 3);
    assert_eq!(service.environment_counts("f").unwrap(), (3, 0));
}

#[test]
fn the_hybrid_policy_unloads_and_prewarms_a_periodic_function() {
    let clock = Arc::new(ManualClock::new());
    let fake = FakeBackend::with_clock(clock.clone());
    let service = builder(fake.clone(), &clock)
        .keep_alive(Arc::new(HybridHistogram::new()))
        // A worker lease ending mid-test would cost a cold start of its own.
        .configure(|c| c.workers[0].lease = Duration::from_secs(7 * 86_400))
        .build()
        .unwrap();
    service.create_function(config("timer")).unwrap();
    let period = MINUTE * 30;
    let mut starts = Vec::new();
    for _ in 0..30 {
        starts.push(
            service
                .invoke(InvokeRequest::new("timer", "tick"))
                .unwrap()
                .start
                .unwrap(),
        );
        // Time passes in one-minute steps, with the reaper and pre-warmer running.
        for _ in 0..30 {
            clock.advance(period / 30);
            service.run_pending();
        }
    }
    // Learning: kept for 4 h while the histogram fills; afterwards unloaded after each call
    // and pre-warmed at 27 min: every call is warm, and the environment is gone in between.
    assert_eq!(starts[0], StartKind::Cold);
    assert!(
        starts[1..].iter().all(|s| *s == StartKind::Warm),
        "{starts:?}"
    );
    let m = service.metrics();
    assert!(m.prewarmed_environments >= 15, "{m:?}");
    assert_eq!(fake.stats().created, 1 + m.prewarmed_environments);
    // Right after a call the environment is unloaded.
    service.invoke(InvokeRequest::new("timer", "tick")).unwrap();
    assert_eq!(service.environment_counts("timer").unwrap(), (0, 0));
}
