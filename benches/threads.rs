//! Threads: what creating a thread and switching between threads cost inside a micro-VM,
//! against the same static binary as a child process.
//!
//! The `threads-c` program (`functions/c/threads.c`) is run one-shot with four events:
//! `create 0` and `create 200` (200 threads made and joined one after another), `pingpong 0`
//! and `pingpong 1000` (two threads handing a turn back and forth 1,000 times through
//! semaphores: futex waits and wakes). The difference between the two runs of a pair, divided
//! by its count, is the cost of one thread (creation, start, exit, join) or of one round trip
//! (two switches); everything else (spawning the process or booting the VM, loading the
//! program) cancels out.
//!
//! The micro-VM runs with one vCPU (the function's memory is 128 MB), so its threads share
//! one CPU; the child process's threads may run on both of the machine's cores. Each side is
//! sampled alone, one-shot runs as in `cold_start` (the child spawned with pipes and reaped,
//! the VM booted and torn down inside the window), medians and p90.
//!
//! `cargo bench --bench threads` prints criterion's figures, then the summary.

mod measure;

use std::time::Duration;

use criterion::{Criterion, criterion_group};
use lambda::core::{CodeLocation, Contract, FunctionConfig, Invocation};
use lambda::vmm::{MicroVmBackend, StdioEnvironment, wait_for_teardown};
use measure::{Cost, Side, child_process_run, print_table, sample, timed};

const RUNS: usize = 40;
const WARMUP: usize = 5;
/// The pairs: the event with the work, the event without it, and how many units of work.
const PAIRS: [(&str, &str, u32); 2] = [
    ("create 200", "create 0", 200),
    ("pingpong 1000", "pingpong 0", 1000),
];

fn program() -> std::path::PathBuf {
    std::path::Path::new(env!("LAMBDA_FUNCTIONS_DIR")).join("threads-c")
}

fn config() -> FunctionConfig {
    FunctionConfig::new("threads", CodeLocation::Executable(program()))
        .with_contract(Contract::Stdio)
        .with_timeout(Duration::from_secs(60))
}

fn expected(event: &str) -> String {
    let (check, count) = event.split_once(' ').expect("an event with a count");
    let key = if check == "create" {
        "created"
    } else {
        "rounds"
    };
    format!(r#"{{"{key}":{count}}}"#)
}

/// The event in a fresh micro-VM, its teardown inside the window.
fn micro_vm(environment: &mut StdioEnvironment, event: &str) -> (Duration, Option<Cost>) {
    let (took, result) = timed(|| {
        let result = environment.run(Invocation::new(event)).expect("run");
        wait_for_teardown();
        result
    });
    assert_eq!(result.outcome.response(), Some(expected(event).as_bytes()));
    (took, Some(Cost::of(environment.last_stats())))
}

/// The same binary as a child process: spawned with pipes, fed, read to its exit, reaped.
fn child_process(event: &str) -> (Duration, Option<Cost>) {
    let (took, output) = child_process_run(&program(), event.as_bytes());
    assert_eq!(output.stdout, expected(event).as_bytes());
    (took, None)
}

/// The cost of one unit of work on one side, from the medians of the two runs of a pair.
fn per_unit(with: &Side, without: &Side, units: u32) -> Duration {
    with.median().saturating_sub(without.median()) / units
}

fn threads(c: &mut Criterion) {
    let kvm = MicroVmBackend::new().unwrap_or_else(|error| {
        eprintln!("the threads bench needs KVM: {error}");
        std::process::exit(2)
    });
    let mut environment = kvm.create_stdio(&config()).expect("micro-VM");

    let mut group = c.benchmark_group("threads");
    for (event, _, _) in PAIRS {
        group.bench_function(format!("child_process/{event}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| child_process(event).0).sum())
        });
        group.bench_function(format!("micro_vm/{event}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| micro_vm(&mut environment, event).0)
                    .sum()
            })
        });
    }
    group.finish();

    let mut summary = Vec::new();
    for (with_event, without_event, units) in PAIRS {
        let child_with = sample(
            &format!("child process, {with_event}"),
            WARMUP,
            RUNS,
            || child_process(with_event),
            || {},
        );
        let child_without = sample(
            &format!("child process, {without_event}"),
            WARMUP,
            RUNS,
            || child_process(without_event),
            || {},
        );
        let vm_with = sample(
            &format!("micro-VM, {with_event}"),
            WARMUP,
            RUNS,
            || micro_vm(&mut environment, with_event),
            || {},
        );
        let vm_without = sample(
            &format!("micro-VM, {without_event}"),
            WARMUP,
            RUNS,
            || micro_vm(&mut environment, without_event),
            || {},
        );
        print_table(
            &format!(
                "threads-c `{with_event}` and `{without_event}`: {RUNS} one-shot runs per side, each side alone"
            ),
            &child_with,
            &[&child_without, &vm_with, &vm_without],
        );
        let exits = |with: &Side, without: &Side| match (with.cost, without.cost) {
            (Some(a), Some(b)) => format!("{:.1}", (a.exits - b.exits) as f64 / f64::from(units)),
            _ => "-".into(),
        };
        summary.push((
            with_event,
            per_unit(&child_with, &child_without, units),
            per_unit(&vm_with, &vm_without, units),
            exits(&vm_with, &vm_without),
        ));
    }
    println!("\nper unit of work (difference of medians / count):");
    println!(
        "  {:<16} {:>14} {:>14} {:>8} {:>16}",
        "work", "child process", "micro-VM", "ratio", "VM exits each"
    );
    for (event, child, vm, exits) in summary {
        let unit = if event.starts_with("create") {
            "thread"
        } else {
            "round trip"
        };
        println!(
            "  {:<16} {:>11.1} us {:>11.1} us {:>7.2}x {:>16}",
            format!("one {unit}"),
            child.as_secs_f64() * 1e6,
            vm.as_secs_f64() * 1e6,
            vm.as_secs_f64() / child.as_secs_f64(),
            exits
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(4));
    targets = threads
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
