//! The counting service through the public API: account and reserved concurrency, the
//! scale-up rate, provisioned concurrency and its spillover.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, gate_service};
use lambda_sched::{ConcurrencyLimits, Error, InvokeRequest, StartKind, ThrottleReason, Version};

fn reason(error: &Error) -> ThrottleReason {
    match error {
        Error::TooManyRequests { reason, .. } => *reason,
        other => panic!("expected a throttle, got {other:?}"),
    }
}

#[test]
fn account_and_reserved_limits_throttle_with_their_reasons() {
    let (service, _clock, gate) = gate_service(|b| {
        b.configure(|c| {
            c.limits = ConcurrencyLimits {
                account_concurrency: 5,
                min_unreserved_concurrency: 2,
                ..ConcurrencyLimits::default()
            }
        })
    });
    let service = Arc::new(service);
    service.create_function(config("reserved")).unwrap();
    service.create_function(config("shared")).unwrap();
    assert!(matches!(
        service.put_function_concurrency("reserved", 4),
        Err(Error::InvalidParameterValue { .. })
    ));
    service.put_function_concurrency("reserved", 2).unwrap();
    assert_eq!(
        service
            .get_function("reserved")
            .unwrap()
            .reserved_concurrency,
        Some(2)
    );
    std::thread::scope(|s| {
        let mut held = Vec::new();
        for name in ["reserved", "reserved", "shared", "shared", "shared"] {
            let service = &service;
            held.push(s.spawn(move || service.invoke(InvokeRequest::new(name, "gate"))));
        }
        gate.wait_entered(5);
        let m = service.metrics();
        assert_eq!(m.invocations.concurrent_executions, 5);
        assert_eq!(m.unreserved_concurrent_executions, 3);
        let error = service
            .invoke(InvokeRequest::new("reserved", "x"))
            .unwrap_err();
        assert_eq!(
            reason(&error),
            ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded
        );
        assert_eq!(error.status_code(), 429);
        match &error {
            Error::TooManyRequests { retry_after, .. } => {
                assert_eq!(*retry_after, Duration::from_secs(1))
            }
            _ => unreachable!(),
        }
        let error = service
            .invoke(InvokeRequest::new("shared", "x"))
            .unwrap_err();
        assert_eq!(
            reason(&error),
            ThrottleReason::ConcurrentInvocationLimitExceeded
        );
        gate.open(5);
        for h in held {
            h.join().unwrap().unwrap();
        }
    });
    let m = service.metrics();
    assert_eq!(m.invocations.throttles, 2);
    assert_eq!(service.function_metrics("reserved").unwrap().throttles, 1);
    assert_eq!(m.invocations.concurrent_executions, 0);
    // Reserved concurrency 0 disables the function.
    service.put_function_concurrency("reserved", 0).unwrap();
    let error = service
        .invoke(InvokeRequest::new("reserved", "x"))
        .unwrap_err();
    assert!(error.to_string().contains("disabled"), "{error}");
    service.delete_function_concurrency("reserved").unwrap();
    service.invoke(InvokeRequest::new("reserved", "x")).unwrap();
}

#[test]
fn the_scale_up_bucket_limits_new_environments_not_warm_invocations() {
    let (service, clock, gate) = gate_service(|b| {
        b.configure(|c| {
            c.limits.scale_up_burst = 2;
            c.limits.scale_up_refill = Duration::from_secs(10);
        })
    });
    let service = Arc::new(service);
    service.create_function(config("f")).unwrap();
    std::thread::scope(|s| {
        let a = s.spawn(|| service.invoke(InvokeRequest::new("f", "gate")).unwrap());
        let b = s.spawn(|| service.invoke(InvokeRequest::new("f", "gate")).unwrap());
        gate.wait_entered(2);
        let error = service.invoke(InvokeRequest::new("f", "x")).unwrap_err();
        assert_eq!(
            reason(&error),
            ThrottleReason::FunctionInvocationRateLimitExceeded
        );
        match error {
            Error::TooManyRequests { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_secs(5))
            }
            _ => unreachable!(),
        }
        gate.open(2);
        a.join().unwrap();
        b.join().unwrap();
    });
    // Warm environments need no tokens.
    for _ in 0..10 {
        assert_eq!(
            service.invoke(InvokeRequest::new("f", "x")).unwrap().start,
            Some(StartKind::Warm)
        );
    }
    // The bucket refills continuously: one token after 5 s.
    clock.advance(Duration::from_secs(5));
    std::thread::scope(|s| {
        let held: Vec<_> = (0..3)
            .map(|_| s.spawn(|| service.invoke(InvokeRequest::new("f", "gate"))))
            .collect();
        gate.wait_entered(3);
        gate.open(3);
        let starts: Vec<StartKind> = held
            .into_iter()
            .map(|h| h.join().unwrap().unwrap().start.unwrap())
            .collect();
        assert_eq!(starts.iter().filter(|s| **s == StartKind::Cold).count(), 1);
    });
}

#[test]
fn provisioned_concurrency_is_kept_topped_up_and_counts_spillover() {
    let (service, _clock, gate) = gate_service(|b| b);
    let service = Arc::new(service);
    service.create_function(config("f")).unwrap();
    service.publish_version("f", "").unwrap();
    service
        .create_alias("f", "live", Version::Published(1), None)
        .unwrap();
    assert!(matches!(
        service.put_provisioned_concurrency("f", "$LATEST", 2),
        Err(Error::InvalidParameterValue { .. })
    ));
    service.put_function_concurrency("f", 3).unwrap();
    assert!(matches!(
        service.put_provisioned_concurrency("f", "live", 4),
        Err(Error::InvalidParameterValue { .. })
    ));
    service.put_provisioned_concurrency("f", "live", 2).unwrap();
    assert!(matches!(
        service.put_function_concurrency("f", 1),
        Err(Error::InvalidParameterValue { .. })
    ));
    let progress = service.run_pending();
    assert_eq!(progress.environments_created, 2);
    let m = service.metrics();
    assert_eq!(
        (
            m.provisioned_concurrency_requested,
            m.provisioned_concurrency_allocated
        ),
        (2, 2)
    );
    // Invoking the version directly also uses the alias's provisioned environments.
    let r = service.invoke(InvokeRequest::new("f:1", "x")).unwrap();
    assert_eq!(r.start, Some(StartKind::Provisioned));
    std::thread::scope(|s| {
        let held: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    service
                        .invoke(InvokeRequest::new("f:live", "gate"))
                        .unwrap()
                })
            })
            .collect();
        gate.wait_entered(3);
        let m = service.metrics();
        assert_eq!(m.provisioned_concurrent_executions, 2);
        assert!((m.provisioned_utilization - 1.0).abs() < 1e-9);
        gate.open(3);
        let mut starts: Vec<StartKind> = held
            .into_iter()
            .map(|h| h.join().unwrap().start.unwrap())
            .collect();
        starts.sort_by_key(|s| *s as u8);
        assert_eq!(
            starts,
            [
                StartKind::Cold,
                StartKind::Provisioned,
                StartKind::Provisioned
            ]
        );
    });
    let fm = service.function_metrics("f").unwrap();
    assert_eq!(fm.provisioned_invocations, 3);
    assert_eq!(fm.provisioned_spillover_invocations, 1);
    // A provisioned environment that breaks is replaced by the next maintenance pass.
    let r = service
        .invoke(InvokeRequest::new("f:live", "fake:broken"))
        .unwrap();
    assert_eq!(r.start, Some(StartKind::Provisioned));
    assert_eq!(service.metrics().provisioned_concurrency_allocated, 1);
    service.run_pending();
    assert_eq!(service.metrics().provisioned_concurrency_allocated, 2);
    // A failed creation is retried later.
    service
        .invoke(InvokeRequest::new("f:live", "fake:broken"))
        .unwrap();
    gate.fake.fail_next_creates(1);
    service.run_pending();
    assert_eq!(service.metrics().provisioned_concurrency_allocated, 1);
    service.run_pending();
    assert_eq!(service.metrics().provisioned_concurrency_allocated, 2);
    // Removing the configuration releases the environments.
    service.delete_provisioned_concurrency("f", "live").unwrap();
    service.run_pending();
    let m = service.metrics();
    assert_eq!(m.provisioned_concurrency_allocated, 0);
    assert_eq!(m.invocations.concurrent_executions, 0);
}
