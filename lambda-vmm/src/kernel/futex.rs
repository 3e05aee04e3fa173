//! `futex` for a program with one thread: waking finds no waiter, and a wait whose value
//! still matches can only end by its timeout (or the invocation's deadline).

use std::time::{Duration, Instant};

use super::{Errno, SysResult};
use crate::vm::GuestMemory;

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_CMD_MASK: u64 = 0x7f;

/// `futex(uaddr, op, val, timeout)`.
pub fn futex(
    memory: &GuestMemory,
    deadline: Instant,
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
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let current: u32 = memory.read_obj(uaddr)?;
            if current != value as u32 {
                return Err(Errno(libc::EAGAIN));
            }
            // No other thread can change the word: sleep out the timeout (relative for
            // FUTEX_WAIT; an absolute one is treated as already relative-or-passed).
            let wait = if timeout == 0 {
                deadline.saturating_duration_since(Instant::now())
            } else {
                let secs: i64 = memory.read_obj(timeout)?;
                let nanos: i64 = memory.read_obj(timeout + 8)?;
                if secs < 0 || !(0..1_000_000_000).contains(&nanos) {
                    return Err(Errno(libc::EINVAL));
                }
                if op & FUTEX_CMD_MASK == FUTEX_WAIT_BITSET {
                    Duration::ZERO
                } else {
                    Duration::new(secs as u64, nanos as u32)
                }
            };
            let until = (Instant::now() + wait).min(deadline);
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            Err(Errno(libc::ETIMEDOUT))
        }
        _ => Err(Errno(libc::ENOSYS)),
    }
}
