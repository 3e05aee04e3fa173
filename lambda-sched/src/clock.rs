//! Time, as the service sees it.
//!
//! Every deadline, TTL, retry delay, batching window and lease is computed from a [`Clock`],
//! never from `std::time` directly. Production code uses [`SystemClock`]; tests use
//! [`ManualClock`] and move time forward explicitly, so a six-hour event age or a ten-minute
//! keep-alive is tested in microseconds.
//!
//! Times are [`Duration`]s since the Unix epoch. They are monotonic: [`SystemClock`] reads the
//! wall clock once and then advances with [`std::time::Instant`], so a wall-clock step does not
//! make time run backwards inside the service.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of monotonic time, as a [`Duration`] since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Duration;
}

/// The real clock: the wall time at construction, advanced by a monotonic [`Instant`].
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin_wall: Duration,
    origin: Instant,
}

impl SystemClock {
    /// A clock reading the host's time.
    pub fn new() -> Self {
        SystemClock {
            origin_wall: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin_wall + self.origin.elapsed()
    }
}

/// A clock that moves only when told to: [`ManualClock::advance`] and [`ManualClock::set`].
///
/// Shared between the service and a test (or a simulation) through an `Arc`.
#[derive(Debug)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// 2024-01-01T00:00:00Z, where a [`ManualClock::new`] starts, so that timestamps in records
    /// look like real dates.
    pub const DEFAULT_START: Duration = Duration::from_secs(1_704_067_200);

    /// A clock standing at [`ManualClock::DEFAULT_START`].
    pub fn new() -> Self {
        ManualClock::starting_at(Self::DEFAULT_START)
    }

    /// A clock standing at `start`.
    pub fn starting_at(start: Duration) -> Self {
        ManualClock {
            nanos: AtomicU64::new(duration_to_nanos(start)),
        }
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.nanos
            .fetch_add(duration_to_nanos(by), Ordering::SeqCst);
    }

    /// Moves time to `to`, if `to` is later than now (time never goes back).
    pub fn set(&self, to: Duration) {
        self.nanos
            .fetch_max(duration_to_nanos(to), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

fn duration_to_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Formats a time as an RFC 3339 UTC timestamp with milliseconds, as Lambda writes the
/// `timestamp` of an invocation record: `2024-01-01T00:00:00.000Z`.
pub fn format_timestamp(time: Duration) -> String {
    let secs = time.as_secs();
    let rem = secs % 86_400;
    let (year, month, day) = lambda_core::calendar::civil_date(secs / 86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        time.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new();
        let start = clock.now();
        assert_eq!(start, ManualClock::DEFAULT_START);
        clock.advance(Duration::from_secs(600));
        assert_eq!(clock.now() - start, Duration::from_secs(600));
        clock.set(start);
        assert_eq!(clock.now() - start, Duration::from_secs(600), "never back");
        clock.set(start + Duration::from_secs(3600));
        assert_eq!(clock.now() - start, Duration::from_secs(3600));
    }

    #[test]
    fn system_clock_is_monotonic_and_near_wall_time() {
        let clock = SystemClock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(wall.abs_diff(a) < Duration::from_secs(5));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(
            format_timestamp(ManualClock::DEFAULT_START),
            "2024-01-01T00:00:00.000Z"
        );
        assert_eq!(
            format_timestamp(Duration::from_millis(1_573_755_365_568)),
            "2019-11-14T18:16:05.568Z"
        );
        assert_eq!(
            format_timestamp(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
