//! Warm invoke: the round trip of one echo invocation on a live environment (the std-only
//! `runtime-loop` custom runtime), in a KVM micro-VM, side by side with the same program as a
//! child process against a real localhost Runtime API (the development backend).
//!
//! `cargo bench --bench warm_invoke` prints criterion's figures, then a summary of interleaved
//! medians, their ratio, and the VM exits and syscalls per warm invocation.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use lambda::core::{Backend, CodeLocation, ExecutionEnvironment, FunctionConfig, Invocation};
use lambda::vmm::{MicroVmBackend, ProcessBackend, RuntimeApiEnvironment};

const EVENT: &str = r#"{"action":"echo","payload":"warm"}"#;

fn config() -> FunctionConfig {
    let program = std::path::Path::new(env!("LAMBDA_FUNCTIONS_DIR")).join("runtime-loop");
    FunctionConfig::new("echo", CodeLocation::Executable(program))
}

fn invoke(environment: &mut dyn ExecutionEnvironment) {
    let result = environment.invoke(Invocation::new(EVENT)).expect("invoke");
    assert_eq!(result.outcome.response(), Some(EVENT.as_bytes()));
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn warm_invoke(c: &mut Criterion) {
    let kvm = match MicroVmBackend::new() {
        Ok(backend) => backend,
        Err(error) => {
            eprintln!("warm_invoke bench skipped: {error}");
            return;
        }
    };
    let mut vm: RuntimeApiEnvironment = kvm.create_runtime_api(&config()).expect("micro-VM");
    let mut process = ProcessBackend::new()
        .create(&config())
        .expect("child process");

    let mut group = c.benchmark_group("warm_invoke");
    group.bench_function("micro_vm", |b| b.iter(|| invoke(&mut vm)));
    group.bench_function("child_process", |b| b.iter(|| invoke(&mut *process)));
    group.finish();

    let mut vm_samples = Vec::new();
    let mut process_samples = Vec::new();
    for _ in 0..2000 {
        let start = Instant::now();
        invoke(&mut vm);
        vm_samples.push(start.elapsed());
        let start = Instant::now();
        invoke(&mut *process);
        process_samples.push(start.elapsed());
    }
    let (vm_median, process_median) = (median(vm_samples), median(process_samples));
    let stats = vm.last_stats();
    println!(
        "warm invoke medians over 2000 interleaved invocations: micro-VM {:.1} us, child \
         process {:.1} us, ratio {:.2}x; {} VM exits and {} syscalls per warm invocation",
        vm_median.as_secs_f64() * 1e6,
        process_median.as_secs_f64() * 1e6,
        vm_median.as_secs_f64() / process_median.as_secs_f64(),
        stats.exits,
        stats.syscalls
    );
    Box::new(vm).shutdown();
    process.shutdown();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4));
    targets = warm_invoke
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
