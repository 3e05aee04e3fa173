//! Cold starts from a snapshot taken after Init, against the same program as a child
//! process.
//!
//! - **One-shot `hello`**: snapshotted once at its first read of stdin; each run restores a
//!   new micro-VM from the snapshot, gives it the event, runs it to its exit and tears it
//!   down. Measured from a pooled VM (made ahead by the spare pool's thread, refilled
//!   between samples, outside the window) and without the pool (the VM made in the window),
//!   both with the teardown waited for inside the window; secondary, from the pool with
//!   teardown left to its thread; and from a machine restored ahead and warmed by the
//!   snapshot's own thread (`Snapshot::keep_restored`: stored pages copied in, the pages a
//!   restored run touched touched already; refilled between samples), with the teardown
//!   inside the window and left to its thread. One more row times the teardown alone
//!   after a run from a pooled VM (the teardown thread making the VM new for reuse). The
//!   baseline spawns the binary with pipes, feeds it, reads it to its exit and reaps it.
//! - **Runtime API**, `runtime-loop`, `runtime-rust` (`lambda_runtime` on tokio) and
//!   `go-runtime` (Go's `net/http`; left out, with a note, in a build without Go,
//!   `LAMBDA_SKIP_GO_TESTS=1`): snapshotted once after Init; each run restores an
//!   environment (into a pooled VM, or from a machine restored ahead and warmed), serves its
//!   first invocation and shuts it down (teardown waited for). The baseline is the
//!   development backend doing the same from nothing: a child process, a localhost Runtime
//!   API, Init, the first invocation, shutdown.
//!
//! Plain restores copy in the frames the snapshot's first restored run touched; with
//! `RESTORE_LEAN=1` only those it wrote (`MicroVmBackend::with_lean_restores`).
//!
//! Each side is sampled alone (`measure`), with background work (refilling the pool, VM
//! teardown) waited for between samples. `cargo bench --bench restore` prints criterion's
//! figures, then the summary tables: medians, p90s, ratios to the child process, VM exits
//! per run.

mod measure;

use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use lambda::core::{
    Backend, CodeLocation, Contract, ExecutionEnvironment, FunctionConfig, Invocation,
};
use lambda::vmm::{MicroVmBackend, ProcessBackend, Snapshot, StdioEnvironment, wait_for_teardown};
use measure::{Cost, child_process_run, print_table, sample, timed};

const HELLO_EVENT: &str = r#"{"name":"bench"}"#;
const HELLO_ANSWER: &str = r#"{"message":"Hello, bench!"}"#;
const EVENT: &str = r#"{"action":"echo","payload":"restored"}"#;
const RUNS: usize = 200;
const WARMUP: usize = 20;

fn program(name: &str) -> PathBuf {
    std::path::Path::new(env!("LAMBDA_FUNCTIONS_DIR")).join(name)
}

fn hello_config() -> FunctionConfig {
    FunctionConfig::new("hello", CodeLocation::Executable(program("hello")))
        .with_contract(Contract::Stdio)
}

fn runtime_config(name: &str) -> FunctionConfig {
    FunctionConfig::new(name, CodeLocation::Executable(program(name)))
}

/// What `name` answers to [`EVENT`] on its first invocation: `runtime-loop` echoes it,
/// `runtime-rust` and `go-runtime` wrap it with their invocation count.
fn first_answer(name: &str) -> String {
    match name {
        "runtime-rust" => format!(r#"{{"count":1,"echo":{EVENT}}}"#),
        "go-runtime" => format!(r#"{{"count":1,"echo":{EVENT},"go":true}}"#),
        _ => EVENT.to_string(),
    }
}

/// One invocation of the one-shot function in a VM restored from its snapshot; with
/// `teardown`, the VM's teardown is waited for inside the window.
fn restored_oneshot(
    environment: &mut StdioEnvironment,
    teardown: bool,
) -> (Duration, Option<Cost>) {
    let (took, result) = timed(|| {
        let result = environment.run(Invocation::new(HELLO_EVENT)).expect("run");
        if teardown {
            wait_for_teardown();
        }
        result
    });
    assert_eq!(result.outcome.response(), Some(HELLO_ANSWER.as_bytes()));
    assert!(result.report.restore_duration.is_some());
    (took, Some(Cost::of(environment.last_stats())))
}

fn child_oneshot() -> (Duration, Option<Cost>) {
    let (took, output) = child_process_run(&program("hello"), HELLO_EVENT.as_bytes());
    assert_eq!(output.stdout, HELLO_ANSWER.as_bytes());
    (took, None)
}

/// A Runtime API environment restored from `snapshot`: its first invocation, then shutdown
/// with the teardown waited for.
fn restored_runtime(
    backend: &MicroVmBackend,
    snapshot: &Snapshot,
    answer: &str,
    warmed: bool,
) -> (Duration, Option<Cost>) {
    let (took, (result, cost)) = timed(|| {
        let mut environment = backend.restore_runtime_api(snapshot).expect("restore");
        assert_eq!(environment.init_stats().warmed_pages > 0, warmed);
        let result = environment.run(Invocation::new(EVENT)).expect("invoke");
        let cost = Cost::of(environment.last_stats());
        Box::new(environment).shutdown();
        wait_for_teardown();
        (result, cost)
    });
    assert_eq!(result.outcome.response(), Some(answer.as_bytes()));
    assert!(result.report.restore_duration.is_some());
    (took, Some(cost))
}

/// The development backend from nothing: child process, localhost Runtime API, Init, the
/// first invocation, shutdown.
fn child_runtime(
    backend: &ProcessBackend,
    config: &FunctionConfig,
    answer: &str,
) -> (Duration, Option<Cost>) {
    let (took, result) = timed(|| {
        let mut environment = backend.create(config).expect("create");
        let result = environment.invoke(Invocation::new(EVENT)).expect("invoke");
        environment.shutdown();
        result
    });
    assert_eq!(result.outcome.response(), Some(answer.as_bytes()));
    (took, None)
}

fn restore(c: &mut Criterion) {
    let lean = std::env::var("RESTORE_LEAN").is_ok_and(|lean| lean == "1");
    let backend = MicroVmBackend::new()
        .unwrap_or_else(|error| {
            eprintln!("restore needs KVM: {error}");
            std::process::exit(2)
        })
        .with_lean_restores(lean);
    if lean {
        println!("lean restores (`RESTORE_LEAN=1`): only the frames a first run wrote copied in");
    }
    let pooled = backend.clone().with_spare_vms(1);
    let process_backend = ProcessBackend::new().with_all_host_cpus();
    let hello = backend.snapshot(&hello_config()).expect("snapshot hello");
    let mut hello_pooled = pooled.restore_stdio(&hello).expect("restore");
    let mut hello_unpooled = backend.restore_stdio(&hello).expect("restore");
    let refill = || {
        assert_eq!(pooled.wait_for_spare_vms(128), 1);
    };

    let mut group = c.benchmark_group("restore");
    group.bench_function("oneshot/child_process", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| child_oneshot().0).sum())
    });
    group.bench_function("oneshot/restored_pooled", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let took = restored_oneshot(&mut hello_pooled, true).0;
                    refill();
                    took
                })
                .sum()
        })
    });
    group.finish();

    let child = sample(
        "child process: spawn, pipes, exit, reap",
        WARMUP,
        RUNS,
        child_oneshot,
        || {},
    );
    let from_pool = sample(
        "restored into a pooled VM, torn down",
        WARMUP,
        RUNS,
        || restored_oneshot(&mut hello_pooled, true),
        refill,
    );
    let no_pool = sample(
        "restored into a VM made then, torn down",
        WARMUP,
        RUNS,
        || restored_oneshot(&mut hello_unpooled, true),
        || {},
    );
    let off_path = sample(
        "restored into a pooled VM, teardown left to its thread",
        WARMUP,
        RUNS,
        || restored_oneshot(&mut hello_pooled, false),
        || {
            wait_for_teardown();
            refill();
        },
    );
    // What "torn down" adds: the teardown thread making the VM new for reuse
    // (`vm/recycle.rs`), timed alone after a run from a pooled VM.
    let teardown_alone = sample(
        "of which the teardown alone (the VM made new for reuse)",
        WARMUP,
        RUNS,
        || {
            let result = hello_pooled.run(Invocation::new(HELLO_EVENT)).expect("run");
            assert_eq!(result.outcome.response(), Some(HELLO_ANSWER.as_bytes()));
            (timed(wait_for_teardown).0, None)
        },
        refill,
    );
    // Machines restored ahead and warmed by the snapshot's own thread, once one plain
    // restore has taught it which pages a run touches.
    let ahead_snapshot = backend.snapshot(&hello_config()).expect("snapshot hello");
    let mut hello_ahead = backend.restore_stdio(&ahead_snapshot).expect("restore");
    restored_oneshot(&mut hello_ahead, true);
    ahead_snapshot.keep_restored(1);
    assert_eq!(ahead_snapshot.wait_for_restored(), 1);
    let mut warmed_run = |teardown: bool| {
        let run = restored_oneshot(&mut hello_ahead, teardown);
        assert!(hello_ahead.last_stats().warmed_pages > 0, "not warmed");
        run
    };
    let ahead = sample(
        "restored ahead and warmed, torn down",
        WARMUP,
        RUNS,
        || warmed_run(true),
        || {
            assert_eq!(ahead_snapshot.wait_for_restored(), 1);
        },
    );
    let ahead_off_path = sample(
        "restored ahead and warmed, teardown left to its thread",
        WARMUP,
        RUNS,
        || warmed_run(false),
        || {
            wait_for_teardown();
            assert_eq!(ahead_snapshot.wait_for_restored(), 1);
        },
    );
    ahead_snapshot.keep_restored(0);
    print_table(
        &format!(
            "one-shot `hello` restored from its snapshot (taken at its first read of stdin): \
             {RUNS} runs per side, each side alone"
        ),
        &child,
        &[
            &from_pool,
            &no_pool,
            &off_path,
            &teardown_alone,
            &ahead,
            &ahead_off_path,
        ],
    );

    for name in ["runtime-loop", "runtime-rust", "go-runtime"] {
        if !program(name).is_file() {
            println!("\n`{name}` is not built (LAMBDA_SKIP_GO_TESTS=1): not measured");
            continue;
        }
        let config = runtime_config(name);
        let answer = first_answer(name);
        let snapshot = pooled.snapshot(&config).expect("snapshot");
        let child = sample(
            "child process + localhost Runtime API, Init, 1st invocation",
            WARMUP,
            RUNS,
            || child_runtime(&process_backend, &config, &answer),
            || {},
        );
        let restored = sample(
            "restored into a pooled VM, 1st invocation, torn down",
            WARMUP,
            RUNS,
            || restored_runtime(&pooled, &snapshot, &answer, false),
            refill,
        );
        // The restores above taught the snapshot which pages a first invocation touches.
        snapshot.keep_restored(1);
        assert_eq!(snapshot.wait_for_restored(), 1);
        let ahead = sample(
            "restored ahead and warmed, 1st invocation, torn down",
            WARMUP,
            RUNS,
            || restored_runtime(&pooled, &snapshot, &answer, true),
            || {
                assert_eq!(snapshot.wait_for_restored(), 1);
                refill();
            },
        );
        snapshot.keep_restored(0);
        print_table(
            &format!(
                "Runtime API `{name}` to its first response, restored after Init ({:.2} ms \
                 when it ran): {RUNS} runs per side, each side alone; exits are the \
                 invocation's",
                snapshot.init_duration().as_secs_f64() * 1e3
            ),
            &child,
            &[&restored, &ahead],
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = restore
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
