//! Lambda's HTTP API as the gateway serves it, on the fake backend (no KVM needed): paths,
//! headers, status codes and JSON shapes, Lambda's errors for bad requests, and a server
//! that keeps serving through malformed, oversized, slow and half-closed connections.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::http::{Connection, event_messages, request};
use lambda::gateway::{Gateway, GatewayConfig};
use lambda::sched::Service;
use lambda::sched::fake::FakeBackend;

const FUNCTIONS: &str = "/2015-03-31/functions";

/// A gateway on a free loopback port over a service on the fake backend; slow clients are
/// cut off after `timeout`.
fn gateway(timeout: Duration) -> Gateway {
    gateway_with(|config| {
        config.header_timeout = timeout;
        config.body_timeout = timeout;
    })
}

/// A gateway on a free loopback port over a service on the fake backend, with the settings
/// `configure` makes.
fn gateway_with(configure: impl FnOnce(&mut GatewayConfig)) -> Gateway {
    let service = Service::builder(FakeBackend::new()).build().unwrap();
    // No `code_dir`: the gateway keeps uploads in a directory of its own, removed when it
    // stops.
    let mut config = GatewayConfig::new("127.0.0.1:0".parse().unwrap());
    configure(&mut config);
    Gateway::start(Arc::new(service), config).unwrap()
}

/// A zip holding `files`, base64.
fn zip_base64(tag: &str, files: &[(&str, &[u8])]) -> String {
    let dir = common::tempdir(&format!("{tag}-zip"));
    let code = common::zip_package(&dir, "code.zip", files);
    STANDARD.encode(std::fs::read(code.path()).unwrap())
}

fn create_body(name: &str, zip: &str) -> Vec<u8> {
    serde_json::json!({
        "FunctionName": name,
        "Runtime": "provided.al2023",
        "Role": "arn:aws:iam::000000000000:role/r",
        "Handler": "bootstrap",
        "Code": {"ZipFile": zip},
        "MemorySize": 256,
        "Timeout": 5,
    })
    .to_string()
    .into_bytes()
}

#[test]
fn functions_are_created_invoked_and_deleted_over_http() {
    let gateway = gateway(Duration::from_secs(30));
    let address = gateway.local_addr();
    let zip = zip_base64("api-crud", &[("bootstrap", b"#!/bin/sh\n")]);

    let created = request(address, "POST", FUNCTIONS, &[], &create_body("echo", &zip));
    assert_eq!(created.status, 201, "{:?}", created);
    let body = created.json();
    assert_eq!(body["FunctionName"], "echo");
    assert_eq!(body["MemorySize"], 256);
    assert_eq!(body["Version"], "$LATEST");
    assert_eq!(
        body["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:echo"
    );
    assert_eq!(body["CodeSha256"].as_str().unwrap().len(), 44);

    // RequestResponse: the fake echoes.
    let invoked = request(
        address,
        "POST",
        &format!("{FUNCTIONS}/echo/invocations"),
        &[("X-Amz-Log-Type", "Tail")],
        br#"{"hello":"world"}"#,
    );
    assert_eq!(invoked.status, 200);
    assert_eq!(invoked.body, br#"{"hello":"world"}"#);
    assert_eq!(invoked.header("x-amz-executed-version"), Some("$LATEST"));
    assert!(invoked.header("x-amz-function-error").is_none());
    let tail = STANDARD
        .decode(invoked.header("x-amz-log-result").unwrap())
        .unwrap();
    assert!(std::str::from_utf8(&tail).is_ok(), "the log tail is text");
    assert_eq!(invoked.header("x-amzn-requestid").unwrap().len(), 36);

    // Event and DryRun; the function by ARN, percent-encoded.
    let arn = "arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Aecho";
    for (kind, status) in [("Event", 202), ("DryRun", 204)] {
        let answer = request(
            address,
            "POST",
            &format!("{FUNCTIONS}/{arn}/invocations"),
            &[("X-Amz-Invocation-Type", kind)],
            b"{}",
        );
        assert_eq!(answer.status, status, "{kind}: {answer:?}");
    }

    // Versions and an alias, then invoking the alias.
    let v1 = request(
        address,
        "POST",
        &format!("{FUNCTIONS}/echo/versions"),
        &[],
        b"{}",
    );
    assert_eq!((v1.status, v1.json()["Version"].as_str()), (201, Some("1")));
    let alias = request(
        address,
        "POST",
        &format!("{FUNCTIONS}/echo/aliases"),
        &[],
        br#"{"Name":"live","FunctionVersion":"1","Description":"prod"}"#,
    );
    assert_eq!(alias.status, 201);
    assert_eq!(alias.json()["Description"], "prod");
    let via_alias = request(
        address,
        "POST",
        &format!("{FUNCTIONS}/echo/invocations?Qualifier=live"),
        &[],
        b"1",
    );
    assert_eq!(via_alias.header("x-amz-executed-version"), Some("1"));
    let listed = request(address, "GET", &format!("{FUNCTIONS}/"), &[], b"").json();
    assert_eq!(listed["Functions"].as_array().unwrap().len(), 1);
    let every = request(
        address,
        "GET",
        &format!("{FUNCTIONS}/?FunctionVersion=ALL"),
        &[],
        b"",
    );
    let versions: Vec<_> = every.json()["Functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["Version"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(versions, ["$LATEST", "1"]);
    let odd = request(
        address,
        "GET",
        &format!("{FUNCTIONS}/?FunctionVersion=SOME"),
        &[],
        b"",
    );
    assert_eq!(odd.error_type(), Some("InvalidParameterValueException"));
    for (version, count) in [("1", 1), ("%24LATEST", 0)] {
        let path = format!("{FUNCTIONS}/echo/aliases?FunctionVersion={version}");
        let aliases = request(address, "GET", &path, &[], b"").json();
        assert_eq!(
            aliases["Aliases"].as_array().unwrap().len(),
            count,
            "{version}"
        );
    }

    // Reserved concurrency 0: throttled with Lambda's reason.
    let put = request(
        address,
        "PUT",
        "/2017-10-31/functions/echo/concurrency",
        &[],
        br#"{"ReservedConcurrentExecutions":0}"#,
    );
    assert_eq!(put.status, 200);
    let throttled = request(
        address,
        "POST",
        &format!("{FUNCTIONS}/echo/invocations"),
        &[],
        b"{}",
    );
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.error_type(), Some("TooManyRequestsException"));
    assert_eq!(
        throttled.json()["Reason"],
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    );
    assert!(throttled.header("retry-after").is_some());

    let deleted = request(address, "DELETE", &format!("{FUNCTIONS}/echo"), &[], b"");
    assert_eq!(deleted.status, 204);
    let gone = request(address, "GET", &format!("{FUNCTIONS}/echo"), &[], b"");
    assert_eq!(gone.status, 404);
    assert_eq!(gone.error_type(), Some("ResourceNotFoundException"));
    assert!(gone.json()["message"].as_str().unwrap().contains("echo"));
    gateway.shutdown();
}

#[test]
fn bad_requests_get_lambdas_errors_and_the_server_keeps_serving() {
    let gateway = gateway(Duration::from_secs(30));
    let address = gateway.local_addr();
    let zip = zip_base64("api-bad", &[("bootstrap", b"#!/bin/sh\n")]);
    assert_eq!(
        request(address, "POST", FUNCTIONS, &[], &create_body("f", &zip)).status,
        201
    );
    let invocations = format!("{FUNCTIONS}/f/invocations");
    // method, path, headers, body, then the status and error type expected.
    type Case<'a> = (
        &'a str,
        String,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            FUNCTIONS.into(),
            vec![],
            b"{not json".to_vec(),
            400,
            "InvalidRequestContentException",
        ),
        (
            "POST",
            FUNCTIONS.into(),
            vec![],
            create_body("g", "bm90IGEgemlw"),
            400,
            "InvalidParameterValueException",
        ),
        (
            "POST",
            FUNCTIONS.into(),
            vec![],
            create_body("h", &zip_base64("api-bad-h", &[("handler", b"x")])),
            400,
            "InvalidParameterValueException",
        ),
        (
            "POST",
            FUNCTIONS.into(),
            vec![],
            create_body("f", &zip),
            409,
            "ResourceConflictException",
        ),
        (
            "POST",
            FUNCTIONS.into(),
            vec![],
            create_body("bad name!", &zip),
            400,
            "InvalidParameterValueException",
        ),
        (
            "POST",
            invocations.clone(),
            vec![],
            b"{\"a\":".to_vec(),
            400,
            "InvalidRequestContentException",
        ),
        (
            "POST",
            format!("{FUNCTIONS}/nope/invocations"),
            vec![],
            b"{}".to_vec(),
            404,
            "ResourceNotFoundException",
        ),
        (
            "POST",
            format!("{invocations}?Qualifier=7"),
            vec![],
            b"{}".to_vec(),
            404,
            "ResourceNotFoundException",
        ),
        (
            "POST",
            invocations.clone(),
            vec![("X-Amz-Invocation-Type", "Sometimes")],
            b"{}".to_vec(),
            400,
            "InvalidParameterValueException",
        ),
        (
            "POST",
            invocations.clone(),
            vec![("X-Amz-Invocation-Type", "Event")],
            format!("\"{}\"", "x".repeat(1 << 20)).into_bytes(),
            413,
            "RequestTooLargeException",
        ),
        (
            "GET",
            invocations.clone(),
            vec![],
            vec![],
            404,
            "UnknownOperationException",
        ),
        (
            "PATCH",
            format!("{FUNCTIONS}/f"),
            vec![],
            vec![],
            404,
            "UnknownOperationException",
        ),
        (
            "GET",
            "/2015-03-31/nothing".into(),
            vec![],
            vec![],
            404,
            "UnknownOperationException",
        ),
        (
            "PUT",
            format!("{FUNCTIONS}/f/configuration"),
            vec![],
            br#"{"MemorySize":1}"#.to_vec(),
            400,
            "InvalidParameterValueException",
        ),
        (
            "PUT",
            "/2019-09-30/functions/f/provisioned-concurrency".into(),
            vec![],
            br#"{"ProvisionedConcurrentExecutions":1}"#.to_vec(),
            400,
            "InvalidParameterValueException",
        ),
    ];
    for (method, path, headers, body, status, error) in cases {
        let answer = request(address, method, &path, &headers, &body);
        assert_eq!(
            (answer.status, answer.error_type()),
            (status, Some(error)),
            "{method} {path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert!(answer.json()["message"].is_string());
    }

    // A synchronous payload over 6 MB is refused from its declared length, unread.
    let mut big = Connection::open(address);
    big.write(
        format!(
            "POST {invocations} HTTP/1.1\r\nHost: g\r\nContent-Length: {}\r\n\r\n",
            6 * 1024 * 1024 + 1
        )
        .as_bytes(),
    );
    let refused = big.read().unwrap();
    assert_eq!(refused.status, 413);
    assert_eq!(refused.error_type(), Some("RequestTooLargeException"));
    let message = refused.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("InvokeFunction operation"), "{message}");
    // A control-plane body over 70 MB: Lambda's other name for the same refusal.
    let mut upload = Connection::open(address);
    upload.write(
        format!(
            "POST {FUNCTIONS} HTTP/1.1\r\nHost: g\r\nContent-Length: {}\r\n\r\n",
            70 * 1024 * 1024 + 1
        )
        .as_bytes(),
    );
    let refused = upload.read().unwrap();
    assert_eq!(
        (refused.status, refused.error_type()),
        (413, Some("RequestEntityTooLargeException"))
    );

    // Garbage instead of HTTP: the connection is closed, nothing else happens.
    let mut garbage = Connection::open(address);
    garbage.write(b"\x16\x03\x01 not http at all\r\n\r\n");
    let _ = garbage.rest();

    // A client that vanishes halfway through a request.
    let mut vanished = Connection::open(address);
    vanished.write(b"POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nContent-Le");
    drop(vanished);

    // Half-closed: the request is whole, then the client stops writing; the answer comes.
    let mut half = Connection::open(address);
    half.send("POST", &invocations, &[], b"\"half\"");
    half.shutdown_write();
    let answer = half.read().unwrap();
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, &b"\"half\""[..])
    );

    // Keep-alive: several requests on one connection.
    let mut kept = Connection::open(address);
    for i in 0..3 {
        let payload = format!("{{\"n\":{i}}}");
        kept.send("POST", &invocations, &[], payload.as_bytes());
        assert_eq!(kept.read().unwrap().body, payload.as_bytes());
    }
    gateway.shutdown();
}

#[test]
fn slow_clients_are_cut_off() {
    let gateway = gateway(Duration::from_secs(1));
    let address = gateway.local_addr();
    // Headers that never finish: the connection is closed after the header timeout.
    let mut slow_headers = Connection::open(address);
    slow_headers.write(b"GET /2015-03-31/functions HTTP/1.1\r\nHost: g\r\n");
    let rest = slow_headers.rest();
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    // A body that never finishes: Lambda's error, then the connection is closed.
    let mut slow_body = Connection::open(address);
    slow_body.write(
        b"POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: g\r\nContent-Length: 10\r\n\r\n{\"a\"",
    );
    let answer = slow_body.read().unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(answer.error_type(), Some("InvalidRequestContentException"));
    assert!(slow_body.rest().is_empty());
    // The server still answers.
    let listed = request(address, "GET", FUNCTIONS, &[], b"");
    assert_eq!(listed.status, 200);
    gateway.shutdown();
}

#[test]
fn a_function_url_request_becomes_an_event() {
    let gateway = gateway(Duration::from_secs(30));
    let address = gateway.local_addr();
    let zip = zip_base64("api-url", &[("bootstrap", b"#!/bin/sh\n")]);
    assert_eq!(
        request(address, "POST", FUNCTIONS, &[], &create_body("web", &zip)).status,
        201
    );
    // The fake echoes the event, which is not a response object: a 200 with it as JSON.
    let answer = request(
        address,
        "PUT",
        "/url/web/items/42?x=1",
        &[
            ("Content-Type", "application/octet-stream"),
            ("Cookie", "a=1"),
        ],
        &[0, 1, 2, 255],
    );
    assert_eq!(answer.status, 200);
    let event = answer.json();
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["rawPath"], "/items/42");
    assert_eq!(event["requestContext"]["http"]["method"], "PUT");
    assert_eq!(event["queryStringParameters"]["x"], "1");
    assert_eq!(event["cookies"][0], "a=1");
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], STANDARD.encode([0u8, 1, 2, 255]));
    let missing = request(address, "GET", "/url/nobody/", &[], b"");
    assert_eq!(missing.status, 404);
    gateway.shutdown();
}

#[test]
fn a_function_destination_receives_the_invocation_record() {
    // A manual service: the test runs the async queue itself, so nothing depends on timing.
    let service = Arc::new(
        Service::builder(FakeBackend::new())
            .manual()
            .build()
            .unwrap(),
    );
    let config = GatewayConfig::new("127.0.0.1:0".parse().unwrap());
    let gateway = Gateway::start(service.clone(), config).unwrap();
    let address = gateway.local_addr();
    let zip = zip_base64("api-destination", &[("bootstrap", b"#!/bin/sh\n")]);
    for name in ["source", "target"] {
        let created = request(address, "POST", FUNCTIONS, &[], &create_body(name, &zip));
        assert_eq!(created.status, 201);
    }
    let settings = "/2019-09-25/functions/source/event-invoke-config";
    let queue = br#"{"DestinationConfig":{"OnSuccess":{"Destination":"arn:aws:sqs:us-east-1:000000000000:q"}}}"#;
    let refused = request(address, "PUT", settings, &[], queue);
    assert_eq!(refused.error_type(), Some("InvalidParameterValueException"));
    let missing = br#"{"DestinationConfig":{"OnSuccess":{"Destination":"arn:aws:lambda:us-east-1:000000000000:function:nobody"}}}"#;
    let refused = request(address, "PUT", settings, &[], missing);
    assert_eq!(refused.error_type(), Some("ResourceNotFoundException"));
    let to_target = br#"{"MaximumRetryAttempts":0,"DestinationConfig":{"OnSuccess":{"Destination":"arn:aws:lambda:us-east-1:000000000000:function:target"}}}"#;
    let put = request(address, "PUT", settings, &[], to_target);
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    assert_eq!(
        put.json()["DestinationConfig"]["OnSuccess"]["Destination"],
        "arn:aws:lambda:us-east-1:000000000000:function:target"
    );
    // What the target receives, kept by an in-memory destination of its own.
    let recorder = lambda::sched::Recorder::new();
    service
        .put_event_invoke_config(
            "target",
            None,
            lambda::sched::EventInvokeConfig::default().with_on_success(recorder.clone()),
        )
        .unwrap();

    let queued = request(
        address,
        "POST",
        &format!("{FUNCTIONS}/source/invocations"),
        &[("X-Amz-Invocation-Type", "Event")],
        br#"{"order":7}"#,
    );
    assert_eq!(queued.status, 202);
    service.run_pending(); // source runs; its record is queued for target
    service.run_pending(); // target runs with the record
    let records = recorder.items();
    assert_eq!(records.len(), 1);
    let delivered: serde_json::Value = serde_json::from_slice(&records[0].request_payload).unwrap();
    assert_eq!(delivered["requestContext"]["condition"], "Success");
    assert_eq!(delivered["requestPayload"]["order"], 7);
    assert!(
        delivered["requestContext"]["functionArn"]
            .as_str()
            .unwrap()
            .ends_with(":function:source")
    );
    gateway.shutdown();
}

#[test]
fn uploaded_code_is_kept_while_a_version_runs_it_and_within_the_storage_limit() {
    let service = Service::builder(FakeBackend::new())
        .manual()
        .build()
        .unwrap();
    let code_dir = common::tempdir("api-storage");
    let mut config = GatewayConfig::new("127.0.0.1:0".parse().unwrap());
    config.code_dir = Some(code_dir.to_path_buf());
    let zip = zip_base64("api-storage", &[("bootstrap", b"#!/bin/sh\n")]);
    let zip_bytes = STANDARD.decode(&zip).unwrap().len() as u64;
    config.max_code_bytes = 2 * zip_bytes; // room for two copies of the zip
    let gateway = Gateway::start(Arc::new(service), config).unwrap();
    let address = gateway.local_addr();
    let files = || std::fs::read_dir(&code_dir).unwrap().count();
    let code = format!("{FUNCTIONS}/f/code");
    let update = format!("{{\"ZipFile\":\"{zip}\"}}");

    assert_eq!(
        request(address, "POST", FUNCTIONS, &[], &create_body("f", &zip)).status,
        201
    );
    // An update replaces $LATEST's zip, which nothing else runs.
    assert_eq!(
        request(address, "PUT", &code, &[], update.as_bytes()).status,
        200
    );
    assert_eq!(files(), 1);
    // Published, the zip stays for version 1 when $LATEST gets a new one.
    let published = request(
        address,
        "POST",
        &format!("{FUNCTIONS}/f/versions"),
        &[],
        b"",
    );
    assert_eq!(published.status, 201);
    assert_eq!(
        request(address, "PUT", &code, &[], update.as_bytes()).status,
        200
    );
    assert_eq!(files(), 2);
    // Storage is full: $LATEST and version 1 hold two zips' worth.
    let full = request(address, "POST", FUNCTIONS, &[], &create_body("g", &zip));
    assert_eq!(
        (full.status, full.error_type()),
        (400, Some("CodeStorageExceededException"))
    );
    let settings = request(address, "GET", "/2016-08-19/account-settings", &[], b"").json();
    assert_eq!(settings["AccountLimit"]["TotalCodeSize"], 2 * zip_bytes);
    // Deleting version 1 frees its zip and its share of the storage.
    let deleted = request(
        address,
        "DELETE",
        &format!("{FUNCTIONS}/f?Qualifier=1"),
        &[],
        b"",
    );
    assert_eq!(deleted.status, 204);
    assert_eq!(files(), 1);
    assert_eq!(
        request(address, "POST", FUNCTIONS, &[], &create_body("g", &zip)).status,
        201
    );
    // Deleting the functions removes their code.
    for name in ["f", "g"] {
        let gone = request(address, "DELETE", &format!("{FUNCTIONS}/{name}"), &[], b"");
        assert_eq!(gone.status, 204);
    }
    assert_eq!(files(), 0);
    gateway.shutdown();
}

#[test]
fn a_client_that_never_reads_its_answers_is_cut_off() {
    // One connection at a time, so the stalled client would hold out everyone else.
    let gateway = gateway_with(|config| {
        config.max_connections = 1;
        config.write_timeout = Duration::from_millis(300);
    });
    let address = gateway.local_addr();
    let zip = zip_base64("api-stall", &[("bootstrap", b"#!/bin/sh\n")]);
    let created = request(address, "POST", FUNCTIONS, &[], &create_body("echo", &zip));
    assert_eq!(created.status, 201);

    // Pipelined 5 MB echoes, never read: far more than the sockets' buffers hold, so the
    // gateway's writes stall. The writer stops when the gateway closes the connection.
    let mut hog = std::net::TcpStream::connect(address).unwrap();
    let payload = format!("\"{}\"", "x".repeat(5 << 20));
    let head = format!(
        "POST {FUNCTIONS}/echo/invocations HTTP/1.1\r\nHost: g\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        for _ in 0..64 {
            if hog.write_all(head.as_bytes()).is_err() || hog.write_all(payload.as_bytes()).is_err()
            {
                return true;
            }
        }
        false
    });
    // Served once the stalled connection is closed; without a write timeout this waits
    // for ever (the request helper gives up after 30 s).
    let next = request(address, "GET", &format!("{FUNCTIONS}/"), &[], b"");
    assert_eq!(next.status, 200);
    assert!(
        writer.join().unwrap(),
        "the gateway closed the stalled connection"
    );
    gateway.shutdown();
}

#[test]
fn a_gateway_can_be_dropped_inside_another_tokio_runtime() {
    // A host application that is itself async drops its gateway on a runtime thread, where
    // blocking to wait for the gateway's threads would panic.
    let host = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    host.block_on(async {
        let gateway = gateway(Duration::from_secs(30));
        let listed = request(
            gateway.local_addr(),
            "GET",
            &format!("{FUNCTIONS}/"),
            &[],
            b"",
        );
        assert_eq!(listed.status, 200);
        drop(gateway);
    });
}

#[test]
fn a_response_stream_is_framed_as_an_event_stream() {
    let gateway = gateway(Duration::from_secs(30));
    let address = gateway.local_addr();
    let zip = zip_base64("api-stream", &[("bootstrap", b"#!/bin/sh\n")]);
    let created = request(address, "POST", FUNCTIONS, &[], &create_body("echo", &zip));
    assert_eq!(created.status, 201);
    let streaming = "/2021-11-15/functions/echo/response-streaming-invocations";

    // The fake answers whole: its answer is one PayloadChunk, then InvokeComplete.
    let streamed = request(
        address,
        "POST",
        streaming,
        &[("X-Amz-Log-Type", "Tail")],
        br#"{"hi":1}"#,
    );
    assert_eq!(streamed.status, 200, "{streamed:?}");
    assert_eq!(
        streamed.header("content-type"),
        Some("application/vnd.amazon.eventstream")
    );
    let events = event_messages(&streamed.body);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0],
        ("PayloadChunk".to_string(), br#"{"hi":1}"#.to_vec())
    );
    assert_eq!(events[1].0, "InvokeComplete");
    let complete: serde_json::Value = serde_json::from_slice(&events[1].1).unwrap();
    assert!(complete.get("ErrorCode").is_none(), "{complete}");
    assert!(complete["LogResult"].is_string(), "{complete}");

    // Refusals before anything runs are plain errors; a dry run is a 204.
    let unknown = request(
        address,
        "POST",
        "/2021-11-15/functions/nobody/response-streaming-invocations",
        &[],
        b"{}",
    );
    assert_eq!(
        (unknown.status, unknown.error_type()),
        (404, Some("ResourceNotFoundException"))
    );
    let event = request(
        address,
        "POST",
        streaming,
        &[("X-Amz-Invocation-Type", "Event")],
        b"{}",
    );
    assert_eq!(event.error_type(), Some("InvalidParameterValueException"));
    let dry = request(
        address,
        "POST",
        streaming,
        &[("X-Amz-Invocation-Type", "DryRun")],
        b"{}",
    );
    assert_eq!(dry.status, 204);
    let not_json = request(address, "POST", streaming, &[], b"{not json");
    assert_eq!(
        not_json.error_type(),
        Some("InvalidRequestContentException")
    );
    let wrong_method = request(address, "GET", streaming, &[], b"");
    assert_eq!(wrong_method.error_type(), Some("UnknownOperationException"));
    gateway.shutdown();
}

#[test]
fn request_bodies_wait_for_room_among_the_bodies_held() {
    use std::io::{Read, Write};
    // Room for one 70 MB body: while one is being read, another request waits.
    let gateway = gateway_with(|config| {
        config.max_body_bytes_in_flight = 70 * 1024 * 1024;
    });
    let address = gateway.local_addr();

    // A declares the largest body and asks to go on; hyper says 100 Continue once the body
    // is being read, which is after the room for it was taken.
    let mut big = std::net::TcpStream::connect(address).unwrap();
    big.write_all(
        format!(
            "POST {FUNCTIONS} HTTP/1.1\r\nHost: g\r\nExpect: 100-continue\r\n\
             Content-Length: {}\r\n\r\n",
            70 * 1024 * 1024
        )
        .as_bytes(),
    )
    .unwrap();
    big.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut go_on = [0u8; 25];
    big.read_exact(&mut go_on).unwrap();
    assert!(go_on.starts_with(b"HTTP/1.1 100 Continue"), "{go_on:?}");
    big.write_all(b"{").unwrap();
    // B's small body must wait: it is not answered while A holds the room.
    let mut small = std::net::TcpStream::connect(address).unwrap();
    small
        .write_all(
            format!("POST {FUNCTIONS}/f/invocations HTTP/1.1\r\nHost: g\r\nContent-Length: 2\r\n\r\n{{}}")
                .as_bytes(),
        )
        .unwrap();
    small
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let waited = small.read(&mut byte);
    assert!(
        matches!(&waited, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "answered while the room was taken: {waited:?}"
    );
    // A gives up: its room is freed and B is answered (the function does not exist).
    drop(big);
    small
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = small.read(&mut buffer).unwrap();
        assert!(n > 0, "closed unanswered");
        answer.extend_from_slice(&buffer[..n]);
    }
    let head = String::from_utf8_lossy(&answer);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    gateway.shutdown();
}
