//! How the benches measure a side and print the comparison, so that every side is treated
//! alike: each is sampled in a stretch of its own (warm-up first), one timed window per
//! sample, with whatever belongs outside the window (waiting for background work to finish,
//! so the next sample starts on a quiet machine) done between samples.

#![allow(dead_code)] // Each bench uses what it needs.

use std::time::{Duration, Instant};

/// What one micro-VM run cost in exits to the VMM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// VM exits.
    pub exits: u64,
    /// Of those, page faults the VMM resolved.
    pub page_faults: u64,
}

impl Cost {
    /// The cost a run's stats report.
    pub fn of(stats: &lambda::vmm::RunStats) -> Cost {
        Cost {
            exits: stats.exits,
            page_faults: stats.page_faults,
        }
    }
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, other: Cost) -> Cost {
        Cost {
            exits: self.exits + other.exits,
            page_faults: self.page_faults + other.page_faults,
        }
    }
}

/// The samples of one side, with the VM exits one of its runs made (none for a child
/// process).
pub struct Side {
    /// What was measured, as the summary names it.
    pub name: String,
    /// One duration per run, sorted.
    samples: Vec<Duration>,
    /// VM exits (and page faults among them) per run, when the side is a micro-VM.
    pub cost: Option<Cost>,
}

impl Side {
    /// The median run.
    pub fn median(&self) -> Duration {
        self.percentile(50)
    }

    /// The 90th-percentile run.
    pub fn p90(&self) -> Duration {
        self.percentile(90)
    }

    fn percentile(&self, p: usize) -> Duration {
        let index = (self.samples.len() * p / 100).min(self.samples.len() - 1);
        self.samples[index]
    }
}

/// Samples one side: `warmup` untimed runs, then `runs` timed ones. `run` does one run and
/// returns the time of its timed window (it starts and stops the clock itself, so that it can
/// leave cleanup out of the window) and its VM exits; `between` runs after every run, outside
/// any window, and waits for background work the run left behind.
pub fn sample(
    name: &str,
    warmup: usize,
    runs: usize,
    mut run: impl FnMut() -> (Duration, Option<Cost>),
    mut between: impl FnMut(),
) -> Side {
    for _ in 0..warmup {
        run();
        between();
    }
    let mut samples = Vec::with_capacity(runs);
    let mut cost = None;
    for _ in 0..runs {
        let (took, run_cost) = run();
        samples.push(took);
        cost = run_cost;
        between();
    }
    samples.sort();
    Side {
        name: name.to_string(),
        samples,
        cost,
    }
}

/// Runs `program` as a one-shot child process, the baseline of the one-shot benches: spawned
/// with pipes, fed `input` on stdin, read to its exit and reaped. Returns the time of all of
/// that and its output.
pub fn child_process_run(
    program: &std::path::Path,
    input: &[u8],
) -> (Duration, std::process::Output) {
    child_command_run(&mut std::process::Command::new(program), input)
}

/// A command for `program` that starts with only the variables a function `config` starts
/// with in a micro-VM (Lambda's, `LD_LIBRARY_PATH` among them, which sends a dynamically
/// linked program's `ld.so` through the same directories on both sides), its task root
/// `task_root` on the host.
pub fn lambda_command(
    program: &std::path::Path,
    config: &lambda::core::FunctionConfig,
    task_root: &std::path::Path,
) -> std::process::Command {
    use lambda::core::runtime_api::{EnvironmentInfo, runtime_environment};
    let mut command = std::process::Command::new(program);
    command
        .env_clear()
        .envs(runtime_environment(
            config,
            None,
            &EnvironmentInfo::new("bench"),
        ))
        .env("LAMBDA_TASK_ROOT", task_root);
    command
}

/// [`child_process_run`] for a command with arguments (such as a program under `taskset`).
pub fn child_command_run(
    command: &mut std::process::Command,
    input: &[u8],
) -> (Duration, std::process::Output) {
    use std::io::Write;
    use std::process::Stdio;
    timed(|| {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write");
        child.wait_with_output().expect("wait")
    })
}

/// A field of `/proc/meminfo`, in KiB (`MemAvailable` is what the host can still give:
/// it counts KVM's own memory and shadow page tables as well as processes').
pub fn meminfo(field: &str) -> u64 {
    Meminfo::now().kib(field)
}

/// `/proc/meminfo` as read at one moment, so that fields compared with each other agree.
pub struct Meminfo(String);

impl Meminfo {
    /// Reads `/proc/meminfo` now.
    pub fn now() -> Meminfo {
        Meminfo(std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo"))
    }

    /// A field, in KiB, or `None` where this kernel has no such field.
    pub fn field(&self, field: &str) -> Option<u64> {
        self.0.lines().find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches(" kB").parse().ok()
        })
    }

    /// A field every kernel here has, in KiB.
    pub fn kib(&self, field: &str) -> u64 {
        self.field(field)
            .unwrap_or_else(|| panic!("no {field} in /proc/meminfo"))
    }
}

/// Times `f`.
pub fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let value = f();
    (start.elapsed(), value)
}

fn format(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} us", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.3} ms", d.as_secs_f64() * 1e3)
    }
}

/// Prints a table of `sides` against `baseline`: medians, p90s, the ratio of each median and
/// p90 to the baseline's, and VM exits (and page faults among them) per run.
pub fn print_table(title: &str, baseline: &Side, sides: &[&Side]) {
    println!("\n{title}");
    println!(
        "  {:<52} {:>10} {:>10} {:>14} {:>14} {:>6} {:>7}",
        "side", "median", "p90", "median ratio", "p90 ratio", "exits", "faults"
    );
    for side in std::iter::once(baseline).chain(sides.iter().copied()) {
        let ratio = |a: Duration, b: Duration| format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64());
        println!(
            "  {:<52} {:>10} {:>10} {:>14} {:>14} {:>6} {:>7}",
            side.name,
            format(side.median()),
            format(side.p90()),
            ratio(side.median(), baseline.median()),
            ratio(side.p90(), baseline.p90()),
            side.cost.map_or("-".to_string(), |c| c.exits.to_string()),
            side.cost
                .map_or("-".to_string(), |c| c.page_faults.to_string()),
        );
    }
}

/// Writes a function's zip at `path`: each `(entry, contents)`, executable.
pub fn write_zip(path: &std::path::Path, files: &[(&str, Vec<u8>)]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).expect("zip"));
    let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    for (entry, contents) in files {
        zip.start_file(*entry, options).expect("zip");
        zip.write_all(contents).expect("zip");
    }
    zip.finish().expect("zip");
}

/// The CPU time the host's DAMON threads (`kdamond.N`, the kernel's data access monitor)
/// have used so far, or `None` when none runs. Where the host monitors physical memory with
/// DAMON, every page it samples that this process maps calls every VM's MMU notifier, so its
/// work grows with the VMs a process holds and competes with theirs (`docs/platform.md`,
/// "The host's DAMON"). Two readings compare only while the same kdamonds run.
pub fn kdamond_cpu() -> Option<Duration> {
    let mut total: Option<Duration> = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let dir = entry.path();
        let is_kdamond =
            std::fs::read_to_string(dir.join("comm")).is_ok_and(|comm| comm.starts_with("kdamond"));
        if !is_kdamond {
            continue;
        }
        // The first field of schedstat is the time on a CPU, in nanoseconds.
        let on_cpu = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|stat| stat.split_whitespace().next()?.parse::<u64>().ok());
        if let Some(ns) = on_cpu {
            *total.get_or_insert(Duration::ZERO) += Duration::from_nanos(ns);
        }
    }
    total
}
