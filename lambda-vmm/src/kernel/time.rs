//! Clocks and sleeping. The monotonic clock starts at the VM's creation; realtime is the
//! host's wall clock. Both are read through the same parameters the vDSO publishes to the
//! program (`vdso::TscClock`), so a syscall and the vDSO never disagree. Sleeps are waits:
//! they end at their time or, in a frozen (idle) environment, resume when it thaws.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Kernel;

use super::{Errno, SysResult};
use crate::mm::GuestMemory;
use crate::mm::physical::PhysicalMemory;
use crate::vdso::TscClock;

const CLOCK_REALTIME: u64 = 0;
const CLOCK_REALTIME_COARSE: u64 = 5;
const CLOCK_REALTIME_ALARM: u64 = 8;
const CLOCK_TAI: u64 = 11;
const TIMER_ABSTIME: u64 = 1;

fn timespec_bytes(duration: Duration) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&duration.as_secs().to_le_bytes());
    bytes[8..].copy_from_slice(&u64::from(duration.subsec_nanos()).to_le_bytes());
    bytes
}

/// A `struct timespec` the guest passed (a timeout or a time): `EINVAL` for a negative one
/// or nanoseconds out of range, as Linux answers. Any number of seconds is a valid duration;
/// one too far away to wait for is treated as forever where it is waited on.
pub(super) fn read_timespec(memory: &GuestMemory, addr: u64) -> Result<Duration, Errno> {
    let [secs, nanos]: [i64; 2] = memory.read_obj(addr)?;
    match (u64::try_from(secs), u32::try_from(nanos)) {
        (Ok(secs), Ok(nanos)) if nanos < 1_000_000_000 => Ok(Duration::new(secs, nanos)),
        _ => Err(Errno(libc::EINVAL)),
    }
}

/// The guest's view of time.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(from = "SavedClock", into = "SavedClock")]
pub struct GuestClock {
    boot: Instant,
    tsc: TscClock,
}

/// What a snapshot file keeps of a clock: its boot, from which the guest's monotonic time
/// counts (the TSC's parameters are the host's, measured again).
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedClock {
    #[serde(with = "crate::file_forms::instant")]
    boot: Instant,
}

impl From<GuestClock> for SavedClock {
    fn from(clock: GuestClock) -> SavedClock {
        SavedClock { boot: clock.boot }
    }
}

impl From<SavedClock> for GuestClock {
    fn from(saved: SavedClock) -> GuestClock {
        GuestClock {
            boot: saved.boot,
            tsc: TscClock::new(saved.boot, 0),
        }
    }
}

impl GuestClock {
    /// A clock whose monotonic time starts now, for a vCPU whose TSC is the host's plus
    /// `tsc_offset`.
    pub fn new(tsc_offset: i64) -> GuestClock {
        let boot = Instant::now();
        GuestClock {
            boot,
            tsc: TscClock::new(boot, tsc_offset),
        }
    }

    /// The same clock (its monotonic time goes on from the same boot) for a vCPU whose TSC
    /// is the host's plus `tsc_offset`: a restored environment's.
    pub fn restored(&self, tsc_offset: i64) -> GuestClock {
        GuestClock {
            boot: self.boot,
            tsc: TscClock::new(self.boot, tsc_offset),
        }
    }

    /// Refreshes the clock parameters and writes them to the vDSO's data page at `vvar`
    /// (called before every run of the vCPU).
    pub fn publish(&mut self, physical: &PhysicalMemory, vvar: u64) {
        let params = self.tsc.refresh();
        crate::vdso::write_vvar(physical, vvar, params, 0);
    }

    pub(super) fn now(&self, clock: u64) -> Result<Duration, Errno> {
        let published = self
            .tsc
            .current()
            .map(|params| (params, self.tsc.guest_tsc()));
        match clock {
            CLOCK_REALTIME | CLOCK_REALTIME_COARSE | CLOCK_REALTIME_ALARM | CLOCK_TAI => {
                Ok(match published {
                    Some((params, tsc)) => Duration::from_nanos(params.realtime_at(tsc)),
                    None => SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default(),
                })
            }
            // MONOTONIC, PROCESS/THREAD_CPUTIME, MONOTONIC_RAW/COARSE, BOOTTIME(_ALARM): one
            // vCPU that runs only while the program does.
            1..=4 | 6 | 7 | 9 => Ok(match published {
                Some((params, tsc)) => Duration::from_nanos(params.monotonic_at(tsc)),
                None => self.boot.elapsed(),
            }),
            _ => Err(Errno(libc::EINVAL)),
        }
    }

    /// `clock_gettime`.
    pub fn clock_gettime(&self, memory: &GuestMemory, clock: u64, addr: u64) -> SysResult {
        let now = self.now(clock)?;
        memory.write(addr, &timespec_bytes(now))?;
        Ok(0)
    }

    /// `clock_getres`: nanosecond resolution, for the clocks `clock_gettime` knows.
    pub fn clock_getres(&self, memory: &GuestMemory, clock: u64, addr: u64) -> SysResult {
        self.now(clock)?;
        if addr != 0 {
            memory.write(addr, &timespec_bytes(Duration::from_nanos(1)))?;
        }
        Ok(0)
    }

    /// `gettimeofday`.
    pub fn gettimeofday(&self, memory: &GuestMemory, addr: u64) -> SysResult {
        if addr != 0 {
            let now = self.now(CLOCK_REALTIME)?;
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&now.as_secs().to_le_bytes());
            bytes[8..].copy_from_slice(&u64::from(now.subsec_micros()).to_le_bytes());
            memory.write(addr, &bytes)?;
        }
        Ok(0)
    }

    /// `time`.
    pub fn time(&self, memory: &GuestMemory, addr: u64) -> SysResult {
        let secs = self.now(CLOCK_REALTIME)?.as_secs();
        if addr != 0 {
            memory.write(addr, &secs.to_le_bytes())?;
        }
        Ok(secs)
    }
}

impl Kernel {
    /// `nanosleep`: waits (see [`Kernel::wait`]); a frozen environment does not sleep.
    pub(super) fn nanosleep(&mut self, memory: &GuestMemory, request: u64) -> SysResult {
        let duration = read_timespec(memory, request)?;
        self.wait(Some(duration)).map(|()| 0)
    }

    /// `clock_nanosleep`, relative or absolute.
    pub(super) fn clock_nanosleep(
        &mut self,
        memory: &GuestMemory,
        clock: u64,
        flags: u64,
        request: u64,
    ) -> SysResult {
        let target = read_timespec(memory, request)?;
        let duration = if flags & TIMER_ABSTIME != 0 {
            // Measured from the first attempt, so a retried sleep keeps its original end.
            let waited = self
                .blocked_since
                .map_or(Duration::ZERO, |since| since.elapsed());
            target.saturating_sub(self.clock.now(clock)?.saturating_sub(waited))
        } else {
            target
        };
        self.wait(Some(duration)).map(|()| 0)
    }
}
