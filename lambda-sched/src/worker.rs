//! A worker: a host's memory capacity, its lease, and the environments placed on it.
//!
//! A worker is `Active` until its lease expires; then it is `Draining` (no new environments;
//! running invocations finish, idle environments are shut down) and, once empty, `Retired`
//! and replaced. A worker that fails is `Failed`: its environments are lost with it.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use crate::ids::WorkerId;

/// A worker's life stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Takes new environments.
    Active,
    /// Lease expired: takes no new environments; removed once empty.
    Draining,
    /// Failed: its environments are gone.
    Failed,
    /// Drained and removed.
    Retired,
}

impl WorkerState {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => WorkerState::Active,
            1 => WorkerState::Draining,
            2 => WorkerState::Failed,
            _ => WorkerState::Retired,
        }
    }
}

/// How to make a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSpec {
    /// Memory available to environments, in MB.
    pub capacity_mb: u64,
    /// How long the worker takes new environments before it is drained and replaced.
    pub lease: Duration,
}

impl Default for WorkerSpec {
    /// 128 GiB (room for the default account concurrency of 1,000 at 128 MB) and a 12-hour
    /// lease.
    fn default() -> Self {
        WorkerSpec {
            capacity_mb: 128 * 1024,
            lease: Duration::from_secs(12 * 3600),
        }
    }
}

/// What a worker looks like now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerInfo {
    /// The worker's id.
    pub id: WorkerId,
    /// Its life stage.
    pub state: WorkerState,
    /// Memory available to environments, in MB.
    pub capacity_mb: u64,
    /// Memory held by its environments, in MB.
    pub used_mb: u64,
    /// Environments on it (idle or busy).
    pub environments: u64,
    /// When its lease ends.
    pub lease_expires_at: Duration,
}

/// A worker as the placement service and the environments on it share it.
#[derive(Debug)]
pub(crate) struct Worker {
    pub id: WorkerId,
    pub spec: WorkerSpec,
    pub lease_expires_at: Duration,
    used_mb: AtomicU64,
    environments: AtomicU64,
    state: AtomicU8,
}

impl Worker {
    pub(crate) fn new(id: WorkerId, spec: WorkerSpec, now: Duration) -> Self {
        Worker {
            id,
            spec,
            lease_expires_at: now.saturating_add(spec.lease),
            used_mb: AtomicU64::new(0),
            environments: AtomicU64::new(0),
            state: AtomicU8::new(0),
        }
    }

    pub(crate) fn state(&self) -> WorkerState {
        WorkerState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn set_state(&self, state: WorkerState) {
        let value = match state {
            WorkerState::Active => 0,
            WorkerState::Draining => 1,
            WorkerState::Failed => 2,
            WorkerState::Retired => 3,
        };
        self.state.store(value, Ordering::Release);
    }

    pub(crate) fn is_active(&self) -> bool {
        self.state() == WorkerState::Active
    }

    pub(crate) fn free_mb(&self) -> u64 {
        self.spec
            .capacity_mb
            .saturating_sub(self.used_mb.load(Ordering::Acquire))
    }

    pub(crate) fn environments(&self) -> u64 {
        self.environments.load(Ordering::Acquire)
    }

    /// Takes `memory_mb` for a new environment. Called by the placement service only, under
    /// its lock, after checking that it fits.
    pub(crate) fn take(&self, memory_mb: u64) {
        self.used_mb.fetch_add(memory_mb, Ordering::AcqRel);
        self.environments.fetch_add(1, Ordering::AcqRel);
    }

    /// Gives back what [`Worker::take`] took.
    pub(crate) fn give_back(&self, memory_mb: u64) {
        self.used_mb.fetch_sub(memory_mb, Ordering::AcqRel);
        self.environments.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn info(&self) -> WorkerInfo {
        WorkerInfo {
            id: self.id,
            state: self.state(),
            capacity_mb: self.spec.capacity_mb,
            used_mb: self.used_mb.load(Ordering::Acquire),
            environments: self.environments(),
            lease_expires_at: self.lease_expires_at,
        }
    }
}
