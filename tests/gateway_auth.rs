//! A gateway given credentials checks AWS Signature Version 4 on every API request:
//! botocore's signatures pass, a wrong secret, an unknown key or no signature are refused
//! with Lambda's 403s, before any of the body is read; Function URLs are signed too unless
//! the gateway opens them. Runs on the fake backend (no KVM); needs python3 with boto3
//! (`.ci/run` installs it).

mod common;

use std::process::Command;
use std::sync::Arc;

use common::http::{Connection, request};
use lambda::gateway::{Credentials, Gateway, GatewayConfig};
use lambda::sched::Service;
use lambda::sched::fake::FakeBackend;

/// A gateway on the fake backend that takes requests signed with access key `AKIDGATEWAY`
/// and `secret`, Function URLs unsigned too when `open_function_urls`.
fn signed_gateway(secret: &str, open_function_urls: bool) -> Gateway {
    let service = Service::builder(FakeBackend::new()).build().unwrap();
    // No `code_dir`: uploads go to a directory of the gateway's own, removed when it stops.
    let mut config = GatewayConfig::new("127.0.0.1:0".parse().unwrap());
    config.credentials = Some(Credentials {
        access_key_id: "AKIDGATEWAY".into(),
        secret_access_key: secret.into(),
    });
    config.open_function_urls = open_function_urls;
    Gateway::start(Arc::new(service), config).unwrap()
}

#[test]
fn requests_must_be_signed_with_the_gateways_credentials() {
    let gateway = signed_gateway("s3cr3t/with+odd=chars", false);
    let address = gateway.local_addr();

    let unsigned = request(address, "GET", "/2015-03-31/functions/", &[], b"");
    assert_eq!(
        (unsigned.status, unsigned.error_type()),
        (403, Some("InvalidSignatureException"))
    );

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway/signed.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(format!("http://{address}"))
        .args(["AKIDGATEWAY", "s3cr3t/with+odd=chars"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): this test needs python3 with boto3"));
    assert!(
        output.status.success(),
        "{script} failed; it needs python3 with boto3\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // Refused from its headers: the 60 MB body announced is never sent, and not waited for.
    let mut big = Connection::open(address);
    big.write(
        b"POST /2015-03-31/functions HTTP/1.1\r\nHost: g\r\nContent-Length: 60000000\r\n\r\n",
    );
    let refused = big.read().expect("answered before the body");
    assert_eq!(
        (refused.status, refused.error_type()),
        (403, Some("InvalidSignatureException"))
    );
    gateway.shutdown();
}

#[test]
fn function_urls_can_be_opened_while_the_api_stays_signed() {
    let gateway = signed_gateway("secret", true);
    let address = gateway.local_addr();
    // The function does not exist, but the request got past the signature check to say so.
    let url = request(address, "GET", "/url/echo/open", &[], b"");
    assert_eq!(
        (url.status, url.error_type()),
        (404, Some("ResourceNotFoundException"))
    );
    let api = request(address, "GET", "/2015-03-31/functions/", &[], b"");
    assert_eq!(api.status, 403);
    gateway.shutdown();
}
