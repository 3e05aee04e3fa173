//! How the benches measure a side and print the comparison, so that every side is treated
//! alike: each is sampled in a stretch of its own (warm-up first), one timed window per
//! sample, with whatever belongs outside the window (waiting for background work to finish,
//! so the next sample starts on a quiet machine) done between samples.

#![allow(dead_code)] // Each bench uses what it needs.

use std::time::{Duration, Instant};

/// The samples of one side, with the VM exits one of its runs made (none for a child
/// process).
pub struct Side {
    /// What was measured, as the summary names it.
    pub name: String,
    /// One duration per run, sorted.
    samples: Vec<Duration>,
    /// VM exits per run, when the side is a micro-VM.
    pub exits: Option<u64>,
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
    mut run: impl FnMut() -> (Duration, Option<u64>),
    mut between: impl FnMut(),
) -> Side {
    for _ in 0..warmup {
        run();
        between();
    }
    let mut samples = Vec::with_capacity(runs);
    let mut exits = None;
    for _ in 0..runs {
        let (took, run_exits) = run();
        samples.push(took);
        exits = run_exits;
        between();
    }
    samples.sort();
    Side {
        name: name.to_string(),
        samples,
        exits,
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
/// p90 to the baseline's, and VM exits per run.
pub fn print_table(title: &str, baseline: &Side, sides: &[&Side]) {
    println!("\n{title}");
    println!(
        "  {:<52} {:>10} {:>10} {:>14} {:>14} {:>6}",
        "side", "median", "p90", "median ratio", "p90 ratio", "exits"
    );
    for side in std::iter::once(baseline).chain(sides.iter().copied()) {
        let ratio = |a: Duration, b: Duration| format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64());
        println!(
            "  {:<52} {:>10} {:>10} {:>14} {:>14} {:>6}",
            side.name,
            format(side.median()),
            format(side.p90()),
            ratio(side.median(), baseline.median()),
            ratio(side.p90(), baseline.p90()),
            side.exits.map_or("-".to_string(), |e| e.to_string()),
        );
    }
}
