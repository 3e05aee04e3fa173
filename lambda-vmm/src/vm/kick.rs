//! Stopping a running vCPU from another thread, for timeouts, time slices and the other vCPUs
//! of a machine.
//!
//! A guest spinning at CPL3 never exits on its own. The watchdog thread sends the vCPU's
//! thread a real-time signal at the deadline; the handler sets `kvm_run.immediate_exit`, so
//! `KVM_RUN` returns `EINTR` (now, or at its next entry if the thread was in the VMM). The run
//! loop then sees the deadline has passed. A panic kicking one thread is caught, and the
//! watchdog goes on watching the others. A machine's vCPU threads kick each other the same
//! way through [`VcpuThread`].

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

use crate::sync::{catch_panic, lock, wait, wait_timeout};
use kvm_bindings::kvm_run;

thread_local! {
    /// The `kvm_run` of the vCPU this thread is running, or null.
    static RUNNING_VCPU: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
    /// Whether this thread has unblocked the kick signal (a thread's mask is its own, and
    /// nothing in this crate blocks the signal again).
    static KICK_UNBLOCKED: Cell<bool> = const { Cell::new(false) };
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let run = RUNNING_VCPU.with(Cell::get);
    if !run.is_null() {
        // SAFETY: the pointer is set by `RunningVcpu::enter` on this very thread to the
        // vCPU's mmapped kvm_run and cleared by its drop before the mapping can go away; a
        // volatile byte store is async-signal-safe.
        unsafe { std::ptr::write_volatile(&raw mut (*run).immediate_exit, 1) };
    }
}

fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

/// Why a vCPU's thread cannot be kicked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KickError {
    /// The signal handler could not be installed.
    #[error("cannot install the vCPU kick signal handler")]
    Handler(#[source] vmm_sys_util::errno::Error),
    /// The thread could not unblock the kick signal.
    #[error("cannot unblock the vCPU kick signal on this thread")]
    Unblock(#[source] vmm_sys_util::errno::Error),
}

fn install_handler() -> Result<(), KickError> {
    static INSTALLED: OnceLock<Result<(), KickError>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            vmm_sys_util::signal::register_signal_handler(kick_signal(), kick_handler)
                .map_err(KickError::Handler)
        })
        .clone()
}

/// The errno inside a signal-mask failure (vmm-sys-util's signal errors carry one but do not
/// implement `Error`).
fn signal_errno(error: vmm_sys_util::signal::Error) -> vmm_sys_util::errno::Error {
    use vmm_sys_util::signal::Error;
    match error {
        Error::CreateSigset(e)
        | Error::CompareBlockedSignals(e)
        | Error::BlockSignal(e)
        | Error::UnblockSignal(e)
        | Error::ClearWaitPending(e)
        | Error::ClearGetPending(e)
        | Error::ClearCheckPending(e) => e,
        Error::RetrieveSignalMask(errno) => vmm_sys_util::errno::Error::new(errno),
        Error::SignalAlreadyBlocked(_) => vmm_sys_util::errno::Error::new(libc::EINVAL),
    }
}

/// Marks this thread as running a vCPU for the lifetime of the guard, so a kick reaches it.
pub struct RunningVcpu {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl RunningVcpu {
    /// Registers `run` as this thread's vCPU and makes sure the kick signal is deliverable.
    pub fn enter(run: *mut kvm_run) -> Result<RunningVcpu, KickError> {
        install_handler()?;
        if !KICK_UNBLOCKED.with(Cell::get) {
            vmm_sys_util::signal::unblock_signal(kick_signal())
                .map_err(|e| KickError::Unblock(signal_errno(e)))?;
            KICK_UNBLOCKED.with(|cell| cell.set(true));
        }
        RUNNING_VCPU.with(|cell| cell.set(run));
        Ok(RunningVcpu {
            _not_send: std::marker::PhantomData,
        })
    }
}

impl Drop for RunningVcpu {
    fn drop(&mut self) {
        RUNNING_VCPU.with(|cell| cell.set(std::ptr::null_mut()));
    }
}

/// A thread that runs a vCPU, to be kicked by another thread.
#[derive(Debug, Clone, Copy)]
pub struct VcpuThread {
    thread: libc::pthread_t,
}

impl VcpuThread {
    /// The calling thread, with the kick's handler installed (so a kick never meets the
    /// signal's default action).
    pub fn current() -> Result<VcpuThread, KickError> {
        install_handler()?;
        Ok(VcpuThread::this())
    }

    /// The calling thread, for the watchdog. The handler is installed here too (once per
    /// process, cheap after that); if that fails, `RunningVcpu::enter` fails before any vCPU
    /// runs, and no deadline is armed for long.
    fn this() -> VcpuThread {
        let _ = install_handler();
        VcpuThread {
            // SAFETY: pthread_self has no preconditions.
            thread: unsafe { libc::pthread_self() },
        }
    }

    /// Kicks the thread out of `KVM_RUN` (or makes its next `KVM_RUN` return at once). The
    /// caller must know the thread is alive: a machine's vCPU threads are registered and
    /// unregistered under the machine's lock, and kick each other only under it; the watchdog
    /// kicks a deadline's thread under the lock its `Deadline::drop` takes.
    pub fn kick(&self) {
        // SAFETY: pthread_kill on a live thread id (the caller's duty, above) with a valid
        // signal number, whose handler (installed when the `VcpuThread` was made) only stores a
        // byte.
        unsafe { libc::pthread_kill(self.thread, kick_signal()) };
    }
}

struct Watch {
    thread: VcpuThread,
    /// Tests: kicking this watch panics.
    #[cfg(test)]
    panics: bool,
}

impl Watch {
    /// A watch on the calling thread.
    fn this_thread() -> Watch {
        Watch {
            thread: VcpuThread::this(),
            #[cfg(test)]
            panics: false,
        }
    }

    /// Sends the kick signal to the watched thread.
    fn kick(&self) {
        #[cfg(test)]
        if self.panics {
            panic!("test: kicking a vCPU thread panics");
        }
        self.thread.kick();
    }
}

#[derive(Default)]
struct Deadlines {
    next_id: u64,
    watches: BTreeMap<(Instant, u64), Watch>,
    /// When the watchdog thread will look again (`None`: it waits for a notification).
    next_look: Option<Instant>,
}

/// The process-wide watchdog: one thread that kicks vCPUs whose deadline has passed.
struct Watchdog {
    state: Mutex<Deadlines>,
    changed: Condvar,
}

fn watchdog() -> &'static Arc<Watchdog> {
    static WATCHDOG: OnceLock<Arc<Watchdog>> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        let watchdog = Arc::new(Watchdog {
            state: Mutex::new(Deadlines::default()),
            changed: Condvar::new(),
        });
        let worker = Arc::clone(&watchdog);
        std::thread::Builder::new()
            .name("lambda-vmm-watchdog".into())
            .spawn(move || worker.run())
            .expect("spawn the vCPU watchdog thread");
        watchdog
    })
}

impl Watchdog {
    fn run(&self) {
        let mut state = lock(&self.state);
        loop {
            let now = Instant::now();
            let next = state.watches.keys().next().copied();
            match next {
                Some(key) if key.0 <= now => {
                    let watch = state.watches.remove(&key).expect("key just seen");
                    // The entry is removed under the lock that `Deadline::drop` takes, so the
                    // thread is still inside the guarded run and alive. A panic is caught with
                    // the guard still held (not dropped while unwinding): no lock is poisoned.
                    let _ = catch_panic(|| watch.kick());
                }
                Some(key) => {
                    state.next_look = Some(key.0);
                    state = wait_timeout(&self.changed, state, key.0 - now);
                }
                None => {
                    state.next_look = None;
                    state = wait(&self.changed, state);
                }
            }
        }
    }
}

/// A deadline for the calling thread's vCPU; the watchdog kicks the thread once it passes.
/// Dropping it cancels the kick.
pub struct Deadline {
    key: (Instant, u64),
    // The kick targets the arming thread, so the guard must stay on it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Deadline {
    /// Arms a kick of the calling thread at `at`.
    pub fn arm(at: Instant) -> Deadline {
        Deadline::arm_watch(at, Watch::this_thread())
    }

    fn arm_watch(at: Instant, watch: Watch) -> Deadline {
        let watchdog = watchdog();
        let mut state = lock(&watchdog.state);
        state.next_id += 1;
        let key = (at, state.next_id);
        state.watches.insert(key, watch);
        // Wake the watchdog only if it would look too late: a cancelled deadline is simply
        // found gone when it looks, so most invocations cost it nothing.
        let must_wake = state.next_look.is_none_or(|look| at < look);
        if must_wake {
            state.next_look = Some(at);
        }
        drop(state);
        if must_wake {
            watchdog.changed.notify_one();
        }
        Deadline {
            key,
            _not_send: std::marker::PhantomData,
        }
    }

    /// When the deadline falls.
    pub fn at(&self) -> Instant {
        self.key.0
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        let watchdog = watchdog();
        let mut state = lock(&watchdog.state);
        state.watches.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_watchdog_survives_a_panicking_kick_and_kicks_the_next_deadline() {
        // A kvm_run of our own: the kick handler sets its immediate_exit, no KVM needed.
        // SAFETY: kvm_run is plain data, for which all-zero bytes are a valid value.
        let mut run: kvm_run = unsafe { std::mem::zeroed() };
        let running = RunningVcpu::enter(&raw mut run).expect("the kick can reach this thread");
        let now = Instant::now();
        let panicking = Deadline::arm_watch(
            now,
            Watch {
                panics: true,
                ..Watch::this_thread()
            },
        );
        let kicked = Deadline::arm(now + Duration::from_millis(1));
        let waited_until = Instant::now() + Duration::from_secs(60);
        // SAFETY: `run` lives on this frame; the handler writes the byte on this thread.
        while unsafe { std::ptr::read_volatile(&raw const run.immediate_exit) } == 0 {
            assert!(
                Instant::now() < waited_until,
                "the watchdog kicked the deadline after the panicking one"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop((kicked, panicking, running));
    }
}
