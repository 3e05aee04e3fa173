//! Runs any static x86-64 Linux program as a one-shot function in a micro-VM.
//!
//! ```text
//! cargo run --release --example invoke -- PATH [PAYLOAD] [--memory MB] [--timeout SECONDS]
//! ```
//!
//! The payload comes from the argument, or from stdin when it is absent. The response goes to
//! stdout; the log tail and the REPORT line go to stderr. The exit status is 1 on a function
//! error (its type and message are printed) and 2 on a usage or setup error.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use lambda::core::{Backend, CodeLocation, Contract, FunctionConfig, Invocation, InvokeOutcome};
use lambda::vmm::MicroVmBackend;

struct Options {
    path: String,
    payload: Option<String>,
    memory_mb: u32,
    timeout: Duration,
}

const USAGE: &str = "usage: invoke PATH [PAYLOAD] [--memory MB] [--timeout SECONDS]\n\
     runs PATH (a static x86-64 Linux program, or a zip holding `bootstrap`) once in a micro-VM,\n\
     with PAYLOAD (or stdin) as its input";

fn parse_args() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut memory_mb = lambda::core::limits::DEFAULT_MEMORY_MB;
    let mut timeout = lambda::core::limits::DEFAULT_TIMEOUT;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--memory" => {
                let value = args.next().ok_or("--memory needs a value in MB")?;
                memory_mb = value
                    .parse()
                    .map_err(|_| format!("--memory: {value:?} is not a number of MB"))?;
            }
            "--timeout" => {
                let value = args.next().ok_or("--timeout needs a value in seconds")?;
                let seconds: f64 = value
                    .parse()
                    .map_err(|_| format!("--timeout: {value:?} is not a number of seconds"))?;
                timeout = Duration::try_from_secs_f64(seconds)
                    .map_err(|_| format!("--timeout: {value:?} is out of range"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let path = positional.next().ok_or(USAGE)?;
    let payload = positional.next();
    if positional.next().is_some() {
        return Err(USAGE.to_string());
    }
    Ok(Options {
        path,
        payload,
        memory_mb,
        timeout,
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
    let code = if options.path.ends_with(".zip") {
        CodeLocation::Zip(options.path.clone().into())
    } else {
        CodeLocation::Executable(options.path.clone().into())
    };
    let config = FunctionConfig::new("invoke", code)
        .with_contract(Contract::Stdio)
        .with_memory_mb(options.memory_mb)
        .with_timeout(options.timeout);
    let payload = match options.payload {
        Some(payload) => payload.into_bytes(),
        None => {
            let mut payload = Vec::new();
            if let Err(error) = std::io::stdin().read_to_end(&mut payload) {
                eprintln!("cannot read the payload from stdin: {error}");
                return ExitCode::from(2);
            }
            payload
        }
    };
    let backend = match MicroVmBackend::new() {
        Ok(backend) => backend,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let mut environment = match backend.create(&config) {
        Ok(environment) => environment,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let result = match environment.invoke(Invocation::new(payload)) {
        Ok(result) => result,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    environment.shutdown();
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(&result.log_tail);
    let _ = writeln!(stderr, "{}", result.report);
    match result.outcome {
        InvokeOutcome::Response(response) => {
            let _ = std::io::stdout().write_all(&response);
            ExitCode::SUCCESS
        }
        InvokeOutcome::Error(error) => {
            let _ = writeln!(stderr, "{}: {}", error.error_type, error.message);
            ExitCode::from(1)
        }
    }
}
