//! The data plane end to end on the fake backend: sync, async and dry-run invocations, bad
//! input, failing environments, versions and aliases.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, fake_service, gate_service};
use lambda_core::CodeLocation;
use lambda_core::limits::{MAX_ASYNC_PAYLOAD_BYTES, MAX_SYNC_PAYLOAD_BYTES};
use lambda_sched::{
    AliasRouting, Error, InvocationType, InvokeRequest, StartKind, ThrottleReason, Version,
};

#[test]
fn cold_then_warm_with_report_lines_and_log_tail() {
    let (service, _clock, fake) = fake_service();
    service
        .create_function(config("echo").with_memory_mb(256))
        .unwrap();
    let first = service
        .invoke(InvokeRequest::new("echo", "hello").with_log_tail())
        .unwrap();
    assert_eq!(first.status_code, 200);
    assert_eq!(first.payload, b"hello");
    assert_eq!(first.start, Some(StartKind::Cold));
    assert_eq!(first.executed_version, Some(Version::Latest));
    let report = first.report.unwrap().to_string();
    assert!(report.starts_with(&format!("REPORT RequestId: {}", first.request_id)));
    assert!(report.contains("Memory Size: 256 MB"), "{report}");
    assert!(report.contains("Init Duration"), "{report}");
    let tail = String::from_utf8(first.log_result.unwrap()).unwrap();
    assert!(tail.contains(&first.request_id));

    let second = service.invoke(InvokeRequest::new("echo", "again")).unwrap();
    assert_eq!(second.start, Some(StartKind::Warm));
    assert!(!second.report.unwrap().to_string().contains("Init Duration"));
    assert_eq!(second.log_result, None);
    assert_ne!(first.request_id, second.request_id);
    assert_eq!(fake.stats().created, 1);

    let m = service.function_metrics("echo").unwrap();
    assert_eq!(
        (m.invocations, m.cold_starts, m.warm_starts, m.errors),
        (2, 1, 1, 0)
    );
    assert_eq!(m.concurrent_executions, 0);
    assert_eq!(m.durations.count, 2);
}

#[test]
fn one_shot_functions_never_start_warm() {
    let (service, _clock, fake) = fake_service();
    service
        .create_function(config("once").with_contract(lambda_core::Contract::Stdio))
        .unwrap();
    for _ in 0..3 {
        let response = service.invoke(InvokeRequest::new("once", "x")).unwrap();
        assert_eq!(response.start, Some(StartKind::Cold));
    }
    // One environment, reused by the scheduler, yet every start was cold.
    assert_eq!(fake.stats().created, 1);
    let m = service.function_metrics("once").unwrap();
    assert_eq!((m.cold_starts, m.warm_starts), (3, 0));
}

#[test]
fn payload_limits_per_invocation_type() {
    let (service, _clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let too_big = vec![b'x'; MAX_SYNC_PAYLOAD_BYTES + 1];
    match service.invoke(InvokeRequest::new("f", too_big)) {
        Err(error @ Error::RequestTooLarge { .. }) => {
            assert_eq!(error.status_code(), 413);
            assert!(error.to_string().contains("6291456"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let exactly = vec![b'x'; MAX_SYNC_PAYLOAD_BYTES];
    assert_eq!(
        service
            .invoke(InvokeRequest::new("f", exactly))
            .unwrap()
            .payload
            .len(),
        MAX_SYNC_PAYLOAD_BYTES
    );
    let async_too_big = vec![b'x'; MAX_ASYNC_PAYLOAD_BYTES + 1];
    assert!(matches!(
        service.invoke(InvokeRequest::event("f", async_too_big)),
        Err(Error::RequestTooLarge {
            limit: MAX_ASYNC_PAYLOAD_BYTES,
            ..
        })
    ));
    let async_ok = vec![b'x'; MAX_ASYNC_PAYLOAD_BYTES];
    assert_eq!(
        service
            .invoke(InvokeRequest::event("f", async_ok))
            .unwrap()
            .status_code,
        202
    );
    // The oversized requests ran nothing.
    assert_eq!(fake.stats().invocations, 1);
}

#[test]
fn unknown_functions_versions_aliases_and_invalid_configuration() {
    let (service, _clock, _fake) = fake_service();
    service.create_function(config("f")).unwrap();
    for (name, qualifier) in [("nope", None), ("f", Some("7")), ("f", Some("live"))] {
        let mut request = InvokeRequest::new(name, "x");
        request.qualifier = qualifier.map(str::to_string);
        let error = service.invoke(request).unwrap_err();
        assert_eq!(
            error.exception_name(),
            "ResourceNotFoundException",
            "{error}"
        );
        assert_eq!(error.status_code(), 404);
    }
    for bad in [
        config("g").with_memory_mb(100),
        config("g").with_timeout(Duration::from_secs(901)),
        config("bad name"),
    ] {
        let error = service.create_function(bad).unwrap_err();
        assert_eq!(
            error.exception_name(),
            "InvalidParameterValueException",
            "{error}"
        );
    }
    assert!(matches!(
        service.create_function(config("f")),
        Err(Error::ResourceConflict { .. })
    ));
    assert!(matches!(
        service.put_function_concurrency("f", 901),
        Err(Error::InvalidParameterValue { .. })
    ));
    assert!(matches!(
        service.invoke(InvokeRequest::new("a:b:c", "x")),
        Err(Error::InvalidParameterValue { .. })
    ));
}

#[test]
fn function_errors_are_responses_not_errors() {
    let (service, _clock, _fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let response = service
        .invoke(InvokeRequest::new("f", "fake:error"))
        .unwrap();
    assert_eq!(response.status_code, 200);
    assert_eq!(response.function_error_header(), Some("Unhandled"));
    let body: serde_json::Value = serde_json::from_slice(&response.payload).unwrap();
    assert_eq!(body["errorType"], "FakeError");
    assert_eq!(service.metrics().invocations.errors, 1);
}

#[test]
fn crashes_reset_broken_environments_are_replaced_hangs_are_caught() {
    let (service, _clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let crash = service
        .invoke(InvokeRequest::new("f", "fake:crash"))
        .unwrap();
    assert_eq!(
        crash.function_error.unwrap().error_type.to_string(),
        "Runtime.ExitError"
    );
    // A reset environment stays in the pool: the backend re-initialises it.
    assert_eq!(service.environment_counts("f").unwrap(), (1, 0));
    assert_eq!(service.metrics().environment_resets, 1);

    let timeout = service
        .invoke(InvokeRequest::new("f", "fake:timeout"))
        .unwrap();
    // The same environment, but its Init ran again (its report says so): a cold start.
    assert_eq!(timeout.start, Some(StartKind::Cold));
    assert!(timeout.report.unwrap().init_duration.is_some());
    assert_eq!(
        timeout.function_error.unwrap().error_type.to_string(),
        "Sandbox.Timedout"
    );

    let broken = service
        .invoke(InvokeRequest::new("f", "fake:broken"))
        .unwrap();
    assert_eq!(
        broken.function_error.unwrap().error_type.to_string(),
        "Sandbox.Failure"
    );
    assert_eq!(service.environment_counts("f").unwrap(), (0, 0));
    assert_eq!(fake.stats().shut_down, 1);

    // The fake runs past its timeout and answers: the scheduler reports Sandbox.Timedout and
    // never uses the environment again.
    let hang = service
        .invoke(InvokeRequest::new("f", "fake:hang"))
        .unwrap();
    assert_eq!(hang.start, Some(StartKind::Cold));
    let error = hang.function_error.unwrap();
    assert_eq!(error.error_type.to_string(), "Sandbox.Timedout");
    assert_eq!(error.message, "Task timed out after 3.00 seconds");
    assert_eq!(service.metrics().hung_invocations, 1);
    assert_eq!(fake.stats().live(), 0);

    let large = service
        .invoke(InvokeRequest::new("f", "fake:large"))
        .unwrap();
    assert_eq!(
        large.function_error.unwrap().error_type.to_string(),
        "Function.ResponseSizeTooLarge"
    );
    let m = service.metrics();
    assert_eq!(m.invocations.invocations, 5);
    assert_eq!(m.invocations.errors, 5);
    assert_eq!(m.invocations.concurrent_executions, 0);
}

#[test]
fn init_and_backend_failures() {
    let (service, _clock, fake) = fake_service();
    service
        .create_function(config("init").with_env("FAKE_CREATE", "init-error"))
        .unwrap();
    service
        .create_function(config("code").with_env("FAKE_CREATE", "code"))
        .unwrap();
    service
        .create_function(config("down").with_env("FAKE_CREATE", "unavailable"))
        .unwrap();
    let init = service
        .invoke(InvokeRequest::new("init", "x").with_log_tail())
        .unwrap();
    let error = init.function_error.unwrap();
    assert_eq!(error.error_type.to_string(), "Runtime.InitError");
    let report = init.report.unwrap();
    assert_eq!(report.init_duration, Some(Duration::from_millis(7)));
    assert_eq!(init.log_result.unwrap(), b"init log");
    let code = service.invoke(InvokeRequest::new("code", "x")).unwrap();
    assert_eq!(
        code.function_error.unwrap().error_type.to_string(),
        "Runtime.InvalidEntrypoint"
    );
    let down = service.invoke(InvokeRequest::new("down", "x")).unwrap_err();
    assert_eq!(down.exception_name(), "ServiceException");
    assert_eq!(down.status_code(), 500);
    assert!(down.to_string().contains("fake"), "{down}");
    let m = service.metrics();
    assert_eq!(m.environment_create_failures, 3);
    assert_eq!(m.invocations.concurrent_executions, 0);
    assert_eq!(fake.stats().created, 0);
    assert_eq!(
        service.workers()[0].used_mb,
        0,
        "no memory leaked on the worker"
    );
}

#[test]
fn dry_run_checks_and_runs_nothing() {
    let (service, _clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let dry = service
        .invoke(InvokeRequest::new("f", "x").with_invocation_type(InvocationType::DryRun))
        .unwrap();
    assert_eq!(dry.status_code, 204);
    assert_eq!(fake.stats().invocations, 0);
    assert_eq!(fake.stats().created, 0);
    service.put_function_concurrency("f", 0).unwrap();
    let error = service
        .invoke(InvokeRequest::new("f", "x").with_invocation_type(InvocationType::DryRun))
        .unwrap_err();
    assert!(matches!(
        error,
        Error::TooManyRequests {
            reason: ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
            ..
        }
    ));
    assert!(matches!(
        service
            .invoke(InvokeRequest::new("nope", "x").with_invocation_type(InvocationType::DryRun)),
        Err(Error::ResourceNotFound { .. })
    ));
    assert_eq!(service.metrics().invocations.concurrent_executions, 0);
}

#[test]
fn versions_have_their_own_environments_and_aliases_split_traffic() {
    let (service, _clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let v1 = service.publish_version("f", "one").unwrap();
    service
        .update_function_configuration(config("f").with_memory_mb(512))
        .unwrap();
    let v2 = service.publish_version("f", "two").unwrap();
    assert_eq!(
        (v1.version, v2.version),
        (Version::Published(1), Version::Published(2))
    );
    for qualifier in ["1", "2", "$LATEST"] {
        let r = service
            .invoke(InvokeRequest::new("f", "x").with_qualifier(qualifier))
            .unwrap();
        assert_eq!(r.start, Some(StartKind::Cold), "{qualifier}");
        assert_eq!(r.executed_version.unwrap().to_string(), qualifier);
    }
    assert_eq!(fake.stats().created, 3, "one environment per version");
    assert_eq!(service.environment_counts("f:1").unwrap(), (1, 0));
    assert_eq!(service.get_function("f:1").unwrap().config.memory_mb, 128);
    assert_eq!(service.get_function("f:2").unwrap().config.memory_mb, 512);

    service
        .create_alias(
            "f",
            "live",
            Version::Published(1),
            Some(AliasRouting {
                version: 2,
                weight: 0.3,
            }),
        )
        .unwrap();
    let mut on_two = 0;
    for _ in 0..1000 {
        let r = service.invoke(InvokeRequest::new("f:live", "x")).unwrap();
        if r.executed_version == Some(Version::Published(2)) {
            on_two += 1;
        }
    }
    assert!(
        (220..380).contains(&on_two),
        "{on_two} of 1000 on version 2"
    );
    assert_eq!(
        fake.stats().created,
        3,
        "the alias reuses the versions' environments"
    );
    assert_eq!(fake.stats().foreign_invocations, 0);
    assert!(matches!(
        service.delete_function("f", Some("1")),
        Err(Error::ResourceConflict { .. })
    ));
    service
        .update_alias("f", "live", Version::Published(2), None)
        .unwrap();
    service.delete_function("f", Some("1")).unwrap();
    assert_eq!(service.list_versions("f").unwrap().len(), 2);
    assert_eq!(
        fake.stats().shut_down,
        1,
        "version 1's environment went with it"
    );
    service.delete_function("f", None).unwrap();
    assert!(matches!(
        service.invoke(InvokeRequest::new("f", "x")),
        Err(Error::ResourceNotFound { .. })
    ));
    assert_eq!(fake.stats().live(), 0);
    assert!(service.list_functions().is_empty());
}

#[test]
fn updating_code_leaves_running_invocations_alone_and_retires_idle_environments() {
    let (service, _clock, gate) = gate_service(|b| b);
    let service = Arc::new(service);
    service.create_function(config("f")).unwrap();
    // Two environments: one will be idle, one busy during the update.
    std::thread::scope(|s| {
        let a = s.spawn(|| service.invoke(InvokeRequest::new("f", "gate")).unwrap());
        let b = s.spawn(|| service.invoke(InvokeRequest::new("f", "gate")).unwrap());
        gate.wait_entered(2);
        gate.open(2);
        a.join().unwrap();
        b.join().unwrap();
    });
    assert_eq!(service.environment_counts("f").unwrap(), (2, 0));
    std::thread::scope(|s| {
        let running = s.spawn(|| service.invoke(InvokeRequest::new("f", "gate")).unwrap());
        gate.wait_entered(1);
        service
            .update_function_code("f", CodeLocation::Executable("/fake/v2".into()))
            .unwrap();
        // The idle one is gone at once; the running one is untouched.
        assert_eq!(gate.fake.stats().shut_down, 1);
        gate.open(1);
        let response = running.join().unwrap();
        assert!(response.is_success());
        assert_eq!(response.payload, b"gate");
    });
    // ... and is retired when it returns.
    assert_eq!(gate.fake.stats().shut_down, 2);
    let after = service.invoke(InvokeRequest::new("f", "x")).unwrap();
    assert_eq!(after.start, Some(StartKind::Cold));
    assert_eq!(
        service.get_function("f").unwrap().config.code,
        CodeLocation::Executable("/fake/v2".into())
    );
}
