//! Locks and jobs that outlive a panic: a thread that panicked while holding one of the
//! crate's locks leaves data that is still consistent (every critical section here leaves it
//! so before it can panic), so a poisoned lock is taken as it is rather than spreading the
//! panic; and a background thread runs each job through [`catch_panic`], so one job's panic
//! does not stop the thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Runs `job`; a panic inside it is caught and given back as its payload (read it with
/// [`lambda_core::panic_message`]). The job is asserted unwind-safe: its callers own what it
/// touches and throw that away (a VM, an environment's machine) or keep it behind these locks.
pub(crate) fn catch_panic<T>(job: impl FnOnce() -> T) -> std::thread::Result<T> {
    catch_unwind(AssertUnwindSafe(job))
}

/// Locks `mutex`, poisoned or not.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `condvar`, poisoned or not.
pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `condvar` for at most `timeout`, poisoned or not.
pub(crate) fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    condvar
        .wait_timeout(guard, timeout)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}
