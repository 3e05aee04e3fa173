//! The state an environment's threads share: the Runtime API machine, its connections and the
//! log being collected, behind one lock with one condition variable. Every thread that changes
//! it notifies; the invoking thread and parked connections wait on it.

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::sync::{lock, wait, wait_timeout};
use lambda_core::logs::LogCollector;
use lambda_core::runtime_api::{ConnectionId, RuntimeApi};

/// The shared state of one Runtime API environment.
pub(super) struct Hub {
    state: Mutex<HubState>,
    changed: Condvar,
}

/// What [`Hub`] guards.
pub(super) struct HubState {
    /// The Runtime API of the current process of the environment.
    pub(super) api: RuntimeApi,
    /// Bumped when the process is replaced: connections of an older generation close.
    pub(super) generation: u64,
    /// Set when the environment shuts down: every thread ends.
    pub(super) shutdown: bool,
    /// A clone of each open connection of the current generation, to shut it down.
    pub(super) streams: HashMap<ConnectionId, TcpStream>,
    /// Where the function's output goes now.
    pub(super) log: LogCollector,
    /// Flush markers seen in the function's output streams so far.
    pub(super) markers_seen: u64,
}

impl Hub {
    /// A hub around `api` and an empty log.
    pub(super) fn new(api: RuntimeApi, log: LogCollector) -> Hub {
        Hub {
            state: Mutex::new(HubState {
                api,
                generation: 0,
                shutdown: false,
                streams: HashMap::new(),
                log,
                markers_seen: 0,
            }),
            changed: Condvar::new(),
        }
    }

    /// Locks the state. A thread that panicked while holding the lock leaves consistent
    /// enough state (every update is a single step), so poisoning is ignored.
    pub(super) fn lock(&self) -> MutexGuard<'_, HubState> {
        lock(&self.state)
    }

    /// Wakes every waiter.
    pub(super) fn notify(&self) {
        self.changed.notify_all();
    }

    /// Waits for a change, at most until `deadline`.
    pub(super) fn wait_until<'a>(
        &self,
        guard: MutexGuard<'a, HubState>,
        deadline: Instant,
    ) -> MutexGuard<'a, HubState> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        wait_timeout(&self.changed, guard, timeout)
    }

    /// Waits for a change, without a time limit.
    pub(super) fn wait<'a>(&self, guard: MutexGuard<'a, HubState>) -> MutexGuard<'a, HubState> {
        wait(&self.changed, guard)
    }
}

impl HubState {
    /// Shuts down every open connection (their threads then end) and forgets them.
    pub(super) fn close_streams(&mut self) {
        for (_, stream) in self.streams.drain() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}
