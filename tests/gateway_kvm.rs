//! The gateway on the KVM micro-VM backend, driven by the clients Lambda's users have: boto3
//! and the AWS CLI (`tests/gateway/clients.py` runs them, and curl for a Function URL)
//! against a gateway this test starts on a loopback port.
//!
//! Needs `python3` with boto3, the `aws` command and `curl` (`.ci/run` installs what is
//! missing); fails when they or KVM are missing, unless built with `LAMBDA_SKIP_KVM_TESTS=1`.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::{function, kvm_backend};
use lambda::gateway::{Gateway, GatewayConfig};
use lambda::sched::Service;

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn boto3_the_aws_cli_and_curl_drive_the_gateway() {
    let service = Service::builder(Arc::new(kvm_backend())).build().unwrap();
    let dir = common::tempdir("gateway-clients");
    let mut config = GatewayConfig::new("127.0.0.1:0".parse().unwrap());
    config.code_dir = Some(dir.join("code"));
    let gateway = Gateway::start(Arc::new(service), config).unwrap();
    let program = std::fs::read(function("runtime-loop")).unwrap();
    let zip = common::zip_package(&dir, "echo.zip", &[("bootstrap", &program)]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway/clients.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(format!("http://{}", gateway.local_addr()))
        .arg(zip.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): this test needs python3 with boto3"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}); it needs python3 with boto3, the aws command and curl \
         (.ci/run installs them)\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all client checks passed"), "{stdout}");
    gateway.shutdown();
}
