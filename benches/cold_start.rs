//! Cold start: no VM exists -> the one-shot hello function's response, in a fresh micro-VM,
//! side by side with spawning the same static binary as a child process with pipes.
//!
//! A third series uses `MicroVmBackend::with_spare_vms(1)`: a background thread keeps one
//! blank VM ready, so the measured start skips VM creation when the thread has kept up.
//!
//! The function is registered once (its ELF checked and staged, as Lambda keeps code on the
//! worker); every measured invocation then creates a KVM VM, vCPU and memory from nothing,
//! maps the program, runs it to its exit and hands the VM to teardown. The child process
//! likewise starts from a binary already in the page cache.
//!
//! `cargo bench --bench cold_start` prints criterion's figures for both, then a summary with
//! the medians, their ratio and the VM exits and syscalls per invocation.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use lambda::core::{CodeLocation, Contract, FunctionConfig, Invocation};
use lambda::vmm::{MicroVmBackend, StdioEnvironment};

const PAYLOAD: &str = r#"{"name":"bench"}"#;
const EXPECTED: &str = r#"{"message":"Hello, bench!"}"#;

fn program() -> std::path::PathBuf {
    std::path::Path::new(env!("LAMBDA_FUNCTIONS_DIR")).join("hello")
}

fn micro_vm_cold_start(environment: &mut StdioEnvironment) -> (u64, u64) {
    let result = environment.run(Invocation::new(PAYLOAD)).expect("run");
    assert_eq!(result.outcome.response(), Some(EXPECTED.as_bytes()));
    let stats = environment.last_stats();
    (stats.exits, stats.syscalls)
}

fn child_process_cold_start() {
    let mut child = Command::new(program())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(PAYLOAD.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.stdout, EXPECTED.as_bytes());
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn cold_start(c: &mut Criterion) {
    let backend = match MicroVmBackend::new() {
        Ok(backend) => backend,
        Err(error) => {
            eprintln!("cold_start bench skipped: {error}");
            return;
        }
    };
    let config = FunctionConfig::new("hello", CodeLocation::Executable(program()))
        .with_contract(Contract::Stdio);
    let mut environment = backend
        .create_stdio(&config)
        .expect("register the function");
    let spare_backend = backend.clone().with_spare_vms(1);
    let mut with_spares = spare_backend
        .create_stdio(&config)
        .expect("register the function");
    let mut group = c.benchmark_group("cold_start");
    group.bench_function("micro_vm", |b| {
        b.iter(|| micro_vm_cold_start(&mut environment))
    });
    group.bench_function("micro_vm_spare", |b| {
        b.iter(|| micro_vm_cold_start(&mut with_spares))
    });
    group.bench_function("child_process", |b| b.iter(child_process_cold_start));
    group.finish();

    // A side-by-side summary from interleaved samples, so both see the same machine state.
    let mut vm_samples = Vec::new();
    let mut spare_samples = Vec::new();
    let mut child_samples = Vec::new();
    let mut exits = (0, 0);
    let (hits_before, _) = spare_backend.spare_hits_and_misses();
    for _ in 0..200 {
        let start = Instant::now();
        exits = micro_vm_cold_start(&mut environment);
        vm_samples.push(start.elapsed());
        let start = Instant::now();
        child_process_cold_start();
        child_samples.push(start.elapsed());
        let start = Instant::now();
        micro_vm_cold_start(&mut with_spares);
        spare_samples.push(start.elapsed());
    }
    let (hits_after, _) = spare_backend.spare_hits_and_misses();
    let (vm, spare, child) = (
        median(vm_samples),
        median(spare_samples),
        median(child_samples),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "cold start medians over 200 interleaved runs: micro-VM {:.3} ms (ratio {:.2}x), \
         micro-VM from a spare VM {:.3} ms (ratio {:.2}x, {} of 200 found a spare), child \
         process {:.3} ms; {} VM exits and {} syscalls per invocation",
        ms(vm),
        ms(vm) / ms(child),
        ms(spare),
        ms(spare) / ms(child),
        hits_after - hits_before,
        ms(child),
        exits.0,
        exits.1
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = cold_start
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
