//! Cold start: nothing running -> a function's first response, in a fresh micro-VM, against
//! the same static binary as a child process.
//!
//! Two contracts, each measured both ways:
//!
//! - **One-shot stdio**, the `hello` program: the micro-VM is created, the program loaded,
//!   run to its exit and the VM torn down; the child process is spawned with pipes, fed the
//!   event, read to its exit and reaped.
//! - **One-shot, touching memory**, the `memory-c` program's `commit` check: 1 GiB mapped,
//!   20 MiB of it written and read back, so the run includes the page faults of first
//!   touches (the `faults` column) and the host's zeroing of the pages.
//! - **Runtime API** (the default contract), the `runtime-loop` program: an environment is
//!   created and runs Init (the runtime's start until its first `next`), serves one
//!   invocation and is shut down; the baseline is the development backend doing the same with
//!   the program as a child process against a real localhost Runtime API.
//!
//! Each side is sampled in a stretch of its own, with the machine otherwise quiet: anything a
//! run leaves to a background thread (VM teardown, refilling the spare VM) is waited for
//! between samples, outside the timed window. Teardown is counted on both sides (the child's
//! exit is in its window, so the VM's teardown is in the micro-VM's); the micro-VM's figure
//! with teardown left to the background thread is printed too, as a secondary line. The
//! function is registered once before sampling (its ELF checked and staged), as Lambda
//! keeps code on the worker; the child likewise starts from a binary in the page cache.
//!
//! `cargo bench --bench cold_start` prints criterion's figures, then the summary: medians and
//! p90 of each side alone, the ratios to the child process, VM exits per run, and, as a
//! secondary figure, the old interleaved series.

mod measure;

use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use lambda::core::{
    Backend, CodeLocation, Contract, ExecutionEnvironment, FunctionConfig, Invocation,
};
use lambda::vmm::{MicroVmBackend, ProcessBackend, StdioEnvironment, wait_for_teardown};
use measure::{Cost, child_process_run, print_table, sample, timed};

/// A one-shot function: its program, its event, its answer.
#[derive(Clone, Copy)]
struct OneShot {
    program: &'static str,
    payload: &'static str,
    expected: &'static str,
}

const HELLO: OneShot = OneShot {
    program: "hello",
    payload: r#"{"name":"bench"}"#,
    expected: r#"{"message":"Hello, bench!"}"#,
};
const COMMIT: OneShot = OneShot {
    program: "memory-c",
    payload: r#""commit""#,
    expected: "committed 1 GiB, wrote 20 MiB",
};
const EVENT: &str = r#"{"action":"echo","payload":"cold"}"#;
const RUNS: usize = 300;
const WARMUP: usize = 20;

fn program(name: &str) -> PathBuf {
    std::path::Path::new(env!("LAMBDA_FUNCTIONS_DIR")).join(name)
}

fn stdio_config(function: OneShot) -> FunctionConfig {
    FunctionConfig::new(
        function.program,
        CodeLocation::Executable(program(function.program)),
    )
    .with_contract(Contract::Stdio)
}

fn runtime_config() -> FunctionConfig {
    FunctionConfig::new("echo", CodeLocation::Executable(program("runtime-loop")))
}

/// The one-shot function in a fresh micro-VM; with `teardown`, the VM's teardown is waited
/// for inside the window.
fn micro_vm_oneshot(
    environment: &mut StdioEnvironment,
    function: OneShot,
    teardown: bool,
) -> (Duration, Option<Cost>) {
    let (took, result) = timed(|| {
        let result = environment
            .run(Invocation::new(function.payload))
            .expect("run");
        if teardown {
            wait_for_teardown();
        }
        result
    });
    assert_eq!(
        result.outcome.response(),
        Some(function.expected.as_bytes())
    );
    (took, Some(Cost::of(environment.last_stats())))
}

/// The same binary as a child process: spawned with pipes, fed, read to its exit, reaped.
fn child_process_oneshot(function: OneShot) -> (Duration, Option<Cost>) {
    let (took, output) = child_process_run(&program(function.program), function.payload.as_bytes());
    assert_eq!(output.stdout, function.expected.as_bytes());
    (took, None)
}

/// A Runtime API function on the micro-VM backend: create (Init), one invocation, shutdown.
fn micro_vm_runtime(backend: &MicroVmBackend) -> (Duration, Option<Cost>) {
    let (took, (result, exits)) = timed(|| {
        let mut environment = backend
            .create_runtime_api(&runtime_config())
            .expect("create");
        let result = environment.run(Invocation::new(EVENT)).expect("invoke");
        let exits = Cost::of(environment.init_stats()) + Cost::of(environment.last_stats());
        Box::new(environment).shutdown();
        (result, exits)
    });
    assert_eq!(result.outcome.response(), Some(EVENT.as_bytes()));
    (took, Some(exits))
}

/// The same on the development backend: a child process and a localhost Runtime API.
fn child_process_runtime(backend: &ProcessBackend) -> (Duration, Option<Cost>) {
    let (took, result) = timed(|| {
        let mut environment = backend.create(&runtime_config()).expect("create");
        let result = environment.invoke(Invocation::new(EVENT)).expect("invoke");
        environment.shutdown();
        result
    });
    assert_eq!(result.outcome.response(), Some(EVENT.as_bytes()));
    (took, None)
}

/// Criterion's view of one side, timed the same way as the summary's samples.
fn bench_side(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut run: impl FnMut() -> (Duration, Option<Cost>),
    mut between: impl FnMut(),
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (took, _) = run();
                    between();
                    took
                })
                .sum()
        })
    });
}

fn cold_start(c: &mut Criterion) {
    let backend = MicroVmBackend::new().unwrap_or_else(|error| {
        eprintln!("cold_start needs KVM: {error}");
        std::process::exit(2)
    });
    let spare_backend = backend.clone().with_spare_vms(1);
    let process_backend = ProcessBackend::new().with_all_host_cpus();
    let mut oneshot = backend
        .create_stdio(&stdio_config(HELLO))
        .expect("register");
    let mut oneshot_spare = spare_backend
        .create_stdio(&stdio_config(HELLO))
        .expect("register");
    let mut commit = backend
        .create_stdio(&stdio_config(COMMIT))
        .expect("register");
    let wait_for_spare = || {
        assert_eq!(spare_backend.wait_for_spare_vms(128), 1);
    };

    let mut group = c.benchmark_group("cold_start");
    bench_side(
        &mut group,
        "oneshot/child_process",
        || child_process_oneshot(HELLO),
        || {},
    );
    bench_side(
        &mut group,
        "oneshot/micro_vm",
        || micro_vm_oneshot(&mut oneshot, HELLO, true),
        || {},
    );
    bench_side(
        &mut group,
        "oneshot/micro_vm_spare",
        || micro_vm_oneshot(&mut oneshot_spare, HELLO, true),
        wait_for_spare,
    );
    bench_side(
        &mut group,
        "runtime_api/child_process",
        || child_process_runtime(&process_backend),
        || {},
    );
    bench_side(
        &mut group,
        "runtime_api/micro_vm",
        || micro_vm_runtime(&backend),
        || {},
    );
    bench_side(
        &mut group,
        "runtime_api/micro_vm_spare",
        || micro_vm_runtime(&spare_backend),
        wait_for_spare,
    );
    group.finish();

    // The summary: every side alone, teardown counted on both sides.
    let child = sample(
        "child process: spawn, pipes, exit, reap",
        WARMUP,
        RUNS,
        || child_process_oneshot(HELLO),
        || {},
    );
    let vm = sample(
        "micro-VM: create, load, run, tear down",
        WARMUP,
        RUNS,
        || micro_vm_oneshot(&mut oneshot, HELLO, true),
        || {},
    );
    let spare = sample(
        "micro-VM from a spare VM, torn down",
        WARMUP,
        RUNS,
        || micro_vm_oneshot(&mut oneshot_spare, HELLO, true),
        wait_for_spare,
    );
    let off_path = sample(
        "micro-VM, teardown left to its thread (secondary)",
        WARMUP,
        RUNS,
        || micro_vm_oneshot(&mut oneshot, HELLO, false),
        wait_for_teardown,
    );
    print_table(
        &format!(
            "cold start, one-shot `hello`: {RUNS} runs per side, each side alone, teardown \
             counted on both sides"
        ),
        &child,
        &[&vm, &spare, &off_path],
    );

    let child = sample(
        "child process: spawn, pipes, exit, reap",
        WARMUP / 4,
        RUNS / 10,
        || child_process_oneshot(COMMIT),
        || {},
    );
    let vm = sample(
        "micro-VM: create, load, run, tear down",
        WARMUP / 4,
        RUNS / 10,
        || micro_vm_oneshot(&mut commit, COMMIT, true),
        || {},
    );
    print_table(
        &format!(
            "cold start touching memory, one-shot `memory-c` commit (1 GiB mapped, 20 MiB \
             written and read): {} runs per side, each side alone, teardown counted",
            RUNS / 10
        ),
        &child,
        &[&vm],
    );

    let child = sample(
        "child process + localhost Runtime API (dev backend)",
        WARMUP,
        RUNS,
        || child_process_runtime(&process_backend),
        || {},
    );
    let vm = sample(
        "micro-VM",
        WARMUP,
        RUNS,
        || micro_vm_runtime(&backend),
        || {},
    );
    let spare = sample(
        "micro-VM from a spare VM",
        WARMUP,
        RUNS,
        || micro_vm_runtime(&spare_backend),
        wait_for_spare,
    );
    print_table(
        &format!(
            "cold start, Runtime API `runtime-loop` (create + Init, first invocation, \
             shutdown): {RUNS} runs per side, each side alone; exits are Init's plus the \
             invocation's"
        ),
        &child,
        &[&vm, &spare],
    );

    interleaved(&mut oneshot);
}

/// The figure this bench used to print, kept as a secondary one: micro-VM and child samples
/// taken alternately, with the VM's teardown left to its thread, where it overlaps the
/// child's window. It flatters the micro-VM and is not the comparison to quote.
fn interleaved(oneshot: &mut StdioEnvironment) {
    let mut vm_samples = Vec::new();
    let mut child_samples = Vec::new();
    for _ in 0..RUNS {
        vm_samples.push(micro_vm_oneshot(oneshot, HELLO, false).0);
        child_samples.push(child_process_oneshot(HELLO).0);
    }
    wait_for_teardown();
    let median = |mut samples: Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2]
    };
    let (vm, child) = (median(vm_samples), median(child_samples));
    println!(
        "\nsecondary, interleaved (samples alternate; the VM's teardown overlaps the child's \
         window): one-shot micro-VM {:.3} ms, child process {:.3} ms, ratio {:.2}x",
        vm.as_secs_f64() * 1e3,
        child.as_secs_f64() * 1e3,
        vm.as_secs_f64() / child.as_secs_f64()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4));
    targets = cold_start
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
