//! The TSC as a clock: how fast it ticks, and the parameters that turn the guest's TSC into
//! the time a program reads, refreshed before each run so they stay exact however long the
//! environment sat idle.
//!
//! The guest's TSC runs natively at CPL3 and equals the host's plus a per-vCPU offset (zero
//! on PVM hosts; see `docs/platform.md`). Its rate comes first from KVM (`KVM_GET_TSC_KHZ`),
//! then, once the process has watched the TSC against the host's monotonic clock for ten
//! seconds, from that measurement (better than a part in ten million).

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::vvar::ClockParams;

/// How long the process watches the TSC before trusting its own measurement of the rate.
const CALIBRATION: Duration = Duration::from_secs(10);

/// The process's first look at the TSC, and KVM's word on its rate.
struct Baseline {
    tsc: u64,
    at: Instant,
    khz: u64,
}

static BASELINE: OnceLock<Option<Baseline>> = OnceLock::new();

/// Records the guest TSC rate KVM reports (kHz) the first time a vCPU is made; `0` means
/// unknown, and the vDSO then sends programs to the syscalls. Also `None` without an
/// invariant TSC, whose rate could change under the guest.
pub fn guest_tsc_rate(khz: u64) {
    BASELINE.get_or_init(|| {
        (khz > 0 && crate::host::invariant_tsc()).then(|| Baseline {
            tsc: crate::host::tsc(),
            at: Instant::now(),
            khz,
        })
    });
}

/// Nanoseconds per tick in 32.32 fixed point, or `None` when the rate is unknown.
fn mult() -> Option<u64> {
    let baseline = BASELINE.get()?.as_ref()?;
    let elapsed = baseline.at.elapsed();
    if elapsed >= CALIBRATION {
        let ticks = crate::host::tsc().saturating_sub(baseline.tsc);
        if ticks > 0 {
            let ns = elapsed
                .as_nanos()
                .saturating_mul(1 << 32)
                .checked_div(u128::from(ticks))?;
            return u64::try_from(ns).ok();
        }
    }
    let ns = (1_000_000u128 << 32).checked_div(u128::from(baseline.khz))?;
    u64::try_from(ns).ok()
}

/// The guest's clock, as the vDSO and the kernel's clock syscalls read it.
#[derive(Debug, Clone)]
pub struct TscClock {
    /// Monotonic zero: when the VM started.
    boot: Instant,
    /// Guest TSC minus host TSC.
    offset: i64,
    /// The parameters last published.
    current: Option<ClockParams>,
}

impl TscClock {
    /// A clock whose monotonic time starts at `boot`, for a vCPU whose TSC is the host's
    /// plus `offset`.
    pub fn new(boot: Instant, offset: i64) -> TscClock {
        TscClock {
            boot,
            offset,
            current: None,
        }
    }

    /// The guest's TSC now.
    pub fn guest_tsc(&self) -> u64 {
        crate::host::tsc().wrapping_add_signed(self.offset)
    }

    /// Fresh parameters for now, never behind what the last ones give now (the monotonic
    /// clock never steps back); `None` when the TSC cannot serve as a clock.
    pub fn refresh(&mut self) -> Option<ClockParams> {
        let mult = mult()?;
        let tsc = self.guest_tsc();
        let since_boot = u64::try_from(self.boot.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let realtime = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let monotonic = match self.current {
            Some(last) => since_boot.max(last.monotonic_at(tsc)),
            None => since_boot,
        };
        let params = ClockParams {
            tsc_base: tsc,
            mult,
            monotonic_ns: monotonic,
            realtime_ns: realtime,
        };
        self.current = Some(params);
        Some(params)
    }

    /// The parameters last published.
    pub fn current(&self) -> Option<ClockParams> {
        self.current
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_follows_the_host_and_never_steps_back() {
        guest_tsc_rate(crate::host::tsc_khz_estimate());
        let boot = Instant::now();
        let mut clock = TscClock::new(boot, 0);
        let Some(first) = clock.refresh() else {
            // No invariant TSC on this host: the vDSO sends programs to the syscalls.
            assert!(!crate::host::invariant_tsc());
            return;
        };
        std::thread::sleep(Duration::from_millis(20));
        let tsc = clock.guest_tsc();
        let extrapolated = first.monotonic_at(tsc);
        let host = boot.elapsed().as_nanos() as u64;
        // Within 1% of the host's clock after 20 ms.
        assert!(
            extrapolated.abs_diff(host) < host / 100,
            "{extrapolated} vs {host}"
        );
        let second = clock.refresh().unwrap();
        assert!(second.monotonic_ns >= first.monotonic_at(second.tsc_base));
        let realtime = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(realtime.abs_diff(second.realtime_at(clock.guest_tsc())) < 1_000_000_000);
    }
}
