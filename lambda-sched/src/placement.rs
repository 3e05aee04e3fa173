//! Placement: which worker gets a new environment.
//!
//! Warm environments are always preferred (the worker manager looks for an idle one before it
//! asks for placement at all); placement only decides where a *new* environment goes. The
//! policy is pluggable: [`BestFit`] (the default) packs environments by memory onto the worker
//! with the least room that still fits, keeping large holes free for large functions;
//! [`LeastLoaded`] spreads them instead.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ids::WorkerId;
use crate::sync::lock;
use crate::worker::{Worker, WorkerInfo, WorkerSpec, WorkerState};

/// A worker as a placement policy sees it: only active workers with room are offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerView {
    /// The worker.
    pub id: WorkerId,
    /// Its capacity in MB.
    pub capacity_mb: u64,
    /// Memory not yet taken, in MB (at least the request).
    pub free_mb: u64,
    /// Environments on it.
    pub environments: u64,
}

/// Chooses a worker for a new environment.
pub trait PlacementPolicy: Send + Sync + fmt::Debug {
    /// A short name for logs.
    fn name(&self) -> &str;

    /// Picks one of `candidates` (all active, all with room for `memory_mb`), or `None` to
    /// refuse.
    fn choose(&self, memory_mb: u64, candidates: &[WorkerView]) -> Option<WorkerId>;
}

/// Best fit by memory: the worker whose free memory is smallest among those that fit
/// (ties go to the lower id).
#[derive(Debug, Clone, Copy, Default)]
pub struct BestFit;

impl PlacementPolicy for BestFit {
    fn name(&self) -> &str {
        "best-fit"
    }

    fn choose(&self, _memory_mb: u64, candidates: &[WorkerView]) -> Option<WorkerId> {
        candidates
            .iter()
            .min_by_key(|w| (w.free_mb, w.id))
            .map(|w| w.id)
    }
}

/// Spreads environments: the worker with the most free memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastLoaded;

impl PlacementPolicy for LeastLoaded {
    fn name(&self) -> &str {
        "least-loaded"
    }

    fn choose(&self, _memory_mb: u64, candidates: &[WorkerView]) -> Option<WorkerId> {
        candidates
            .iter()
            .max_by_key(|w| (w.free_mb, std::cmp::Reverse(w.id)))
            .map(|w| w.id)
    }
}

/// The placement service: the fleet of workers and the policy.
#[derive(Debug)]
pub(crate) struct Placement {
    policy: Arc<dyn PlacementPolicy>,
    fleet: Mutex<Fleet>,
}

#[derive(Debug)]
struct Fleet {
    workers: Vec<Arc<Worker>>,
    next_id: u64,
}

impl Placement {
    pub(crate) fn new(policy: Arc<dyn PlacementPolicy>) -> Self {
        Placement {
            policy,
            fleet: Mutex::new(Fleet {
                workers: Vec::new(),
                next_id: 1,
            }),
        }
    }

    fn fleet(&self) -> std::sync::MutexGuard<'_, Fleet> {
        lock(&self.fleet)
    }

    pub(crate) fn add_worker(&self, spec: WorkerSpec, now: Duration) -> WorkerId {
        let mut fleet = self.fleet();
        let id = WorkerId(fleet.next_id);
        fleet.next_id += 1;
        fleet.workers.push(Arc::new(Worker::new(id, spec, now)));
        id
    }

    /// Reserves `memory_mb` on a worker chosen by the policy.
    pub(crate) fn reserve(&self, memory_mb: u64) -> Option<Arc<Worker>> {
        let fleet = self.fleet();
        let candidates: Vec<WorkerView> = fleet
            .workers
            .iter()
            .filter(|w| w.is_active() && w.free_mb() >= memory_mb)
            .map(|w| WorkerView {
                id: w.id,
                capacity_mb: w.spec.capacity_mb,
                free_mb: w.free_mb(),
                environments: w.environments(),
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let chosen = self.policy.choose(memory_mb, &candidates)?;
        let worker = fleet
            .workers
            .iter()
            .find(|w| w.id == chosen && w.is_active() && w.free_mb() >= memory_mb)?
            .clone();
        worker.take(memory_mb);
        Some(worker)
    }

    /// Marks a worker failed.
    pub(crate) fn fail(&self, id: WorkerId) -> Option<Arc<Worker>> {
        let fleet = self.fleet();
        let worker = fleet.workers.iter().find(|w| w.id == id)?.clone();
        worker.set_state(WorkerState::Failed);
        Some(worker)
    }

    /// Starts draining every active worker whose lease has ended and adds a replacement for
    /// each; returns the workers that started draining.
    pub(crate) fn expire_leases(&self, now: Duration) -> Vec<Arc<Worker>> {
        let mut fleet = self.fleet();
        let expired: Vec<Arc<Worker>> = fleet
            .workers
            .iter()
            .filter(|w| w.is_active() && w.lease_expires_at <= now)
            .cloned()
            .collect();
        for worker in &expired {
            worker.set_state(WorkerState::Draining);
            let id = WorkerId(fleet.next_id);
            fleet.next_id += 1;
            fleet
                .workers
                .push(Arc::new(Worker::new(id, worker.spec, now)));
        }
        expired
    }

    /// Removes drained and failed workers that hold no environment any more.
    pub(crate) fn remove_empty(&self) {
        let mut fleet = self.fleet();
        fleet.workers.retain(|w| {
            let gone = matches!(w.state(), WorkerState::Draining | WorkerState::Failed)
                && w.environments() == 0;
            if gone && w.state() == WorkerState::Draining {
                w.set_state(WorkerState::Retired);
            }
            !gone
        });
    }

    pub(crate) fn workers(&self) -> Vec<WorkerInfo> {
        self.fleet().workers.iter().map(|w| w.info()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(capacity_mb: u64) -> WorkerSpec {
        WorkerSpec {
            capacity_mb,
            lease: Duration::from_secs(100),
        }
    }

    #[test]
    fn best_fit_packs_and_least_loaded_spreads() {
        let packing = Placement::new(Arc::new(BestFit));
        let a = packing.add_worker(spec(1024), Duration::ZERO);
        let b = packing.add_worker(spec(512), Duration::ZERO);
        // 256 fits both; b has the smaller hole.
        assert_eq!(packing.reserve(256).unwrap().id, b);
        assert_eq!(packing.reserve(256).unwrap().id, b);
        // b is full now.
        assert_eq!(packing.reserve(256).unwrap().id, a);
        assert_eq!(packing.reserve(768).unwrap().id, a);
        assert!(packing.reserve(128).is_none());

        let spreading = Placement::new(Arc::new(LeastLoaded));
        let a = spreading.add_worker(spec(1024), Duration::ZERO);
        let b = spreading.add_worker(spec(1024), Duration::ZERO);
        assert_eq!(spreading.reserve(128).unwrap().id, a);
        assert_eq!(spreading.reserve(128).unwrap().id, b);
    }

    #[test]
    fn leases_drain_and_replace_workers() {
        let placement = Placement::new(Arc::new(BestFit));
        let first = placement.add_worker(spec(1024), Duration::ZERO);
        let held = placement.reserve(128).unwrap();
        assert!(placement.expire_leases(Duration::from_secs(99)).is_empty());
        let drained = placement.expire_leases(Duration::from_secs(100));
        assert_eq!(drained.len(), 1);
        assert_eq!(drained[0].id, first);
        // New environments go to the replacement only.
        let next = placement.reserve(128).unwrap();
        assert_ne!(next.id, first);
        placement.remove_empty();
        assert_eq!(
            placement.workers().len(),
            2,
            "the drained worker still has one"
        );
        held.give_back(128);
        placement.remove_empty();
        let workers = placement.workers();
        assert_eq!(workers.len(), 1);
        assert_eq!(held.state(), WorkerState::Retired);
        let failed = placement.fail(next.id).unwrap();
        assert_eq!(failed.state(), WorkerState::Failed);
        assert!(placement.reserve(128).is_none());
    }
}
