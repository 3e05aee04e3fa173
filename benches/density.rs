//! Density: how many idle environments restored from one snapshot fit on this host, what
//! each costs the host, and how fast they are made.
//!
//! `runtime-loop` at 128 MB (or `DENSITY_MEMORY_MB`) is snapshotted once after Init. Then
//! environments are restored from it in batches (each restored, then invoked once, so it is
//! a warm idle environment that has really run) and all kept alive, until `DENSITY_TARGET`
//! (default 5,000) or until the host's available memory would drop under 2 GiB. Per
//! environment the bench reports the host memory it holds (the drop in `MemAvailable`, which
//! counts KVM's own memory and shadow page tables as well as the process's) and where it is
//! (the change of each of the kernel's accounts in `/proc/meminfo`), the process's resident
//! memory, open descriptors and threads; the rate of restores on one thread, with and
//! without the first invocation; and, where the host runs DAMON, the CPU its `kdamond`
//! threads used meanwhile (their work grows with the VMs in the process: `docs/platform.md`,
//! "The host's DAMON"). The criterion group times one restore (from a pooled VM) by itself,
//! after a first restored run has taught the snapshot what to copy in.
//!
//! `cargo bench --bench density` (`DENSITY_TARGET=N` to change the count,
//! `DENSITY_MEMORY_MB=N` the memory size).
//!
//! With `DENSITY_THREADS=N` (N > 1) the bench then makes the same count again in this
//! process, on N threads restoring and invoking at once (an engine cold-starting on several
//! invoking threads does the same).
//!
//! With `DENSITY_PROCESSES=N` (N > 1) the bench then makes the same count again, spread over N
//! copies of itself, each restoring and invoking its share in its own process, all started
//! at the same moment: what spreading them gains, since every VM's MMU notifier hangs off one
//! process's memory map (`docs/platform.md`, "Many VMs in one process").
//!
//! With `DENSITY_HOST_PROCESSES=N` it then makes the same count through the engine's own
//! spread, `lambda::vmm::HostProcessBackend` over N VM host processes: SnapStart creates
//! through `Backend::create`, from 2N threads at once, each invoked once. It needs the host
//! program built beside the bench (`cargo build --release -p lambda-vmm --bin
//! lambda-vmm-host`).
//!
//! With `DENSITY_LEAN=1` every part restores leanly (`MicroVmBackend::with_lean_restores`):
//! only the frames the first restored run wrote are copied into each later restore, not also
//! those it read, so each environment holds less memory and its first invocation takes more
//! shadow-paging faults (`docs/snapshots.md`, "Copying in what the first run touched").

mod measure;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use lambda::core::{
    Backend, CodeLocation, EnvironmentStart, ExecutionEnvironment, FunctionConfig, Invocation,
};
use lambda::vmm::host_process::HostOptions;
use lambda::vmm::{HostProcessBackend, MicroVmBackend, RuntimeApiEnvironment, wait_for_teardown};
use measure::{Meminfo, kdamond_cpu, meminfo};

const EVENT: &str = r#"{"action":"echo"}"#;
const BATCH: usize = 250;
/// Available memory the bench leaves to the host.
const FLOOR_KIB: u64 = 2 << 20;

fn program(name: &str) -> PathBuf {
    std::path::Path::new(env!("LAMBDA_FUNCTIONS_DIR")).join(name)
}

/// This process's resident memory in KiB, open descriptors, threads and host mappings.
fn process() -> (u64, usize, usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0);
    let count = |dir: &str| std::fs::read_dir(dir).map_or(0, |entries| entries.count());
    let mappings =
        std::fs::read_to_string("/proc/self/maps").map_or(0, |maps| maps.lines().count());
    (
        rss,
        count("/proc/self/fd"),
        count("/proc/self/task"),
        mappings,
    )
}

/// The `/proc/meminfo` fields that say where the host memory held by environments is, each
/// with what it holds here.
const MEMORY_PARTS: [(&str, &str); 7] = [
    (
        "VmallocUsed",
        "KVM's per-VM metadata (10 bytes per 4 KiB page of each memory slot), worker stacks",
    ),
    (
        "SUnreclaim",
        "unreclaimable kernel objects (KVM's VM and vCPU ones among them)",
    ),
    (
        "SReclaimable",
        "reclaimable kernel objects (inodes, dentries)",
    ),
    (
        "AnonPages",
        "the process's own pages (what the guests wrote, kernel areas)",
    ),
    ("SecPageTables", "KVM's shadow page tables"),
    ("KernelStack", "kernel stacks"),
    ("PageTables", "the process's page tables"),
];

/// Prints how each of [`MEMORY_PARTS`] moved from `before` to `after`, per environment of
/// `count` (0 for a field this kernel lacks), and what of the fall of `MemAvailable` none of
/// them counts.
fn print_memory_parts(before: &Meminfo, after: &Meminfo, count: usize) {
    let kib = |memory: &Meminfo, field: &str| memory.field(field).unwrap_or(0) as i64;
    let change = |field: &str| kib(after, field) - kib(before, field);
    let per = |kib: i64| kib as f64 / count as f64;
    println!("  where that memory is, per environment (the change of each /proc/meminfo field):");
    let mut rest = -change("MemAvailable");
    for (field, what) in MEMORY_PARTS {
        rest -= change(field);
        println!("    {field:<14}{:>8.1} KiB  {what}", per(change(field)));
    }
    println!(
        "    {:<14}{:>8.1} KiB  the fall of MemAvailable less the above: pages KVM keeps ready \
         for shadow page tables, counted nowhere until used (MemAvailable is an estimate, so \
         this can be negative)",
        "the rest",
        per(rest)
    );
}

/// This process's threads by name, most common first.
fn thread_names() -> Vec<(String, usize)> {
    let mut names = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        *names.entry(comm.trim().to_string()).or_insert(0) += 1;
    }
    let mut names: Vec<_> = names.into_iter().collect();
    names.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    names
}

/// A count from the environment variable `name`, if set to one.
fn env_count(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.parse().ok()
}

/// Whether restores here are lean (`DENSITY_LEAN=1`): only written frames copied in.
fn lean() -> bool {
    env_count("DENSITY_LEAN").is_some_and(|lean| lean != 0)
}

/// A backend restoring as `DENSITY_LEAN` says.
fn micro_vm_backend() -> Option<MicroVmBackend> {
    Some(MicroVmBackend::new().ok()?.with_lean_restores(lean()))
}

/// The memory size of every environment here: `DENSITY_MEMORY_MB`, 128 when unset.
fn memory_mb() -> u32 {
    env_count("DENSITY_MEMORY_MB").map_or(128, |mb| u32::try_from(mb).expect("memory size"))
}

/// `runtime-loop` at [`memory_mb`], as every environment here runs it.
fn runtime_loop() -> FunctionConfig {
    FunctionConfig::new(
        "runtime-loop",
        CodeLocation::Executable(program("runtime-loop")),
    )
    .with_memory_mb(memory_mb())
}

/// Restores `count` environments from `snapshot` and invokes each once, keeping them.
fn restore_and_invoke(
    backend: &MicroVmBackend,
    snapshot: &lambda::vmm::Snapshot,
    count: usize,
) -> Vec<RuntimeApiEnvironment> {
    (0..count)
        .map(|_| {
            let mut environment = backend.restore_runtime_api(snapshot).expect("restore");
            let result = environment.run(Invocation::new(EVENT)).expect("invoke");
            assert_eq!(result.outcome.response(), Some(EVENT.as_bytes()));
            environment
        })
        .collect()
}

/// `target` environments made in this process by `threads` threads at once, as an engine
/// cold-starting on several invoking threads makes them.
fn on_threads(threads: usize, target: usize) {
    let backend = micro_vm_backend().expect("KVM");
    let snapshot = backend.snapshot(&runtime_loop()).expect("snapshot");
    wait_for_teardown();
    let share = target / threads;
    let available_before = meminfo("MemAvailable");
    let start_line = std::sync::Barrier::new(threads.saturating_add(1));
    let (environments, wall) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    start_line.wait();
                    restore_and_invoke(&backend, &snapshot, share)
                })
            })
            .collect();
        start_line.wait();
        let start = Instant::now();
        let environments: Vec<RuntimeApiEnvironment> = workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a restoring thread"))
            .collect();
        (environments, start.elapsed())
    });
    let made = environments.len();
    let held_kib = available_before.saturating_sub(meminfo("MemAvailable"));
    println!(
        "\ndensity on {threads} threads of one process (`DENSITY_THREADS`): {made} \
         environments restored and invoked in {:.2} s, {:.0} per second; host memory {:.2} \
         MiB per environment",
        wall.as_secs_f64(),
        made as f64 / wall.as_secs_f64(),
        held_kib as f64 / made.max(1) as f64 / 1024.0
    );
    for environment in environments {
        Box::new(environment).shutdown();
    }
    wait_for_teardown();
}

/// One of `DENSITY_PROCESSES` copies: snapshots, says `ready`, makes its `share` when told
/// (a line on stdin), says `made` with the time it took, and shuts them down when told again.
fn spread_share(share: usize) {
    use std::io::BufRead;
    let backend = micro_vm_backend().expect("KVM");
    let snapshot = backend.snapshot(&runtime_loop()).expect("snapshot");
    let mut lines = std::io::stdin().lock().lines();
    println!("ready");
    let _go = lines.next();
    let start = Instant::now();
    let environments = restore_and_invoke(&backend, &snapshot, share);
    println!(
        "made {} {}",
        environments.len(),
        start.elapsed().as_secs_f64()
    );
    let _stop = lines.next();
    for environment in environments {
        Box::new(environment).shutdown();
    }
    wait_for_teardown();
}

/// What the host's DAMON threads did between two readings of [`kdamond_cpu`] `wall` apart.
fn damon_use(before: Option<Duration>, after: Option<Duration>, wall: Duration) -> String {
    match after.zip(before) {
        Some((after, before)) => {
            let used = after.saturating_sub(before);
            format!(
                "the host's DAMON (kdamond) was on a CPU {:.1} s of the {:.1} s they took to \
                 make ({:.0}% of one core): each page it samples that a process maps calls \
                 the MMU notifier of every VM of that process",
                used.as_secs_f64(),
                wall.as_secs_f64(),
                100.0 * used.as_secs_f64() / wall.as_secs_f64()
            )
        }
        None => "the host runs no DAMON thread (kdamond)".to_string(),
    }
}

/// `target` environments spread over `processes` copies of this bench, started together.
fn spread_over_processes(processes: usize, target: usize) {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let share = target / processes;
    let available_before = meminfo("MemAvailable");
    let mut children: Vec<_> = (0..processes)
        .map(|_| {
            let mut child = Command::new(std::env::current_exe().expect("this bench"))
                .args(std::env::args().skip(1))
                .env("DENSITY_SHARE", share.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("a copy of this bench");
            let stdout = BufReader::new(child.stdout.take().expect("stdout"));
            (child, stdout.lines())
        })
        .collect();
    // Criterion prints nothing in a copy; its first line of its own is `ready`.
    let next_line = |lines: &mut std::io::Lines<BufReader<std::process::ChildStdout>>,
                     prefix: &str| loop {
        let line = lines.next().expect("a line from a copy").expect("readable");
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.to_string();
        }
    };
    for (_, lines) in &mut children {
        next_line(lines, "ready");
    }
    let (start, damon_before) = (Instant::now(), kdamond_cpu());
    for (child, _) in &mut children {
        writeln!(child.stdin.as_mut().expect("stdin"), "go").expect("go");
    }
    let mut slowest = 0f64;
    let mut made = 0usize;
    for (_, lines) in &mut children {
        let line = next_line(lines, "made ");
        let mut fields = line.split_whitespace();
        made += fields
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        let took = fields.next().and_then(|t| t.parse().ok()).unwrap_or(0.0);
        slowest = slowest.max(took);
    }
    let (wall, damon) = (start.elapsed(), kdamond_cpu());
    let held_kib = available_before.saturating_sub(meminfo("MemAvailable"));
    println!(
        "\ndensity spread over {processes} copies of this bench (`DENSITY_PROCESSES`): {made} \
         environments restored and invoked in {:.2} s, {:.0} per second ({:.0} per second per \
         process, the slowest taking {slowest:.2} s); host memory {:.2} MiB per environment",
        wall.as_secs_f64(),
        made as f64 / wall.as_secs_f64(),
        made as f64 / wall.as_secs_f64() / processes as f64,
        held_kib as f64 / made.max(1) as f64 / 1024.0
    );
    println!("  {}", damon_use(damon_before, damon, wall));
    for (mut child, _) in children {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = writeln!(stdin, "stop");
        }
        let status = child.wait().expect("a copy ends");
        assert!(status.success(), "a copy of the bench failed: {status}");
    }
}

/// Makes one SnapStart environment of `config` through `backend` and invokes it once.
fn create_and_invoke(
    backend: &HostProcessBackend,
    config: &FunctionConfig,
) -> Box<dyn ExecutionEnvironment> {
    let mut environment = backend.create(config).expect("create");
    let result = environment.invoke(Invocation::new(EVENT)).expect("invoke");
    assert_eq!(result.outcome.response(), Some(EVENT.as_bytes()));
    environment
}

/// `target` environments made by the engine's [`HostProcessBackend`] over `processes` VM host
/// processes: SnapStart creates (the version's Init runs once, and every process restores
/// from the snapshot file it wrote), each invoked once, from twice as many calling threads as
/// processes, so every process has a create in flight while its last answer crosses the pipe.
fn through_host_processes(processes: usize, target: usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let options = HostOptions {
        lean_restores: lean(),
        ..HostOptions::default()
    };
    let backend = HostProcessBackend::start_beside_current_exe(processes, options)
        .unwrap_or_else(|error| panic!("DENSITY_HOST_PROCESSES: {error}"));
    let config = runtime_loop().with_snap_start(true);
    let available_before = meminfo("MemAvailable");
    // The version's Init runs in one process, which writes its snapshot to a file; each
    // other process reads the file at its first environment. Those come first, outside the
    // window, and count among the environments.
    let init_start = Instant::now();
    let mut environments: Vec<Box<dyn ExecutionEnvironment>> = (0..processes)
        .map(|_| create_and_invoke(&backend, &config))
        .collect();
    let init_took = init_start.elapsed();
    let starts: Vec<EnvironmentStart> = environments.iter().map(|e| e.start()).collect();
    assert!(
        starts.first() == Some(&EnvironmentStart::Init)
            && starts[1..].iter().all(|s| *s == EnvironmentStart::Restored),
        "one Init, shared through a snapshot file: {starts:?}"
    );
    let callers = processes.saturating_mul(2);
    let left = AtomicUsize::new(target.saturating_sub(processes));
    let (start, damon_before) = (Instant::now(), kdamond_cpu());
    let made: Vec<Box<dyn ExecutionEnvironment>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..callers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    while left
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        let environment = create_and_invoke(&backend, &config);
                        assert_eq!(environment.start(), EnvironmentStart::Restored);
                        mine.push(environment);
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a calling thread"))
            .collect()
    });
    let (wall, damon) = (start.elapsed(), kdamond_cpu());
    let restored = made.len();
    environments.extend(made);
    let count = environments.len();
    let held_kib = available_before.saturating_sub(meminfo("MemAvailable"));
    let per_process = backend.environments_per_process();
    println!(
        "\ndensity through the engine's HostProcessBackend over {processes} VM host processes \
         (`DENSITY_HOST_PROCESSES`; SnapStart creates from {callers} threads at once, each \
         invoked once): {restored} environments restored and invoked in {:.2} s, {:.0} per \
         second (before them, the version's one Init and snapshot file, and each other \
         process's reading of the file, {:.2} s for all); {count} \
         held, {} to {} per process; host memory {:.2} MiB per environment (the host \
         processes' own included)",
        wall.as_secs_f64(),
        restored as f64 / wall.as_secs_f64(),
        init_took.as_secs_f64(),
        per_process.iter().min().unwrap_or(&0),
        per_process.iter().max().unwrap_or(&0),
        held_kib as f64 / count.max(1) as f64 / 1024.0
    );
    println!("  {}", damon_use(damon_before, damon, wall));
    let start = Instant::now();
    drop(environments);
    drop(backend);
    println!(
        "  shutting them all down (and the host processes) took {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

fn density(c: &mut Criterion) {
    if let Some(share) = env_count("DENSITY_SHARE") {
        spread_share(share);
        return;
    }
    let backend = MicroVmBackend::new()
        .unwrap_or_else(|error| {
            eprintln!("density needs KVM: {error}");
            std::process::exit(2)
        })
        .with_spare_vms(1)
        .with_lean_restores(lean());
    let snapshot = backend.snapshot(&runtime_loop()).expect("snapshot");
    // A first restored run teaches the snapshot what it touched, so the restores timed
    // below copy those frames in, as every restore after the first does.
    let mut teacher = backend.restore_runtime_api(&snapshot).expect("restore");
    teacher.run(Invocation::new(EVENT)).expect("invoke");
    Box::new(teacher).shutdown();
    assert!(snapshot.pages_learnt().is_some(), "the first run taught");

    let mut group = c.benchmark_group("density");
    group.bench_function("restore_from_pooled_vm", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let environment = backend.restore_runtime_api(&snapshot).expect("restore");
                total += start.elapsed();
                Box::new(environment).shutdown();
                wait_for_teardown();
                backend.wait_for_spare_vms(memory_mb());
            }
            total
        })
    });
    group.finish();

    let target = env_count("DENSITY_TARGET").unwrap_or(5_000);
    // Restores below are made on this thread, each into a VM it makes: a pool would only
    // move the same work to another thread.
    let backend = micro_vm_backend().expect("KVM");
    wait_for_teardown();
    let memory_before = Meminfo::now();
    let (rss_before, fds_before, threads_before, mappings_before) = process();
    let mut environments: Vec<RuntimeApiEnvironment> = Vec::with_capacity(target);
    let (mut restoring, mut invoking) = (Duration::ZERO, Duration::ZERO);
    let mut stopped = format!("reached the target of {target}");
    // Restores per second of each batch, to see whether making VMs slows as they add up.
    let mut batch_rates: Vec<f64> = Vec::new();
    let (making, damon_before) = (Instant::now(), kdamond_cpu());
    'batches: while environments.len() < target {
        if meminfo("MemAvailable") < FLOOR_KIB {
            stopped = format!(
                "stopped at {} environments: the host's available memory fell under {} GiB",
                environments.len(),
                FLOOR_KIB >> 20
            );
            break;
        }
        let batch_start = (environments.len(), restoring);
        for _ in 0..BATCH.min(target - environments.len()) {
            let start = Instant::now();
            let restored = backend.restore_runtime_api(&snapshot);
            restoring += start.elapsed();
            let mut environment = match restored {
                Ok(environment) => environment,
                Err(error) => {
                    stopped = format!(
                        "stopped at {} environments: restore failed: {error}",
                        environments.len()
                    );
                    break 'batches;
                }
            };
            let start = Instant::now();
            let result = environment.run(Invocation::new(EVENT)).expect("invoke");
            invoking += start.elapsed();
            assert_eq!(result.outcome.response(), Some(EVENT.as_bytes()));
            environments.push(environment);
        }
        let made = environments.len() - batch_start.0;
        batch_rates.push(made as f64 / (restoring - batch_start.1).as_secs_f64());
    }
    let (making, damon) = (making.elapsed(), kdamond_cpu());
    let count = environments.len().max(1);
    let memory_after = Meminfo::now();
    let held_kib = memory_before
        .kib("MemAvailable")
        .saturating_sub(memory_after.kib("MemAvailable"));
    let (rss, fds, threads, mappings) = process();
    let per = |kib: u64| kib as f64 / count as f64 / 1024.0;
    let fit_in_20_gb = (20u64 << 20) as f64 / (held_kib as f64 / count as f64);
    println!(
        "\ndensity: idle `runtime-loop` environments at {} MB restored from one snapshot ({})",
        memory_mb(),
        if lean() {
            "lean restores, `DENSITY_LEAN=1`: the frames the first restored run wrote copied in"
        } else {
            "the frames the first restored run touched copied in; `DENSITY_LEAN=1` for lean"
        }
    );
    println!("  {stopped}");
    println!(
        "  host memory held: {:.2} GiB in all, {:.2} MiB per environment (MemAvailable); \
         process resident {:.2} MiB per environment",
        held_kib as f64 / (1 << 20) as f64,
        per(held_kib),
        per(rss.saturating_sub(rss_before))
    );
    print_memory_parts(&memory_before, &memory_after, count);
    println!("  so 20 GB holds about {fit_in_20_gb:.0} of them");
    println!(
        "  per environment: {:.2} descriptors, {:.2} threads, {:.2} host mappings (the \
         process has {threads} threads and {mappings} mappings for {} environments)",
        fds.saturating_sub(fds_before) as f64 / count as f64,
        threads.saturating_sub(threads_before) as f64 / count as f64,
        mappings.saturating_sub(mappings_before) as f64 / count as f64,
        environments.len()
    );
    let names: Vec<String> = thread_names()
        .into_iter()
        .take(3)
        .map(|(name, n)| format!("{n} x {name:?}"))
        .collect();
    println!("  the process's threads by name: {}", names.join(", "));
    println!(
        "  creation on one thread: {:.0} restores per second ({:.1} us each, VM made in the \
         window); {:.0} per second with the first invocation",
        count as f64 / restoring.as_secs_f64(),
        restoring.as_secs_f64() * 1e6 / count as f64,
        count as f64 / (restoring + invoking).as_secs_f64()
    );
    if let (Some(first), Some(last)) = (batch_rates.first(), batch_rates.last()) {
        println!(
            "  restores per second in the first batch of {BATCH}: {first:.0}; in the last: \
             {last:.0}"
        );
    }
    println!("  {}", damon_use(damon_before, damon, making));
    let start = Instant::now();
    for environment in environments {
        Box::new(environment).shutdown();
    }
    wait_for_teardown();
    println!(
        "  shutting them all down took {:.2} s",
        start.elapsed().as_secs_f64()
    );
    let threads = env_count("DENSITY_THREADS").unwrap_or(1);
    if threads > 1 {
        on_threads(threads, target);
    }
    let processes = env_count("DENSITY_PROCESSES").unwrap_or(1);
    if processes > 1 {
        spread_over_processes(processes, target);
    }
    if let Some(processes) = env_count("DENSITY_HOST_PROCESSES") {
        through_host_processes(processes, target);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = density
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
