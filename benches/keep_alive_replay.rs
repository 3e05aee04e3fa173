//! Keep-alive policies replayed on a synthetic Azure-Functions-2019-shaped workload with a
//! virtual clock: cold-start percentage against idle memory-time.
//!
//! `cargo bench --bench keep_alive_replay` generates the workload (see
//! `lambda_sched::simulation`), replays it through the real worker manager once per policy,
//! and prints a table. Deterministic: the same seed gives the same table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda::sched::simulation::{ReplayResult, Workload, WorkloadConfig, format_table, replay};
use lambda::sched::{FixedTtl, HybridHistogram, KeepAlivePolicy};

fn main() {
    // `cargo bench` passes `--bench`; criterion-style filters are not used here.
    let started = Instant::now();
    let config = WorkloadConfig::default();
    let workload = Workload::azure_like(&config);
    println!(
        "workload: {} functions over {:.0} h, {} invocations; {:.0}% of functions invoked at \
         most hourly, {:.0}% at most once a minute (seed {})",
        workload.functions.len(),
        workload.length.as_secs_f64() / 3600.0,
        workload.events.len(),
        100.0 * workload.share_at_most(24.0),
        100.0 * workload.share_at_most(1440.0),
        config.seed,
    );
    let policies: Vec<Arc<dyn KeepAlivePolicy>> = vec![
        Arc::new(FixedTtl::new(Duration::from_secs(600))),
        Arc::new(FixedTtl::new(Duration::from_secs(1200))),
        Arc::new(FixedTtl::new(Duration::from_secs(3600))),
        Arc::new(HybridHistogram::new()),
    ];
    let tick = Duration::from_secs(1);
    let results: Vec<ReplayResult> = policies
        .into_iter()
        .map(|policy| {
            let start = Instant::now();
            let result = replay(&workload, policy, tick);
            eprintln!("replayed {} in {:.1?}", result.policy, start.elapsed());
            result
        })
        .collect();
    println!();
    print!("{}", format_table(&results));
    println!();
    println!(
        "cold % = cold starts / invocations; p75 fn cold% = third quartile over functions of \
         each one's cold-start percentage (the paper's metric); idle GB-hours = memory held \
         by idle environments; vs first = relative to the first row."
    );
    println!("total {:.1?}", started.elapsed());
}
