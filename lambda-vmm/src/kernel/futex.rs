//! `futex` between the program's threads: wait queues keyed by the word's address (one
//! address space, so the address names the futex), with wake, requeue, wake-op and bitsets.
//!
//! A waiting thread's call blocks; `FUTEX_WAKE` marks it woken, and the run loop's retry of
//! its call then returns 0. A wait that is not woken ends at its timeout (`ETIMEDOUT`).
//! Priority-inheritance futexes are not offered (`ENOSYS`; glibc uses them only for
//! `PTHREAD_PRIO_INHERIT` mutexes).

use std::collections::BTreeSet;
use std::time::Duration;

use super::threads::Threads;
use super::time::read_timespec;
use super::{Errno, Kernel, SysResult, abi};
use crate::mm::GuestMemory;
use crate::mm::layout::USER_END;

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_REQUEUE: u64 = 3;
const FUTEX_CMP_REQUEUE: u64 = 4;
const FUTEX_WAKE_OP: u64 = 5;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_CMD_MASK: u64 = 0x7f;
const FUTEX_CLOCK_REALTIME: u64 = 256;
/// The bitset of `FUTEX_WAIT` and `FUTEX_WAKE`: every waiter matches.
const ALL_BITS: u32 = u32::MAX;

/// One thread waiting on a futex word.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Waiter {
    tid: u32,
    uaddr: u64,
    bitset: u32,
    woken: bool,
}

/// The threads waiting on futex words, in the order they started waiting (a wake takes the
/// oldest first). At most one entry per thread, so the list is bounded by the thread limit.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct FutexWaiters {
    waiters: Vec<Waiter>,
    /// Waiters woken so far, for the run loop to see that a blocked thread may go on.
    woken_total: u64,
}

impl FutexWaiters {
    /// Marks up to `count` waiters on `uaddr` whose bitset meets `bitset` woken; returns how
    /// many.
    fn wake(&mut self, uaddr: u64, count: u64, bitset: u32) -> u64 {
        let mut woken: u64 = 0;
        for waiter in &mut self.waiters {
            if woken >= count {
                break;
            }
            if !waiter.woken && waiter.uaddr == uaddr && waiter.bitset & bitset != 0 {
                waiter.woken = true;
                woken = woken.saturating_add(1);
            }
        }
        self.woken_total = self.woken_total.wrapping_add(woken);
        woken
    }

    /// Checks waiters read back from a snapshot file against what `futex` and a thread's
    /// exit keep: each a thread of `threads`, no thread twice (which also bounds the list
    /// by the thread limit), on an aligned word of the program's half, with a bitset that
    /// is not empty. Says what does not hold.
    pub(super) fn check(&self, threads: &Threads) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for waiter in &self.waiters {
            let tid = waiter.tid;
            if !threads.contains(tid) {
                return Err(format!("a waiter is thread {tid}, which the program lacks"));
            }
            if !seen.insert(tid) {
                return Err(format!("thread {tid} waits twice"));
            }
            if waiter.uaddr % 4 != 0 || waiter.uaddr >= USER_END {
                return Err(format!(
                    "thread {tid} waits on {:#x}, not an aligned word of the program's half",
                    waiter.uaddr
                ));
            }
            if waiter.bitset == 0 {
                return Err(format!("thread {tid} waits with an empty bitset"));
            }
        }
        Ok(())
    }

    /// Moves up to `count` waiters still waiting on `from` to `to`; returns how many.
    fn requeue(&mut self, from: u64, to: u64, count: u64) -> u64 {
        let mut moved: u64 = 0;
        for waiter in &mut self.waiters {
            if moved >= count {
                break;
            }
            if !waiter.woken && waiter.uaddr == from {
                waiter.uaddr = to;
                moved = moved.saturating_add(1);
            }
        }
        moved
    }
}

/// The bitset of a wait or wake: `value3` for the `BITSET` forms (0 is `EINVAL`), every
/// bit for the plain ones.
fn bitset(given: bool, value3: u64) -> Result<u32, Errno> {
    match (given, abi::uint(value3)) {
        (false, _) => Ok(ALL_BITS),
        (true, 0) => Err(Errno(libc::EINVAL)),
        (true, bits) => Ok(bits),
    }
}

/// `FUTEX_WAKE_OP`'s operation on the second word, and whether to wake its waiters.
fn wake_op(encoded: u64, old: u32) -> Result<(u32, bool), Errno> {
    let encoded = abi::uint(encoded);
    let op = (encoded >> 28) & 0x7;
    let shift_arg = (encoded >> 28) & 0x8 != 0;
    let cmp = (encoded >> 24) & 0xf;
    let mut oparg = (encoded >> 12) & 0xfff;
    let cmparg = encoded & 0xfff;
    if shift_arg {
        oparg = 1u32.checked_shl(oparg).unwrap_or(0);
    }
    let new = match op {
        0 => oparg,
        1 => old.wrapping_add(oparg),
        2 => old | oparg,
        3 => old & !oparg,
        4 => old ^ oparg,
        _ => return Err(Errno(libc::ENOSYS)),
    };
    // The comparison is on the old value as a signed int, as Linux's.
    let (old, cmparg) = (
        i32::from_le_bytes(old.to_le_bytes()),
        i32::try_from(cmparg).unwrap_or(0),
    );
    let wake = match cmp {
        0 => old == cmparg,
        1 => old != cmparg,
        2 => old < cmparg,
        3 => old <= cmparg,
        4 => old > cmparg,
        5 => old >= cmparg,
        _ => return Err(Errno(libc::ENOSYS)),
    };
    Ok((new, wake))
}

impl Kernel {
    /// How many futex waiters have been woken so far: when it grows, a blocked thread's call
    /// may now return, and an idle vCPU may run it.
    pub fn futex_wakeups(&self) -> u64 {
        self.futexes.woken_total
    }

    /// `futex(uaddr, op, val, timeout_or_val2, uaddr2, val3)`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn futex(
        &mut self,
        memory: &GuestMemory,
        uaddr: u64,
        op: u64,
        value: u64,
        timeout: u64,
        uaddr2: u64,
        value3: u64,
    ) -> SysResult {
        if uaddr % 4 != 0 {
            return Err(Errno(libc::EINVAL));
        }
        let command = op & FUTEX_CMD_MASK;
        match command {
            FUTEX_WAKE | FUTEX_WAKE_BITSET => {
                let bitset = bitset(command == FUTEX_WAKE_BITSET, value3)?;
                memory.validate(uaddr, 4)?;
                Ok(self
                    .futexes
                    .wake(uaddr, u64::from(abi::uint(value)), bitset))
            }
            FUTEX_WAIT | FUTEX_WAIT_BITSET => {
                let bitset = bitset(command == FUTEX_WAIT_BITSET, value3)?;
                self.futex_wait(memory, uaddr, op, value, timeout, bitset)
            }
            FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
                if uaddr2 % 4 != 0 {
                    return Err(Errno(libc::EINVAL));
                }
                memory.validate(uaddr2, 4)?;
                if command == FUTEX_CMP_REQUEUE {
                    let current: u32 = memory.read_obj(uaddr)?;
                    if current != abi::uint(value3) {
                        return Err(Errno(libc::EAGAIN));
                    }
                } else {
                    memory.validate(uaddr, 4)?;
                }
                let woken = self
                    .futexes
                    .wake(uaddr, u64::from(abi::uint(value)), ALL_BITS);
                // `val2` travels in the timeout register, as a number.
                let moved = self
                    .futexes
                    .requeue(uaddr, uaddr2, u64::from(abi::uint(timeout)));
                Ok(if command == FUTEX_CMP_REQUEUE {
                    woken.saturating_add(moved)
                } else {
                    woken
                })
            }
            FUTEX_WAKE_OP => {
                if uaddr2 % 4 != 0 {
                    return Err(Errno(libc::EINVAL));
                }
                memory.validate(uaddr, 4)?;
                let old: u32 = memory.read_obj(uaddr2)?;
                let (new, wake_second) = wake_op(value3, old)?;
                memory.write_obj(uaddr2, new)?;
                let mut woken = self
                    .futexes
                    .wake(uaddr, u64::from(abi::uint(value)), ALL_BITS);
                if wake_second {
                    let second = self
                        .futexes
                        .wake(uaddr2, u64::from(abi::uint(timeout)), ALL_BITS);
                    woken = woken.saturating_add(second);
                }
                Ok(woken)
            }
            _ => Err(Errno(libc::ENOSYS)),
        }
    }

    /// A futex wait: queued at its first attempt if the word still holds `value`; each retry
    /// returns 0 once woken, `ETIMEDOUT` once its timeout has passed, and blocks otherwise.
    fn futex_wait(
        &mut self,
        memory: &GuestMemory,
        uaddr: u64,
        op: u64,
        value: u64,
        timeout: u64,
        bitset: u32,
    ) -> SysResult {
        let tid = self.threads.current();
        let first_attempt = self.blocked_since.is_none();
        let queued = self.futexes.waiters.iter().position(|w| w.tid == tid);
        if let Some(index) = queued {
            if first_attempt {
                // Left over from a wait that was abandoned: this call starts afresh.
                self.futexes.waiters.remove(index);
            } else if self.futexes.waiters.get(index).is_some_and(|w| w.woken) {
                self.futexes.waiters.remove(index);
                return Ok(0);
            }
        }
        let limit = if timeout == 0 {
            None
        } else {
            let given = read_timespec(memory, timeout)?;
            if op & FUTEX_CMD_MASK == FUTEX_WAIT_BITSET {
                // An absolute time on the chosen clock, as of the first attempt.
                let clock = if op & FUTEX_CLOCK_REALTIME != 0 { 0 } else { 1 };
                let waited = self.blocked_since.map_or(Duration::ZERO, |s| s.elapsed());
                Some(given.saturating_sub(self.clock.now(clock)?.saturating_sub(waited)))
            } else {
                Some(given)
            }
        };
        if first_attempt {
            let current: u32 = memory.read_obj(uaddr)?;
            if current != abi::uint(value) {
                return Err(Errno(libc::EAGAIN));
            }
            self.futexes.waiters.push(Waiter {
                tid,
                uaddr,
                bitset,
                woken: false,
            });
        }
        self.wait(limit)?;
        self.forget_futex_wait(tid);
        Err(Errno(libc::ETIMEDOUT))
    }

    /// Checks the futex waiters read back from a snapshot file against the thread table
    /// (`FutexWaiters::check`). Says what is wrong.
    pub(super) fn check_futexes(&self) -> Result<(), String> {
        self.futexes.check(&self.threads)
    }

    /// Wakes up to `count` waiters on `uaddr` whatever their bitset (a thread's exit).
    pub(super) fn futex_wake_all_bits(&mut self, uaddr: u64, count: u64) -> u64 {
        self.futexes.wake(uaddr, count, ALL_BITS)
    }

    /// Drops `tid`'s futex wait, if it has one (its call was abandoned or it exited).
    pub(super) fn forget_futex_wait(&mut self, tid: u32) {
        self.futexes.waiters.retain(|waiter| waiter.tid != tid);
    }
}
