//! What the host-process tests share: starting a backend of `lambda-vmm-host` processes
//! built by this `cargo`, and signalling one of them and waiting for the engine to see it.

#![allow(dead_code)] // Each test crate uses what it needs.

use std::time::{Duration, Instant};

use lambda_vmm::HostProcessBackend;
use lambda_vmm::host_process::HostOptions;

use super::kvm_gate;
use super::scenarios::Functions;

/// The host program this build made.
pub const HOST: &str = env!("CARGO_BIN_EXE_lambda-vmm-host");

/// A backend of `processes` host processes (after the KVM gate, so a host without KVM fails
/// naming the opt-out), and the guest programs.
pub fn start(processes: usize) -> (HostProcessBackend, Functions) {
    kvm_gate::kvm_backend();
    let backend = HostProcessBackend::start(HOST, processes, HostOptions::default())
        .expect("start the host processes");
    (backend, Functions::locate())
}

/// Sends `signal` (`"-KILL"`, `"-STOP"`) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill {signal} {pid}");
}

/// Kills the host process in `slot` and waits until the engine has seen it end; returns its
/// id.
pub fn kill_and_wait(backend: &HostProcessBackend, slot: usize) -> u32 {
    let victim = backend.pids()[slot].expect("a live process in the slot");
    signal(victim, "-KILL");
    wait_until("the killed process is seen to end", || {
        backend.pids()[slot].is_none()
    });
    victim
}

/// Waits (up to 30 s) until `done` holds: a host process's end is an event in another
/// process, seen by the reply thread when its pipe closes.
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
