//! A storm of mixed failures on many threads: backend create errors, Init failures, crashes,
//! timeouts, hangs, broken environments, throttles of every kind, async events, code updates
//! and a failed worker. Afterwards concurrency is back to zero and every environment the
//! backend created is either idle in a pool or shut down.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{builder, config};
use lambda_core::CodeLocation;
use lambda_sched::fake::FakeBackend;
use lambda_sched::{
    ConcurrencyLimits, DeadLetter, Error, EventInvokeConfig, InvocationRecord, InvocationType,
    InvokeRequest, ManualClock, Recorder, WorkerSpec, WorkerState,
};

const THREADS: usize = 8;
const PER_THREAD: usize = 400;

const FUNCTIONS: [&str; 5] = ["ok", "flaky", "initfail", "reserved", "big"];
const PAYLOADS: [&str; 9] = [
    "x",
    "x",
    "x",
    "fake:error",
    "fake:crash",
    "fake:timeout",
    "fake:hang",
    "fake:broken",
    "fake:large",
];

#[test]
fn a_storm_of_mixed_failures_leaks_nothing() {
    let clock = Arc::new(ManualClock::new());
    let fake = FakeBackend::with_clock(clock.clone());
    let service = builder(fake.clone(), &clock)
        .configure(|c| {
            c.limits = ConcurrencyLimits {
                account_concurrency: 7,
                min_unreserved_concurrency: 2,
                scale_up_burst: 40,
                scale_up_refill: Duration::from_secs(10),
                ..ConcurrencyLimits::default()
            };
            c.workers = vec![
                WorkerSpec {
                    capacity_mb: 1024,
                    lease: Duration::from_secs(1800),
                },
                WorkerSpec {
                    capacity_mb: 768,
                    lease: Duration::from_secs(3600),
                },
            ];
        })
        .build()
        .unwrap();
    service.create_function(config("ok")).unwrap();
    service
        .create_function(config("flaky").with_env("FAKE_CREATE_FAIL_EVERY", "3"))
        .unwrap();
    service
        .create_function(config("initfail").with_env("FAKE_CREATE", "init-error"))
        .unwrap();
    service.create_function(config("reserved")).unwrap();
    service
        .create_function(config("big").with_memory_mb(512))
        .unwrap();
    service.put_function_concurrency("reserved", 2).unwrap();
    let dead_letters = Recorder::<DeadLetter>::new();
    let failures = Recorder::<InvocationRecord>::new();
    for name in ["flaky", "initfail"] {
        service
            .set_dead_letter_sink(name, Some(dead_letters.clone()))
            .unwrap();
        service
            .put_event_invoke_config(
                name,
                None,
                EventInvokeConfig::default().with_on_failure(failures.clone()),
            )
            .unwrap();
    }

    let outcomes: Mutex<HashMap<String, u64>> = Mutex::new(HashMap::new());
    let record = |key: String| *outcomes.lock().unwrap().entry(key).or_insert(0) += 1;
    let sync_throttles = AtomicU64::new(0);
    let done = AtomicBool::new(false);

    std::thread::scope(|s| {
        for thread in 0..THREADS {
            let (service, record, sync_throttles) = (&service, &record, &sync_throttles);
            s.spawn(move || {
                let mut state = 0x9e37_79b9_u64.wrapping_mul(thread as u64 + 1);
                let mut next = |n: usize| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    ((state >> 33) as usize) % n
                };
                for _ in 0..PER_THREAD {
                    let function = FUNCTIONS[next(FUNCTIONS.len())];
                    let payload = PAYLOADS[next(PAYLOADS.len())];
                    let invocation_type = match next(10) {
                        0 => InvocationType::Event,
                        1 => InvocationType::DryRun,
                        _ => InvocationType::RequestResponse,
                    };
                    let request =
                        InvokeRequest::new(function, payload).with_invocation_type(invocation_type);
                    match service.invoke(request) {
                        Ok(response) => match &response.function_error {
                            None => record(format!("ok {}", response.status_code)),
                            Some(error) => record(format!("function error {}", error.error_type)),
                        },
                        Err(Error::TooManyRequests { reason, .. }) => {
                            if invocation_type == InvocationType::RequestResponse {
                                sync_throttles.fetch_add(1, Ordering::Relaxed);
                            }
                            record(format!("throttle {reason}"));
                        }
                        Err(error @ Error::Service { .. }) => {
                            record(error.exception_name().to_string())
                        }
                        Err(other) => panic!("unexpected error {other}"),
                    }
                }
            });
        }
        // The operator: time passes, maintenance runs, code changes, a worker fails.
        let (service, clock, done, outcomes) = (&service, &clock, &done, &outcomes);
        s.spawn(move || {
            let mut round = 0u64;
            let mut failed_one = false;
            while !done.load(Ordering::Acquire) {
                round += 1;
                clock.advance(Duration::from_millis(700));
                service.run_pending();
                if round % 20 == 0 {
                    service
                        .update_function_code(
                            "ok",
                            CodeLocation::Executable(format!("/fake/v{round}").into()),
                        )
                        .unwrap();
                }
                let progress: u64 = outcomes.lock().unwrap().values().sum();
                if !failed_one && progress > (THREADS * PER_THREAD / 4) as u64 {
                    // Fail the active worker holding most environments, once it holds any.
                    let victim = service
                        .workers()
                        .into_iter()
                        .filter(|w| w.state == WorkerState::Active && w.environments > 0)
                        .max_by_key(|w| w.environments);
                    if let Some(victim) = victim {
                        failed_one = true;
                        service.fail_worker(victim.id).unwrap();
                        service.add_worker(WorkerSpec {
                            capacity_mb: 1024,
                            lease: Duration::from_secs(1800),
                        });
                    }
                }
                std::thread::yield_now();
            }
        });
        // Stop the operator once the invokers are done (scope joins them first otherwise).
        s.spawn(|| {
            while outcomes.lock().unwrap().values().sum::<u64>() < (THREADS * PER_THREAD) as u64 {
                std::thread::yield_now();
            }
            done.store(true, Ordering::Release);
        });
    });

    // Let every queued event run out its retries (1 and 2 minutes after function errors,
    // up to 5 minutes of backoff after throttles).
    for _ in 0..100 {
        if service.metrics().async_queue_depth == 0 {
            break;
        }
        clock.advance(Duration::from_secs(30));
        service.run_pending();
    }
    // A few warm environments, so that the memory check below checks something.
    clock.advance(Duration::from_secs(10));
    for _ in 0..3 {
        let response = service.invoke(InvokeRequest::new("big", "x")).unwrap();
        assert!(response.is_success());
    }

    let outcomes = outcomes.into_inner().unwrap();
    eprintln!("{outcomes:#?}");
    let m = service.metrics();
    eprintln!("{m}");
    let stats = fake.stats();
    eprintln!("{stats:?}");

    // Every kind of trouble really happened.
    for key in [
        "ok 200",
        "ok 202",
        "ok 204",
        "function error FakeError",
        "function error Runtime.ExitError",
        "function error Sandbox.Timeout",
        "function error Sandbox.Failure",
        "function error Runtime.InitError",
        "function error Function.ResponseSizeTooLarge",
        "throttle ConcurrentInvocationLimitExceeded",
        "throttle ReservedFunctionConcurrentInvocationLimitExceeded",
        "ServiceException",
    ] {
        assert!(
            outcomes.get(key).copied().unwrap_or(0) > 0,
            "no {key:?} in {outcomes:#?}"
        );
    }
    assert!(m.hung_invocations > 0 && m.environments_lost > 0 && m.async_retries > 0);
    assert!(m.environments_idle > 0, "some environments are still warm");
    assert!(!dead_letters.is_empty());
    assert_eq!(dead_letters.len() as u64, m.dead_letters);
    assert_eq!(failures.len() as u64, m.destination_deliveries);
    assert_eq!(m.async_events_accepted, outcomes["ok 202"]);
    assert_eq!(
        m.async_succeeded + m.async_failed + m.async_expired,
        m.async_events_accepted,
        "every accepted event reached an end"
    );
    assert_eq!(
        outcomes.values().sum::<u64>(),
        (THREADS * PER_THREAD) as u64
    );

    // Nothing is running and nothing is counted as running.
    assert_eq!(m.invocations.concurrent_executions, 0);
    assert_eq!(m.unreserved_concurrent_executions, 0);
    for name in FUNCTIONS {
        assert_eq!(
            service
                .function_metrics(name)
                .unwrap()
                .concurrent_executions,
            0
        );
    }
    assert_eq!(m.environments_busy, 0);
    assert_eq!(m.async_queue_depth, 0);
    assert!(m.invocations.throttles >= sync_throttles.load(Ordering::Relaxed));

    // Every environment the backend made is idle in a pool or was shut down, and the
    // service's counts agree with the backend's.
    assert_eq!(stats.created, m.environments_created);
    assert_eq!(stats.shut_down, m.environments_shut_down);
    assert_eq!(stats.live(), m.environments_idle);
    assert_eq!(stats.foreign_invocations, 0);
    let held: u64 = service.workers().iter().map(|w| w.used_mb).sum();
    let idle_memory: u64 = FUNCTIONS
        .iter()
        .map(|name| {
            let memory = u64::from(service.get_function(name).unwrap().config.memory_mb);
            service.environment_counts(name).unwrap().0 * memory
        })
        .sum();
    assert_eq!(
        held, idle_memory,
        "worker memory matches the idle environments"
    );

    // Deleting the functions shuts everything down and frees every worker.
    for name in FUNCTIONS {
        service.delete_function(name, None).unwrap();
    }
    assert_eq!(fake.stats().live(), 0);
    assert!(
        service
            .workers()
            .iter()
            .all(|w| w.used_mb == 0 && w.environments == 0)
    );
}
