//! Programs over a base image, against the same programs as child processes on the host's
//! own libraries (Debian 12 here, the same packages the image is unpacked from).
//!
//! - **One-shot `hello-dynamic`** (glibc, dynamically linked): a micro-VM made, the program
//!   and `ld.so` loaded, its libraries mapped, run to its exit, torn down; against spawning it
//!   with pipes to its exit, with the variables the micro-VM gives it (Lambda's
//!   `LD_LIBRARY_PATH` sends `ld.so` through the same directories on both sides).
//! - **Python** (`functions/python`: a `#!/usr/bin/python3` bootstrap on the standard
//!   library, importing `lambda_function.py` from `/var/task`), cold: an environment made,
//!   Init (Python's start-up and the import), the first invocation, shutdown; by booting a
//!   micro-VM, by restoring one from a snapshot taken after Init, and with the development
//!   backend (a child process and a localhost Runtime API). The Init Duration each REPORT
//!   gave is printed too.
//! - **Python, warm**: one invocation in an environment that has served before.
//! - **Host memory per idle environment** (200 environments, each invoked once):
//!   `runtime-c` static against `runtime-c-dynamic`, which maps `libc.so.6` from the image.
//!   The rise of `AnonPages` is what the environments hold of their own (guest memory the
//!   program wrote, page tables); the image's file pages, mapped copy-on-write from one
//!   frozen copy, are shared memory (`Shmem`), counted once. `MemAvailable` moves too much
//!   with the host's caches to show a difference of this size.
//!
//! The image is `functions/base-image/build.sh target/base-image --python`'s (build it
//! first). `cargo bench --bench base_image` prints the summary tables: medians, p90s,
//! ratios to the child process, VM exits per run.

mod measure;

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use lambda::core::{
    Backend, CodeLocation, Contract, ExecutionEnvironment, FunctionConfig, Invocation,
};
use lambda::vmm::{MicroVmBackend, ProcessBackend, wait_for_teardown};
use measure::{
    Cost, Meminfo, child_command_run, lambda_command, print_table, sample, timed, write_zip,
};

const RUNS: usize = 100;
const WARMUP: usize = 10;
const COLD_RUNS: usize = 20;
const COLD_WARMUP: usize = 2;
const EVENT: &str = r#"{"hi":1}"#;

fn program(name: &str) -> PathBuf {
    Path::new(env!("LAMBDA_FUNCTIONS_DIR")).join(name)
}

fn image() -> PathBuf {
    let dir = PathBuf::from(env!("LAMBDA_BASE_IMAGE_DIR"));
    let packages = std::fs::read_to_string(dir.join(".packages")).unwrap_or_default();
    if !packages.lines().any(|line| line == "python3.11-minimal") {
        eprintln!(
            "base_image needs the Python base image: functions/base-image/build.sh {} --python",
            dir.display()
        );
        std::process::exit(2);
    }
    dir
}

/// The Python function zipped as Lambda takes it.
fn python_zip() -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("functions/python");
    let path = std::env::temp_dir().join(format!("bench-python-{}.zip", std::process::id()));
    let files: Vec<(&str, Vec<u8>)> = ["bootstrap", "lambda_function.py"]
        .into_iter()
        .map(|name| (name, std::fs::read(source.join(name)).expect("read")))
        .collect();
    write_zip(&path, &files);
    path
}

fn python_config(zip: &Path, image: &Path) -> FunctionConfig {
    FunctionConfig::new("python", CodeLocation::Zip(zip.to_path_buf()))
        .with_handler("lambda_function.lambda_handler")
        .with_timeout(Duration::from_secs(10))
        .with_base_image(image)
}

/// What the handler answers to [`EVENT`] on its `count`th invocation (`json.dumps`'s spacing).
fn answer(count: u32) -> String {
    format!(r#"{{"statusCode": 200, "echo": {{"hi": 1}}, "count": {count}, "python": "3.11.2"}}"#)
}

/// Init Durations in milliseconds, kept per side to print their median.
struct Inits(Vec<f64>);

impl Inits {
    fn median(&mut self) -> f64 {
        self.0.sort_by(f64::total_cmp);
        self.0.get(self.0.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// A new environment of `config`, its Init and first invocation, then its shutdown (the
/// VM's teardown waited for), all in the window.
fn cold(
    backend: &dyn Backend,
    config: &FunctionConfig,
    inits: &mut Inits,
) -> (Duration, Option<Cost>) {
    let (took, result) = timed(|| {
        let mut environment = backend.create(config).expect("create");
        let result = environment.invoke(Invocation::new(EVENT)).expect("invoke");
        environment.shutdown();
        wait_for_teardown();
        result
    });
    assert_eq!(
        result.outcome.response(),
        Some(answer(1).as_bytes()),
        "{:?}",
        result.outcome
    );
    let init = result
        .report
        .init_duration
        .or(result.report.restore_duration)
        .unwrap_or_default();
    inits.0.push(init.as_secs_f64() * 1e3);
    (took, None)
}

fn base_image() {
    let backend = MicroVmBackend::new().unwrap_or_else(|error| {
        eprintln!("base_image needs KVM: {error}");
        std::process::exit(2)
    });
    let process_backend = ProcessBackend::new().with_all_host_cpus();
    let image = image();

    // One-shot hello-dynamic.
    let hello = FunctionConfig::new(
        "hello-dynamic",
        CodeLocation::Executable(program("hello-dynamic")),
    )
    .with_contract(Contract::Stdio)
    .with_base_image(&image);
    let mut hello_env = backend.create_stdio(&hello).expect("create");
    let child = sample(
        "child process: spawn, pipes, exit, reap",
        WARMUP,
        RUNS,
        || {
            let (took, output) = child_command_run(
                &mut lambda_command(&program("hello-dynamic"), &hello, &program("")),
                b"Ada",
            );
            assert_eq!(output.stdout, b"Hello from C, Ada!");
            (took, None)
        },
        || {},
    );
    let vm = sample(
        "micro-VM: made, ld.so + libc loaded, run, torn down",
        WARMUP,
        RUNS,
        || {
            let (took, result) = timed(|| {
                let result = hello_env.run(Invocation::new("Ada")).expect("run");
                wait_for_teardown();
                result
            });
            assert_eq!(result.outcome.response(), Some(&b"Hello from C, Ada!"[..]));
            (took, Some(Cost::of(hello_env.last_stats())))
        },
        || {},
    );
    print_table(
        &format!(
            "one-shot `hello-dynamic` (glibc, dynamically linked) over the base image: {RUNS} \
             runs per side, each side alone"
        ),
        &child,
        &[&vm],
    );

    // Python, cold.
    let zip = python_zip();
    let config = python_config(&zip, &image);
    let mut child_inits = Inits(Vec::new());
    let child = sample(
        "child process + localhost Runtime API, Init, 1st invocation",
        COLD_WARMUP,
        COLD_RUNS,
        || cold(&process_backend, &config, &mut child_inits),
        || {},
    );
    let mut booted_inits = Inits(Vec::new());
    let booted = sample(
        "micro-VM booted, Init, 1st invocation, torn down",
        COLD_WARMUP,
        COLD_RUNS,
        || cold(&backend, &config, &mut booted_inits),
        || {},
    );
    let snapshot = backend.snapshot(&config).expect("snapshot");
    let mut restored_inits = Inits(Vec::new());
    let restored = sample(
        "micro-VM restored after Init, 1st invocation, torn down",
        COLD_WARMUP,
        COLD_RUNS,
        || {
            let (took, result) = timed(|| {
                let mut environment = backend.restore_runtime_api(&snapshot).expect("restore");
                let result = environment.run(Invocation::new(EVENT)).expect("invoke");
                Box::new(environment).shutdown();
                wait_for_teardown();
                result
            });
            assert_eq!(result.outcome.response(), Some(answer(1).as_bytes()));
            let restore = result.report.restore_duration.unwrap_or_default();
            restored_inits.0.push(restore.as_secs_f64() * 1e3);
            (took, None)
        },
        || {},
    );
    print_table(
        &format!(
            "Python (`functions/python`) cold, to its first response: {COLD_RUNS} runs per \
             side, each side alone. Median Init Duration: child {:.1} ms, micro-VM {:.1} ms; \
             Restore Duration {:.2} ms (Init {:.1} ms when the snapshot was taken)",
            child_inits.median(),
            booted_inits.median(),
            restored_inits.median(),
            snapshot.init_duration().as_secs_f64() * 1e3,
        ),
        &child,
        &[&booted, &restored],
    );

    // Python, warm: each side's environment has served WARMUP invocations first.
    let mut environment = process_backend.create(&config).expect("create");
    let mut count = 0;
    let child = sample(
        "child process, warm invocation",
        WARMUP,
        RUNS,
        || {
            count += 1;
            let (took, result) =
                timed(|| environment.invoke(Invocation::new(EVENT)).expect("invoke"));
            assert_eq!(result.outcome.response(), Some(answer(count).as_bytes()));
            (took, None)
        },
        || {},
    );
    environment.shutdown();
    let mut environment = backend.create_runtime_api(&config).expect("create");
    let mut count = 0;
    let vm = sample(
        "micro-VM, warm invocation",
        WARMUP,
        RUNS,
        || {
            count += 1;
            let (took, result) = timed(|| environment.run(Invocation::new(EVENT)).expect("invoke"));
            assert_eq!(result.outcome.response(), Some(answer(count).as_bytes()));
            (took, Some(Cost::of(environment.last_stats())))
        },
        || {},
    );
    Box::new(environment).shutdown();
    print_table(
        &format!(
            "Python warm invocation (the environment has served before): {RUNS} runs per side, \
             each side alone"
        ),
        &child,
        &[&vm],
    );
    let _ = std::fs::remove_file(&zip);

    // Host memory per idle environment, static against dynamic.
    const IDLE: usize = 200;
    let per_environment = |name: &str| -> (f64, f64) {
        let config = FunctionConfig::new(name, CodeLocation::Executable(program(name)))
            .with_base_image(&image);
        wait_for_teardown();
        let before = Meminfo::now();
        let environments: Vec<_> = (0..IDLE)
            .map(|_| {
                let mut environment = backend.create_runtime_api(&config).expect("create");
                let result = environment.run(Invocation::new(EVENT)).expect("invoke");
                assert_eq!(result.outcome.response(), Some(EVENT.as_bytes()));
                environment
            })
            .collect();
        let after = Meminfo::now();
        let anon = after
            .kib("AnonPages")
            .saturating_sub(before.kib("AnonPages"));
        let shmem = after.kib("Shmem").saturating_sub(before.kib("Shmem"));
        for environment in environments {
            Box::new(environment).shutdown();
        }
        wait_for_teardown();
        (anon as f64 / IDLE as f64, shmem as f64 / 1024.0)
    };
    let (static_anon, static_shmem) = per_environment("runtime-c");
    let (dynamic_anon, dynamic_shmem) = per_environment("runtime-c-dynamic");
    println!(
        "\nidle environments, {IDLE} of each, invoked once: anonymous host memory each \
         (AnonPages: what an environment holds of its own) and shared memory in all \
         (Shmem: the frozen image files and staged programs, once)"
    );
    println!(
        "  runtime-c (static)                            {static_anon:.0} KiB each, \
         shared {static_shmem:.1} MiB"
    );
    println!(
        "  runtime-c-dynamic (ld.so + libc.so.6 mapped)  {dynamic_anon:.0} KiB each, \
         shared {dynamic_shmem:.1} MiB"
    );
    println!(
        "  what dynamic linking adds per environment     {:.0} KiB (libc.so.6's code and \
         read-only data, shared, are 1.8 MiB)",
        dynamic_anon - static_anon
    );
}

/// Criterion's view of the one-shot pair (the tables above are the comparison).
fn criterion_pair(c: &mut Criterion) {
    let Ok(backend) = MicroVmBackend::new() else {
        return;
    };
    let hello = FunctionConfig::new(
        "hello-dynamic",
        CodeLocation::Executable(program("hello-dynamic")),
    )
    .with_contract(Contract::Stdio)
    .with_base_image(image());
    let mut environment = backend.create_stdio(&hello).expect("create");
    let mut group = c.benchmark_group("base_image");
    group.bench_function("hello_dynamic/child_process", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let mut command =
                        lambda_command(&program("hello-dynamic"), &hello, &program(""));
                    child_command_run(&mut command, b"Ada").0
                })
                .sum()
        })
    });
    group.bench_function("hello_dynamic/micro_vm", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    timed(|| {
                        environment.run(Invocation::new("Ada")).expect("run");
                        wait_for_teardown();
                    })
                    .0
                })
                .sum()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = criterion_pair
}

fn main() {
    benches();
    base_image();
    Criterion::default().configure_from_args().final_summary();
}
