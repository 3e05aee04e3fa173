//! Lambda's HTTP API on a local port, so the AWS CLI, boto3 and the other AWS SDKs can drive
//! the engine:
//!
//! ```text
//! cargo run --release --example gateway -- --listen 127.0.0.1:9000
//!                                          [--backend kvm|process|host-processes]
//!                                          [--base-image DIR] [--code-dir DIR]
//!                                          [--access-key-id ID --secret-access-key SECRET
//!                                           [--open-function-urls]]
//! ```
//!
//! Then, with any credentials (they are not checked unless `--access-key-id` and
//! `--secret-access-key` are given: then every request must be signed with them, with
//! Signature Version 4, as the AWS CLI and SDKs sign; Function URLs too, unless
//! `--open-function-urls`):
//!
//! ```text
//! export AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_DEFAULT_REGION=us-east-1
//! aws --endpoint-url http://127.0.0.1:9000 lambda create-function --function-name echo \
//!     --runtime provided.al2023 --role arn:aws:iam::000000000000:role/x \
//!     --handler bootstrap --zip-file fileb://function.zip
//! aws --endpoint-url http://127.0.0.1:9000 lambda invoke --function-name echo \
//!     --cli-binary-format raw-in-base64-out --payload '{"hi":1}' out.json
//! curl http://127.0.0.1:9000/url/echo/some/path?q=1
//! ```
//!
//! Functions run in KVM micro-VMs; without a usable `/dev/kvm` (or with `--backend process`)
//! the example falls back to the development backend (child processes, no isolation) and
//! says so. `--backend host-processes` keeps the micro-VMs in four VM host processes
//! (`lambda::vmm::HostProcessBackend`) instead of the gateway's own; build the host program
//! first (`cargo build --release -p lambda-vmm --bin lambda-vmm-host`). `--base-image DIR` (built by `functions/base-image/build.sh`) is given to
//! functions created with runtime `provided.al2023` or `provided.al2`, so their `bootstrap`
//! may be a script or a dynamically linked program. It serves until it is killed (Ctrl-C);
//! exit status 2 means a usage or setup error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use lambda::core::Backend;
use lambda::gateway::{Credentials, Gateway, GatewayConfig};
use lambda::sched::Service;
use lambda::vmm::host_process::HostOptions;
use lambda::vmm::{HostProcessBackend, MicroVmBackend, ProcessBackend};

const USAGE: &str = "usage: gateway [--listen ADDR:PORT] \
                     [--backend kvm|process|host-processes] \
                     [--base-image DIR] [--code-dir DIR] \
                     [--access-key-id ID --secret-access-key SECRET [--open-function-urls]]";

struct Options {
    listen: SocketAddr,
    backend: Option<String>,
    base_image: Option<PathBuf>,
    code_dir: Option<PathBuf>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    open_function_urls: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
        backend: None,
        base_image: None,
        code_dir: None,
        access_key_id: None,
        secret_access_key: None,
        open_function_urls: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{arg} needs {what}"));
        match arg.as_str() {
            "--listen" => {
                let text = value("an address such as 127.0.0.1:9000")?;
                options.listen = text
                    .parse()
                    .map_err(|e| format!("--listen: {text:?}: {e}"))?;
            }
            "--backend" => {
                let name = value("kvm, process or host-processes")?;
                if !["kvm", "process", "host-processes"].contains(&name.as_str()) {
                    return Err(format!(
                        "--backend: {name:?} is not kvm, process or host-processes"
                    ));
                }
                options.backend = Some(name);
            }
            "--base-image" => options.base_image = Some(value("a directory")?.into()),
            "--code-dir" => options.code_dir = Some(value("a directory")?.into()),
            "--access-key-id" => options.access_key_id = Some(value("an access key id")?),
            "--secret-access-key" => options.secret_access_key = Some(value("a secret")?),
            "--open-function-urls" => options.open_function_urls = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if options.access_key_id.is_some() != options.secret_access_key.is_some() {
        return Err("--access-key-id and --secret-access-key go together".to_string());
    }
    if options.open_function_urls && options.access_key_id.is_none() {
        return Err("--open-function-urls goes with --access-key-id and --secret-access-key (without them everything is open)".to_string());
    }
    Ok(options)
}

/// The micro-VM backend, or the process backend when asked for or when KVM is unusable, or
/// the micro-VM backend in four VM host processes when asked for.
fn backend(choice: Option<&str>) -> Result<Arc<dyn Backend>, String> {
    if choice == Some("process") {
        return Ok(Arc::new(ProcessBackend::new()));
    }
    if choice == Some("host-processes") {
        let backend = HostProcessBackend::start_beside_current_exe(4, HostOptions::default())
            .map_err(|error| format!("--backend host-processes: {error}"))?;
        return Ok(Arc::new(backend));
    }
    Ok(match MicroVmBackend::new() {
        Ok(kvm) => Arc::new(kvm),
        Err(error) => {
            eprintln!(
                "warning: KVM is unusable ({error}); falling back to the development backend: \
                 functions run as child processes of this user, WITHOUT isolation"
            );
            Arc::new(ProcessBackend::new())
        }
    })
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let backend = match backend(options.backend.as_deref()) {
        Ok(backend) => backend,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let backend_name = backend.name().to_string();
    let service = match Service::builder(backend).build() {
        Ok(service) => Arc::new(service),
        Err(error) => {
            eprintln!("cannot start the service: {error}");
            return ExitCode::from(2);
        }
    };
    let mut config = GatewayConfig::new(options.listen);
    config.base_image = options.base_image;
    config.code_dir = options.code_dir;
    config.open_function_urls = options.open_function_urls;
    if let (Some(access_key_id), Some(secret_access_key)) =
        (options.access_key_id, options.secret_access_key)
    {
        config.credentials = Some(Credentials {
            access_key_id,
            secret_access_key,
        });
    }
    let signed = config.credentials.is_some();
    let gateway = match Gateway::start(service, config) {
        Ok(gateway) => gateway,
        Err(error) => {
            eprintln!("cannot start the gateway: {error}");
            return ExitCode::from(2);
        }
    };
    let address = gateway.local_addr();
    let auth = if signed {
        "requests must be signed with the given key"
    } else {
        "any credentials accepted"
    };
    println!("Lambda API on http://{address} (backend: {backend_name}; {auth}); Ctrl-C stops it");
    println!("  aws --endpoint-url http://{address} lambda list-functions");
    println!("  Function URLs: http://{address}/url/<function>/<path>");
    loop {
        std::thread::park();
    }
}
