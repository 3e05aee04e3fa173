//! The main example: a function runs in its own KVM micro-VM.
//!
//! ```text
//! cargo run --release --example hello
//! ```
//!
//! Registers the `hello` guest program (a static Rust binary from `functions/`) as a one-shot
//! function, invokes it in a fresh micro-VM, then runs the `runtime-loop` function (a Lambda
//! custom runtime) in one warm environment for three invocations. Prints each response and
//! Lambda's log lines (START, END, REPORT). Without a usable `/dev/kvm` it says so and uses the
//! process backend (no isolation) instead.

use std::io::Write;
use std::path::PathBuf;

use lambda::core::{Backend, CodeLocation, Contract, FunctionConfig, Invocation, InvokeOutcome};
use lambda::vmm::{MicroVmBackend, ProcessBackend};

fn program(name: &str) -> PathBuf {
    PathBuf::from(env!("LAMBDA_FUNCTIONS_DIR")).join(name)
}

fn show(label: &str, result: &lambda::core::InvokeResult) {
    let _ = std::io::stdout().write_all(&result.log_tail);
    match &result.outcome {
        InvokeOutcome::Response(body) => {
            println!("{label} -> {}\n", String::from_utf8_lossy(body));
        }
        InvokeOutcome::Error(error) => println!("{label} -> {error}\n"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend: Box<dyn Backend> = match MicroVmBackend::new() {
        Ok(backend) => {
            println!("backend: KVM micro-VMs\n");
            Box::new(backend)
        }
        Err(error) => {
            eprintln!("warning: {error}; using the process backend (no isolation)\n");
            Box::new(ProcessBackend::new())
        }
    };

    // One-shot stdio: the event on stdin, the response on stdout, a fresh VM per invocation.
    let hello = FunctionConfig::new("hello", CodeLocation::Executable(program("hello")))
        .with_contract(Contract::Stdio);
    let mut environment = backend.create(&hello)?;
    let result = environment.invoke(Invocation::new(r#"{"name":"micro-VM"}"#))?;
    show("hello", &result);
    environment.shutdown();

    // A Lambda custom runtime: Init once, then warm invocations in the same VM.
    let counter = FunctionConfig::new("counter", CodeLocation::Executable(program("runtime-loop")));
    let mut environment = backend.create(&counter)?;
    for _ in 0..3 {
        let result = environment.invoke(Invocation::new(r#"{"action":"count"}"#))?;
        show("counter", &result);
    }
    environment.shutdown();
    Ok(())
}
