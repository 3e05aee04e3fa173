//! Placement and workers through the service: capacity, best fit, eviction, leases and
//! worker failure.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, gate_service};
use lambda_sched::{
    Error, InvokeRequest, LeastLoaded, StartKind, ThrottleReason, WorkerSpec, WorkerState,
};

fn spec(capacity_mb: u64) -> WorkerSpec {
    WorkerSpec {
        capacity_mb,
        lease: Duration::from_secs(3600),
    }
}

#[test]
fn capacity_is_enforced_and_idle_environments_are_evicted_for_room() {
    let (service, _clock, gate) = gate_service(|b| b.configure(|c| c.workers = vec![spec(512)]));
    let service = Arc::new(service);
    service
        .create_function(config("big").with_memory_mb(256))
        .unwrap();
    service
        .create_function(config("small").with_memory_mb(128))
        .unwrap();
    service.invoke(InvokeRequest::new("small", "x")).unwrap();
    assert_eq!(service.workers()[0].used_mb, 128);
    std::thread::scope(|s| {
        let a = s.spawn(|| service.invoke(InvokeRequest::new("big", "gate")).unwrap());
        gate.wait_entered(1);
        // 256 + 128 used: the second `big` needs the idle `small` evicted.
        let b = s.spawn(|| service.invoke(InvokeRequest::new("big", "gate")).unwrap());
        gate.wait_entered(1);
        assert_eq!(service.environment_counts("small").unwrap(), (0, 0));
        assert_eq!(service.workers()[0].used_mb, 512);
        let error = service
            .invoke(InvokeRequest::new("small", "x"))
            .unwrap_err();
        assert!(matches!(
            error,
            Error::TooManyRequests {
                reason: ThrottleReason::WorkerCapacityExceeded,
                ..
            }
        ));
        gate.open(2);
        a.join().unwrap();
        b.join().unwrap();
    });
    assert_eq!(service.metrics().invocations.concurrent_executions, 0);
    assert_eq!(gate.fake.stats().shut_down, 1);
}

#[test]
fn best_fit_packs_by_memory() {
    let (service, _clock, _gate) =
        gate_service(|b| b.configure(|c| c.workers = vec![spec(4096), spec(1024)]));
    service
        .create_function(config("f").with_memory_mb(512))
        .unwrap();
    service.invoke(InvokeRequest::new("f", "x")).unwrap();
    let workers = service.workers();
    assert_eq!((workers[0].used_mb, workers[1].used_mb), (0, 512));
}

#[test]
fn leases_drain_workers_and_replace_them() {
    let (service, clock, gate) = gate_service(|b| b.configure(|c| c.workers = vec![spec(1024)]));
    let service = Arc::new(service);
    service.create_function(config("f")).unwrap();
    service.invoke(InvokeRequest::new("f", "x")).unwrap();
    let first = service.workers()[0].id;
    clock.advance(Duration::from_secs(3599));
    std::thread::scope(|s| {
        let running = s.spawn(|| service.invoke(InvokeRequest::new("f", "gate")).unwrap());
        gate.wait_entered(1);
        // The lease ends while the invocation runs (well within its 3 s timeout).
        clock.advance(Duration::from_secs(1));
        service.run_pending();
        let workers = service.workers();
        assert_eq!(workers.len(), 2);
        assert_eq!(workers[0].state, WorkerState::Draining);
        assert_eq!(
            workers[0].environments, 1,
            "the running environment finishes there"
        );
        assert_eq!(workers[1].state, WorkerState::Active);
        // New work goes to the replacement.
        let other = service.invoke(InvokeRequest::new("f", "y")).unwrap();
        assert_eq!(other.start, Some(StartKind::Cold));
        gate.open(1);
        assert!(running.join().unwrap().is_success());
    });
    service.run_pending();
    let workers = service.workers();
    assert_eq!(workers.len(), 1);
    assert_ne!(workers[0].id, first);
    assert_eq!(workers[0].environments, 1);
    assert_eq!(gate.fake.stats().live(), 1);
}

#[test]
fn a_failed_worker_takes_its_environments_and_the_others_keep_serving() {
    let (service, _clock, gate) = gate_service(|b| {
        b.placement(Arc::new(LeastLoaded))
            .configure(|c| c.workers = vec![spec(1024), spec(1024)])
    });
    let service = Arc::new(service);
    service.create_function(config("f")).unwrap();
    std::thread::scope(|s| {
        let held: Vec<_> = (0..4)
            .map(|_| s.spawn(|| service.invoke(InvokeRequest::new("f", "gate")).unwrap()))
            .collect();
        gate.wait_entered(4);
        gate.open(4);
        for h in held {
            h.join().unwrap();
        }
    });
    let workers = service.workers();
    assert_eq!((workers[0].environments, workers[1].environments), (2, 2));
    service.fail_worker(workers[0].id).unwrap();
    let m = service.metrics();
    assert_eq!(m.environments_lost, 2);
    assert_eq!(m.environments_idle, 2);
    assert_eq!(service.workers().len(), 1);
    for _ in 0..5 {
        let r = service.invoke(InvokeRequest::new("f", "x")).unwrap();
        assert_eq!(r.start, Some(StartKind::Warm));
    }
    assert!(matches!(
        service.fail_worker(workers[0].id),
        Err(Error::ResourceNotFound { .. })
    ));
    assert_eq!(gate.fake.stats().live(), 2);
}
