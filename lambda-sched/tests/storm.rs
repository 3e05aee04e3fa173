//! A storm of mixed failures on many threads: backend create errors, Init failures, crashes,
//! timeouts, hangs, broken environments, throttles of every kind, async events, code updates
//! and a failed worker. Afterwards concurrency is back to zero and every environment the
//! backend created is either idle in a pool or shut down.
//!
//! The test has two parts. The first makes every outcome the storm is about happen by
//! construction, on one thread: throttles come from invocations held in flight by a gate
//! (not from threads that happen to overlap), time comes from the manual clock, and each
//! outcome is counted exactly. The second is the storm itself: eight threads of random
//! invocations, whose interleaving varies from run to run, so it asserts only what holds
//! under every interleaving (every invocation ends, every event reaches an end, nothing is
//! left running, the backend's and the service's counts agree).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{GateBackend, builder, config};
use lambda_core::CodeLocation;
use lambda_sched::fake::FakeBackend;
use lambda_sched::{
    ConcurrencyLimits, DeadLetter, Error, EventInvokeConfig, InvocationRecord, InvocationType,
    InvokeRequest, ManualClock, Recorder, Service, WorkerSpec, WorkerState,
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
/// Account concurrency 7 with 2 reserved for `reserved`: 5 left for everything else.
const ACCOUNT_CONCURRENCY: u32 = 7;
const RESERVED: u32 = 2;

/// What one invocation came to, as the tests count it.
fn outcome(result: &Result<lambda_sched::InvokeResponse, Error>) -> String {
    match result {
        Ok(response) => match &response.function_error {
            None => format!("ok {}", response.status_code),
            Some(error) => format!("function error {}", error.error_type),
        },
        Err(Error::TooManyRequests { reason, .. }) => format!("throttle {reason}"),
        Err(error @ Error::Service { .. }) => error.exception_name().to_string(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// The service both parts run on: five functions on two workers, with a gate in front of the
/// fake backend so that invocations whose payload is `gate` can be held in flight.
fn storm_service() -> (Service, Arc<ManualClock>, Arc<GateBackend>) {
    let clock = Arc::new(ManualClock::new());
    let gate = GateBackend::new(FakeBackend::with_clock(clock.clone()));
    let service = builder(gate.clone(), &clock)
        .configure(|c| {
            c.limits = ConcurrencyLimits {
                account_concurrency: ACCOUNT_CONCURRENCY,
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
    service
        .put_function_concurrency("reserved", RESERVED)
        .unwrap();
    (service, clock, gate)
}

/// Invokes `function` synchronously with `n` invocations held in flight by the gate, and
/// returns what the extra invocation came to. The held ones succeed once released.
fn while_holding(
    service: &Service,
    gate: &GateBackend,
    held_function: &str,
    n: usize,
    function: &str,
) -> String {
    std::thread::scope(|s| {
        let held: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| outcome(&service.invoke(InvokeRequest::new(held_function, "gate"))))
            })
            .collect();
        gate.wait_entered(n);
        let extra = outcome(&service.invoke(InvokeRequest::new(function, "x")));
        gate.open(n);
        for thread in held {
            assert_eq!(thread.join().unwrap(), "ok 200");
        }
        extra
    })
}

/// Part one: every outcome the storm asserts, each made to happen on purpose.
fn every_outcome_by_construction(
    service: &Service,
    clock: &ManualClock,
    gate: &GateBackend,
    dead_letters: &Recorder<DeadLetter>,
    failures: &Recorder<InvocationRecord>,
) {
    let sync = |function: &str, payload: &str| {
        outcome(&service.invoke(InvokeRequest::new(function, payload)))
    };
    let typed = |function: &str, invocation_type| {
        outcome(
            &service
                .invoke(InvokeRequest::new(function, "x").with_invocation_type(invocation_type)),
        )
    };

    // Throttles: the reserved function's two slots held, then the five unreserved ones.
    assert_eq!(
        while_holding(service, gate, "reserved", RESERVED as usize, "reserved"),
        "throttle ReservedFunctionConcurrentInvocationLimitExceeded"
    );
    assert_eq!(
        while_holding(
            service,
            gate,
            "ok",
            (ACCOUNT_CONCURRENCY - RESERVED) as usize,
            "ok"
        ),
        "throttle ConcurrentInvocationLimitExceeded"
    );
    // With the unreserved slots held, the reserved function still runs.
    assert_eq!(
        while_holding(
            service,
            gate,
            "ok",
            (ACCOUNT_CONCURRENCY - RESERVED) as usize,
            "reserved"
        ),
        "ok 200"
    );

    // Every answer a function can give, and the three invocation types.
    assert_eq!(sync("ok", "x"), "ok 200");
    assert_eq!(typed("ok", InvocationType::DryRun), "ok 204");
    assert_eq!(sync("ok", "fake:error"), "function error FakeError");
    assert_eq!(sync("ok", "fake:crash"), "function error Runtime.ExitError");
    assert_eq!(
        sync("ok", "fake:timeout"),
        "function error Sandbox.Timedout"
    );
    assert_eq!(sync("ok", "fake:broken"), "function error Sandbox.Failure");
    assert_eq!(
        sync("ok", "fake:large"),
        "function error Function.ResponseSizeTooLarge"
    );
    assert_eq!(sync("initfail", "x"), "function error Runtime.InitError");
    let hung = service.metrics().hung_invocations;
    assert_eq!(sync("ok", "fake:hang"), "function error Sandbox.Timedout");
    assert_eq!(service.metrics().hung_invocations, hung + 1);

    // A backend that fails to create an environment: ServiceException.
    gate.fake.fail_next_creates(1);
    assert_eq!(sync("big", "x"), "ServiceException");
    assert_eq!(sync("big", "x"), "ok 200");

    // An event that fails every attempt: run, retried after 1 and 2 minutes, then handed
    // to the on-failure destination and the dead-letter queue.
    assert_eq!(typed("ok", InvocationType::Event), "ok 202");
    let request =
        InvokeRequest::new("flaky", "fake:error").with_invocation_type(InvocationType::Event);
    assert_eq!(outcome(&service.invoke(request)), "ok 202");
    let progress = || {
        let m = service.metrics();
        (m.async_retries, failures.len(), dead_letters.len())
    };
    service.run_pending();
    assert_eq!(
        progress(),
        (1, 0, 0),
        "the first attempt failed, a retry is due"
    );
    clock.advance(Duration::from_secs(60));
    service.run_pending();
    assert_eq!(
        progress(),
        (2, 0, 0),
        "the first retry failed, another is due"
    );
    clock.advance(Duration::from_secs(120));
    service.run_pending();
    assert_eq!(
        progress(),
        (2, 1, 1),
        "the last retry failed: destination and DLQ"
    );
    let m = service.metrics();
    assert_eq!(m.async_queue_depth, 0);

    // A worker fails while it holds environments: they are lost, and a new worker serves.
    let victim = service
        .workers()
        .into_iter()
        .filter(|w| w.state == WorkerState::Active && w.environments > 0)
        .max_by_key(|w| w.environments)
        .expect("a worker holds warm environments");
    let lost = service.metrics().environments_lost;
    service.fail_worker(victim.id).unwrap();
    assert_eq!(
        service.metrics().environments_lost,
        lost + victim.environments
    );
    service.add_worker(WorkerSpec {
        capacity_mb: 1024,
        lease: Duration::from_secs(1800),
    });
    assert_eq!(sync("ok", "x"), "ok 200");
}

#[test]
fn a_storm_of_mixed_failures_leaks_nothing() {
    let (service, clock, gate) = storm_service();
    let fake = gate.fake.clone();
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

    every_outcome_by_construction(&service, &clock, &gate, &dead_letters, &failures);
    let before = service.metrics();

    // Part two: the storm. Which invocation meets which throttle depends on how the threads
    // overlap, so only what holds under every interleaving is asserted.
    let outcomes: Mutex<HashMap<String, u64>> = Mutex::new(HashMap::new());
    let sync_throttles = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let invokers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (service, outcomes, sync_throttles) = (&service, &outcomes, &sync_throttles);
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
                        let request = InvokeRequest::new(function, payload)
                            .with_invocation_type(invocation_type);
                        let key = outcome(&service.invoke(request));
                        if key.starts_with("throttle ")
                            && invocation_type == InvocationType::RequestResponse
                        {
                            sync_throttles.fetch_add(1, Ordering::Relaxed);
                        }
                        *outcomes.lock().unwrap().entry(key).or_insert(0) += 1;
                    }
                })
            })
            .collect();
        // The operator: time passes, maintenance runs, code changes, and once a quarter of
        // the invocations are done, the worker holding most environments fails.
        let operator = {
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
            })
        };
        for invoker in invokers {
            invoker.join().unwrap();
        }
        done.store(true, Ordering::Release);
        operator.join().unwrap();
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

    let outcomes: BTreeMap<_, _> = outcomes.into_inner().unwrap().into_iter().collect();
    eprintln!("{outcomes:#?}");
    let m = service.metrics();
    eprintln!("{m}");
    let stats = fake.stats();
    eprintln!("{stats:?}");

    // Every storm invocation got an answer the service documents (`outcome` panics on any
    // other), and every accepted event reached an end.
    assert_eq!(
        outcomes.values().sum::<u64>(),
        (THREADS * PER_THREAD) as u64
    );
    assert!(m.environments_idle > 0, "some environments are still warm");
    assert_eq!(dead_letters.len() as u64, m.dead_letters);
    assert_eq!(failures.len() as u64, m.destination_deliveries);
    assert_eq!(
        m.async_events_accepted - before.async_events_accepted,
        outcomes.get("ok 202").copied().unwrap_or(0)
    );
    assert_eq!(
        m.async_succeeded + m.async_failed + m.async_expired,
        m.async_events_accepted,
        "every accepted event reached an end"
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
    assert!(
        m.invocations.throttles - before.invocations.throttles
            >= sync_throttles.load(Ordering::Relaxed)
    );

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
