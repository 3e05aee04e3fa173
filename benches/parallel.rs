//! CPU share from memory: a CPU-bound function with two threads at 1,769 MB (one vCPU) and at
//! 3,538 MB (two vCPUs), as Lambda gives one vCPU per 1,769 MB.
//!
//! The `threads-c` program (`functions/c/threads.c`) runs one-shot with the event
//! `parallel 100`: two threads each run 100 million rounds of an xorshift loop (no syscall)
//! and are joined. In the micro-VM the second thread is made by the program, so at 3,538 MB
//! the second vCPU is made during the run as well (about 0.2 ms) and its host thread started
//! and joined: all inside the window, with the VM's boot and teardown, as in `cold_start`.
//!
//! For reference, the same binary as a child process pinned with `taskset` to one of the
//! machine's CPUs, then to two (spawned with pipes, fed, read to its exit and reaped). Each
//! side is sampled alone, medians and p90; the speed-up asked for is the 1,769 MB median over
//! the 3,538 MB median (at least 1.7x on the 2-core machine).
//!
//! `cargo bench --bench parallel` prints criterion's figures, then the summary.

mod measure;

use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use lambda::core::{CodeLocation, Contract, FunctionConfig, Invocation};
use lambda::vmm::{MicroVmBackend, StdioEnvironment, wait_for_teardown};
use measure::{Cost, child_command_run, print_table, sample, timed};

const RUNS: usize = 15;
const WARMUP: usize = 2;
const EVENT: &str = r#""parallel 100""#;
/// What the two threads compute (the same whatever the CPUs).
const SUMS: &str = "[4777042137725461861,14578655667336206753]";
/// Memory sizes that buy one and two vCPUs.
const ONE_VCPU_MB: u32 = 1_769;
const TWO_VCPUS_MB: u32 = 3_538;

fn program() -> std::path::PathBuf {
    std::path::Path::new(env!("LAMBDA_FUNCTIONS_DIR")).join("threads-c")
}

fn config(memory_mb: u32) -> FunctionConfig {
    FunctionConfig::new("parallel", CodeLocation::Executable(program()))
        .with_contract(Contract::Stdio)
        .with_memory_mb(memory_mb)
        .with_timeout(Duration::from_secs(60))
}

fn expected(cpus: usize) -> String {
    format!(r#"{{"cpus":{cpus},"sums":{SUMS}}}"#)
}

/// The event in a fresh micro-VM, its teardown inside the window.
fn micro_vm(environment: &mut StdioEnvironment, cpus: usize) -> (Duration, Option<Cost>) {
    let (took, result) = timed(|| {
        let result = environment.run(Invocation::new(EVENT)).expect("run");
        wait_for_teardown();
        result
    });
    assert_eq!(
        result.outcome.response(),
        Some(expected(cpus).as_bytes()),
        "{result:?}"
    );
    assert_eq!(environment.last_stats().vcpus, cpus);
    (took, Some(Cost::of(environment.last_stats())))
}

/// The same binary as a child process on the first `cpus` CPUs this process may use.
fn child_process(cpus: usize) -> (Duration, Option<Cost>) {
    let list = (0..cpus)
        .map(|cpu| cpu.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut command = Command::new("taskset");
    command.args(["-c", &list]).arg(program());
    let (took, output) = child_command_run(&mut command, EVENT.as_bytes());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        expected(cpus),
        "{output:?}"
    );
    (took, None)
}

fn parallel(c: &mut Criterion) {
    let kvm = MicroVmBackend::new().unwrap_or_else(|error| {
        eprintln!("the parallel bench needs KVM: {error}");
        std::process::exit(2)
    });
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if host_cpus < 2 {
        eprintln!("the parallel bench needs two CPUs; this process may use {host_cpus}");
        std::process::exit(2)
    }
    let mut one = kvm.create_stdio(&config(ONE_VCPU_MB)).expect("micro-VM");
    let mut two = kvm.create_stdio(&config(TWO_VCPUS_MB)).expect("micro-VM");

    let mut group = c.benchmark_group("parallel");
    group.bench_function("micro_vm/1769MB", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| micro_vm(&mut one, 1).0).sum())
    });
    group.bench_function("micro_vm/3538MB", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| micro_vm(&mut two, 2).0).sum())
    });
    for cpus in [1, 2] {
        group.bench_function(format!("child_process/{cpus}cpu"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| child_process(cpus).0).sum())
        });
    }
    group.finish();

    let vm_one = sample(
        "micro-VM, 1,769 MB (1 vCPU)",
        WARMUP,
        RUNS,
        || micro_vm(&mut one, 1),
        || {},
    );
    let vm_two = sample(
        "micro-VM, 3,538 MB (2 vCPUs)",
        WARMUP,
        RUNS,
        || micro_vm(&mut two, 2),
        || {},
    );
    let child_one = sample(
        "child process, taskset to 1 CPU",
        WARMUP,
        RUNS,
        || child_process(1),
        || {},
    );
    let child_two = sample(
        "child process, taskset to 2 CPUs",
        WARMUP,
        RUNS,
        || child_process(2),
        || {},
    );
    print_table(
        &format!("threads-c `parallel 100`: {RUNS} one-shot runs per side, each side alone"),
        &vm_one,
        &[&vm_two, &child_one, &child_two],
    );
    let speedup = |one: &measure::Side, two: &measure::Side| {
        one.median().as_secs_f64() / two.median().as_secs_f64()
    };
    println!(
        "\nspeed-up from a second CPU (median over median): micro-VM {:.2}x, child process {:.2}x",
        speedup(&vm_one, &vm_two),
        speedup(&child_one, &child_two)
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(4));
    targets = parallel
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
