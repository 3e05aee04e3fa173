//! What a user can read about the service: invocations, errors, throttles, cold and warm
//! starts, concurrency, provisioned utilisation, the async queue, event sources, environments
//! and durations.
//!
//! Counters are atomics updated on the invocation path; [`crate::Service::metrics`] and
//! [`crate::Service::function_metrics`] take a consistent-enough snapshot (each number is
//! exact, the set is not taken under one lock).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS: usize = 48;

/// A histogram of durations with power-of-two microsecond buckets.
#[derive(Debug)]
pub(crate) struct DurationHistogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum_micros: AtomicU64,
    max_micros: AtomicU64,
}

impl Default for DurationHistogram {
    fn default() -> Self {
        DurationHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
            max_micros: AtomicU64::new(0),
        }
    }
}

impl DurationHistogram {
    pub(crate) fn record(&self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let bucket = (64 - micros.leading_zeros() as usize).min(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.max_micros.fetch_max(micros, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> DurationStats {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        let max = Duration::from_micros(self.max_micros.load(Ordering::Relaxed));
        let percentile = |q: f64| -> Duration {
            if count == 0 {
                return Duration::ZERO;
            }
            let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
            let mut seen = 0;
            for (bucket, n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    // Bucket b holds values in [2^(b-1), 2^b) us: report its upper bound.
                    let upper = if bucket == 0 { 0 } else { 1u64 << bucket };
                    return Duration::from_micros(upper).min(max);
                }
            }
            max
        };
        DurationStats {
            count,
            total: Duration::from_micros(self.sum_micros.load(Ordering::Relaxed)),
            max,
            p50: percentile(0.50),
            p99: percentile(0.99),
        }
    }
}

/// Summary of a set of durations. Percentiles are upper bounds of power-of-two buckets
/// (within a factor of two of the true value), capped at the maximum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurationStats {
    /// How many durations were recorded.
    pub count: u64,
    /// Their sum.
    pub total: Duration,
    /// The longest.
    pub max: Duration,
    /// The median, rounded up to a power of two microseconds.
    pub p50: Duration,
    /// The 99th percentile, rounded up to a power of two microseconds.
    pub p99: Duration,
}

impl DurationStats {
    /// The mean duration, zero when nothing was recorded.
    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            Duration::ZERO
        } else {
            self.total / u32::try_from(self.count).unwrap_or(u32::MAX)
        }
    }
}

/// Invocation counters, kept once for the account and once per function.
#[derive(Debug, Default)]
pub(crate) struct InvocationCounters {
    pub invocations: AtomicU64,
    pub errors: AtomicU64,
    pub throttles: AtomicU64,
    pub cold_starts: AtomicU64,
    pub warm_starts: AtomicU64,
    pub provisioned_invocations: AtomicU64,
    pub provisioned_spillover_invocations: AtomicU64,
    pub durations: DurationHistogram,
}

impl InvocationCounters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, concurrent_executions: u64) -> InvocationMetrics {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        InvocationMetrics {
            invocations: load(&self.invocations),
            errors: load(&self.errors),
            throttles: load(&self.throttles),
            cold_starts: load(&self.cold_starts),
            warm_starts: load(&self.warm_starts),
            provisioned_invocations: load(&self.provisioned_invocations),
            provisioned_spillover_invocations: load(&self.provisioned_spillover_invocations),
            concurrent_executions,
            durations: self.durations.snapshot(),
        }
    }
}

/// Environment, async-queue and event-source counters of the whole service.
#[derive(Debug, Default)]
pub(crate) struct ServiceCounters {
    pub environments_created: AtomicU64,
    pub environments_restored: AtomicU64,
    pub snapshots_refused: AtomicU64,
    pub last_snapshot_refusal: std::sync::Mutex<Option<String>>,
    pub environments_shut_down: AtomicU64,
    pub environment_create_failures: AtomicU64,
    pub environment_resets: AtomicU64,
    pub environments_lost: AtomicU64,
    pub hung_invocations: AtomicU64,
    pub backend_panics: AtomicU64,
    pub job_panics: AtomicU64,
    pub prewarmed_environments: AtomicU64,
    pub idle_memory_mb_millis: AtomicU64,
    pub async_accepted: AtomicU64,
    pub async_retries: AtomicU64,
    pub async_succeeded: AtomicU64,
    pub async_failed: AtomicU64,
    pub async_expired: AtomicU64,
    pub async_dropped: AtomicU64,
    pub dead_letters: AtomicU64,
    pub destination_deliveries: AtomicU64,
    pub esm_batches: AtomicU64,
    pub esm_records_succeeded: AtomicU64,
    pub esm_records_failed: AtomicU64,
}

/// Invocation figures, for the account or for one function (Lambda's CloudWatch metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InvocationMetrics {
    /// `Invocations`: invocations that ran (successfully or with a function error).
    pub invocations: u64,
    /// `Errors`: invocations that ended with a function error.
    pub errors: u64,
    /// `Throttles`: invocation requests refused by a concurrency or rate limit.
    pub throttles: u64,
    /// Invocations that needed a new environment.
    pub cold_starts: u64,
    /// Invocations served by an idle environment.
    pub warm_starts: u64,
    /// `ProvisionedConcurrencyInvocations`: invocations served by a provisioned environment.
    pub provisioned_invocations: u64,
    /// `ProvisionedConcurrencySpilloverInvocations`: invocations of a version with provisioned
    /// concurrency that had to run on an on-demand environment.
    pub provisioned_spillover_invocations: u64,
    /// `ConcurrentExecutions`: invocations running right now.
    pub concurrent_executions: u64,
    /// `Duration`: how long invocations ran, as the scheduler measured them.
    pub durations: DurationStats,
}

/// A snapshot of the whole service's metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Invocation figures of the whole account.
    pub invocations: InvocationMetrics,
    /// `UnreservedConcurrentExecutions`: running invocations of functions without reserved
    /// concurrency.
    pub unreserved_concurrent_executions: u64,
    /// Provisioned environments asked for, over all versions and aliases.
    pub provisioned_concurrency_requested: u64,
    /// Provisioned environments initialised and alive.
    pub provisioned_concurrency_allocated: u64,
    /// `ProvisionedConcurrentExecutions`: provisioned environments running an invocation.
    pub provisioned_concurrent_executions: u64,
    /// `ProvisionedConcurrencyUtilization`: busy provisioned environments over allocated ones
    /// (0 when none are allocated).
    pub provisioned_utilization: f64,
    /// Environments created (including provisioned and pre-warmed ones).
    pub environments_created: u64,
    /// Of those, environments restored from a snapshot (SnapStart) rather than started with
    /// an Init.
    pub environments_restored: u64,
    /// Environments of functions with SnapStart that started with an Init because the
    /// function could not be snapshotted.
    pub snapshots_refused: u64,
    /// Why the last of those could not be snapshotted (for example, a thread kept running
    /// after Init).
    pub last_snapshot_refusal: Option<String>,
    /// Environments shut down.
    pub environments_shut_down: u64,
    /// Environments idle in a pool right now.
    pub environments_idle: u64,
    /// Environments running an invocation right now.
    pub environments_busy: u64,
    /// Calls to the backend's `create` that failed.
    pub environment_create_failures: u64,
    /// Invocations after which the backend reset its environment (crash, timeout, exit).
    pub environment_resets: u64,
    /// Environments lost with a failed worker.
    pub environments_lost: u64,
    /// Invocations that ran past their timeout without the backend stopping them; their
    /// environments were shut down.
    pub hung_invocations: u64,
    /// Panics caught at the backend boundary: in the backend's `create` (Init included), an
    /// environment's `invoke` (each one that invocation's `Sandbox.Failure`, its environment
    /// discarded) or `shutdown` (swallowed).
    pub backend_panics: u64,
    /// Panics caught around one job of the service's own (a maintenance pass, an asynchronous
    /// event, an event-source step) that came from outside the backend: a keep-alive or
    /// placement policy, an event source, a destination or a dead-letter sink. The thread
    /// running the job goes on with the next one.
    pub job_panics: u64,
    /// Environments created ahead of demand by the keep-alive policy.
    pub prewarmed_environments: u64,
    /// Memory held by idle on-demand environments over time, in MB-seconds.
    pub idle_memory_mb_seconds: f64,
    /// Asynchronous events accepted into the queue.
    pub async_events_accepted: u64,
    /// Events in the async queue now (waiting, being retried or running).
    pub async_queue_depth: u64,
    /// Age of the oldest event in the async queue (`AsyncEventAge`).
    pub async_oldest_event_age: Option<Duration>,
    /// Retries of asynchronous events (after function errors, throttles or service errors).
    pub async_retries: u64,
    /// Asynchronous events whose invocation finally succeeded.
    pub async_succeeded: u64,
    /// Asynchronous events that failed every attempt.
    pub async_failed: u64,
    /// Asynchronous events dropped because they exceeded the maximum event age.
    pub async_expired: u64,
    /// Asynchronous events dropped with no destination or dead-letter sink to take them, or
    /// left in the queue at shutdown.
    pub async_dropped: u64,
    /// Events sent to a dead-letter sink.
    pub dead_letters: u64,
    /// Invocation records sent to on-success or on-failure destinations.
    pub destination_deliveries: u64,
    /// Batches an event source mapping sent to its function.
    pub event_source_batches: u64,
    /// Source records processed successfully and acknowledged.
    pub event_source_records_succeeded: u64,
    /// Source records given up on after their retries.
    pub event_source_records_failed: u64,
}

impl MetricsSnapshot {
    pub(crate) fn fill_service(&mut self, c: &ServiceCounters) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.environments_created = load(&c.environments_created);
        self.environments_restored = load(&c.environments_restored);
        self.snapshots_refused = load(&c.snapshots_refused);
        self.last_snapshot_refusal = c
            .last_snapshot_refusal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        self.environments_shut_down = load(&c.environments_shut_down);
        self.environment_create_failures = load(&c.environment_create_failures);
        self.environment_resets = load(&c.environment_resets);
        self.environments_lost = load(&c.environments_lost);
        self.hung_invocations = load(&c.hung_invocations);
        self.backend_panics = load(&c.backend_panics);
        self.job_panics = load(&c.job_panics);
        self.prewarmed_environments = load(&c.prewarmed_environments);
        self.idle_memory_mb_seconds = load(&c.idle_memory_mb_millis) as f64 / 1000.0;
        self.async_events_accepted = load(&c.async_accepted);
        self.async_retries = load(&c.async_retries);
        self.async_succeeded = load(&c.async_succeeded);
        self.async_failed = load(&c.async_failed);
        self.async_expired = load(&c.async_expired);
        self.async_dropped = load(&c.async_dropped);
        self.dead_letters = load(&c.dead_letters);
        self.destination_deliveries = load(&c.destination_deliveries);
        self.event_source_batches = load(&c.esm_batches);
        self.event_source_records_succeeded = load(&c.esm_records_succeeded);
        self.event_source_records_failed = load(&c.esm_records_failed);
    }
}

impl fmt::Display for MetricsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.invocations;
        writeln!(
            f,
            "invocations {} errors {} throttles {} cold {} warm {} concurrent {}",
            i.invocations,
            i.errors,
            i.throttles,
            i.cold_starts,
            i.warm_starts,
            i.concurrent_executions
        )?;
        writeln!(
            f,
            "duration mean {:?} p50 <= {:?} p99 <= {:?} max {:?}",
            i.durations.mean(),
            i.durations.p50,
            i.durations.p99,
            i.durations.max
        )?;
        writeln!(
            f,
            "provisioned invocations {} spillover {} allocated {}/{} utilisation {:.2}",
            i.provisioned_invocations,
            i.provisioned_spillover_invocations,
            self.provisioned_concurrency_allocated,
            self.provisioned_concurrency_requested,
            self.provisioned_utilization
        )?;
        writeln!(
            f,
            "environments created {} shut down {} idle {} busy {} create failures {} resets {} \
             lost {} hung {}",
            self.environments_created,
            self.environments_shut_down,
            self.environments_idle,
            self.environments_busy,
            self.environment_create_failures,
            self.environment_resets,
            self.environments_lost,
            self.hung_invocations
        )?;
        writeln!(
            f,
            "snapstart restored {} refused {}{}",
            self.environments_restored,
            self.snapshots_refused,
            self.last_snapshot_refusal
                .as_ref()
                .map_or(String::new(), |why| format!(" (last: {why})"))
        )?;
        writeln!(
            f,
            "panics caught backend {} jobs {}",
            self.backend_panics, self.job_panics
        )?;
        writeln!(
            f,
            "async accepted {} depth {} oldest {:?} retries {} succeeded {} failed {} expired {} \
             dropped {} dead letters {} destinations {}",
            self.async_events_accepted,
            self.async_queue_depth,
            self.async_oldest_event_age,
            self.async_retries,
            self.async_succeeded,
            self.async_failed,
            self.async_expired,
            self.async_dropped,
            self.dead_letters,
            self.destination_deliveries
        )?;
        write!(
            f,
            "event sources batches {} records ok {} failed {}",
            self.event_source_batches,
            self.event_source_records_succeeded,
            self.event_source_records_failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_bound_the_values() {
        let h = DurationHistogram::default();
        for micros in [3u64, 5, 9, 1000, 1000, 1000, 1000, 1000, 1000, 250_000] {
            h.record(Duration::from_micros(micros));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 10);
        assert_eq!(s.max, Duration::from_micros(250_000));
        // The median is 1000 us: its bucket's upper bound is 1024 us.
        assert_eq!(s.p50, Duration::from_micros(1024));
        assert_eq!(s.p99, Duration::from_micros(250_000));
        assert_eq!(s.total, Duration::from_micros(3 + 5 + 9 + 6000 + 250_000));
        assert_eq!(s.mean(), Duration::from_nanos(25_601_700));
        assert_eq!(DurationHistogram::default().snapshot().p50, Duration::ZERO);
    }
}
