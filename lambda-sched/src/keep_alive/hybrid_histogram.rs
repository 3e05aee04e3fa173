//! The hybrid histogram policy of "Serverless in the Wild" (Shahrad et al., USENIX ATC'20).
//!
//! For each pool (a function version) the policy keeps a histogram of idle times (the time
//! from the end of one invocation to the start of the next), in 1-minute bins over 4 hours.
//! When an environment becomes idle:
//!
//! - If most idle times fell outside the histogram (> 4 h), the next one is predicted from
//!   the recent out-of-range ones and the environment is unloaded, pre-warmed at 85 % of the
//!   prediction and kept until 115 %. (The paper fits an ARIMA model; this implementation uses
//!   the mean of the last few out-of-range idle times, which is what ARIMA reduces to for the
//!   short, stationary series it sees here.)
//! - If the histogram is representative (enough samples and a coefficient of variation of the
//!   bin counts of at least 2), the environment is unloaded, pre-warmed at the 5th percentile
//!   minus 10 % and kept until the 99th percentile plus 10 %. A 5th percentile in the first
//!   bin means no unloading: keep the environment until the tail.
//! - Otherwise the policy falls back to keeping the environment for the histogram's range.
//!
//! **Concurrency.** The paper models an application as one instance. A function here may
//! run many environments at once, and their idle times differ: the first environment of a
//! busy function is idle for milliseconds, its fortieth only in the busiest minutes. So the
//! policy keeps one histogram per concurrency *slot*: an arrival that finds `k` environments
//! busy measures the idle time of slot `k` (since an environment last became idle with `k`
//! others busy), and an environment that becomes idle with `k` others busy gets the decision
//! of slot `k`'s histogram. For a function that never overlaps this is exactly the paper's
//! policy.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use super::{KeepAlivePolicy, Retention};
use crate::ids::PoolId;
use crate::sync::lock;

/// The hybrid histogram policy's parameters; the defaults are the paper's.
#[derive(Debug, Clone, PartialEq)]
pub struct HybridHistogramConfig {
    /// Width of a histogram bin (1 minute).
    pub bin: Duration,
    /// Range of the histogram (4 hours); longer idle times are out of range.
    pub range: Duration,
    /// Percentile of idle times that sets the pre-warm point (5th).
    pub head_percentile: f64,
    /// Percentile of idle times that sets the end of keep-alive (99th).
    pub tail_percentile: f64,
    /// Safety margin on the head and tail (10 %).
    pub margin: f64,
    /// Coefficient of variation of bin counts below which the histogram is not trusted (2).
    pub cv_threshold: f64,
    /// Idle times needed before the histogram is trusted.
    pub min_samples: u32,
    /// Share of out-of-range idle times above which idle times are predicted (0.5).
    pub oob_threshold: f64,
    /// Margin around a predicted idle time (15 %).
    pub prediction_margin: f64,
    /// How many recent out-of-range idle times the prediction averages.
    pub prediction_window: usize,
}

impl Default for HybridHistogramConfig {
    fn default() -> Self {
        HybridHistogramConfig {
            bin: Duration::from_secs(60),
            range: Duration::from_secs(4 * 3600),
            head_percentile: 0.05,
            tail_percentile: 0.99,
            margin: 0.10,
            cv_threshold: 2.0,
            min_samples: 10,
            oob_threshold: 0.5,
            prediction_margin: 0.15,
            prediction_window: 5,
        }
    }
}

#[derive(Debug)]
struct Histogram {
    bins: Vec<u32>,
    in_range: u32,
    out_of_range: u32,
    recent_out_of_range: VecDeque<Duration>,
    last_end: Option<Duration>,
}

impl Histogram {
    fn new(bins: usize) -> Self {
        Histogram {
            bins: vec![0; bins],
            in_range: 0,
            out_of_range: 0,
            recent_out_of_range: VecDeque::new(),
            last_end: None,
        }
    }
}

/// Slots above this share the last histogram.
const MAX_SLOTS: u64 = 64;

/// The hybrid histogram keep-alive policy.
#[derive(Debug)]
pub struct HybridHistogram {
    config: HybridHistogramConfig,
    pools: Mutex<HashMap<(PoolId, u64), Histogram>>,
}

impl HybridHistogram {
    /// The policy with the paper's parameters.
    pub fn new() -> Self {
        HybridHistogram::with_config(HybridHistogramConfig::default())
    }

    /// The policy with `config`.
    pub fn with_config(config: HybridHistogramConfig) -> Self {
        HybridHistogram {
            config,
            pools: Mutex::new(HashMap::new()),
        }
    }

    fn bin_count(&self) -> usize {
        let bin = self.config.bin.as_secs_f64().max(1e-9);
        ((self.config.range.as_secs_f64() / bin).ceil() as usize).max(1)
    }

    /// The decision of one histogram; `None` when it has too few samples to say anything.
    fn decide(&self, histogram: &Histogram) -> Option<Retention> {
        let c = &self.config;
        let samples = histogram.in_range + histogram.out_of_range;
        if samples < c.min_samples {
            return None;
        }
        Some(self.decide_trained(histogram))
    }

    fn decide_trained(&self, histogram: &Histogram) -> Retention {
        let c = &self.config;
        let fallback = Retention::keep_for(c.range);
        let samples = histogram.in_range + histogram.out_of_range;
        if f64::from(histogram.out_of_range) > c.oob_threshold * f64::from(samples) {
            let recent = &histogram.recent_out_of_range;
            if recent.is_empty() {
                return fallback;
            }
            let predicted = recent.iter().sum::<Duration>() / recent.len() as u32;
            let start = predicted.mul_f64(1.0 - c.prediction_margin);
            let end = predicted.mul_f64(1.0 + c.prediction_margin);
            return Retention {
                prewarm_after: start,
                keep_alive: end - start,
            };
        }
        let n = histogram.bins.len() as f64;
        let mean = f64::from(histogram.in_range) / n;
        let variance = histogram
            .bins
            .iter()
            .map(|&count| (f64::from(count) - mean).powi(2))
            .sum::<f64>()
            / n;
        let cv = if mean > 0.0 {
            variance.sqrt() / mean
        } else {
            0.0
        };
        if cv < c.cv_threshold {
            return fallback;
        }
        let percentile_bin = |q: f64| -> usize {
            let rank = (q * f64::from(histogram.in_range)).ceil().max(1.0) as u32;
            let mut seen = 0;
            for (index, &count) in histogram.bins.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return index;
                }
            }
            histogram.bins.len() - 1
        };
        let head = percentile_bin(c.head_percentile);
        let tail = percentile_bin(c.tail_percentile);
        let prewarm_after = c.bin.mul_f64(head as f64 * (1.0 - c.margin));
        let end = c.bin.mul_f64((tail + 1) as f64 * (1.0 + c.margin));
        Retention {
            prewarm_after,
            keep_alive: end.saturating_sub(prewarm_after),
        }
    }
}

impl Default for HybridHistogram {
    fn default() -> Self {
        HybridHistogram::new()
    }
}

impl KeepAlivePolicy for HybridHistogram {
    fn name(&self) -> String {
        format!(
            "hybrid histogram {} h",
            self.config.range.as_secs_f64() / 3600.0
        )
    }

    fn on_arrival(&self, pool: PoolId, now: Duration, busy: u64) {
        let bins = self.bin_count();
        let mut pools = lock(&self.pools);
        let slot = busy.min(MAX_SLOTS - 1);
        let histogram = pools
            .entry((pool, slot))
            .or_insert_with(|| Histogram::new(bins));
        // Only the first arrival after an idle period measures an idle time.
        let Some(end) = histogram.last_end.take() else {
            return;
        };
        let idle = now.saturating_sub(end);
        if idle >= self.config.range {
            histogram.out_of_range += 1;
            histogram.recent_out_of_range.push_back(idle);
            if histogram.recent_out_of_range.len() > self.config.prediction_window {
                histogram.recent_out_of_range.pop_front();
            }
        } else {
            let index = (idle.as_secs_f64() / self.config.bin.as_secs_f64()) as usize;
            histogram.bins[index.min(bins - 1)] += 1;
            histogram.in_range += 1;
        }
    }

    fn on_idle(&self, pool: PoolId, now: Duration, busy: u64) -> Retention {
        let bins = self.bin_count();
        let mut pools = lock(&self.pools);
        let slot = busy.min(MAX_SLOTS - 1);
        pools
            .entry((pool, slot))
            .or_insert_with(|| Histogram::new(bins))
            .last_end = Some(now);
        // A slot not trained yet borrows the decision of the nearest lower trained slot
        // (its environments are reused at least as often); with none, the paper's fallback.
        (0..=slot)
            .rev()
            .find_map(|s| pools.get(&(pool, s)).and_then(|h| self.decide(h)))
            .unwrap_or(Retention::keep_for(self.config.range))
    }

    fn forget(&self, pool: PoolId) {
        lock(&self.pools).retain(|(id, _), _| *id != pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    /// Runs invocations of zero length with the given idle times and returns the last decision.
    fn feed(policy: &HybridHistogram, idle_times: &[Duration]) -> Retention {
        let pool = PoolId(1);
        let mut now = Duration::from_secs(1_000_000);
        policy.on_arrival(pool, now, 0);
        let mut decision = policy.on_idle(pool, now, 0);
        for idle in idle_times {
            now += *idle;
            policy.on_arrival(pool, now, 0);
            decision = policy.on_idle(pool, now, 0);
        }
        decision
    }

    #[test]
    fn few_samples_fall_back_to_the_range() {
        let policy = HybridHistogram::new();
        let decision = feed(&policy, &[MIN * 30; 3]);
        assert_eq!(decision, Retention::keep_for(Duration::from_secs(4 * 3600)));
    }

    #[test]
    fn a_periodic_function_is_unloaded_and_prewarmed_before_its_next_call() {
        let policy = HybridHistogram::new();
        // Every 30 minutes, like a timer trigger.
        let decision = feed(&policy, &[MIN * 30 + Duration::from_secs(10); 20]);
        // Head = tail = bin 30: pre-warm at 30 * 0.9 = 27 min, keep until 31 * 1.1 = 34.1 min.
        assert_eq!(decision.prewarm_after, MIN * 27);
        assert_eq!(
            decision.prewarm_after + decision.keep_alive,
            MIN.mul_f64(34.1)
        );
    }

    #[test]
    fn a_busy_function_is_kept_warm_without_unloading() {
        let policy = HybridHistogram::new();
        let decision = feed(&policy, &[Duration::from_secs(5); 50]);
        assert_eq!(decision.prewarm_after, Duration::ZERO);
        assert_eq!(decision.keep_alive, MIN.mul_f64(1.1));
    }

    #[test]
    fn spread_out_idle_times_are_not_trusted() {
        let policy = HybridHistogram::new();
        let idle: Vec<Duration> = (0..240).map(|m| MIN * m + Duration::from_secs(1)).collect();
        let decision = feed(&policy, &idle);
        assert_eq!(decision, Retention::keep_for(Duration::from_secs(4 * 3600)));
    }

    #[test]
    fn each_concurrency_slot_learns_its_own_idle_times() {
        let policy = HybridHistogram::new();
        let pool = PoolId(1);
        let mut now = Duration::from_secs(1_000_000);
        // Slot 0 is reused every 5 s; slot 1 (a second, overlapping invocation) every 30 min.
        for round in 0..400u64 {
            policy.on_arrival(pool, now, 0);
            if round % 360 == 0 {
                policy.on_arrival(pool, now, 1);
                policy.on_idle(pool, now, 1);
            }
            policy.on_idle(pool, now, 0);
            now += Duration::from_secs(5);
        }
        let slot0 = policy.on_idle(pool, now, 0);
        assert_eq!(slot0, Retention::keep_for(MIN.mul_f64(1.1)));
        // Slot 1 has two samples, too few: it borrows slot 0's decision.
        let slot1 = policy.on_idle(pool, now, 1);
        assert_eq!(slot1, slot0);
        // Trained, slot 1 gets its own: pre-warm at 27 min.
        for _ in 0..12 {
            now += MIN * 30;
            policy.on_arrival(pool, now, 1);
            policy.on_idle(pool, now, 1);
        }
        let slot1 = policy.on_idle(pool, now, 1);
        assert_eq!(slot1.prewarm_after, MIN * 27);
    }

    #[test]
    fn rare_functions_get_a_predicted_window() {
        let policy = HybridHistogram::new();
        let decision = feed(&policy, &[MIN * 600; 12]);
        assert_eq!(decision.prewarm_after, MIN * 510);
        assert_eq!(decision.prewarm_after + decision.keep_alive, MIN * 690);
        policy.forget(PoolId(1));
        assert_eq!(
            policy.on_idle(PoolId(1), Duration::ZERO, 0),
            Retention::keep_for(Duration::from_secs(4 * 3600))
        );
    }
}
