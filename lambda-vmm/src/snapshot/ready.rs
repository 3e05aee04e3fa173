//! Machines restored from a snapshot ahead of time, by a background thread, with the
//! snapshot's stored pages copied into each and the pages a restored run touches touched
//! already ([`Snapshot::keep_restored`](super::Snapshot), `machine/warm.rs`): an environment
//! restored from the snapshot then starts from one of these, and skips both the restore and
//! its first touches of memory.
//!
//! The trade: a machine from this stock holds a private copy of every page the snapshot
//! stored (1.3-1.6 MiB for the test programs) instead of sharing them (`docs/snapshots.md`).
//! Keep a few for latency; restore plainly for density.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use lambda_core::logs::{DEFAULT_LOG_CAPACITY, LogCollector};

use super::Frozen;
use crate::machine::{Machine, MachineOptions};
use crate::sync::{catch_panic, lock, wait, wait_timeout};

/// The stock of one snapshot.
#[derive(Default)]
struct Stock {
    /// Machines ready to run.
    ready: Vec<Machine>,
    /// How many to keep ready.
    wanted: usize,
    /// Restoring failed (or panicked): the thread stopped; takes restore on the spot.
    failed: bool,
    /// The thread is running.
    started: bool,
}

/// Machines restored ahead from one snapshot, and the thread that keeps them stocked.
#[derive(Default)]
pub(crate) struct ReadyStock {
    stock: Mutex<Stock>,
    /// Signalled when a machine is taken or the wanted count changes.
    taken: Condvar,
    /// Signalled when the thread has stocked a machine or stopped.
    stocked: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl ReadyStock {
    /// Keeps `count` machines restored ahead from `frozen` (0 stops and drops them).
    pub fn keep(frozen: &Arc<Frozen>, count: usize) {
        let ready = &frozen.ready;
        let mut stock = lock(&ready.stock);
        stock.wanted = count;
        stock.ready.truncate(count);
        if count > 0 && !stock.started && !stock.failed {
            stock.started = true;
            let weak = Arc::downgrade(frozen);
            let thread = std::thread::Builder::new()
                .name("lambda-vmm-restore".into())
                .spawn(move || restore_ahead(&weak));
            match thread {
                Ok(thread) => *lock(&ready.thread) = Some(thread),
                Err(_) => {
                    stock.started = false;
                    stock.failed = true;
                }
            }
        }
        ready.taken.notify_all();
    }

    /// A machine restored ahead, if one is ready (the thread then restores another).
    pub fn take(&self) -> Option<Machine> {
        let machine = lock(&self.stock).ready.pop();
        if machine.is_some() {
            self.taken.notify_all();
        }
        machine
    }

    /// How many machines are ready now.
    pub fn ready(&self) -> usize {
        lock(&self.stock).ready.len()
    }

    /// Blocks until as many machines are ready as are wanted, or the thread has stopped;
    /// returns how many are ready.
    pub fn wait_stocked(&self) -> usize {
        let mut stock = lock(&self.stock);
        while stock.ready.len() < stock.wanted && stock.started && !stock.failed {
            stock = wait(&self.stocked, stock);
        }
        stock.ready.len()
    }
}

impl Drop for ReadyStock {
    fn drop(&mut self) {
        // The thread holds only a weak reference; it sees the snapshot gone and ends.
        lock(&self.stock).wanted = 0;
        self.taken.notify_all();
        if let Some(thread) = lock(&self.thread).take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

/// How long the thread waits for a take before it looks again whether the snapshot is
/// still there (it holds it only while it looks).
const RECHECK: Duration = Duration::from_millis(100);

/// The thread: restores machines from the snapshot while fewer than wanted are ready;
/// ends when the snapshot is dropped, nothing more is wanted, or a restore fails.
fn restore_ahead(frozen: &Weak<Frozen>) {
    loop {
        let Some(strong) = frozen.upgrade() else {
            return;
        };
        let ready = &strong.ready;
        {
            let stock = lock(&ready.stock);
            if stock.wanted == 0 {
                let mut stock = stock;
                stock.started = false;
                ready.stocked.notify_all();
                return;
            }
            if stock.ready.len() >= stock.wanted {
                drop(wait_timeout(&ready.taken, stock, RECHECK));
                continue;
            }
        }
        let restored = catch_panic(|| restore_one(&strong)).ok().flatten();
        let mut stock = lock(&ready.stock);
        match restored {
            Some(machine) => {
                if stock.ready.len() < stock.wanted {
                    stock.ready.push(machine);
                }
            }
            None => {
                stock.failed = true;
                stock.started = false;
                ready.stocked.notify_all();
                return;
            }
        }
        ready.stocked.notify_all();
    }
}

/// One machine restored from `frozen`, its stored pages copied in and warmed with the pages
/// an earlier restored machine's first run touched (`machine/warm.rs`). Until a restored
/// machine has told which pages those are, the machine is left as restored (nothing copied
/// in), so that its own first run can tell.
fn restore_one(frozen: &Frozen) -> Option<Machine> {
    let mut machine = Machine::restore(
        &frozen.machine,
        &frozen.config,
        &MachineOptions::default(),
        LogCollector::new(DEFAULT_LOG_CAPACITY),
    )
    .ok()?;
    if let Some(lesson) = frozen.lesson.get() {
        machine.populate_restored(&frozen.machine);
        machine.warm(&lesson.pages).ok()?;
    }
    Some(machine)
}
