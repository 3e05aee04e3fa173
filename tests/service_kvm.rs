//! The function service on the KVM micro-VM backend with warm Runtime API environments: Init
//! once, then invocation after invocation in the same micro-VM; a new environment only when
//! none is idle; function errors keep the environment, crashes reset it; asynchronous events
//! and event sources delivered; nothing running at the end.
//!
//! Fails when KVM cannot be used, unless built with `LAMBDA_SKIP_KVM_TESTS=1` (then ignored).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{function, kvm_backend};
use lambda::core::{
    Backend, CodeLocation, EnvironmentError, ErrorType, ExecutionEnvironment, FunctionConfig,
};
use lambda::sched::{
    Condition, EventInvokeConfig, EventSourceMappingConfig, InvocationRecord, InvokeRequest,
    InvokeResponse, MemoryQueue, Recorder, Service, StartKind,
};
use lambda::vmm::MicroVmBackend;

const COUNT: &str = r#"{"action":"count"}"#;

/// A Runtime API function (the default contract) running guest program `program`.
fn runtime_config(name: &str, program: &str) -> FunctionConfig {
    FunctionConfig::new(name, CodeLocation::Executable(function(program)))
        .with_timeout(Duration::from_secs(10))
}

/// A service on the micro-VM backend with `runtime-loop` registered as "echo-loop".
fn service() -> Service {
    let backend = kvm_backend();
    let service = Service::builder(Arc::new(backend)).build().unwrap();
    service
        .create_function(runtime_config("echo-loop", "runtime-loop"))
        .unwrap();
    service
}

/// A backend whose first `n` creations wait for each other before they go ahead.
struct CreateTogether {
    inner: MicroVmBackend,
    barrier: Barrier,
    waiting: AtomicUsize,
}

impl Backend for CreateTogether {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn create(
        &self,
        config: &FunctionConfig,
    ) -> Result<Box<dyn ExecutionEnvironment>, EnvironmentError> {
        let first = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if first {
            self.barrier.wait();
        }
        self.inner.create(config)
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn text(response: &InvokeResponse) -> String {
    String::from_utf8_lossy(&response.payload).into_owned()
}

/// N of a successful `{"count":N,...}` response: invocations its environment has served.
fn count(response: &InvokeResponse) -> u64 {
    assert!(response.is_success(), "{response:?}");
    let body = text(response);
    let digits: String = body
        .strip_prefix(r#"{"count":"#)
        .unwrap_or_else(|| panic!("not a count: {body}"))
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {body}"))
}

fn init_duration(response: &InvokeResponse) -> Option<Duration> {
    response.report.as_ref().expect("a report").init_duration
}

/// Nothing runs and no environment is busy, for the service and for each function.
fn assert_quiet(service: &Service, functions: &[&str]) {
    let m = service.metrics();
    assert_eq!(m.invocations.concurrent_executions, 0, "{m}");
    assert_eq!(m.unreserved_concurrent_executions, 0, "{m}");
    assert_eq!(m.environments_busy, 0, "{m}");
    assert_eq!(m.environment_create_failures, 0, "{m}");
    assert_eq!(m.hung_invocations, 0, "{m}");
    for name in functions {
        assert_eq!(
            service
                .function_metrics(name)
                .unwrap()
                .concurrent_executions,
            0
        );
        assert_eq!(
            service.environment_counts(name).unwrap().1,
            0,
            "{name} busy"
        );
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn sequential_invocations_reuse_one_warm_environment() {
    let service = service();
    for n in 1..=20 {
        let response = service
            .invoke(InvokeRequest::new("echo-loop", COUNT))
            .unwrap();
        assert_eq!(response.status_code, 200);
        // The environment's global counter survives between invocations.
        assert_eq!(count(&response), n, "{response:?}");
        let report = response.report.as_ref().unwrap().to_string();
        assert!(report.starts_with("REPORT RequestId: "), "{report}");
        if n == 1 {
            assert_eq!(response.start, Some(StartKind::Cold));
            assert!(init_duration(&response).is_some(), "{report}");
            assert!(report.contains("\tInit Duration: "), "{report}");
        } else {
            assert_eq!(response.start, Some(StartKind::Warm), "invocation {n}");
            assert_eq!(init_duration(&response), None, "{report}");
            assert!(!report.contains("Init Duration"), "{report}");
        }
    }
    let m = service.function_metrics("echo-loop").unwrap();
    assert_eq!(
        (m.invocations, m.errors, m.cold_starts, m.warm_starts),
        (20, 0, 1, 19)
    );
    assert_eq!(service.environment_counts("echo-loop").unwrap(), (1, 0));
    assert_eq!(service.metrics().environments_created, 1);

    // The official lambda_runtime crate (tokio + hyper) is reused the same way.
    service
        .create_function(runtime_config("rust-echo", "runtime-rust"))
        .unwrap();
    for n in 1..=3 {
        let response = service
            .invoke(InvokeRequest::new("rust-echo", format!(r#"{{"n":{n}}}"#)))
            .unwrap();
        assert_eq!(
            text(&response),
            format!(r#"{{"count":{n},"echo":{{"n":{n}}}}}"#)
        );
        assert_eq!(init_duration(&response).is_some(), n == 1);
    }
    let m = service.function_metrics("rust-echo").unwrap();
    assert_eq!((m.cold_starts, m.warm_starts), (1, 2));
    assert_eq!(service.metrics().environments_created, 2);
    assert_quiet(&service, &["echo-loop", "rust-echo"]);
    service.shutdown();
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn concurrent_invocations_get_environments_of_their_own() {
    const THREADS: usize = 4;
    const CALLS: usize = 5;
    // The first THREADS environments are created together: each creation waits inside the
    // backend until all of them have begun, so no thread can find another's environment idle
    // and every thread's first invocation is a cold start, whatever the scheduling.
    let backend = Arc::new(CreateTogether {
        inner: kvm_backend(),
        barrier: Barrier::new(THREADS),
        waiting: AtomicUsize::new(THREADS),
    });
    let service = Service::builder(backend).build().unwrap();
    service
        .create_function(runtime_config("echo-loop", "runtime-loop"))
        .unwrap();
    // (start, count, Init Duration reported) of every invocation.
    let results: Vec<(StartKind, u64, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let service = &service;
                s.spawn(move || {
                    (0..CALLS)
                        .map(|_| {
                            let response = service
                                .invoke(InvokeRequest::new("echo-loop", COUNT))
                                .unwrap();
                            let init = init_duration(&response).is_some();
                            (response.start.unwrap(), count(&response), init)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(results.len(), THREADS * CALLS);
    let cold = results
        .iter()
        .filter(|(start, ..)| *start == StartKind::Cold)
        .count();
    // Afterwards an idle environment is always there (at most THREADS - 1 others are busy).
    assert_eq!(cold, THREADS, "{results:?}");
    // Cold starts, and only they, are an environment's first invocation with its Init.
    for &(start, n, init) in &results {
        match start {
            StartKind::Cold => assert!(n == 1 && init, "{results:?}"),
            StartKind::Warm => assert!(n > 1 && !init, "{results:?}"),
            StartKind::Provisioned => panic!("no provisioned concurrency here"),
        }
    }
    // Each environment counts its own invocations 1, 2, 3...: at least as many saw count
    // c - 1 as saw count c.
    let seen = |c: u64| results.iter().filter(|(_, n, _)| *n == c).count();
    assert_eq!(seen(1), cold);
    for c in 2..=(THREADS * CALLS) as u64 {
        assert!(seen(c) <= seen(c - 1), "{results:?}");
    }

    let m = service.function_metrics("echo-loop").unwrap();
    assert_eq!(m.invocations, (THREADS * CALLS) as u64);
    assert_eq!(
        (m.cold_starts, m.warm_starts),
        (cold as u64, (THREADS * CALLS - cold) as u64)
    );
    assert_eq!(service.metrics().environments_created, cold as u64);
    assert_eq!(
        service.environment_counts("echo-loop").unwrap(),
        (cold as u64, 0)
    );
    assert_quiet(&service, &["echo-loop"]);
    service.shutdown();
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn function_errors_keep_the_environment_and_crashes_reset_it() {
    let service = service();
    let invoke = |payload: &str| {
        service
            .invoke(InvokeRequest::new("echo-loop", payload))
            .unwrap()
    };
    assert_eq!(count(&invoke(COUNT)), 1);

    // A function error posted by the runtime: a response with the error, not an Err.
    let failed = invoke(r#"{"action":"error"}"#);
    assert_eq!(failed.status_code, 200);
    assert_eq!(failed.function_error_header(), Some("Unhandled"));
    let error = failed.function_error.clone().unwrap();
    assert_eq!(
        error.error_type,
        ErrorType::Function("Custom.Failure".into())
    );
    assert_eq!(error.message, "requested failure");
    assert!(
        text(&failed).contains(r#""errorType":"Custom.Failure""#),
        "{}",
        text(&failed)
    );
    assert_eq!(failed.start, Some(StartKind::Warm));
    // ... which leaves the environment as it was: warm, its counter going on.
    let after_error = invoke(COUNT);
    assert_eq!(count(&after_error), 3);
    assert_eq!(after_error.start, Some(StartKind::Warm));
    assert_eq!(init_duration(&after_error), None);
    assert_eq!(service.metrics().environment_resets, 0);

    // A segfault: Runtime.ExitError, and the environment is reset.
    let crashed = invoke(r#"{"action":"crash"}"#);
    let error = crashed.function_error.clone().unwrap();
    assert_eq!(error.error_type, ErrorType::RuntimeExitError, "{error}");
    assert!(error.message.contains("SIGSEGV"), "{error}");
    assert_eq!(service.metrics().environment_resets, 1);
    // The next invocation succeeds in a fresh VM: Init again, the counter from 1.
    let recovered = invoke(COUNT);
    assert_eq!(count(&recovered), 1);
    assert!(init_duration(&recovered).is_some(), "{recovered:?}");
    let warm_again = invoke(COUNT);
    assert_eq!(count(&warm_again), 2);
    assert_eq!(init_duration(&warm_again), None);

    let m = service.function_metrics("echo-loop").unwrap();
    assert_eq!((m.invocations, m.errors), (6, 2));
    // The reset happened inside the environment the scheduler holds: still just one.
    assert_eq!(service.metrics().environments_created, 1);
    assert_eq!(service.environment_counts("echo-loop").unwrap(), (1, 0));
    assert_quiet(&service, &["echo-loop"]);
    service.shutdown();
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn asynchronous_events_and_event_sources_are_delivered() {
    let service = service();
    let succeeded = Recorder::<InvocationRecord>::new();
    let failed = Recorder::<InvocationRecord>::new();
    service
        .put_event_invoke_config(
            "echo-loop",
            None,
            EventInvokeConfig::default()
                .with_maximum_retry_attempts(0)
                .with_on_success(succeeded.clone())
                .with_on_failure(failed.clone()),
        )
        .unwrap();
    for n in 0..5 {
        let accepted = service
            .invoke(InvokeRequest::event("echo-loop", format!(r#"{{"n":{n}}}"#)))
            .unwrap();
        assert_eq!(accepted.status_code, 202);
        assert!(accepted.payload.is_empty() && accepted.report.is_none());
    }
    let accepted = service
        .invoke(InvokeRequest::event("echo-loop", r#"{"action":"error"}"#))
        .unwrap();
    assert_eq!(accepted.status_code, 202);
    wait_for("asynchronous events", || {
        succeeded.len() == 5 && failed.len() == 1
    });
    let mut echoed: Vec<String> = succeeded
        .items()
        .iter()
        .map(|r| {
            assert_eq!((r.condition, r.status_code), (Condition::Success, 200));
            assert_eq!(r.approximate_invoke_count, 1);
            assert_eq!(r.response_payload, r.request_payload);
            String::from_utf8_lossy(&r.response_payload).into_owned()
        })
        .collect();
    echoed.sort();
    let expected: Vec<String> = (0..5).map(|n| format!(r#"{{"n":{n}}}"#)).collect();
    assert_eq!(echoed, expected);
    let failure = &failed.items()[0];
    assert_eq!(failure.condition, Condition::RetriesExhausted);
    assert_eq!(
        failure.function_error.as_ref().unwrap().error_type,
        ErrorType::Function("Custom.Failure".into())
    );

    // An event source mapping: batches of up to four records, `{"Records":[...]}` echoed.
    let queue = MemoryQueue::new();
    service
        .create_event_source_mapping(
            "echo-loop",
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
    assert!(queue.failed().is_empty());

    let m = service.metrics();
    assert_eq!((m.async_events_accepted, m.async_succeeded), (6, 5), "{m}");
    assert_eq!((m.async_failed, m.async_retries), (1, 0), "{m}");
    assert_eq!(m.event_source_records_succeeded, 10, "{m}");
    assert!(m.event_source_batches >= 3, "{m}");
    let f = service.function_metrics("echo-loop").unwrap();
    assert_eq!(f.invocations, 6 + m.event_source_batches);
    assert_eq!(f.errors, 1);
    // Every invocation ran in a new or a reused environment, and most were reused.
    assert_eq!(f.cold_starts + f.warm_starts, f.invocations);
    assert_eq!(m.environments_created, f.cold_starts);
    assert!(f.warm_starts > f.cold_starts, "{f:?}");
    assert_quiet(&service, &["echo-loop"]);
    service.shutdown();
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn snap_start_restores_a_versions_environments_from_one_snapshot() {
    let service = Service::builder(Arc::new(kvm_backend()))
        .manual()
        .build()
        .unwrap();
    service
        .create_function(runtime_config("snap", "runtime-loop").with_snap_start(true))
        .unwrap();
    service.publish_version("snap", "").unwrap();
    service.put_provisioned_concurrency("snap", "1", 3).unwrap();
    assert_eq!(service.run_pending().environments_created, 3);
    // The first ran Init and was snapshotted; the other two were restored from it.
    let m = service.metrics();
    assert_eq!(
        (
            m.environments_created,
            m.environments_restored,
            m.snapshots_refused
        ),
        (3, 2, 0),
        "{m}"
    );
    // A provisioned environment serves, from the snapshot's state (no invocation yet).
    let response = service.invoke(InvokeRequest::new("snap:1", COUNT)).unwrap();
    assert_eq!(response.start, Some(StartKind::Provisioned));
    assert_eq!(count(&response), 1);
    service.shutdown();

    // A one-shot function that ends before reading stdin cannot be snapshotted: it starts
    // with an Init, and the metrics say why.
    let service = Service::builder(Arc::new(kvm_backend())).build().unwrap();
    service
        .create_function(
            FunctionConfig::new("exits", CodeLocation::Executable(function("runtime-loop")))
                .with_contract(lambda::core::Contract::Stdio)
                .with_snap_start(true),
        )
        .unwrap();
    let response = service.invoke(InvokeRequest::new("exits", "{}")).unwrap();
    assert!(!response.is_success());
    let m = service.metrics();
    assert_eq!(
        (m.environments_restored, m.snapshots_refused),
        (0, 1),
        "{m}"
    );
    let why = m.last_snapshot_refusal.expect("a reason");
    assert!(why.contains("ended before reading stdin"), "{why}");
    service.shutdown();
}
