//! Locks and jobs that survive a panic.
//!
//! A thread that panics while holding a lock poisons it. The service does not let one panic
//! spread to every thread that takes the lock afterwards: every lock in this crate is taken
//! with these helpers, which recover the guard from a poisoned lock. [`catch_panic`] runs one
//! call (into a backend, say) and turns its panic into a value; [`catch_job`] runs one job of
//! a thread (a maintenance pass, an async event) and counts its panic, so that the thread
//! goes on.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Runs `job`; a panic inside it is caught and given back as its payload (read it with
/// [`lambda_core::panic_message`]).
///
/// The job is asserted unwind-safe: what it leaves behind after a panic is either recovered
/// by the caller (which knows what the job touched) or behind the poison-recovering locks.
pub(crate) fn catch_panic<T>(job: impl FnOnce() -> T) -> Result<T, Box<dyn Any + Send>> {
    catch_unwind(AssertUnwindSafe(job))
}

/// Runs one job of a thread that must go on (a maintenance pass, an async event, an
/// event-source step): a panic is caught and counted in `panics`, and gives `None`.
pub(crate) fn catch_job<T>(panics: &AtomicU64, job: impl FnOnce() -> T) -> Option<T> {
    catch_panic(job)
        .map_err(|_| panics.fetch_add(1, Ordering::Relaxed))
        .ok()
}

/// Locks `mutex`, recovering the guard if a panicking thread poisoned it.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `lock`, recovering the guard if a panicking thread poisoned it.
pub(crate) fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `lock`, recovering the guard if a panicking thread poisoned it.
pub(crate) fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_gives_its_guard() {
        let mutex = Mutex::new(1);
        let rw = RwLock::new(2);
        let _ = std::thread::scope(|s| {
            s.spawn(|| {
                let _m = mutex.lock().unwrap();
                let _w = rw.write().unwrap();
                panic!("poison both");
            })
            .join()
        });
        assert!(mutex.is_poisoned() && rw.is_poisoned());
        *lock(&mutex) += 1;
        assert_eq!(*lock(&mutex), 2);
        *write(&rw) += 1;
        assert_eq!(*read(&rw), 3);
    }

    #[test]
    fn a_caught_panic_gives_its_text_and_the_thread_goes_on() {
        assert_eq!(catch_panic(|| 5).ok(), Some(5));
        let mut touched = false;
        let caught = catch_panic(|| {
            touched = true;
            panic!("job {} failed", 3)
        });
        let payload = caught.expect_err("the job panicked");
        assert_eq!(lambda_core::panic_message(&*payload), "job 3 failed");
        assert!(touched);
        let panics = AtomicU64::new(0);
        assert_eq!(catch_job(&panics, || 1), Some(1));
        assert_eq!(catch_job(&panics, || -> u8 { panic!("again") }), None);
        assert_eq!(panics.load(Ordering::Relaxed), 1);
    }
}
