//! Scenario tests of the whole Runtime API: lifecycle, statuses, headers, parking, limits,
//! split and pipelined input, several connections, and garbage.

// Test arithmetic on test data; the lints guard the code under test.
#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use super::*;
use crate::invocation::Invocation;
use crate::outcome::{ErrorType, InvokeOutcome};

const NEXT: &[u8] = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rapi\r\n\r\n";
const DEADLINE: u64 = 1_700_000_003_000;

/// One response read back from the output bytes.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// Splits output bytes into responses (skipping `100 Continue`).
fn answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut fields);
        let httparse::Status::Complete(head) = response.parse(bytes).expect("a valid response")
        else {
            panic!("incomplete response head");
        };
        let headers: Vec<(String, String)> = response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect();
        let status = response.code.unwrap();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let body = bytes[head..head + length].to_vec();
        bytes = &bytes[head + length..];
        if status != 100 {
            out.push(Answer {
                status,
                headers,
                body,
            });
        }
    }
    out
}

fn post(path: &str, body: &[u8]) -> Vec<u8> {
    post_with(path, "", body)
}

fn post_with(path: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /2018-06-01/runtime/{path} HTTP/1.1\r\nHost: rapi\r\n{extra_headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Sends `bytes` on `conn` and returns the answers written so far.
fn exchange(api: &mut RuntimeApi, conn: ConnectionId, bytes: &[u8]) -> Vec<Answer> {
    assert_eq!(api.receive(conn, bytes), bytes.len());
    answers(&api.take_output(conn))
}

fn events(api: &mut RuntimeApi) -> Vec<ApiEvent> {
    std::iter::from_fn(|| api.next_event()).collect()
}

fn invocation(payload: &str) -> Invocation {
    Invocation::new(payload.as_bytes().to_vec())
}

/// An API past Init with connection `conn` parked on `next`.
fn ready() -> (RuntimeApi, ConnectionId) {
    let mut api = RuntimeApi::new("arn:default");
    let conn = api.connect().unwrap();
    assert!(exchange(&mut api, conn, NEXT).is_empty());
    assert_eq!(events(&mut api), [ApiEvent::InitDone]);
    (api, conn)
}

#[test]
fn next_parks_then_delivery_answers_with_event_and_headers() {
    let (mut api, conn) = ready();
    assert!(api.is_parked(conn));
    assert_eq!(api.phase(), Phase::Idle);
    let mut invocation = invocation(r#"{"hello":"world"}"#);
    invocation.invoked_function_arn = Some("arn:aws:lambda:eu-west-1:1:function:f:prod".into());
    invocation.trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into());
    invocation.client_context = Some("eyJjbGllbnQiOnt9fQ==".into());
    invocation.cognito_identity = Some(r#"{"identity_id":"i","identity_pool_id":"p"}"#.into());
    let request_id = invocation.request_id.clone();
    api.deliver(invocation, DEADLINE).unwrap();
    assert!(!api.is_parked(conn));
    let answer = answers(&api.take_output(conn)).pop().unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, br#"{"hello":"world"}"#);
    assert_eq!(
        answer.header("Lambda-Runtime-Aws-Request-Id"),
        Some(&*request_id)
    );
    assert_eq!(
        answer.header("Lambda-Runtime-Deadline-Ms"),
        Some("1700000003000")
    );
    assert_eq!(
        answer.header("Lambda-Runtime-Invoked-Function-Arn"),
        Some("arn:aws:lambda:eu-west-1:1:function:f:prod")
    );
    assert_eq!(
        answer.header("Lambda-Runtime-Trace-Id"),
        Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    );
    assert_eq!(
        answer.header("Lambda-Runtime-Client-Context"),
        Some("eyJjbGllbnQiOnt9fQ==")
    );
    assert_eq!(
        answer.header("Lambda-Runtime-Cognito-Identity"),
        Some(r#"{"identity_id":"i","identity_pool_id":"p"}"#)
    );
    assert_eq!(answer.header("Content-Type"), Some("application/json"));
    assert_eq!(
        events(&mut api),
        [ApiEvent::InvocationStarted {
            request_id: request_id.clone()
        }]
    );
    assert_eq!(api.phase(), Phase::Invoking);
    assert_eq!(api.in_flight(), Some(&*request_id));

    let path = format!("invocation/{request_id}/response");
    let answer = exchange(&mut api, conn, &post(&path, b"\"done\""))
        .pop()
        .unwrap();
    assert_eq!(answer.status, 202);
    assert_eq!(answer.body, br#"{"status":"OK"}"#);
    assert_eq!(
        events(&mut api),
        [ApiEvent::InvocationDone {
            request_id,
            outcome: InvokeOutcome::Response(b"\"done\"".to_vec())
        }]
    );
    assert_eq!(api.phase(), Phase::Idle);
}

#[test]
fn optional_headers_are_absent_when_unset_and_default_arn_is_used() {
    let (mut api, conn) = ready();
    api.deliver(invocation("{}"), DEADLINE).unwrap();
    let answer = answers(&api.take_output(conn)).pop().unwrap();
    assert_eq!(
        answer.header("Lambda-Runtime-Invoked-Function-Arn"),
        Some("arn:default")
    );
    for absent in [
        "Lambda-Runtime-Trace-Id",
        "Lambda-Runtime-Client-Context",
        "Lambda-Runtime-Cognito-Identity",
    ] {
        assert_eq!(answer.header(absent), None, "{absent}");
    }
}

#[test]
fn for_function_uses_the_functions_arn() {
    let config =
        crate::config::FunctionConfig::new("f", crate::config::CodeLocation::Zip("f.zip".into()))
            .with_env("AWS_REGION", "eu-north-1");
    let mut api = RuntimeApi::for_function(&config);
    let conn = api.connect().unwrap();
    api.receive(conn, NEXT);
    api.deliver(invocation("{}"), DEADLINE).unwrap();
    let answer = answers(&api.take_output(conn)).pop().unwrap();
    assert_eq!(
        answer.header("Lambda-Runtime-Invoked-Function-Arn"),
        Some("arn:aws:lambda:eu-north-1:012345678912:function:f")
    );
}

#[test]
fn delivery_before_next_is_queued_even_during_init() {
    let mut api = RuntimeApi::new("arn");
    let conn = api.connect().unwrap();
    let invocation = invocation("queued");
    let request_id = invocation.request_id.clone();
    api.deliver(invocation, DEADLINE).unwrap();
    assert_eq!(api.phase(), Phase::Init);
    assert!(matches!(
        api.deliver(self::invocation("second"), DEADLINE),
        Err(DeliverError::Busy(id)) if id == request_id
    ));
    let answer = exchange(&mut api, conn, NEXT).pop().unwrap();
    assert_eq!(answer.body, b"queued");
    assert_eq!(
        events(&mut api),
        [
            ApiEvent::InitDone,
            ApiEvent::InvocationStarted { request_id }
        ]
    );
}

#[test]
fn wrong_and_stale_request_ids() {
    let (mut api, conn) = ready();
    // No invocation yet: any id is unknown.
    let answer = exchange(&mut api, conn, &post("invocation/nope/response", b"x")).pop();
    assert!(
        answer.is_none(),
        "the connection is parked; nothing is processed"
    );
    api.deliver(invocation("{}"), DEADLINE).unwrap();
    let answers_now = answers(&api.take_output(conn));
    // The 200 for next, then the held-back POST's 400.
    assert_eq!(answers_now.len(), 2);
    assert_eq!(answers_now[0].status, 200);
    assert_eq!(answers_now[1].status, 400);
    assert_eq!(answers_now[1].json()["errorType"], "InvalidRequestID");

    let id = api.in_flight().unwrap().to_string();
    for path in [
        "invocation/other/response",
        "invocation//response",
        "invocation/other/error",
    ] {
        let answer = exchange(&mut api, conn, &post(path, b"x")).pop().unwrap();
        assert_eq!(answer.status, 400, "{path}");
    }
    assert!(
        events(&mut api)
            .iter()
            .all(|e| !matches!(e, ApiEvent::InvocationDone { .. }))
    );
    let ok = exchange(
        &mut api,
        conn,
        &post(&format!("invocation/{id}/response"), b"1"),
    );
    assert_eq!(ok[0].status, 202);
    // The same id again, as response or error: its result is already in.
    for kind in ["response", "error"] {
        let again = exchange(
            &mut api,
            conn,
            &post(&format!("invocation/{id}/{kind}"), b"2"),
        );
        assert_eq!(again[0].status, 403);
        assert_eq!(again[0].json()["errorType"], "InvalidStateTransition");
    }
    let done: Vec<_> = events(&mut api)
        .into_iter()
        .filter(|e| matches!(e, ApiEvent::InvocationDone { .. }))
        .collect();
    assert_eq!(done.len(), 1);
}

#[test]
fn reported_errors_become_function_errors() {
    let (mut api, conn) = ready();
    api.deliver(invocation("{}"), DEADLINE).unwrap();
    api.take_output(conn);
    let id = api.in_flight().unwrap().to_string();
    let body = br#"{"errorMessage":"bad input","errorType":"InvalidEventDataError","stackTrace":["at main"]}"#;
    let request = post_with(
        &format!("invocation/{id}/error"),
        "Lambda-Runtime-Function-Error-Type: Unhandled\r\n",
        body,
    );
    assert_eq!(exchange(&mut api, conn, &request)[0].status, 202);
    let events = events(&mut api);
    let [
        ApiEvent::InvocationStarted { .. },
        ApiEvent::InvocationDone {
            outcome: InvokeOutcome::Error(error),
            ..
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(error.error_type.as_str(), "InvalidEventDataError");
    assert_eq!(error.message, "bad input");
    assert_eq!(error.stack_trace, ["at main"]);

    // A non-JSON body with only the header.
    exchange(&mut api, conn, NEXT);
    api.deliver(invocation("{}"), DEADLINE).unwrap();
    api.take_output(conn);
    let id = api.in_flight().unwrap().to_string();
    let request = post_with(
        &format!("invocation/{id}/error"),
        "Lambda-Runtime-Function-Error-Type: Runtime.Custom\r\n",
        b"<html>oops</html>",
    );
    assert_eq!(exchange(&mut api, conn, &request)[0].status, 202);
    let Some(ApiEvent::InvocationDone {
        outcome: InvokeOutcome::Error(error),
        ..
    }) = std::iter::from_fn(|| api.next_event()).last()
    else {
        panic!()
    };
    assert_eq!(error.error_type.as_str(), "Runtime.Custom");
    assert_eq!(error.message, "<html>oops</html>");
}

#[test]
fn init_error_fails_the_environment() {
    let mut api = RuntimeApi::new("arn");
    let conn = api.connect().unwrap();
    let request = post_with(
        "init/error",
        "Lambda-Runtime-Function-Error-Type: Runtime.ConfigInvalid\r\n",
        br#"{"errorMessage":"missing TABLE_NAME","errorType":"Runtime.ConfigInvalid"}"#,
    );
    let answer = exchange(&mut api, conn, &request).pop().unwrap();
    assert_eq!(answer.status, 202);
    let events = events(&mut api);
    let [ApiEvent::InitError(error)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(error.error_type.as_str(), "Runtime.ConfigInvalid");
    assert_eq!(error.message, "missing TABLE_NAME");
    assert_eq!(api.phase(), Phase::InitFailed);
    assert_eq!(
        api.deliver(invocation("{}"), DEADLINE),
        Err(DeliverError::InitFailed)
    );
    for request in [
        NEXT.to_vec(),
        post("init/error", b"{}"),
        post("invocation/x/response", b""),
    ] {
        let answer = exchange(&mut api, conn, &request).pop().unwrap();
        assert_eq!(answer.status, 403);
    }
    assert!(api.next_event().is_none());
}

#[test]
fn init_error_after_init_is_refused() {
    let (mut api, _) = ready();
    let other = api.connect().unwrap();
    let answer = exchange(&mut api, other, &post("init/error", b"{}"))
        .pop()
        .unwrap();
    assert_eq!(answer.status, 403);
    assert_eq!(api.phase(), Phase::Idle);
}

#[test]
fn oversized_response_is_413_and_response_size_too_large_and_the_connection_survives() {
    let (mut api, conn) = ready();
    api.deliver(invocation("{}"), DEADLINE).unwrap();
    api.take_output(conn);
    let id = api.in_flight().unwrap().to_string();
    let body = vec![b'x'; MAX_BODY_BYTES + 1];
    let mut request = post(&format!("invocation/{id}/response"), &body);
    request.extend_from_slice(NEXT);
    // Offered in socket-sized pieces.
    for piece in request.chunks(64 * 1024) {
        assert_eq!(api.receive(conn, piece), piece.len());
    }
    let answer = answers(&api.take_output(conn)).pop().unwrap();
    assert_eq!(answer.status, 413);
    assert_eq!(answer.json()["errorType"], "RequestEntityTooLarge");
    let events = events(&mut api);
    let Some(ApiEvent::InvocationDone {
        outcome: InvokeOutcome::Error(error),
        ..
    }) = events.last()
    else {
        panic!("{events:?}")
    };
    assert_eq!(error.error_type, ErrorType::FunctionResponseSizeTooLarge);
    assert_eq!(
        error.message,
        "Response payload size (6291557 bytes) exceeded maximum allowed payload size (6291556 bytes)."
    );
    // The pipelined next after the drained body parked on the same connection.
    assert!(api.is_parked(conn));
}

#[test]
fn response_at_the_limit_is_accepted() {
    let (mut api, conn) = ready();
    api.deliver(invocation("{}"), DEADLINE).unwrap();
    api.take_output(conn);
    let id = api.in_flight().unwrap().to_string();
    let body = vec![b'y'; MAX_BODY_BYTES];
    let answer = exchange(
        &mut api,
        conn,
        &post(&format!("invocation/{id}/response"), &body),
    );
    assert_eq!(answer[0].status, 202);
    let Some(ApiEvent::InvocationDone {
        outcome: InvokeOutcome::Response(got),
        ..
    }) = events(&mut api).pop()
    else {
        panic!()
    };
    assert_eq!(got.len(), MAX_BODY_BYTES);
}

#[test]
fn chunked_and_expect_continue_posts() {
    let (mut api, conn) = ready();
    api.deliver(invocation("{}"), DEADLINE).unwrap();
    api.take_output(conn);
    let id = api.in_flight().unwrap().to_string();
    let head = format!(
        "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\n\
         Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    );
    assert_eq!(api.receive(conn, head.as_bytes()), head.len());
    assert_eq!(api.take_output(conn), CONTINUE);
    let answer = exchange(&mut api, conn, b"4\r\nchun\r\n3\r\nked\r\n0\r\n\r\n");
    assert_eq!(answer[0].status, 202);
    let Some(ApiEvent::InvocationDone { outcome, .. }) = events(&mut api).pop() else {
        panic!()
    };
    assert_eq!(outcome, InvokeOutcome::Response(b"chunked".to_vec()));
}

#[test]
fn unknown_paths_wrong_methods_and_malformed_requests() {
    let (mut api, _) = ready();
    let conn = api.connect().unwrap();
    let answer = exchange(
        &mut api,
        conn,
        b"GET /2018-06-01/runtime/nope HTTP/1.1\r\n\r\n",
    );
    assert_eq!(answer[0].status, 404);
    let answer = exchange(&mut api, conn, b"GET /ping HTTP/1.1\r\n\r\n");
    assert_eq!(answer[0].status, 404);
    let answer = exchange(&mut api, conn, &post("invocation/next", b""));
    assert_eq!(answer[0].status, 405);
    assert_eq!(answer[0].header("Allow"), Some("GET"));
    let answer = exchange(
        &mut api,
        conn,
        b"DELETE /2018-06-01/runtime/init/error HTTP/1.1\r\n\r\n",
    );
    assert_eq!(answer[0].status, 405);
    assert_eq!(answer[0].header("Allow"), Some("POST"));
    assert!(!api.is_closing(conn));

    let answer = exchange(&mut api, conn, b"NOT HTTP AT ALL\r\n\r\n");
    assert_eq!(answer[0].status, 400);
    assert_eq!(answer[0].header("Connection"), Some("close"));
    assert!(api.is_closing(conn));
    // Further input is ignored.
    assert!(exchange(&mut api, conn, NEXT).is_empty());
    api.disconnect(conn);
    assert!(!api.is_connected(conn));
}

#[test]
fn connection_close_is_honoured() {
    let mut api = RuntimeApi::new("arn");
    let conn = api.connect().unwrap();
    let answer = exchange(
        &mut api,
        conn,
        b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\nGET /again HTTP/1.1\r\n\r\n",
    );
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].header("Connection"), Some("close"));
    assert!(api.is_closing(conn));
}

#[test]
fn keep_alive_serves_many_invocations_on_one_connection() {
    let (mut api, conn) = ready();
    for round in 0..200 {
        api.deliver(invocation(&round.to_string()), DEADLINE)
            .unwrap();
        let answer = answers(&api.take_output(conn)).pop().unwrap();
        assert_eq!(answer.body, round.to_string().as_bytes());
        let id = answer
            .header("Lambda-Runtime-Aws-Request-Id")
            .unwrap()
            .to_string();
        // Response and the following next in one write, as a pipelining client would.
        let mut request = post(
            &format!("invocation/{id}/response"),
            format!("r{round}").as_bytes(),
        );
        request.extend_from_slice(NEXT);
        let answer = exchange(&mut api, conn, &request);
        assert_eq!(answer.len(), 1);
        assert_eq!(answer[0].status, 202);
        assert!(api.is_parked(conn));
        let events = events(&mut api);
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[1],
            ApiEvent::InvocationDone {
                request_id: id,
                outcome: InvokeOutcome::Response(format!("r{round}").into_bytes())
            }
        );
    }
}

#[test]
fn byte_at_a_time_input() {
    let mut api = RuntimeApi::new("arn");
    let conn = api.connect().unwrap();
    for byte in NEXT {
        assert_eq!(api.receive(conn, std::slice::from_ref(byte)), 1);
    }
    assert_eq!(events(&mut api), [ApiEvent::InitDone]);
    api.deliver(invocation("{}"), DEADLINE).unwrap();
    api.take_output(conn);
    let id = api.in_flight().unwrap().to_string();
    let request = post(&format!("invocation/{id}/response"), b"split");
    for byte in &request {
        api.receive(conn, std::slice::from_ref(byte));
    }
    let answer = answers(&api.take_output(conn));
    assert_eq!(answer[0].status, 202);
}

#[test]
fn two_connections_one_parked() {
    let (mut api, parked) = ready();
    let other = api.connect().unwrap();
    // The other connection is served while the first waits.
    let answer = exchange(&mut api, other, b"GET /unknown HTTP/1.1\r\n\r\n");
    assert_eq!(answer[0].status, 404);
    assert!(api.is_parked(parked));
    assert!(api.pending_output(parked).is_empty());
    api.deliver(invocation("to-parked"), DEADLINE).unwrap();
    assert!(api.pending_output(other).is_empty());
    let answer = answers(&api.take_output(parked)).pop().unwrap();
    assert_eq!(answer.body, b"to-parked");
    // The result may come on the other connection.
    let id = api.in_flight().unwrap().to_string();
    let answer = exchange(
        &mut api,
        other,
        &post(&format!("invocation/{id}/response"), b"ok"),
    );
    assert_eq!(answer[0].status, 202);
}

#[test]
fn parked_nexts_are_served_in_order_and_disconnected_ones_skipped() {
    let (mut api, first) = ready();
    let second = api.connect().unwrap();
    let third = api.connect().unwrap();
    assert!(exchange(&mut api, second, NEXT).is_empty());
    assert!(exchange(&mut api, third, NEXT).is_empty());
    api.disconnect(first);
    api.deliver(invocation("a"), DEADLINE).unwrap();
    assert_eq!(answers(&api.take_output(second))[0].body, b"a");
    assert!(api.is_parked(third));
}

#[test]
fn next_while_in_flight_redelivers_the_same_invocation() {
    let (mut api, conn) = ready();
    let invocation = invocation("again");
    let request_id = invocation.request_id.clone();
    api.deliver(invocation, DEADLINE).unwrap();
    api.take_output(conn);
    let other = api.connect().unwrap();
    let answer = exchange(&mut api, other, NEXT).pop().unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, b"again");
    assert_eq!(
        answer.header("Lambda-Runtime-Aws-Request-Id"),
        Some(&*request_id)
    );
    assert_eq!(
        answer.header("Lambda-Runtime-Deadline-Ms"),
        Some("1700000003000")
    );
    assert_eq!(
        events(&mut api),
        [ApiEvent::InvocationStarted { request_id }],
        "a redelivery is not a new start"
    );
}

#[test]
fn disconnected_parked_next_leaves_the_invocation_queued() {
    let (mut api, conn) = ready();
    api.disconnect(conn);
    api.deliver(invocation("later"), DEADLINE).unwrap();
    assert_eq!(api.phase(), Phase::Idle);
    let fresh = api.connect().unwrap();
    let answer = exchange(&mut api, fresh, NEXT).pop().unwrap();
    assert_eq!(answer.body, b"later");
}

#[test]
fn held_back_input_is_bounded_and_processed_after_delivery() {
    let (mut api, conn) = ready();
    // A parked connection holds at most INBOX_BYTES of further input.
    let flood = b"GET /x HTTP/1.1\r\n\r\n".repeat(10_000);
    let taken = api.receive(conn, &flood);
    assert_eq!(taken, INBOX_BYTES);
    api.deliver(invocation("{}"), DEADLINE).unwrap();
    // Once unparked, the held requests are processed until the unread output is too large.
    let mut total = 0;
    let mut offered = taken;
    loop {
        let output = api.take_output(conn);
        if output.is_empty() {
            break;
        }
        total += answers(&output).len();
        offered += api.receive(conn, &flood[offered..]);
    }
    assert_eq!(offered, flood.len());
    assert_eq!(total, 1 + 10_000);
}

#[test]
fn unread_output_stops_processing_until_read() {
    let mut api = RuntimeApi::new("arn");
    let conn = api.connect().unwrap();
    let flood = b"GET /x HTTP/1.1\r\n\r\n".repeat(5_000);
    let taken = api.receive(conn, &flood);
    assert!(taken < flood.len());
    let pending = api.pending_output(conn).len();
    assert!(pending > OUTPUT_HIGH_WATER && pending < OUTPUT_HIGH_WATER + 1024);
    // Reading part of it lets more requests through.
    api.consume_output(conn, pending);
    assert!(!api.pending_output(conn).is_empty());
}

#[test]
fn delivery_errors() {
    let (mut api, conn) = ready();
    api.deliver(invocation("1"), DEADLINE).unwrap();
    api.take_output(conn);
    let id = api.in_flight().unwrap().to_string();
    assert_eq!(
        api.deliver(invocation("2"), DEADLINE),
        Err(DeliverError::Busy(id))
    );
}

/// A small xorshift generator, so the garbage test needs no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Valid requests, random bytes, and mutations of the two, fed at random split points to
/// random connections with deliveries and reads in between: nothing may panic, every output
/// must parse as HTTP responses, and the invariants hold.
#[test]
fn garbage_and_random_splits_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let pieces: Vec<Vec<u8>> = vec![
        NEXT.to_vec(),
        post("invocation/x/response", b"{}"),
        post("init/error", b"{\"errorType\":\"E\"}"),
        post_with("invocation/x/error", "Lambda-Runtime-Function-Error-Type: T\r\n", b"zz"),
        b"POST /2018-06-01/runtime/invocation/x/response HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
        b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        b"\r\n\r\n".to_vec(),
        b"Content-Length: 99999999\r\n".to_vec(),
        b"Transfer-Encoding: chunked\r\n".to_vec(),
        b"Expect: 100-continue\r\n".to_vec(),
        b"ffffffff\r\n".to_vec(),
        b"Lambda-Runtime-Function-Response-Mode: streaming\r\n".to_vec(),
        b"0\r\nLambda-Runtime-Function-Error-Type: E\r\n\r\n".to_vec(),
    ];
    let (mut completed, mut statuses) = (0, std::collections::BTreeSet::new());
    let mut receivers = Vec::new();
    for round in 0..300 {
        let mut api = RuntimeApi::new("arn");
        let mut conns = vec![api.connect().unwrap(), api.connect().unwrap()];
        let mut stream = Vec::new();
        while stream.len() < 4096 {
            match rng.below(4) {
                0 => {
                    let len = rng.below(64);
                    stream.extend((0..len).map(|_| rng.next() as u8));
                }
                1 => {
                    let piece = &pieces[rng.below(pieces.len())];
                    let cut = rng.below(piece.len());
                    stream.extend_from_slice(&piece[..cut]);
                }
                _ => stream.extend_from_slice(&pieces[rng.below(pieces.len())]),
            }
        }
        let mut pos = 0;
        while pos < stream.len() {
            let end = (pos + 1 + rng.below(300)).min(stream.len());
            let conn = conns[rng.below(conns.len())];
            let used = api.receive(conn, &stream[pos..end]);
            assert!(used <= end - pos);
            pos += used.max(1).min(end - pos);
            match rng.below(6) {
                0 => {
                    let mut invocation = invocation("{}");
                    if rng.below(2) == 0 {
                        let (sender, receiver) = std::sync::mpsc::channel::<Vec<u8>>();
                        // Sometimes the reader is gone from the start.
                        if rng.below(2) == 0 {
                            drop(receiver);
                        } else {
                            receivers.push(receiver);
                        }
                        invocation = invocation.with_response_stream(ResponseStream::new(sender));
                    }
                    let _ = api.deliver(invocation, DEADLINE);
                }
                1 => {
                    let output = api.take_output(conn);
                    // Whole responses parse (a partly consumed one does not start a buffer).
                    if output.starts_with(b"HTTP/1.1 ") {
                        statuses.extend(answers(&output).iter().map(|a| a.status));
                    }
                }
                2 => {
                    let n = rng.below(api.pending_output(conn).len() + 1);
                    api.consume_output(conn, n);
                }
                3 if api.is_closing(conn) => {
                    api.disconnect(conn);
                    conns.retain(|c| *c != conn);
                    conns.push(api.connect().unwrap());
                }
                4 => {
                    if let Some(id) = api.in_flight().map(str::to_string) {
                        // On a fresh connection, so that the garbage on the others
                        // does not swallow it.
                        let request = if rng.below(2) == 0 {
                            post(&format!("invocation/{id}/response"), b"r")
                        } else {
                            streamed(
                                &id,
                                &[b"s", b"t"],
                                "Lambda-Runtime-Function-Error-Type: E\r\n",
                            )
                        };
                        let fresh = api.connect().unwrap();
                        api.receive(fresh, &request);
                        statuses.extend(answers(&api.take_output(fresh)).iter().map(|a| a.status));
                        api.disconnect(fresh);
                    }
                }
                _ => {}
            }
            while let Some(event) = api.next_event() {
                if let ApiEvent::InvocationDone { request_id, .. } = event {
                    assert!(!request_id.is_empty(), "round {round}");
                    completed += 1;
                }
            }
            for conn in &conns {
                assert!(api.pending_output(*conn).len() <= OUTPUT_HIGH_WATER + 64 * 1024);
            }
        }
    }
    // The mix did reach the interesting paths.
    assert!(completed > 10, "only {completed} invocations completed");
    for status in [200, 202, 400, 404, 405] {
        assert!(
            statuses.contains(&status),
            "never saw {status}: {statuses:?}"
        );
    }
}

#[test]
fn connections_are_bounded() {
    let mut api = RuntimeApi::new("arn:default");
    let conns: Vec<_> = (0..MAX_CONNECTIONS)
        .map(|_| api.connect().unwrap())
        .collect();
    assert_eq!(api.connect(), Err(TooManyConnections));
    api.disconnect(conns[0]);
    assert!(api.connect().is_ok(), "a closed connection frees its place");
}

#[test]
fn what_all_connections_hold_together_is_bounded() {
    // Every connection starts a 6 MB response body and sends 5 MB of it, so that all of them
    // hold a partly read request: the Runtime API stops taking bytes once all of them hold
    // MAX_BUFFERED_BYTES.
    let (mut api, first) = ready();
    api.deliver(invocation("{}"), DEADLINE).unwrap();
    api.take_output(first);
    let id = api.in_flight().unwrap().to_string();
    let head = format!(
        "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        crate::limits::MAX_SYNC_PAYLOAD_BYTES
    );
    let chunk = vec![b'x'; 1 << 20];
    let mut taken = 0usize;
    for _ in 0..MAX_CONNECTIONS - 1 {
        let conn = api.connect().unwrap();
        taken += api.receive(conn, head.as_bytes());
        for _ in 0..5 {
            taken += api.receive(conn, &chunk);
        }
        assert!(api.buffered_bytes() <= MAX_BUFFERED_BYTES);
    }
    // Held, and so taken (less the header lines' delimiters), up to the bound and no further.
    assert!(api.buffered_bytes() <= MAX_BUFFERED_BYTES);
    assert!(api.buffered_bytes() > MAX_BUFFERED_BYTES - (2 << 20));
    assert!(taken < MAX_BUFFERED_BYTES + 64 * head.len(), "{taken}");
    // A redelivery that would add another copy of the event is refused, and closes.
    let (mut api, first) = ready();
    let big = Invocation::new(vec![b'e'; crate::limits::MAX_SYNC_PAYLOAD_BYTES]);
    api.deliver(big, DEADLINE).unwrap();
    // Nothing is read: each redelivered copy stays in its connection's output.
    let redelivered = (0..3)
        .map(|_| {
            let conn = api.connect().unwrap();
            api.receive(conn, NEXT);
            let output = api.pending_output(conn);
            std::str::from_utf8(output.get(9..12).unwrap_or_default())
                .unwrap_or_default()
                .parse::<u16>()
                .unwrap_or(0)
        })
        .collect::<Vec<_>>();
    assert_eq!(
        redelivered,
        [200, 429, 429],
        "the first copy is unread on {first:?}"
    );
    assert!(api.buffered_bytes() <= MAX_BUFFERED_BYTES + crate::limits::MAX_SYNC_PAYLOAD_BYTES);
}

// ---- Response streaming mode ----

use crate::limits::MAX_STREAMED_RESPONSE_BYTES;
use crate::response_stream::{ResponseSink, ResponseStream};
use std::sync::{Arc, Mutex};

/// base64 of `{"errorMessage":"stream broke","errorType":"StreamError","stackTrace":["at f"]}`.
const ERROR_BODY_B64: &str = "eyJlcnJvck1lc3NhZ2UiOiJzdHJlYW0gYnJva2UiLCJlcnJvclR5cGUiOiJTdHJlYW1FcnJvciIsInN0YWNrVHJhY2UiOlsiYXQgZiJdfQ==";

/// A sink recording every write; once `gone`, it says its reader is gone.
#[derive(Default)]
struct Recorder {
    writes: Mutex<Vec<Vec<u8>>>,
    gone: bool,
}

struct RecorderSink(Arc<Recorder>);

impl ResponseSink for RecorderSink {
    fn write(&self, chunk: &[u8]) -> bool {
        assert!(!chunk.is_empty(), "empty pieces are not written");
        self.0.writes.lock().unwrap().push(chunk.to_vec());
        !self.0.gone
    }
}

impl Recorder {
    fn stream(self: &Arc<Self>) -> ResponseStream {
        ResponseStream::new(RecorderSink(self.clone()))
    }

    fn writes(&self) -> Vec<Vec<u8>> {
        self.writes.lock().unwrap().clone()
    }

    fn bytes(&self) -> Vec<u8> {
        self.writes().concat()
    }
}

/// An API with an invocation in flight (streamed to `stream`, if any); returns its id.
fn invoking(stream: Option<ResponseStream>) -> (RuntimeApi, ConnectionId, String) {
    let (mut api, conn) = ready();
    let mut invocation = invocation("{}");
    invocation.response_stream = stream;
    let id = invocation.request_id.clone();
    api.deliver(invocation, DEADLINE).unwrap();
    assert_eq!(answers(&api.take_output(conn))[0].status, 200);
    assert_eq!(
        events(&mut api),
        [ApiEvent::InvocationStarted {
            request_id: id.clone()
        }]
    );
    (api, conn, id)
}

/// The head of a chunked response in streaming mode.
fn streamed_head(id: &str) -> Vec<u8> {
    format!(
        "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: rapi\r\n\
         Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\
         Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n"
    )
    .into_bytes()
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// A whole streamed response: the head, `pieces` as chunks, the last chunk and `trailers`.
fn streamed(id: &str, pieces: &[&[u8]], trailers: &str) -> Vec<u8> {
    let mut wire = streamed_head(id);
    for piece in pieces {
        wire.extend(chunk(piece));
    }
    wire.extend_from_slice(format!("0\r\n{trailers}\r\n").as_bytes());
    wire
}

/// The outcome of the one `InvocationDone` event waiting.
fn done(api: &mut RuntimeApi) -> InvokeOutcome {
    match events(api).as_slice() {
        [ApiEvent::InvocationDone { outcome, .. }] => outcome.clone(),
        other => panic!("expected one InvocationDone, got {other:?}"),
    }
}

#[test]
fn streamed_response_reaches_the_stream_as_it_arrives() {
    let recorder = Arc::new(Recorder::default());
    let (mut api, conn, id) = invoking(Some(recorder.stream()));
    let mut first = streamed_head(&id);
    first.extend(chunk(b"hello "));
    // The first piece is written before the body ends; nothing is answered or completed yet.
    assert!(exchange(&mut api, conn, &first).is_empty());
    assert_eq!(recorder.writes(), [b"hello ".to_vec()]);
    assert!(events(&mut api).is_empty());
    assert_eq!(api.in_flight(), Some(&*id));
    assert!(exchange(&mut api, conn, &chunk(b"wor")).is_empty());
    assert_eq!(recorder.bytes(), b"hello wor");
    // The rest, split inside a chunk's data.
    assert!(exchange(&mut api, conn, b"2\r\nl").is_empty());
    assert!(events(&mut api).is_empty());
    let answer = exchange(&mut api, conn, b"d\r\n0\r\n\r\n");
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].status, 202);
    assert_eq!(answer[0].body, br#"{"status":"OK"}"#);
    assert_eq!(recorder.bytes(), b"hello world");
    assert_eq!(done(&mut api), InvokeOutcome::Response(Vec::new()));
    assert_eq!(api.phase(), Phase::Idle);
    // The connection serves the next request.
    assert!(exchange(&mut api, conn, NEXT).is_empty());
    assert!(api.is_parked(conn));
}

#[test]
fn streamed_response_without_a_stream_is_buffered_with_the_6_mb_limit() {
    let (mut api, conn, id) = invoking(None);
    let answer = exchange(&mut api, conn, &streamed(&id, &[b"ab", b"cd"], ""));
    assert_eq!(answer[0].status, 202);
    assert_eq!(done(&mut api), InvokeOutcome::Response(b"abcd".to_vec()));

    let (mut api, conn, id) = invoking(None);
    let piece = vec![b'z'; 1 << 20];
    let mut wire = streamed(&id, &[piece.as_slice(); 7], "");
    wire.extend_from_slice(NEXT);
    for part in wire.chunks(64 * 1024) {
        assert_eq!(api.receive(conn, part), part.len());
    }
    let answer = answers(&api.take_output(conn));
    assert_eq!(answer[0].status, 413);
    let InvokeOutcome::Error(error) = done(&mut api) else {
        panic!()
    };
    assert_eq!(error.error_type, ErrorType::FunctionResponseSizeTooLarge);
    assert!(
        error.message.contains(&MAX_BODY_BYTES.to_string()),
        "{error}"
    );
    assert!(api.is_parked(conn));
}

#[test]
fn error_trailers_fail_the_invocation() {
    let trailers = format!(
        "Lambda-Runtime-Function-Error-Type: Runtime.StreamError\r\n\
         Lambda-Runtime-Function-Error-Body: {ERROR_BODY_B64}\r\n"
    );
    let expect = |outcome: InvokeOutcome| {
        let InvokeOutcome::Error(error) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(error.error_type.as_str(), "StreamError");
        assert_eq!(error.message, "stream broke");
        assert_eq!(error.stack_trace, ["at f"]);
    };
    // Streamed: what came before the error reached the stream.
    let recorder = Arc::new(Recorder::default());
    let (mut api, conn, id) = invoking(Some(recorder.stream()));
    let answer = exchange(&mut api, conn, &streamed(&id, &[b"partial"], &trailers));
    assert_eq!(answer[0].status, 202);
    assert_eq!(recorder.bytes(), b"partial");
    expect(done(&mut api));
    // Buffered, and trailers the runtime did not declare.
    let (mut api, conn, id) = invoking(None);
    let wire = String::from_utf8(streamed(&id, &[b"partial"], &trailers))
        .unwrap()
        .replace("Trailer: ", "X-Not-Trailer: ");
    assert_eq!(exchange(&mut api, conn, wire.as_bytes())[0].status, 202);
    expect(done(&mut api));
    // A body that is not base64: the trailer's type, and a message saying so.
    let (mut api, conn, id) = invoking(Some(recorder.stream()));
    let bad = "lambda-runtime-function-error-type: Runtime.StreamError\r\n\
               Lambda-Runtime-Function-Error-Body: not*base64\r\n";
    assert_eq!(
        exchange(&mut api, conn, &streamed(&id, &[b"x"], bad))[0].status,
        202
    );
    let InvokeOutcome::Error(error) = done(&mut api) else {
        panic!()
    };
    assert_eq!(error.error_type.as_str(), "Runtime.StreamError");
    assert!(error.message.contains("could not be read"), "{error}");
    // Other trailers are no error.
    let (mut api, conn, id) = invoking(None);
    exchange(
        &mut api,
        conn,
        &streamed(&id, &[b"ok"], "X-Checksum: 1\r\n"),
    );
    assert_eq!(done(&mut api), InvokeOutcome::Response(b"ok".to_vec()));
    // A malformed trailer line is a malformed request: 400, and the connection closes.
    let (mut api, conn, id) = invoking(Some(recorder.stream()));
    let answer = exchange(&mut api, conn, &streamed(&id, &[b"x"], "no colon\r\n"));
    assert_eq!(answer[0].status, 400);
    assert!(api.is_closing(conn));
    assert!(events(&mut api).is_empty());
}

#[test]
fn streamed_response_over_20_mb_is_cut_off_and_the_connection_survives() {
    let recorder = Arc::new(Recorder::default());
    let (mut api, conn, id) = invoking(Some(recorder.stream()));
    let piece = vec![b's'; 1 << 20];
    let mut wire = streamed(&id, &[piece.as_slice(); 21], "");
    wire.extend_from_slice(NEXT);
    let mut output = Vec::new();
    for part in wire.chunks(64 * 1024) {
        assert_eq!(api.receive(conn, part), part.len());
        output.extend(api.take_output(conn));
        assert!(api.buffered_bytes() <= INBOX_BYTES + MAX_HEAD_BYTES);
    }
    let streamed_bytes = recorder.bytes();
    assert!(streamed_bytes.len() <= MAX_STREAMED_RESPONSE_BYTES);
    assert!(streamed_bytes.len() > MAX_STREAMED_RESPONSE_BYTES - (1 << 20));
    let answer = answers(&output);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].status, 413);
    assert_eq!(answer[0].json()["errorType"], "RequestEntityTooLarge");
    let InvokeOutcome::Error(error) = done(&mut api) else {
        panic!()
    };
    assert_eq!(error.error_type, ErrorType::FunctionResponseSizeTooLarge);
    assert_eq!(
        error.message,
        "Response payload size exceeded maximum allowed payload size (20971520 bytes)."
    );
    // The pipelined next after the drained body parked, and gets the next invocation.
    assert!(api.is_parked(conn));
    api.deliver(invocation("2"), DEADLINE).unwrap();
    assert_eq!(answers(&api.take_output(conn))[0].body, b"2");

    // A streaming-mode Content-Length over the limit is refused with the same limit.
    let (mut api, conn, id) = invoking(Some(recorder.stream()));
    let head = format!(
        "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\n\
         Lambda-Runtime-Function-Response-Mode: streaming\r\nContent-Length: {}\r\n\r\n",
        MAX_STREAMED_RESPONSE_BYTES + 1
    );
    assert_eq!(exchange(&mut api, conn, head.as_bytes())[0].status, 413);
    let InvokeOutcome::Error(error) = done(&mut api) else {
        panic!()
    };
    assert_eq!(error.error_type, ErrorType::FunctionResponseSizeTooLarge);
    assert!(error.message.contains("(20971520 bytes)."), "{error}");
}

#[test]
fn streams_on_many_connections_give_the_caller_at_most_20_mb_in_all() {
    // A hostile runtime streams the same invocation's response on two connections at once:
    // its caller still gets at most the limit.
    let recorder = Arc::new(Recorder::default());
    let (mut api, first, id) = invoking(Some(recorder.stream()));
    let second = api.connect().unwrap();
    let piece = vec![b's'; 1 << 20];
    for conn in [first, second] {
        assert!(exchange(&mut api, conn, &streamed_head(&id)).is_empty());
    }
    for _ in 0..15 {
        for conn in [first, second] {
            let wire = chunk(&piece);
            for part in wire.chunks(64 * 1024) {
                assert_eq!(api.receive(conn, part), part.len());
            }
        }
    }
    let total = recorder.bytes().len();
    assert!(
        total <= MAX_STREAMED_RESPONSE_BYTES,
        "{total} bytes streamed"
    );
    assert!(total >= MAX_STREAMED_RESPONSE_BYTES - (1 << 20), "{total}");
}

#[test]
fn a_stream_whose_reader_is_gone_is_still_consumed() {
    let recorder = Arc::new(Recorder {
        gone: true,
        ..Recorder::default()
    });
    let (mut api, conn, id) = invoking(Some(recorder.stream()));
    let mut wire = streamed(&id, &[b"one", b"two", b"three"], "");
    wire.extend_from_slice(NEXT);
    // Piece by piece, so that each chunk is its own write.
    for part in wire.chunks(8) {
        assert_eq!(api.receive(conn, part), part.len());
    }
    // The first write said the reader is gone: nothing more was offered.
    assert_eq!(recorder.writes().len(), 1);
    assert_eq!(answers(&api.take_output(conn))[0].status, 202);
    assert_eq!(done(&mut api), InvokeOutcome::Response(Vec::new()));
    assert!(api.is_parked(conn));
}

#[test]
fn a_whole_response_to_a_streamed_invocation_is_written_once() {
    let recorder = Arc::new(Recorder::default());
    let (mut api, conn, id) = invoking(Some(recorder.stream()));
    let answer = exchange(
        &mut api,
        conn,
        &post(&format!("invocation/{id}/response"), b"whole body"),
    );
    assert_eq!(answer[0].status, 202);
    assert_eq!(recorder.writes(), [b"whole body".to_vec()]);
    assert_eq!(done(&mut api), InvokeOutcome::Response(Vec::new()));
    // An error report writes nothing.
    let (mut api, conn, id) = invoking(Some(recorder.stream()));
    exchange(
        &mut api,
        conn,
        &post(&format!("invocation/{id}/error"), b"{}"),
    );
    assert!(matches!(done(&mut api), InvokeOutcome::Error(_)));
    assert_eq!(recorder.writes().len(), 1);
}

#[test]
fn streamed_content_length_body_reaches_the_stream_as_it_arrives() {
    let recorder = Arc::new(Recorder::default());
    let (mut api, conn, id) = invoking(Some(recorder.stream()));
    let wire = post_with(
        &format!("invocation/{id}/response"),
        "Lambda-Runtime-Function-Response-Mode: streaming\r\n",
        b"0123456789",
    );
    let (head, body) = wire.split_at(wire.len() - 10);
    let mut first = head.to_vec();
    first.extend_from_slice(&body[..4]);
    assert!(exchange(&mut api, conn, &first).is_empty());
    assert_eq!(recorder.bytes(), b"0123");
    assert!(events(&mut api).is_empty());
    assert_eq!(exchange(&mut api, conn, &body[4..])[0].status, 202);
    assert_eq!(recorder.bytes(), b"0123456789");
    assert_eq!(done(&mut api), InvokeOutcome::Response(Vec::new()));
}

#[test]
fn streamed_response_byte_at_a_time_gives_the_same_result() {
    let trailers = format!(
        "Lambda-Runtime-Function-Error-Type: T\r\nLambda-Runtime-Function-Error-Body: {ERROR_BODY_B64}\r\n"
    );
    for trailers in ["", trailers.as_str()] {
        let run = |split: usize| {
            let recorder = Arc::new(Recorder::default());
            let (mut api, conn, id) = invoking(Some(recorder.stream()));
            let mut wire = streamed(&id, &[b"alpha", b"beta", b"gamma!"], trailers);
            wire.extend_from_slice(NEXT);
            let mut output = Vec::new();
            for part in wire.chunks(split) {
                assert_eq!(api.receive(conn, part), part.len());
                output.extend(api.take_output(conn));
            }
            let statuses: Vec<u16> = answers(&output).iter().map(|a| a.status).collect();
            (
                recorder.bytes(),
                statuses,
                done(&mut api),
                api.is_parked(conn),
            )
        };
        let whole = run(usize::MAX);
        assert_eq!(whole.0, b"alphabetagamma!");
        assert_eq!(whole.1, [202]);
        assert!(whole.3);
        assert_eq!(run(1), whole);
        assert_eq!(run(3), whole);
    }
}

#[test]
fn disconnect_mid_stream_leaves_the_invocation_in_flight() {
    let recorder = Arc::new(Recorder::default());
    let (mut api, conn, id) = invoking(Some(recorder.stream()));
    let mut wire = streamed_head(&id);
    wire.extend(chunk(b"part"));
    exchange(&mut api, conn, &wire);
    api.disconnect(conn);
    assert_eq!(recorder.bytes(), b"part");
    assert!(events(&mut api).is_empty());
    assert_eq!(api.in_flight(), Some(&*id));
    // As for any body cut short, the runtime may answer again on another connection.
    let conn = api.connect().unwrap();
    assert_eq!(
        exchange(&mut api, conn, &streamed(&id, &[b"again"], ""))[0].status,
        202
    );
    assert_eq!(done(&mut api), InvokeOutcome::Response(Vec::new()));
}

#[test]
fn streamed_response_for_a_stale_id_is_refused_at_its_end() {
    let recorder = Arc::new(Recorder::default());
    let (mut api, conn, id) = invoking(Some(recorder.stream()));
    // Another connection streams the response while this one's body is still arriving.
    let mut wire = streamed_head(&id);
    wire.extend(chunk(b"first "));
    exchange(&mut api, conn, &wire);
    let other = api.connect().unwrap();
    assert_eq!(
        exchange(&mut api, other, &streamed(&id, &[b"second"], ""))[0].status,
        202
    );
    assert_eq!(done(&mut api), InvokeOutcome::Response(Vec::new()));
    // Nothing more reaches the stream of an invocation that is over; the end is refused.
    let answer = exchange(
        &mut api,
        conn,
        &[chunk(b"late"), b"0\r\n\r\n".to_vec()].concat(),
    );
    assert_eq!(answer[0].status, 403);
    assert_eq!(recorder.bytes(), b"first second");
    assert!(events(&mut api).is_empty());
}

/// `api` as a snapshot file could bring it back, after `change` to its serialized form.
fn forged(api: &RuntimeApi, change: impl FnOnce(&mut serde_json::Value)) -> RuntimeApi {
    let mut value = serde_json::to_value(api).unwrap();
    change(&mut value);
    serde_json::from_value(value).unwrap()
}

#[test]
fn an_api_a_snapshot_can_hold_passes_its_check_and_forged_ones_are_refused() {
    let (api, _) = ready();
    api.check().unwrap();
    // After an invocation too: a snapshot can be taken of a warm environment.
    let (mut warm, conn, id) = invoking(None);
    let path = format!("invocation/{id}/response");
    assert_eq!(
        exchange(&mut warm, conn, &post(&path, b"ok"))[0].status,
        202
    );
    events(&mut warm);
    assert!(exchange(&mut warm, conn, NEXT).is_empty());
    warm.check().unwrap();

    let refused = |change: &dyn Fn(&mut serde_json::Value)| {
        forged(&api, change).check().expect_err("refused")
    };
    assert!(refused(&|v| v["phase"] = "Init".into()).contains("Init phase"));
    let mut delivered = api.clone();
    delivered.deliver(invocation("{}"), DEADLINE).unwrap();
    assert!(delivered.check().unwrap_err().contains("Invoking phase"));
    let current = serde_json::to_value(&delivered).unwrap()["current"].clone();
    assert!(refused(&|v| v["current"] = current.clone()).contains("holds invocation"));
    assert!(
        refused(&|v| v["events"] = serde_json::json!(["InitDone"]))
            .contains("events the host has not taken")
    );
    // Read past the output's end: `pending_output` would slice out of bounds.
    assert!(
        refused(&|v| v["connections"]["0"]["output_read"] = 5.into()).contains("marks 5 bytes")
    );
    assert!(refused(&|v| v["next_connection"] = 0.into()).contains("not handed out"));
    let crowded = |v: &mut serde_json::Value| {
        let connection = v["connections"]["0"].clone();
        for id in 1..=MAX_CONNECTIONS {
            v["connections"][id.to_string()] = connection.clone();
        }
        v["next_connection"] = (MAX_CONNECTIONS + 1).into();
    };
    assert!(refused(&crowded).contains("connections, more than"));
    // More unprocessed input than receiving keeps.
    let stuffed = vec![b'x'; INBOX_BYTES + 1];
    assert!(
        refused(&|v| v["connections"]["0"]["inbox"] = stuffed.clone().into())
            .contains("unprocessed input, more than")
    );
    // A queue of parked nexts that is not the connections with one parked.
    assert!(refused(&|v| v["parked"] = serde_json::json!([0, 0])).contains("or lists it twice"));
    assert!(
        refused(&|v| v["parked"] = serde_json::json!([])).contains("1 connections have a next")
    );
    let idle = |v: &mut serde_json::Value| {
        v["connections"]["1"] = v["connections"]["0"].clone();
        v["connections"]["1"]["parked"] = serde_json::Value::Null;
        v["next_connection"] = 2.into();
        v["parked"] = serde_json::json!([0, 1]);
    };
    assert!(refused(&idle).contains("lists connection 1, which has none parked"));
}
