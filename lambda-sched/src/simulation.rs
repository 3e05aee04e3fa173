//! Trace replay with a virtual clock: how a keep-alive policy trades cold starts for idle
//! memory.
//!
//! [`Workload::azure_like`] generates a synthetic workload shaped like the Azure Functions
//! 2019 trace as "Serverless in the Wild" (Shahrad et al., ATC'20) characterises it:
//!
//! - invocation rates span orders of magnitude: the daily count per function is log-normal,
//!   fitted so that 45 % of functions are invoked at most once an hour and 81 % at most once
//!   a minute;
//! - arrival patterns: 30 % periodic (timer triggers, small jitter), 30 % Poisson, 40 % bursty
//!   (log-normal inter-arrival times, coefficient of variation about 3; the paper finds 40 %
//!   of applications with a CV above 1);
//! - durations: each function's mean is log-normal with mu = -0.38, sigma = 2.36 (log-seconds),
//!   each invocation varies around it;
//! - memory: Burr XII with c = 11.652, k = 0.221, lambda = 107.083 MB, at least 128 MB.
//!
//! [`replay`] runs a workload through the real worker manager of a [`Service`] on a
//! [`ManualClock`] and the no-op [`FakeBackend`]: every acquire, release, keep-alive decision,
//! pre-warm and reap is the production code's, only time is virtual. Invocations overlap as
//! their durations say (an arrival while every environment is busy is a cold start).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lambda_core::{CodeLocation, FunctionConfig};

use crate::clock::{Clock, ManualClock};
use crate::counting::ConcurrencyLimits;
use crate::fake::FakeBackend;
use crate::keep_alive::KeepAlivePolicy;
use crate::service::Service;
use crate::worker::WorkerSpec;
use crate::worker_manager::{Lease, StartKind};

/// How a function's invocations arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrivalPattern {
    /// A timer: a fixed period with 1 % jitter.
    Periodic,
    /// Independent arrivals (exponential inter-arrival times).
    Poisson,
    /// Bursts and lulls (log-normal inter-arrival times, CV about 3).
    Bursty,
}

/// One function of a synthetic workload.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionProfile {
    /// Its name.
    pub name: String,
    /// Its memory size in MB.
    pub memory_mb: u32,
    /// Its mean duration.
    pub mean_duration: Duration,
    /// Its mean number of invocations per day.
    pub daily_invocations: f64,
    /// How its invocations arrive.
    pub pattern: ArrivalPattern,
}

/// One invocation of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceEvent {
    /// When it arrives, from the start of the trace.
    pub at: Duration,
    /// Index of its function in [`Workload::functions`].
    pub function: usize,
    /// How long it runs.
    pub duration: Duration,
}

/// Parameters of [`Workload::azure_like`].
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadConfig {
    /// Number of functions.
    pub functions: usize,
    /// Length of the trace.
    pub length: Duration,
    /// The most invocations per day a function gets (caps the log-normal tail).
    pub max_daily_invocations: f64,
    /// Seed of the generator: the same seed gives the same workload.
    pub seed: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            functions: 200,
            length: Duration::from_secs(2 * 86_400),
            max_daily_invocations: 50_000.0,
            seed: 2019,
        }
    }
}

/// A synthetic workload: functions and their invocations in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// The functions.
    pub functions: Vec<FunctionProfile>,
    /// The invocations, by arrival time.
    pub events: Vec<TraceEvent>,
    /// Length of the trace.
    pub length: Duration,
}

/// log10 of daily invocations ~ N(1.603, 1.774): P(<= 24/day) = 0.45, P(<= 1440/day) = 0.81.
const LOG10_DAILY_MEAN: f64 = 1.603;
const LOG10_DAILY_SD: f64 = 1.774;

impl Workload {
    /// Generates a workload shaped like the Azure Functions 2019 trace (see the module
    /// documentation).
    pub fn azure_like(config: &WorkloadConfig) -> Workload {
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let length = config.length.as_secs_f64();
        let mut functions = Vec::with_capacity(config.functions);
        let mut events = Vec::new();
        for index in 0..config.functions {
            let log_daily = LOG10_DAILY_MEAN + LOG10_DAILY_SD * normal(&mut rng);
            let daily = 10f64
                .powf(log_daily)
                .clamp(0.5, config.max_daily_invocations);
            let pattern = match rng.f64() {
                u if u < 0.3 => ArrivalPattern::Periodic,
                u if u < 0.6 => ArrivalPattern::Poisson,
                _ => ArrivalPattern::Bursty,
            };
            let mean_duration = (-0.38 + 2.36 * normal(&mut rng)).exp().clamp(0.01, 300.0);
            let u = rng.f64();
            let burr = 107.083 * ((1.0 - u).powf(-1.0 / 0.221) - 1.0).powf(1.0 / 11.652);
            let memory_mb = burr.round().clamp(128.0, 10_240.0) as u32;
            let mean_gap = 86_400.0 / daily;
            let mut t = rng.f64() * mean_gap.min(length);
            while t < length {
                let jitter = (0.3 * normal(&mut rng) - 0.045).exp();
                events.push(TraceEvent {
                    at: Duration::from_secs_f64(t),
                    function: index,
                    duration: Duration::from_secs_f64(mean_duration * jitter),
                });
                t += match pattern {
                    ArrivalPattern::Periodic => mean_gap * (1.0 + 0.01 * normal(&mut rng)),
                    ArrivalPattern::Poisson => -mean_gap * open_unit(&mut rng).ln(),
                    ArrivalPattern::Bursty => {
                        let sigma: f64 = 1.5;
                        let mu = mean_gap.ln() - sigma * sigma / 2.0;
                        (mu + sigma * normal(&mut rng)).exp()
                    }
                }
                .max(0.001);
            }
            functions.push(FunctionProfile {
                name: format!("fn-{index:04}"),
                memory_mb,
                mean_duration: Duration::from_secs_f64(mean_duration),
                daily_invocations: daily,
                pattern,
            });
        }
        events.sort_by_key(|e| (e.at, e.function));
        Workload {
            functions,
            events,
            length: config.length,
        }
    }

    /// Share of functions invoked at most `per_day` times a day on average.
    pub fn share_at_most(&self, per_day: f64) -> f64 {
        let n = self
            .functions
            .iter()
            .filter(|f| f.daily_invocations <= per_day)
            .count();
        n as f64 / self.functions.len().max(1) as f64
    }
}

/// A standard normal variate (Box-Muller).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = open_unit(rng);
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Uniform in (0, 1]: safe to take the logarithm of.
fn open_unit(rng: &mut fastrand::Rng) -> f64 {
    1.0 - rng.f64()
}

/// What a replay measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayResult {
    /// The policy's name.
    pub policy: String,
    /// Invocations replayed.
    pub invocations: u64,
    /// Invocations that needed a new environment.
    pub cold_starts: u64,
    /// Cold starts as a share of invocations, in percent.
    pub cold_start_percent: f64,
    /// The third quartile over functions of each function's cold-start percentage (the
    /// paper's headline metric).
    pub p75_function_cold_start_percent: f64,
    /// Memory held by idle environments over the trace, in GB-hours.
    pub idle_memory_gb_hours: f64,
    /// Environments created ahead of demand by the policy.
    pub prewarmed: u64,
    /// Environments created in all.
    pub environments_created: u64,
    /// Per function, in [`Workload::functions`] order: (invocations, cold starts).
    pub per_function: Vec<(u64, u64)>,
}

/// Replays `workload` with `policy`, checking keep-alive every `tick` of virtual time.
pub fn replay(
    workload: &Workload,
    policy: Arc<dyn KeepAlivePolicy>,
    tick: Duration,
) -> ReplayResult {
    let clock = Arc::new(ManualClock::new());
    let start = clock.now();
    let policy_name = policy.name();
    let service = Service::builder(FakeBackend::noop())
        .clock(clock.clone())
        .keep_alive(policy)
        .manual()
        .configure(|c| {
            c.limits = ConcurrencyLimits {
                account_concurrency: u32::MAX / 2,
                min_unreserved_concurrency: 0,
                scale_up_burst: u32::MAX / 2,
                scale_up_refill: Duration::from_secs(1),
                throttle_retry_after: Duration::from_secs(1),
            };
            c.workers = vec![WorkerSpec {
                capacity_mb: u64::MAX / 4,
                lease: Duration::from_secs(u64::MAX / 4),
            }];
        })
        .build()
        .expect("a valid simulation service");
    let data = service.data();
    let mut targets = Vec::with_capacity(workload.functions.len());
    for profile in &workload.functions {
        let config = FunctionConfig::new(
            profile.name.clone(),
            CodeLocation::Executable("/sim".into()),
        )
        .with_memory_mb(profile.memory_mb);
        service.create_function(config).expect("a valid function");
        let resolved = data
            .control
            .resolve_static(&profile.name, None)
            .expect("just created");
        targets.push((resolved.function, resolved.version));
    }
    let mut running: BinaryHeap<Reverse<(Duration, u64)>> = BinaryHeap::new();
    let mut leases: HashMap<u64, Lease> = HashMap::new();
    let mut next_lease = 0u64;
    let mut cold_by_function = vec![0u64; workload.functions.len()];
    let mut calls_by_function = vec![0u64; workload.functions.len()];
    let mut next_tick = tick;
    let mut events = workload.events.iter().peekable();
    loop {
        let next_arrival = events.peek().map(|e| e.at);
        let next_end = running.peek().map(|Reverse((end, _))| *end);
        let Some(now) = [next_arrival, next_end, Some(next_tick)]
            .into_iter()
            .flatten()
            .min()
        else {
            break;
        };
        if next_arrival.is_none() && next_end.is_none() {
            break;
        }
        clock.set(start + now);
        let at = start + now;
        if next_end == Some(now) {
            let Reverse((_, id)) = running.pop().expect("peeked");
            let lease = leases.remove(&id).expect("running lease");
            data.workers.release(lease, at, false);
        } else if next_arrival == Some(now) {
            let event = events.next().expect("peeked");
            let (function, version) = &targets[event.function];
            let lease = match data.workers.acquire(function, version, at) {
                Ok(lease) => lease,
                Err(error) => panic!("the simulation has no limits, yet: {error:?}"),
            };
            calls_by_function[event.function] += 1;
            if lease.start == StartKind::Cold {
                cold_by_function[event.function] += 1;
            }
            leases.insert(next_lease, lease);
            running.push(Reverse((now + event.duration, next_lease)));
            next_lease += 1;
        } else {
            data.workers.maintain(at);
            next_tick += tick;
        }
    }
    let end = start + workload.length.max(clock.now() - start);
    clock.set(end);
    data.workers.retire_all(end);
    let metrics = service.metrics();
    let invocations: u64 = calls_by_function.iter().sum();
    let cold_starts: u64 = cold_by_function.iter().sum();
    let mut per_function: Vec<f64> = calls_by_function
        .iter()
        .zip(&cold_by_function)
        .filter(|(calls, _)| **calls > 0)
        .map(|(calls, cold)| 100.0 * *cold as f64 / *calls as f64)
        .collect();
    per_function.sort_by(f64::total_cmp);
    let p75 = per_function
        .get((per_function.len() * 3).div_ceil(4).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    ReplayResult {
        policy: policy_name,
        invocations,
        cold_starts,
        cold_start_percent: 100.0 * cold_starts as f64 / invocations.max(1) as f64,
        p75_function_cold_start_percent: p75,
        idle_memory_gb_hours: metrics.idle_memory_mb_seconds / 1024.0 / 3600.0,
        prewarmed: data.counters.prewarmed_environments.load(Ordering::Relaxed),
        environments_created: metrics.environments_created,
        per_function: calls_by_function
            .iter()
            .copied()
            .zip(cold_by_function.iter().copied())
            .collect(),
    }
}

/// Formats replay results as a table, idle memory also relative to the first row.
pub fn format_table(results: &[ReplayResult]) -> String {
    let mut out = format!(
        "{:<24} {:>11} {:>11} {:>8} {:>12} {:>14} {:>9} {:>10}\n",
        "policy",
        "invocations",
        "cold starts",
        "cold %",
        "p75 fn cold%",
        "idle GB-hours",
        "vs first",
        "pre-warms"
    );
    let base = results
        .first()
        .map_or(1.0, |r| r.idle_memory_gb_hours.max(1e-9));
    for r in results {
        out.push_str(&format!(
            "{:<24} {:>11} {:>11} {:>8.3} {:>12.2} {:>14.1} {:>8.0}% {:>10}\n",
            r.policy,
            r.invocations,
            r.cold_starts,
            r.cold_start_percent,
            r.p75_function_cold_start_percent,
            r.idle_memory_gb_hours,
            100.0 * r.idle_memory_gb_hours / base,
            r.prewarmed
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keep_alive::{FixedTtl, HybridHistogram};

    #[test]
    fn uniform_and_normal_have_the_right_moments() {
        let mut rng = fastrand::Rng::with_seed(7);
        let n = 100_000;
        let mean = (0..n).map(|_| rng.f64()).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let normals: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
        let m = normals.iter().sum::<f64>() / n as f64;
        let var = normals.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.02 && (var - 1.0).abs() < 0.03, "{m} {var}");
        assert!(
            (0..n)
                .map(|_| open_unit(&mut rng))
                .all(|u| u > 0.0 && u <= 1.0)
        );
    }

    #[test]
    fn the_workload_has_the_published_shape() {
        let workload = Workload::azure_like(&WorkloadConfig {
            functions: 2000,
            length: Duration::from_secs(60),
            ..WorkloadConfig::default()
        });
        let hourly = workload.share_at_most(24.0);
        let minutely = workload.share_at_most(1440.0);
        assert!((0.40..0.50).contains(&hourly), "{hourly}");
        assert!((0.77..0.85).contains(&minutely), "{minutely}");
        assert!(workload.events.windows(2).all(|w| w[0].at <= w[1].at));
        let median_duration = {
            let mut d: Vec<Duration> = workload.functions.iter().map(|f| f.mean_duration).collect();
            d.sort();
            d[d.len() / 2]
        };
        // exp(-0.38) = 0.68 s.
        assert!(
            median_duration > Duration::from_millis(450)
                && median_duration < Duration::from_millis(1000)
        );
        assert!(workload.functions.iter().all(|f| f.memory_mb >= 128));
        let same = Workload::azure_like(&WorkloadConfig {
            functions: 2000,
            length: Duration::from_secs(60),
            ..WorkloadConfig::default()
        });
        assert_eq!(same, workload, "deterministic for a seed");
    }

    #[test]
    fn replay_counts_cold_starts_and_idle_memory_exactly_on_a_tiny_trace() {
        // One 128 MB function invoked at 0 s, 60 s and 1000 s, each for 1 s, TTL 120 s:
        // cold, warm, cold. Idle: 1-60 s (59 s), 61-181 s (120 s, then reaped), 1001 s to the
        // end at 1200 s (120 s) = 299 s x 128 MB.
        let workload = Workload {
            functions: vec![FunctionProfile {
                name: "f".into(),
                memory_mb: 128,
                mean_duration: Duration::from_secs(1),
                daily_invocations: 3.0,
                pattern: ArrivalPattern::Periodic,
            }],
            events: [0, 60, 1000]
                .into_iter()
                .map(|s| TraceEvent {
                    at: Duration::from_secs(s),
                    function: 0,
                    duration: Duration::from_secs(1),
                })
                .collect(),
            length: Duration::from_secs(1200),
        };
        let result = replay(
            &workload,
            Arc::new(FixedTtl::new(Duration::from_secs(120))),
            Duration::from_secs(1),
        );
        assert_eq!(result.invocations, 3);
        assert_eq!(result.cold_starts, 2);
        let expected = 299.0 * 128.0 / 1024.0 / 3600.0;
        assert!(
            (result.idle_memory_gb_hours - expected).abs() < 1e-6,
            "{result:?}"
        );
        assert_eq!(result.environments_created, 2);
    }

    #[test]
    fn the_hybrid_policy_beats_a_short_ttl_on_a_periodic_function() {
        // A timer every 30 minutes for two days: a 10-minute TTL misses every time; the
        // hybrid policy learns the period and pre-warms.
        let workload = Workload {
            functions: vec![FunctionProfile {
                name: "timer".into(),
                memory_mb: 256,
                mean_duration: Duration::from_secs(2),
                daily_invocations: 48.0,
                pattern: ArrivalPattern::Periodic,
            }],
            events: (0..96)
                .map(|i| TraceEvent {
                    at: Duration::from_secs(i * 1800),
                    function: 0,
                    duration: Duration::from_secs(2),
                })
                .collect(),
            length: Duration::from_secs(96 * 1800),
        };
        let tick = Duration::from_secs(10);
        let fixed = replay(&workload, Arc::new(FixedTtl::default()), tick);
        let hybrid = replay(&workload, Arc::new(HybridHistogram::new()), tick);
        assert_eq!(fixed.cold_starts, 96);
        assert!(hybrid.cold_starts <= 12, "{hybrid:?}");
        assert!(hybrid.prewarmed >= 80, "{hybrid:?}");
        // The hybrid policy holds memory only around the expected arrival: ~7 of 30 minutes.
        assert!(
            hybrid.idle_memory_gb_hours < 2.0 * fixed.idle_memory_gb_hours,
            "{hybrid:?} {fixed:?}"
        );
        assert!(format_table(&[fixed, hybrid]).contains("hybrid histogram 4 h"));
    }
}
