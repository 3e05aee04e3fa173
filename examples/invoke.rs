//! Runs any x86-64 Linux program as a function in a micro-VM.
//!
//! ```text
//! cargo run --release --example invoke -- PATH [PAYLOAD] [--memory MB] [--timeout SECONDS]
//!                                         [--runtime-api] [--count N]
//!                                         [--backend kvm|process|host-processes]
//!                                         [--from-snapshot [--snapshot-file FILE]]
//!                                         [--base-image DIR] [--layer PATH]...
//!                                         [--handler NAME]
//! ```
//!
//! By default PATH runs once as a one-shot stdio function: the payload (the argument, or stdin
//! when it is absent) is its stdin, its stdout the response. With `--runtime-api` PATH is a
//! Lambda custom runtime (it speaks the Runtime API) and runs in one warm environment for
//! `--count` invocations of the same payload. PATH may also be a zip holding `bootstrap`.
//!
//! With `--from-snapshot` (KVM only) the function's Init runs once and is snapshotted (a
//! Runtime API function once it asks for its first event, a one-shot function at its first
//! read of stdin); then each of the `--count` invocations runs in a new environment restored
//! from that snapshot, so what one invocation changes is never seen by the next, and each
//! REPORT says `Restore Duration` where a cold start says `Init Duration`. With
//! `--snapshot-file FILE` the snapshot is read from FILE if it exists (no Init runs at all),
//! else taken and written there for the next run. A FILE this build cannot use (damaged, of
//! another format version, or taken on another CPU or by another build) is refused with the
//! reason and exit status 2; remove it to take a new one.
//!
//! With `--base-image DIR` the guest sees DIR, read-only, as its `/` (apart from `/var/task`
//! and `/tmp`): a dynamically linked PATH finds its dynamic linker and libraries there
//! (`functions/base-image/build.sh DIR` makes one from Debian packages), and a `bootstrap`
//! that is a `#!` script finds its interpreter there. `--handler NAME` sets `_HANDLER` (for
//! example `lambda_function.lambda_handler` for a Python runtime). `--layer PATH` (up to five
//! times) adds a layer, a zip or a directory whose files appear under `/opt`, later ones
//! winning.
//!
//! Responses go to stdout (one per line with `--count`); log tails and REPORT lines to stderr.
//! The exit status is 1 if an invocation failed (its error type and message are printed) and
//! 2 on a usage or setup error. Without a usable `/dev/kvm` it falls back to the process
//! backend (no isolation) with a warning; `--backend process` asks for it. `--backend
//! host-processes` runs the micro-VMs in two VM host processes
//! (`lambda::vmm::HostProcessBackend`) instead of this one; it needs the host program built
//! first (`cargo build --release -p lambda-vmm --bin lambda-vmm-host`).

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use lambda::core::{
    Backend, CodeLocation, Contract, ExecutionEnvironment, FunctionConfig, Invocation,
    InvokeOutcome, InvokeResult, limits,
};
use lambda::vmm::host_process::HostOptions;
use lambda::vmm::{HostProcessBackend, MicroVmBackend, ProcessBackend, Snapshot};

const USAGE: &str = "usage: invoke PATH [PAYLOAD] [--memory MB] [--timeout SECONDS] \
                     [--runtime-api] [--count N] [--backend kvm|process|host-processes] \
                     [--from-snapshot [--snapshot-file FILE]] [--base-image DIR] [--layer PATH]... [--handler NAME]";

struct Options {
    path: String,
    payload: Option<String>,
    memory_mb: u32,
    timeout: Duration,
    runtime_api: bool,
    count: u32,
    backend: Option<String>,
    from_snapshot: bool,
    snapshot_file: Option<String>,
    base_image: Option<String>,
    handler: Option<String>,
    layers: Vec<String>,
}

fn value<T: std::str::FromStr>(
    args: &mut impl Iterator<Item = String>,
    flag: &str,
    what: &str,
) -> Result<T, String> {
    let raw = args.next().ok_or(format!("{flag} needs {what}"))?;
    raw.parse()
        .map_err(|_| format!("{flag}: {raw:?} is not {what}"))
}

fn parse_args() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut options = Options {
        path: String::new(),
        payload: None,
        memory_mb: limits::DEFAULT_MEMORY_MB,
        timeout: limits::DEFAULT_TIMEOUT,
        runtime_api: false,
        count: 1,
        backend: None,
        from_snapshot: false,
        snapshot_file: None,
        base_image: None,
        handler: None,
        layers: Vec::new(),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--memory" => options.memory_mb = value(&mut args, "--memory", "a number of MB")?,
            "--timeout" => {
                let seconds: f64 = value(&mut args, "--timeout", "a number of seconds")?;
                options.timeout = Duration::try_from_secs_f64(seconds)
                    .map_err(|_| format!("--timeout: {seconds} is out of range"))?;
            }
            "--runtime-api" => options.runtime_api = true,
            "--from-snapshot" => options.from_snapshot = true,
            "--snapshot-file" => {
                options.snapshot_file = Some(value(&mut args, "--snapshot-file", "a path")?)
            }
            "--base-image" => {
                options.base_image = Some(value(&mut args, "--base-image", "a directory")?)
            }
            "--layer" => options
                .layers
                .push(value(&mut args, "--layer", "a zip or directory")?),
            "--handler" => options.handler = Some(value(&mut args, "--handler", "a name")?),
            "--count" => options.count = value(&mut args, "--count", "a count")?,
            "--backend" => {
                let name: String = value(&mut args, "--backend", "kvm, process or host-processes")?;
                if !["kvm", "process", "host-processes"].contains(&name.as_str()) {
                    return Err(format!(
                        "--backend: {name:?} is not kvm, process or host-processes"
                    ));
                }
                options.backend = Some(name);
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option {flag}\n{USAGE}"));
            }
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    options.path = positional.next().ok_or(USAGE)?;
    options.payload = positional.next();
    if positional.next().is_some() {
        return Err(USAGE.to_string());
    }
    if options.count == 0 {
        return Err("--count must be at least 1".to_string());
    }
    if options.snapshot_file.is_some() && !options.from_snapshot {
        return Err("--snapshot-file goes with --from-snapshot".to_string());
    }
    if options.from_snapshot && options.backend.as_deref().is_some_and(|b| b != "kvm") {
        return Err("--from-snapshot needs the KVM backend".to_string());
    }
    Ok(options)
}

/// The micro-VM backend, or the process backend when asked for or when KVM is unusable, or
/// the micro-VM backend in two VM host processes when asked for.
fn backend(choice: Option<&str>) -> Result<Box<dyn Backend>, String> {
    match choice {
        Some("process") => Ok(Box::new(ProcessBackend::new())),
        Some("host-processes") => {
            HostProcessBackend::start_beside_current_exe(2, HostOptions::default())
                .map(|b| Box::new(b) as Box<dyn Backend>)
                .map_err(|e| format!("--backend host-processes: {e}"))
        }
        Some(_) => MicroVmBackend::new()
            .map(|b| Box::new(b) as Box<dyn Backend>)
            .map_err(|e| e.to_string()),
        None => match MicroVmBackend::new() {
            Ok(backend) => Ok(Box::new(backend)),
            Err(error) => {
                eprintln!(
                    "warning: {error}\nwarning: falling back to the process backend: the \
                     function runs as a plain child process, with no isolation"
                );
                Ok(Box::new(ProcessBackend::new()))
            }
        },
    }
}

fn run(options: Options) -> Result<bool, String> {
    let code = if options.path.ends_with(".zip") {
        CodeLocation::Zip(options.path.clone().into())
    } else {
        CodeLocation::Executable(options.path.clone().into())
    };
    let contract = if options.runtime_api {
        Contract::RuntimeApi
    } else {
        Contract::Stdio
    };
    let mut config = FunctionConfig::new("invoke", code)
        .with_contract(contract)
        .with_memory_mb(options.memory_mb)
        .with_timeout(options.timeout);
    if let Some(dir) = &options.base_image {
        config = config.with_base_image(dir);
    }
    if let Some(handler) = &options.handler {
        config = config.with_handler(handler);
    }
    for layer in &options.layers {
        config = config.with_layer(layer);
    }
    let payload = match options.payload {
        Some(payload) => payload.into_bytes(),
        None => {
            let mut payload = Vec::new();
            std::io::stdin()
                .read_to_end(&mut payload)
                .map_err(|e| format!("cannot read the payload from stdin: {e}"))?;
            payload
        }
    };
    let mut source = if options.from_snapshot {
        let backend = MicroVmBackend::new()
            .map_err(|e| format!("--from-snapshot needs the KVM backend: {e}"))?
            .with_spare_vms(1);
        let in_words = |error: lambda::vmm::SnapshotError| {
            let mut text = error.to_string();
            let mut cause = std::error::Error::source(&error);
            while let Some(next) = cause {
                text.push_str(&format!(": {next}"));
                cause = next.source();
            }
            text
        };
        let snapshot = match &options.snapshot_file {
            Some(file) if std::path::Path::new(file).exists() => {
                let snapshot =
                    backend
                        .load_snapshot_of(file, &config)
                        .map_err(|error| match error {
                            // A file this build cannot use: a new one replaces it.
                            lambda::vmm::SnapshotError::Foreign(_)
                            | lambda::vmm::SnapshotError::Version { .. }
                            | lambda::vmm::SnapshotError::Corrupt(_) => {
                                format!("{file}: {}; remove it to take a new one", in_words(error))
                            }
                            error => in_words(error),
                        })?;
                eprintln!("snapshot: loaded from {file}");
                snapshot
            }
            file => {
                let snapshot = backend.snapshot(&config).map_err(in_words)?;
                if let Some(file) = file {
                    snapshot.write_to(file).map_err(in_words)?;
                    eprintln!("snapshot: written to {file}");
                }
                snapshot
            }
        };
        eprintln!(
            "snapshot: Init {:.2} ms, {} threads, {:.1} MiB of memory stored",
            snapshot.init_duration().as_secs_f64() * 1e3,
            snapshot.threads(),
            snapshot.stored_bytes() as f64 / (1 << 20) as f64
        );
        Source::Snapshot(backend, snapshot)
    } else {
        let backend = backend(options.backend.as_deref())?;
        Source::Warm(backend.create(&config).map_err(|error| {
            if let lambda::core::EnvironmentError::Init { log_tail, .. } = &error {
                let _ = std::io::stderr().write_all(log_tail);
            }
            error.to_string()
        })?)
    };
    let mut all_succeeded = true;
    for _ in 0..options.count {
        let result = source.invoke(Invocation::new(payload.clone()))?;
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(&result.log_tail);
        if !result.log_tail.ends_with(b"\n") && !result.log_tail.is_empty() {
            let _ = writeln!(stderr);
        }
        if !result.log_tail.windows(7).any(|w| w == b"REPORT ") {
            let _ = writeln!(stderr, "{}", result.report);
        }
        match result.outcome {
            InvokeOutcome::Response(response) => {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(&response);
                if options.count > 1 {
                    let _ = writeln!(stdout);
                }
            }
            InvokeOutcome::Error(error) => {
                all_succeeded = false;
                let _ = writeln!(stderr, "{}: {}", error.error_type, error.message);
            }
        }
    }
    if let Source::Warm(environment) = source {
        environment.shutdown();
    }
    Ok(all_succeeded)
}

/// Where invocations run: one environment kept warm, or a new one restored from the
/// snapshot for each.
enum Source {
    Warm(Box<dyn ExecutionEnvironment>),
    Snapshot(MicroVmBackend, Snapshot),
}

impl Source {
    fn invoke(&mut self, invocation: Invocation) -> Result<InvokeResult, String> {
        match self {
            Source::Warm(environment) => environment.invoke(invocation),
            Source::Snapshot(backend, snapshot) => {
                let mut environment = backend.restore(snapshot).map_err(|e| e.to_string())?;
                let result = environment.invoke(invocation);
                environment.shutdown();
                result
            }
        }
        .map_err(|e| e.to_string())
    }
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}
