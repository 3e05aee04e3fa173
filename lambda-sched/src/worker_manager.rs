//! The worker manager: idle and busy environments, warm routing, keep-alive and provisioned
//! concurrency.
//!
//! Environments are grouped in pools, one per function version ([`PoolId`]). An invocation
//! takes an environment out of its pool (a provisioned one first, then the most recently used
//! idle one, and only if there is none a new one), owns it while it runs, and gives it back:
//! one invocation at a time per environment holds by construction. Idle environments carry
//! the expiry the keep-alive policy gave them; expired ones are never handed out and are shut
//! down by the maintenance pass ([`crate::Service::run_pending`] or the background thread).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use lambda_core::{Backend, EnvironmentError, FunctionConfig};

use crate::boundary::{BackendBoundary, CreateFailure, Environment};
use crate::control_plane::{FunctionEntry, VersionRecord};
use crate::error::{Error, Result, ThrottleReason};
use crate::ids::{PoolId, WorkerId};
use crate::keep_alive::KeepAlivePolicy;
use crate::metrics::ServiceCounters;
use crate::placement::Placement;
use crate::sync::{lock, read, write};
use crate::worker::{Worker, WorkerState};

/// How an invocation got its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartKind {
    /// A new environment was created for it (a cold start, Init included).
    Cold,
    /// An idle on-demand environment served it.
    Warm,
    /// A provisioned environment served it.
    Provisioned,
}

/// An environment and what the manager knows about it.
pub(crate) struct ManagedEnv {
    /// The backend's environment, behind the panic boundary.
    pub env: Environment,
    pub worker: Arc<Worker>,
    pub memory_mb: u64,
    pub provisioned: bool,
    /// Its last invocation reset it: the next one runs Init again, a cold start.
    pub reset: bool,
}

impl std::fmt::Debug for ManagedEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedEnv")
            .field("worker", &self.worker.id)
            .field("memory_mb", &self.memory_mb)
            .field("provisioned", &self.provisioned)
            .finish()
    }
}

#[derive(Debug)]
struct IdleEnv {
    env: ManagedEnv,
    since: Duration,
    /// `None` for provisioned environments, which are kept until their target drops.
    expires_at: Option<Duration>,
}

#[derive(Debug, Default)]
struct PoolState {
    idle: Vec<IdleEnv>,
    provisioned_idle: Vec<IdleEnv>,
    busy: u64,
    busy_provisioned: u64,
    provisioned_target: u32,
    provisioned_creating: u32,
    retired: bool,
    /// Pre-warms the keep-alive policy asked for: create at `.0`, keep until `.1`.
    prewarms: Vec<(Duration, Duration)>,
}

impl PoolState {
    fn provisioned_alive(&self) -> u32 {
        (self.provisioned_idle.len() as u64 + self.busy_provisioned) as u32
    }
}

/// The environments of one function version.
#[derive(Debug)]
pub(crate) struct Pool {
    pub id: PoolId,
    pub version: Arc<VersionRecord>,
    state: Mutex<PoolState>,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        lock(&self.state)
    }
}

/// An environment taken out of its pool for one invocation.
#[derive(Debug)]
pub(crate) struct Lease {
    pub env: ManagedEnv,
    pub pool: Arc<Pool>,
    pub start: StartKind,
    /// The version has provisioned concurrency but this invocation did not get any.
    pub spillover: bool,
}

/// Why no environment could be had.
#[derive(Debug)]
pub(crate) enum AcquireError {
    /// A limit or a service failure: the request is refused.
    Refused(Error),
    /// The function's Init failed, its code cannot run, or the backend panicked creating its
    /// environment: an invocation error.
    Init(EnvironmentError),
}

/// Environment counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PoolTotals {
    pub idle: u64,
    pub busy: u64,
    pub provisioned_requested: u64,
    pub provisioned_allocated: u64,
    pub provisioned_busy: u64,
}

/// The worker manager.
pub(crate) struct WorkerManager {
    backend: BackendBoundary,
    keep_alive: Arc<dyn KeepAlivePolicy>,
    pub(crate) placement: Placement,
    pools: RwLock<HashMap<PoolId, Arc<Pool>>>,
    /// Pools retired so far: an invocation that resolved a version just before it was
    /// retired gets a pool that is born retired, so nothing it creates is kept.
    retired: Mutex<std::collections::HashSet<PoolId>>,
    counters: Arc<ServiceCounters>,
}

impl std::fmt::Debug for WorkerManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerManager")
            .field("backend", &self.backend)
            .field("keep_alive", &self.keep_alive)
            .field("placement", &self.placement)
            .finish_non_exhaustive()
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl WorkerManager {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        keep_alive: Arc<dyn KeepAlivePolicy>,
        placement: Placement,
        counters: Arc<ServiceCounters>,
    ) -> Self {
        WorkerManager {
            backend: BackendBoundary::new(backend, counters.clone()),
            keep_alive,
            placement,
            pools: RwLock::new(HashMap::new()),
            retired: Mutex::new(std::collections::HashSet::new()),
            counters,
        }
    }

    fn pool(&self, version: &Arc<VersionRecord>) -> Arc<Pool> {
        if let Some(pool) = read(&self.pools).get(&version.pool) {
            return pool.clone();
        }
        // The retired set is read and written under the pools' write lock, so a pool cannot
        // be re-created after it was retired.
        let mut pools = write(&self.pools);
        let retired = lock(&self.retired).contains(&version.pool);
        let fresh = || {
            Arc::new(Pool {
                id: version.pool,
                version: version.clone(),
                state: Mutex::new(PoolState {
                    retired,
                    ..PoolState::default()
                }),
            })
        };
        if retired {
            return fresh();
        }
        pools.entry(version.pool).or_insert_with(fresh).clone()
    }

    fn all_pools(&self) -> Vec<Arc<Pool>> {
        read(&self.pools).values().cloned().collect()
    }

    /// Counts idle memory-time for an on-demand environment leaving the idle state at `now`.
    fn leave_idle(&self, idle: &IdleEnv, now: Duration) {
        if idle.env.provisioned {
            return;
        }
        let until = idle.expires_at.map_or(now, |e| e.min(now));
        let millis = until.saturating_sub(idle.since).as_millis() as u64;
        add(
            &self.counters.idle_memory_mb_millis,
            millis.saturating_mul(idle.env.memory_mb),
        );
    }

    /// Shuts an environment down and gives its memory back to its worker. A panic in the
    /// backend's `shutdown` is swallowed at the boundary: the memory is back either way.
    pub(crate) fn shut_down(&self, env: ManagedEnv) {
        env.worker.give_back(env.memory_mb);
        env.env.shutdown();
        add(&self.counters.environments_shut_down, 1);
    }

    /// Creates an environment on a worker chosen by placement, evicting idle environments
    /// (least recently used first) when no worker has room. A failed creation (an error or
    /// a panic of the backend) gives the worker's memory back.
    fn create(
        &self,
        config: &FunctionConfig,
        provisioned: bool,
        now: Duration,
    ) -> std::result::Result<ManagedEnv, AcquireError> {
        let memory_mb = u64::from(config.memory_mb);
        let worker = loop {
            if let Some(worker) = self.placement.reserve(memory_mb) {
                break worker;
            }
            if !self.evict_least_recently_used(now) {
                return Err(AcquireError::Refused(Error::throttled(
                    ThrottleReason::WorkerCapacityExceeded,
                    Duration::from_secs(1),
                    format!(
                        "no worker has {memory_mb} MB free for a new environment of {:?}, and \
                         no idle environment is left to evict",
                        config.name
                    ),
                )));
            }
        };
        match self.backend.create(config) {
            Ok(env) => {
                add(&self.counters.environments_created, 1);
                Ok(ManagedEnv {
                    env,
                    worker,
                    memory_mb,
                    provisioned,
                    reset: false,
                })
            }
            Err(CreateFailure::Panicked(error)) => {
                worker.give_back(memory_mb);
                add(&self.counters.environment_create_failures, 1);
                // A bug of the backend's, not a condition that waiting cures: the invocation
                // fails with Sandbox.Failure, as when Init fails.
                Err(AcquireError::Init(error))
            }
            Err(CreateFailure::Returned(error)) => {
                worker.give_back(memory_mb);
                add(&self.counters.environment_create_failures, 1);
                Err(match error {
                    EnvironmentError::Init { .. } | EnvironmentError::Code(_) => {
                        AcquireError::Init(error)
                    }
                    other => AcquireError::Refused(Error::service(format!(
                        "the {} backend could not create an environment for {:?}: {other}",
                        self.backend.name(),
                        config.name
                    ))),
                })
            }
        }
    }

    /// Shuts down the idle on-demand environment that has been idle longest; false if there
    /// is none.
    fn evict_least_recently_used(&self, now: Duration) -> bool {
        let mut oldest: Option<(Duration, Arc<Pool>)> = None;
        for pool in self.all_pools() {
            let state = pool.lock();
            if let Some(first) = state.idle.iter().map(|i| i.since).min()
                && oldest.as_ref().is_none_or(|(since, _)| first < *since)
            {
                oldest = Some((first, pool.clone()));
            }
        }
        let Some((since, pool)) = oldest else {
            return false;
        };
        let victim = {
            let mut state = pool.lock();
            state
                .idle
                .iter()
                .position(|i| i.since == since)
                .map(|index| state.idle.remove(index))
        };
        match victim {
            Some(idle) => {
                self.leave_idle(&idle, now);
                self.shut_down(idle.env);
                true
            }
            // Someone took it meanwhile: look again.
            None => true,
        }
    }

    /// Takes an environment for an invocation of `version`: provisioned, warm, or new.
    pub(crate) fn acquire(
        &self,
        function: &FunctionEntry,
        version: &Arc<VersionRecord>,
        now: Duration,
    ) -> std::result::Result<Lease, AcquireError> {
        let pool = self.pool(version);
        let mut expired = Vec::new();
        let (found, has_provisioned) = {
            let mut state = pool.lock();
            let has_provisioned = state.provisioned_target > 0;
            let mut found = None;
            if let Some(idle) = state.provisioned_idle.pop() {
                state.busy_provisioned += 1;
                found = Some((idle, StartKind::Provisioned));
            } else {
                // The policy is told with the pool locked (it must not call back), so that
                // the busy count it sees is exact.
                self.keep_alive.on_arrival(pool.id, now, state.busy);
                while let Some(idle) = state.idle.pop() {
                    if idle.expires_at.is_some_and(|e| e <= now) || !idle.env.worker.is_active() {
                        expired.push(idle);
                        continue;
                    }
                    state.busy += 1;
                    found = Some((idle, StartKind::Warm));
                    break;
                }
                if found.is_none() && !state.prewarms.is_empty() {
                    // This arrival is the one the earliest pending pre-warm was for.
                    let earliest = (0..state.prewarms.len())
                        .min_by_key(|&i| state.prewarms[i].0)
                        .unwrap_or(0);
                    state.prewarms.swap_remove(earliest);
                }
            }
            (found, has_provisioned)
        };
        for idle in expired {
            self.leave_idle(&idle, now);
            self.shut_down(idle.env);
        }
        if let Some((idle, start)) = found {
            self.leave_idle(&idle, now);
            return Ok(Lease {
                env: idle.env,
                pool,
                start,
                spillover: has_provisioned && start != StartKind::Provisioned,
            });
        }
        function
            .slots
            .take_scale_up_token(now)
            .map_err(AcquireError::Refused)?;
        let env = self.create(&version.config, false, now)?;
        pool.lock().busy += 1;
        Ok(Lease {
            env,
            pool,
            start: StartKind::Cold,
            spillover: has_provisioned,
        })
    }

    /// Gives an environment back after its invocation ended at `now`. With `discard` (the
    /// environment broke or hung), or when a call into it panicked, it is shut down.
    pub(crate) fn release(&self, lease: Lease, now: Duration, discard: bool) {
        let Lease { env, pool, .. } = lease;
        let to_shut_down = {
            let mut state = pool.lock();
            let retention = if env.provisioned {
                state.busy_provisioned -= 1;
                None
            } else {
                state.busy -= 1;
                Some(self.keep_alive.on_idle(pool.id, now, state.busy))
            };
            let keep = !discard && !env.env.is_broken() && !state.retired && env.worker.is_active();
            match (keep, env.provisioned, retention) {
                (false, _, _) => Some(env),
                (true, true, _) => {
                    if state.provisioned_alive() < state.provisioned_target {
                        state.provisioned_idle.push(IdleEnv {
                            env,
                            since: now,
                            expires_at: None,
                        });
                        None
                    } else {
                        Some(env)
                    }
                }
                (true, false, Some(retention)) if retention.prewarm_after.is_zero() => {
                    state.idle.push(IdleEnv {
                        env,
                        since: now,
                        expires_at: Some(now.saturating_add(retention.keep_alive)),
                    });
                    None
                }
                (true, false, Some(retention)) => {
                    let at = now.saturating_add(retention.prewarm_after);
                    state
                        .prewarms
                        .push((at, at.saturating_add(retention.keep_alive)));
                    Some(env)
                }
                (true, false, None) => Some(env),
            }
        };
        if let Some(env) = to_shut_down {
            if env.worker.state() == WorkerState::Failed {
                add(&self.counters.environments_lost, 1);
            }
            self.shut_down(env);
        }
    }

    /// Sets how many provisioned environments each pool should keep; pools not named get 0.
    pub(crate) fn set_provisioned_targets(&self, targets: &[(Arc<VersionRecord>, u32)]) {
        for (version, _) in targets {
            self.pool(version);
        }
        for pool in self.all_pools() {
            let target = targets
                .iter()
                .find(|(v, _)| v.pool == pool.id)
                .map_or(0, |(_, n)| *n);
            let excess: Vec<IdleEnv> = {
                let mut state = pool.lock();
                state.provisioned_target = target;
                let mut excess = Vec::new();
                while state.provisioned_alive() > target {
                    match state.provisioned_idle.pop() {
                        Some(idle) => excess.push(idle),
                        None => break,
                    }
                }
                excess
            };
            for idle in excess {
                self.shut_down(idle.env);
            }
        }
    }

    /// Reaps expired idle environments, runs due pre-warms, tops provisioned concurrency up
    /// and drains workers whose lease ended. Returns the environments created.
    pub(crate) fn maintain(&self, now: Duration) -> u64 {
        // Workers first, so nothing is created on a worker about to drain.
        let draining = self.placement.expire_leases(now);
        if !draining.is_empty() {
            let ids: Vec<WorkerId> = draining.iter().map(|w| w.id).collect();
            self.evict_worker_envs(&ids, now, false);
        }
        let mut to_shut_down = Vec::new();
        // (pool, None) for a provisioned environment, (pool, Some((due, until))) for a pre-warm.
        type Creation = (Arc<Pool>, Option<(Duration, Duration)>);
        let mut to_create: Vec<Creation> = Vec::new();
        for pool in self.all_pools() {
            let mut state = pool.lock();
            let mut index = 0;
            while index < state.idle.len() {
                if state.idle[index].expires_at.is_some_and(|e| e <= now) {
                    to_shut_down.push(state.idle.remove(index));
                } else {
                    index += 1;
                }
            }
            let mut index = 0;
            while index < state.prewarms.len() {
                let (at, until) = state.prewarms[index];
                if at > now {
                    index += 1;
                    continue;
                }
                state.prewarms.swap_remove(index);
                if !state.retired && until > now {
                    to_create.push((pool.clone(), Some((at, until))));
                }
            }
            if !state.retired {
                let alive = state.provisioned_alive() + state.provisioned_creating;
                for _ in alive..state.provisioned_target {
                    state.provisioned_creating += 1;
                    to_create.push((pool.clone(), None));
                }
            }
        }
        for idle in to_shut_down {
            self.leave_idle(&idle, now);
            self.shut_down(idle.env);
        }
        let mut created = 0;
        for (pool, prewarm) in to_create {
            let provisioned = prewarm.is_none();
            let result = self.create(&pool.version.config, provisioned, now);
            let mut state = pool.lock();
            if provisioned {
                state.provisioned_creating -= 1;
            }
            let env = match result {
                Ok(env) => env,
                // Retried at the next maintenance; the failure is counted.
                Err(_) => continue,
            };
            created += 1;
            if state.retired {
                drop(state);
                self.shut_down(env);
                continue;
            }
            match prewarm {
                None => state.provisioned_idle.push(IdleEnv {
                    env,
                    since: now,
                    expires_at: None,
                }),
                Some((due, until)) => {
                    add(&self.counters.prewarmed_environments, 1);
                    // Idle memory-time counts from when the pre-warm was due, so a late
                    // maintenance pass does not flatter the policy.
                    state.idle.push(IdleEnv {
                        env,
                        since: due,
                        expires_at: Some(until),
                    });
                }
            }
        }
        self.placement.remove_empty();
        created
    }

    /// Shuts down the idle environments on `workers`; `lost` counts them as lost with a
    /// failed worker.
    fn evict_worker_envs(&self, workers: &[WorkerId], now: Duration, lost: bool) {
        let on_worker = |idle: &IdleEnv| workers.contains(&idle.env.worker.id);
        for pool in self.all_pools() {
            let removed: Vec<IdleEnv> = {
                let mut guard = pool.lock();
                let state = &mut *guard;
                let mut removed = Vec::new();
                for list in [&mut state.idle, &mut state.provisioned_idle] {
                    let mut index = 0;
                    while index < list.len() {
                        if on_worker(&list[index]) {
                            removed.push(list.remove(index));
                        } else {
                            index += 1;
                        }
                    }
                }
                removed
            };
            for idle in removed {
                if lost {
                    add(&self.counters.environments_lost, 1);
                }
                self.leave_idle(&idle, now);
                self.shut_down(idle.env);
            }
        }
    }

    /// A worker failed: its idle environments are lost now, its busy ones when they return.
    pub(crate) fn fail_worker(&self, id: WorkerId, now: Duration) -> Result<()> {
        let worker = self
            .placement
            .fail(id)
            .ok_or_else(|| Error::not_found(format!("{id} does not exist")))?;
        debug_assert_eq!(worker.state(), WorkerState::Failed);
        self.evict_worker_envs(&[id], now, true);
        self.placement.remove_empty();
        Ok(())
    }

    /// Retires a pool: its idle environments are shut down now, busy ones when they return.
    pub(crate) fn retire(&self, id: PoolId, now: Duration) {
        let pool = {
            let mut pools = write(&self.pools);
            lock(&self.retired).insert(id);
            pools.remove(&id)
        };
        self.keep_alive.forget(id);
        let Some(pool) = pool else {
            return;
        };
        let idle: Vec<IdleEnv> = {
            let mut state = pool.lock();
            state.retired = true;
            state.prewarms.clear();
            let mut all = std::mem::take(&mut state.idle);
            all.append(&mut state.provisioned_idle);
            all
        };
        for idle in idle {
            self.leave_idle(&idle, now);
            self.shut_down(idle.env);
        }
    }

    /// Retires every pool (service shutdown).
    pub(crate) fn retire_all(&self, now: Duration) {
        let ids: Vec<PoolId> = read(&self.pools).keys().copied().collect();
        for id in ids {
            self.retire(id, now);
        }
    }

    pub(crate) fn totals(&self) -> PoolTotals {
        let mut totals = PoolTotals::default();
        for pool in self.all_pools() {
            let state = pool.lock();
            totals.idle += (state.idle.len() + state.provisioned_idle.len()) as u64;
            totals.busy += state.busy + state.busy_provisioned;
            totals.provisioned_requested += u64::from(state.provisioned_target);
            totals.provisioned_allocated += u64::from(state.provisioned_alive());
            totals.provisioned_busy += state.busy_provisioned;
        }
        totals
    }

    /// Idle and busy environment counts of one pool.
    pub(crate) fn pool_counts(&self, id: PoolId) -> (u64, u64) {
        let pool = read(&self.pools).get(&id).cloned();
        match pool {
            Some(pool) => {
                let state = pool.lock();
                (
                    (state.idle.len() + state.provisioned_idle.len()) as u64,
                    state.busy + state.busy_provisioned,
                )
            }
            None => (0, 0),
        }
    }
}
