//! Child processes and `execve` inside a micro-VM, against the same programs as child
//! processes on the host (which fork and exec natively, side by side).
//!
//! - **`fork`**: one-shot `fork-c fork`: the program forks, the child writes to a pipe and
//!   exits, the parent reaps it and reads the pipe. In the micro-VM the parent's memory is
//!   copied out and put back (`docs/processes.md`).
//! - **`posix_spawn`**: one-shot `fork-c spawn`: the program spawns itself (vfork + execve)
//!   with its stdout on a pipe, waits for it and reads what it wrote.
//! - **Shell bootstrap**: a `#!/bin/sh` bootstrap that captures a command's output with
//!   `$(...)`, then `exec`s `hello-c`, over the base image (dash); on the host, the same
//!   script under the host's dash with the variables the micro-VM gives it (Lambda's,
//!   `LD_LIBRARY_PATH` among them) and `LAMBDA_TASK_ROOT` at the same files.
//!
//! Each side is measured alone, from the request to the program's exit: the micro-VM made,
//! run and torn down (its teardown waited for); the child process spawned with pipes, run
//! and reaped. `cargo bench --bench processes` prints medians, p90s, ratios and VM exits.

mod measure;

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use lambda::core::{CodeLocation, Contract, FunctionConfig, Invocation};
use lambda::vmm::{MicroVmBackend, wait_for_teardown};
use measure::{Cost, child_command_run, lambda_command, print_table, sample, timed, write_zip};

const RUNS: usize = 60;
const WARMUP: usize = 5;

fn program(name: &str) -> PathBuf {
    Path::new(env!("LAMBDA_FUNCTIONS_DIR")).join(name)
}

/// A directory holding the bench's function files, as `/var/task` holds them in the guest.
fn task_root() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("bench-processes-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("task root");
    for name in ["fork-c", "hello-c"] {
        std::fs::copy(program(name), dir.join(name)).expect("copy");
    }
    let script = "#!/bin/sh\n\
        greeting=$(\"$LAMBDA_TASK_ROOT/fork-c\" --child captured)\n\
        echo \"bootstrap: $greeting\" >&2\n\
        exec \"$LAMBDA_TASK_ROOT/hello-c\"\n";
    std::fs::write(dir.join("bootstrap"), script).expect("script");
    let mut permissions = std::fs::metadata(dir.join("fork-c"))
        .expect("metadata")
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(dir.join("bootstrap"), permissions).expect("chmod");
    dir
}

/// The files of `root` named `names`, zipped as a function (`names[0]` as `bootstrap`).
fn zip(root: &Path, names: &[&str]) -> PathBuf {
    let path = root.join(format!("{}.zip", names[0]));
    let files: Vec<(&str, Vec<u8>)> = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let entry = if index == 0 { "bootstrap" } else { name };
            (entry, std::fs::read(root.join(name)).expect("read"))
        })
        .collect();
    write_zip(&path, &files);
    path
}

fn processes() {
    let backend = MicroVmBackend::new().unwrap_or_else(|error| {
        eprintln!("processes needs KVM: {error}");
        std::process::exit(2)
    });
    let root = task_root();
    let image = PathBuf::from(env!("LAMBDA_BASE_IMAGE_DIR"));
    if !image.join("bin/sh").exists() {
        eprintln!(
            "processes needs the base image: functions/base-image/build.sh {}",
            image.display()
        );
        std::process::exit(2);
    }

    let fork_zip = zip(&root, &["fork-c", "fork-c"]);
    let fork =
        FunctionConfig::new("fork-c", CodeLocation::Zip(fork_zip)).with_contract(Contract::Stdio);
    let mut fork_env = backend.create_stdio(&fork).expect("create");
    for (check, title, expected) in [
        (
            "fork",
            "`fork`: a child writes to a pipe and exits, the parent reaps it",
            "child exited 7",
        ),
        (
            "spawn",
            "`posix_spawn` of a static program, its output read through a pipe",
            "spawned child exited 0",
        ),
    ] {
        let child = sample(
            "child process: spawn, pipes, exit, reap",
            WARMUP,
            RUNS,
            || {
                let (took, output) = child_command_run(
                    std::process::Command::new(root.join("fork-c")).env("LAMBDA_TASK_ROOT", &root),
                    check.as_bytes(),
                );
                assert!(String::from_utf8_lossy(&output.stdout).contains(expected));
                (took, None)
            },
            || {},
        );
        let vm = sample(
            "micro-VM: made, run, torn down",
            WARMUP,
            RUNS,
            || {
                let (took, result) = timed(|| {
                    let result = fork_env.run(Invocation::new(check)).expect("run");
                    wait_for_teardown();
                    result
                });
                let response = result.outcome.response().expect("response");
                assert!(String::from_utf8_lossy(response).contains(expected));
                (took, Some(Cost::of(fork_env.last_stats())))
            },
            || {},
        );
        print_table(
            &format!("one-shot `fork-c {check}`: {title}; {RUNS} runs per side, each side alone"),
            &child,
            &[&vm],
        );
    }

    let shell_zip = zip(&root, &["bootstrap", "fork-c", "hello-c"]);
    let shell = FunctionConfig::new("shell", CodeLocation::Zip(shell_zip))
        .with_contract(Contract::Stdio)
        .with_base_image(&image);
    let mut shell_env = backend.create_stdio(&shell).expect("create");
    let child = sample(
        "child process: the host's dash, spawn to exit",
        WARMUP,
        RUNS,
        || {
            let (took, output) = child_command_run(
                lambda_command(Path::new("/bin/sh"), &shell, &root).arg(root.join("bootstrap")),
                b"Ada",
            );
            assert_eq!(output.stdout, b"Hello from C, Ada!");
            (took, None)
        },
        || {},
    );
    let vm = sample(
        "micro-VM: made, dash, fork, exec, torn down",
        WARMUP,
        RUNS,
        || {
            let (took, result) = timed(|| {
                let result = shell_env.run(Invocation::new("Ada")).expect("run");
                wait_for_teardown();
                result
            });
            assert_eq!(result.outcome.response(), Some(&b"Hello from C, Ada!"[..]));
            (took, Some(Cost::of(shell_env.last_stats())))
        },
        || {},
    );
    print_table(
        &format!(
            "one-shot `#!/bin/sh` bootstrap: `$(fork-c --child captured)`, then `exec hello-c`; \
             {RUNS} runs per side, each side alone"
        ),
        &child,
        &[&vm],
    );
    std::fs::remove_dir_all(&root).ok();
}

/// Criterion's view of the `fork` pair (the tables above are the comparison).
fn criterion_fork(c: &mut Criterion) {
    let Ok(backend) = MicroVmBackend::new() else {
        return;
    };
    let root = task_root();
    let config = FunctionConfig::new(
        "fork-c",
        CodeLocation::Zip(zip(&root, &["fork-c", "fork-c"])),
    )
    .with_contract(Contract::Stdio);
    let mut environment = backend.create_stdio(&config).expect("create");
    let mut group = c.benchmark_group("processes");
    group.bench_function("fork/child_process", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    child_command_run(
                        &mut std::process::Command::new(root.join("fork-c")),
                        b"fork",
                    )
                    .0
                })
                .sum()
        })
    });
    group.bench_function("fork/micro_vm", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    timed(|| {
                        environment.run(Invocation::new("fork")).expect("run");
                        wait_for_teardown();
                    })
                    .0
                })
                .sum()
        })
    });
    group.finish();
    std::fs::remove_dir_all(&root).ok();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = criterion_fork
}

fn main() {
    benches();
    processes();
    Criterion::default().configure_from_args().final_summary();
}
