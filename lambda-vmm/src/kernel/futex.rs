//! `futex` for a program with one thread: waking finds no waiter, and a wait whose value
//! still matches can only end by its timeout.

use std::time::Duration;

use super::time::read_timespec;
use super::{Errno, Kernel, SysResult, abi};
use crate::mm::GuestMemory;

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_CMD_MASK: u64 = 0x7f;
const FUTEX_CLOCK_REALTIME: u64 = 256;

impl Kernel {
    /// `futex(uaddr, op, val, timeout)`.
    pub(super) fn futex(
        &mut self,
        memory: &GuestMemory,
        uaddr: u64,
        op: u64,
        value: u64,
        timeout: u64,
    ) -> SysResult {
        if uaddr % 4 != 0 {
            return Err(Errno(libc::EINVAL));
        }
        match op & FUTEX_CMD_MASK {
            FUTEX_WAKE | FUTEX_WAKE_BITSET => {
                memory.validate(uaddr, 4)?;
                Ok(0)
            }
            command @ (FUTEX_WAIT | FUTEX_WAIT_BITSET) => {
                let current: u32 = memory.read_obj(uaddr)?;
                if current != abi::uint(value) {
                    return Err(Errno(libc::EAGAIN));
                }
                let limit = if timeout == 0 {
                    None
                } else {
                    let given = read_timespec(memory, timeout)?;
                    if command == FUTEX_WAIT_BITSET {
                        // An absolute time on the chosen clock, as of the first attempt.
                        let clock = if op & FUTEX_CLOCK_REALTIME != 0 { 0 } else { 1 };
                        let waited = self.blocked_since.map_or(Duration::ZERO, |s| s.elapsed());
                        Some(given.saturating_sub(self.clock.now(clock)?.saturating_sub(waited)))
                    } else {
                        Some(given)
                    }
                };
                // No other thread can change the word: only the timeout ends the wait.
                self.wait(limit)?;
                Err(Errno(libc::ETIMEDOUT))
            }
            _ => Err(Errno(libc::ENOSYS)),
        }
    }
}
