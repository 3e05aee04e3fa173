//! `lambda-vmm-host`: a VM host process for `lambda_vmm::HostProcessBackend`.
//!
//! The engine starts it; it serves the engine's requests (create, invoke, shut down) on its
//! standard input and output with a micro-VM backend of its own, until the engine closes its
//! standard input. Not meant to be run by hand.

use std::process::ExitCode;

fn main() -> ExitCode {
    match lambda_vmm::host_process::serve_stdio() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lambda-vmm-host: {error}");
            ExitCode::FAILURE
        }
    }
}
