//! Asynchronous invocations on a manual clock: retries and their delays, backoff after
//! throttles, maximum event age, destinations and dead letters.

mod common;

use std::time::Duration;

use common::{config, fake_service};
use lambda_sched::{
    Clock, Condition, DeadLetter, Error, EventInvokeConfig, InvocationRecord, InvokeRequest,
    Recorder,
};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn success_goes_to_the_on_success_destination() {
    let (service, _clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let on_success = Recorder::<InvocationRecord>::new();
    service
        .put_event_invoke_config(
            "f",
            None,
            EventInvokeConfig::default().with_on_success(on_success.clone()),
        )
        .unwrap();
    let accepted = service
        .invoke(InvokeRequest::event("f", r#"{"n":1}"#))
        .unwrap();
    assert_eq!(accepted.status_code, 202);
    assert!(accepted.payload.is_empty());
    assert_eq!(fake.stats().invocations, 0, "acknowledged before it runs");
    assert_eq!(service.metrics().async_queue_depth, 1);
    assert_eq!(service.run_pending().async_events_run, 1);
    let records = on_success.items();
    assert_eq!(records.len(), 1);
    let json = records[0].to_json();
    assert_eq!(
        json["requestContext"]["requestId"],
        accepted.request_id.as_str()
    );
    assert_eq!(json["requestContext"]["condition"], "Success");
    assert_eq!(json["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(json["requestPayload"]["n"], 1);
    assert_eq!(json["responseContext"]["executedVersion"], "$LATEST");
    assert_eq!(json["responseContext"]["statusCode"], 200);
    assert_eq!(json["timestamp"], "2024-01-01T00:00:00.000Z");
    assert_eq!(service.metrics().async_queue_depth, 0);
    assert_eq!(service.metrics().async_succeeded, 1);
}

#[test]
fn function_errors_are_retried_after_one_and_two_minutes_then_dead_lettered() {
    let (service, clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let on_failure = Recorder::<InvocationRecord>::new();
    let dead_letters = Recorder::<DeadLetter>::new();
    service
        .put_event_invoke_config(
            "f",
            None,
            EventInvokeConfig::default().with_on_failure(on_failure.clone()),
        )
        .unwrap();
    service
        .set_dead_letter_sink("f", Some(dead_letters.clone()))
        .unwrap();
    let accepted = service
        .invoke(InvokeRequest::event("f", "fake:error"))
        .unwrap();
    service.run_pending();
    assert_eq!(fake.stats().invocations, 1);
    clock.advance(Duration::from_secs(59));
    service.run_pending();
    assert_eq!(fake.stats().invocations, 1, "not before a minute");
    clock.advance(SECOND);
    service.run_pending();
    assert_eq!(fake.stats().invocations, 2);
    clock.advance(Duration::from_secs(119));
    service.run_pending();
    assert_eq!(fake.stats().invocations, 2, "not before two more minutes");
    assert_eq!(
        service.metrics().async_oldest_event_age,
        Some(Duration::from_secs(179))
    );
    clock.advance(SECOND);
    service.run_pending();
    assert_eq!(fake.stats().invocations, 3);
    clock.advance(Duration::from_secs(3600));
    service.run_pending();
    assert_eq!(fake.stats().invocations, 3, "two retries, no more");

    let letters = dead_letters.items();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].request_id, accepted.request_id);
    assert_eq!(letters[0].payload, b"fake:error");
    assert_eq!(letters[0].error_type, "FakeError");
    assert_eq!(letters[0].error_message, "fake: told to fail");
    assert_eq!(letters[0].attempts, 3);
    assert_eq!(letters[0].condition, Condition::RetriesExhausted);
    let record = on_failure.items()[0].to_json();
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(record["responseContext"]["functionError"], "Unhandled");
    assert_eq!(record["responsePayload"]["errorType"], "FakeError");
    let m = service.metrics();
    assert_eq!((m.async_retries, m.async_failed, m.dead_letters), (2, 1, 1));
    assert_eq!(m.async_queue_depth, 0);
}

#[test]
fn zero_retries_and_configuration_bounds() {
    let (service, _clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let on_failure = Recorder::<InvocationRecord>::new();
    service
        .put_event_invoke_config(
            "f",
            None,
            EventInvokeConfig::default()
                .with_maximum_retry_attempts(0)
                .with_on_failure(on_failure.clone()),
        )
        .unwrap();
    service
        .invoke(InvokeRequest::event("f", "fake:crash"))
        .unwrap();
    service.run_pending();
    assert_eq!(fake.stats().invocations, 1);
    assert_eq!(on_failure.len(), 1);
    for bad in [
        EventInvokeConfig::default().with_maximum_retry_attempts(3),
        EventInvokeConfig::default().with_maximum_event_age(Duration::from_secs(59)),
        EventInvokeConfig::default().with_maximum_event_age(Duration::from_secs(21_601)),
    ] {
        assert!(matches!(
            service.put_event_invoke_config("f", None, bad),
            Err(Error::InvalidParameterValue { .. })
        ));
    }
    assert!(matches!(
        service.put_event_invoke_config("nope", None, EventInvokeConfig::default()),
        Err(Error::ResourceNotFound { .. })
    ));
}

#[test]
fn events_that_cannot_start_back_off_exponentially_until_their_maximum_age() {
    let (service, clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let on_failure = Recorder::<InvocationRecord>::new();
    service
        .put_event_invoke_config(
            "f",
            None,
            EventInvokeConfig::default()
                .with_maximum_event_age(Duration::from_secs(60))
                .with_on_failure(on_failure.clone()),
        )
        .unwrap();
    // The backend cannot create environments for a while: service errors, not function
    // errors, so the function-error retries stay untouched.
    fake.fail_next_creates(1000);
    service.invoke(InvokeRequest::event("f", "x")).unwrap();
    let mut attempts_at = Vec::new();
    let start = clock.now();
    for _ in 0..70 {
        let before = fake.stats().create_failures;
        service.run_pending();
        if fake.stats().create_failures > before {
            attempts_at.push((clock.now() - start).as_secs());
        }
        clock.advance(SECOND);
    }
    // 1 s, 2 s, 4 s ... between attempts, and the last one when the event expires.
    assert_eq!(attempts_at, [0, 1, 3, 7, 15, 31]);
    let records = on_failure.items();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].condition, Condition::EventAgeExceeded);
    assert_eq!(records[0].approximate_invoke_count, 0);
    assert_eq!(records[0].status_code, 500);
    let m = service.metrics();
    assert_eq!(m.async_expired, 1);
    assert_eq!(m.async_retries, 6);

    // Once creation works again, a throttled event goes through after its backoff.
    fake.fail_next_creates(1);
    service.invoke(InvokeRequest::event("f", "later")).unwrap();
    service.run_pending();
    clock.advance(SECOND);
    service.run_pending();
    assert_eq!(service.metrics().async_succeeded, 1);
}

#[test]
fn a_disabled_function_sends_events_to_failure_handling_without_retries() {
    let (service, _clock, fake) = fake_service();
    service.create_function(config("f")).unwrap();
    let dead_letters = Recorder::<DeadLetter>::new();
    service
        .set_dead_letter_sink("f", Some(dead_letters.clone()))
        .unwrap();
    service.put_function_concurrency("f", 0).unwrap();
    let accepted = service.invoke(InvokeRequest::event("f", "x")).unwrap();
    assert_eq!(accepted.status_code, 202, "accepted even though disabled");
    service.run_pending();
    let letters = dead_letters.items();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].condition, Condition::FunctionDisabled);
    assert_eq!(letters[0].error_code, 429);
    assert_eq!(letters[0].error_type, "TooManyRequestsException");
    assert_eq!(fake.stats().invocations, 0);
    assert_eq!(service.metrics().async_retries, 0);
}

#[test]
fn a_deleted_function_and_a_shutdown_hand_events_over() {
    let (service, _clock, _fake) = fake_service();
    service.create_function(config("f")).unwrap();
    service.create_function(config("g")).unwrap();
    let f_letters = Recorder::<DeadLetter>::new();
    let g_letters = Recorder::<DeadLetter>::new();
    service
        .set_dead_letter_sink("f", Some(f_letters.clone()))
        .unwrap();
    service
        .set_dead_letter_sink("g", Some(g_letters.clone()))
        .unwrap();
    service.invoke(InvokeRequest::event("f", "x")).unwrap();
    service.delete_function("f", None).unwrap();
    service.run_pending();
    // The sink went with the function; the event is counted as dropped.
    assert_eq!(f_letters.len(), 0);
    assert_eq!(service.metrics().async_dropped, 1);
    service
        .invoke(InvokeRequest::event("g", "queued at shutdown"))
        .unwrap();
    service.shutdown();
    let letters = g_letters.items();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].condition, Condition::ServiceShutdown);
    assert_eq!(letters[0].payload, b"queued at shutdown");
}
