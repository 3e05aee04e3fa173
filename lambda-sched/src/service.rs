//! The [`Service`] a host application holds, and the background threads that keep it going.
//!
//! `Service`'s methods are Lambda's API. Function, version, alias and concurrency calls go to
//! the [control plane](crate::control_plane) (and retire environments through the
//! [worker manager](crate::worker_manager)); `invoke` goes to the [`frontend`];
//! event source mappings live in [`event_source`](crate::event_source). The threads
//! (maintenance, the async queue's dispatchers, one poller per mapping) share the data plane,
//! the async queue and the mappings with the handle until it is shut down or dropped; without
//! them, [`Service::run_pending`] does their work on the caller's thread.
//!
//! Each thread, and `run_pending`, runs its work as jobs (a maintenance pass, one async
//! event, one event-source step) and catches a panic around each: the panic is counted in
//! [`MetricsSnapshot::job_panics`] and the thread goes on with its next job.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use lambda_core::{Backend, CodeLocation, FunctionConfig};

use crate::async_queue::{AsyncQueue, AsyncQueueConfig};
use crate::clock::{Clock, SystemClock};
use crate::control_plane::{AliasInfo, AliasRouting, ControlPlane, FunctionInfo};
use crate::counting::{ConcurrencyLimits, CountingService};
use crate::data_plane::{DataPlane, InvokeResponse};
use crate::destination::DeadLetterSink;
use crate::error::{Error, Result};
use crate::event_invoke_config::EventInvokeConfig;
use crate::event_source::{
    EventSource, EventSourceMappingConfig, EventSourceMappingInfo, Mapping, Mappings, Step,
};
use crate::frontend::{self, InvokeRequest};
use crate::ids::{Version, WorkerId};
use crate::keep_alive::{FixedTtl, KeepAlivePolicy};
use crate::metrics::{InvocationMetrics, MetricsSnapshot, ServiceCounters};
use crate::placement::{BestFit, Placement, PlacementPolicy};
use crate::sync::{catch_job, lock};
use crate::trace::span;
use crate::worker::{WorkerInfo, WorkerSpec};
use crate::worker_manager::WorkerManager;

/// Settings of a [`Service`]; every number has Lambda's default.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The region written in ARNs.
    pub region: String,
    /// The account id written in ARNs.
    pub account_id: String,
    /// Concurrency limits and the scale-up rate.
    pub limits: ConcurrencyLimits,
    /// The workers the service starts with.
    pub workers: Vec<WorkerSpec>,
    /// Retry delays and dispatcher threads of the async queue.
    pub async_queue: AsyncQueueConfig,
    /// How long past its timeout an invocation may run before the scheduler declares it hung
    /// (the backend should have stopped it) and shuts its environment down.
    pub hang_grace: Duration,
    /// Run background threads (maintenance, async dispatchers, event-source pollers). Turn
    /// off to drive the service with [`Service::run_pending`], as tests with a manual clock do.
    pub background: bool,
    /// How often the maintenance thread reaps idle environments, pre-warms, tops provisioned
    /// concurrency up, drains workers and releases due retries.
    pub tick: Duration,
    /// Seed of the random draw of weighted alias routing.
    pub seed: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            region: "us-east-1".to_string(),
            account_id: "000000000000".to_string(),
            limits: ConcurrencyLimits::default(),
            workers: vec![WorkerSpec::default()],
            async_queue: AsyncQueueConfig::default(),
            hang_grace: Duration::from_secs(1),
            background: true,
            tick: Duration::from_millis(50),
            seed: 0x5eed,
        }
    }
}

/// Builds a [`Service`].
pub struct ServiceBuilder {
    backend: Arc<dyn Backend>,
    clock: Arc<dyn Clock>,
    keep_alive: Arc<dyn KeepAlivePolicy>,
    placement: Arc<dyn PlacementPolicy>,
    config: ServiceConfig,
}

impl std::fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBuilder")
            .field("backend", &self.backend.name())
            .field("clock", &self.clock)
            .field("keep_alive", &self.keep_alive)
            .field("placement", &self.placement)
            .field("config", &self.config)
            .finish()
    }
}

impl ServiceBuilder {
    /// Uses `clock` instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `policy` for keep-alive instead of a 10-minute [`FixedTtl`].
    pub fn keep_alive(mut self, policy: Arc<dyn KeepAlivePolicy>) -> Self {
        self.keep_alive = policy;
        self
    }

    /// Uses `policy` for placement instead of [`BestFit`].
    pub fn placement(mut self, policy: Arc<dyn PlacementPolicy>) -> Self {
        self.placement = policy;
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: ServiceConfig) -> Self {
        self.config = config;
        self
    }

    /// Changes the configuration in place.
    pub fn configure(mut self, change: impl FnOnce(&mut ServiceConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Without background threads: the caller drives time with [`Service::run_pending`].
    pub fn manual(self) -> Self {
        self.configure(|c| c.background = false)
    }

    /// Builds the service and, unless it is manual, starts its background threads.
    pub fn build(self) -> Result<Service> {
        let ServiceBuilder {
            backend,
            clock,
            keep_alive,
            placement,
            config,
        } = self;
        config.limits.validate()?;
        if config.tick.is_zero() {
            return Err(Error::invalid("the maintenance tick must be positive"));
        }
        let now = clock.now();
        let counters = Arc::new(ServiceCounters::default());
        let placement = Placement::new(placement);
        for spec in &config.workers {
            placement.add_worker(*spec, now);
        }
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let data = DataPlane::new(
            clock,
            ControlPlane::new(&config.region, &config.account_id, config.seed),
            CountingService::new(config.limits.clone()),
            WorkerManager::new(backend, keep_alive, placement, counters.clone()),
            counters,
            config.hang_grace,
        );
        let shared = Arc::new(Shared {
            data,
            queue: AsyncQueue::new(config.async_queue.clone()),
            mappings: Mappings::new(),
            shutting_down: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            stop: stop_rx,
            config,
        });
        let service = Service {
            shared,
            stop: Mutex::new(Some(stop_tx)),
        };
        if service.shared.config.background {
            service.shared.start_background();
        }
        Ok(service)
    }
}

/// Progress made by one [`Service::run_pending`] call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Environments created by maintenance (provisioned concurrency, pre-warming).
    pub environments_created: u64,
    /// Asynchronous events run (first attempts and retries).
    pub async_events_run: usize,
    /// Batches sent by event source mappings.
    pub event_source_batches: usize,
}

/// The function service: register functions, invoke them, read metrics.
///
/// `Service` is `Send + Sync`: share it between threads by reference or in an `Arc`.
/// Dropping it (or calling [`Service::shutdown`]) stops and joins its threads, hands queued
/// events to failure handling and shuts every environment down.
#[derive(Debug)]
pub struct Service {
    shared: Arc<Shared>,
    stop: Mutex<Option<Sender<()>>>,
}

impl Service {
    /// A builder for a service running functions on `backend`.
    pub fn builder(backend: Arc<dyn Backend>) -> ServiceBuilder {
        ServiceBuilder {
            backend,
            clock: Arc::new(SystemClock::new()),
            keep_alive: Arc::new(FixedTtl::default()),
            placement: Arc::new(BestFit),
            config: ServiceConfig::default(),
        }
    }

    /// The data plane, with the control plane, the worker manager and the counters it holds.
    pub(crate) fn data(&self) -> &DataPlane {
        &self.shared.data
    }

    /// The clock the service reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.data().clock
    }

    /// The service's configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.shared.config
    }

    // ----- control plane -----

    /// Registers a function (`CreateFunction`); its `$LATEST` is ready to invoke.
    pub fn create_function(&self, config: FunctionConfig) -> Result<FunctionInfo> {
        self.data().control.create(
            config,
            self.data().counting.limits(),
            self.data().clock.now(),
        )
    }

    /// Replaces `$LATEST`'s code (`UpdateFunctionCode`). Running invocations finish on the
    /// old code; its idle environments are shut down.
    pub fn update_function_code(&self, name: &str, code: CodeLocation) -> Result<FunctionInfo> {
        let (info, retired) = self.data().control.update_code(name, code)?;
        self.data().workers.retire(retired, self.data().clock.now());
        Ok(info)
    }

    /// Replaces `$LATEST`'s configuration (`UpdateFunctionConfiguration`); the name must
    /// stay the same. Idle environments of the old configuration are shut down.
    pub fn update_function_configuration(&self, config: FunctionConfig) -> Result<FunctionInfo> {
        let name = config.name.clone();
        let (info, retired) = self.data().control.update_latest(&name, |_| config)?;
        self.data().workers.retire(retired, self.data().clock.now());
        Ok(info)
    }

    /// A function version (`GetFunction`): `name`, `name:qualifier` or an ARN; an alias
    /// gives the version it points at.
    pub fn get_function(&self, reference: &str) -> Result<FunctionInfo> {
        self.data().control.get(reference, None)
    }

    /// Every function's `$LATEST` (`ListFunctions`), by name.
    pub fn list_functions(&self) -> Vec<FunctionInfo> {
        self.data().control.list()
    }

    /// `$LATEST` and every published version of a function (`ListVersionsByFunction`).
    pub fn list_versions(&self, name: &str) -> Result<Vec<FunctionInfo>> {
        self.data().control.list_versions(name)
    }

    /// Deletes a function with its versions and aliases (`qualifier` `None`), or one
    /// published version. Its environments are retired; running invocations finish.
    pub fn delete_function(&self, name: &str, qualifier: Option<&str>) -> Result<()> {
        let pools = self.data().control.delete(name, qualifier)?;
        let now = self.data().clock.now();
        for pool in pools {
            self.data().workers.retire(pool, now);
        }
        if qualifier.is_none() {
            // The reservation goes with the function.
            self.data().counting.forget(name);
        }
        Ok(())
    }

    /// Publishes `$LATEST` as a new immutable version (`PublishVersion`); when `$LATEST`
    /// has not changed since the last version, that version is returned.
    pub fn publish_version(&self, name: &str, description: &str) -> Result<FunctionInfo> {
        self.data().control.publish(name, description)
    }

    /// Creates an alias (`CreateAlias`).
    pub fn create_alias(
        &self,
        name: &str,
        alias: &str,
        version: Version,
        routing: Option<AliasRouting>,
    ) -> Result<AliasInfo> {
        self.data()
            .control
            .put_alias(name, alias, version, routing, true)
    }

    /// Points an existing alias elsewhere (`UpdateAlias`).
    pub fn update_alias(
        &self,
        name: &str,
        alias: &str,
        version: Version,
        routing: Option<AliasRouting>,
    ) -> Result<AliasInfo> {
        self.data()
            .control
            .put_alias(name, alias, version, routing, false)
    }

    /// An alias (`GetAlias`).
    pub fn get_alias(&self, name: &str, alias: &str) -> Result<AliasInfo> {
        self.data().control.get_alias(name, alias)
    }

    /// A function's aliases (`ListAliases`).
    pub fn list_aliases(&self, name: &str) -> Result<Vec<AliasInfo>> {
        self.data().control.list_aliases(name)
    }

    /// Deletes an alias (`DeleteAlias`) with its provisioned concurrency.
    pub fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        self.data().control.delete_alias(name, alias)
    }

    /// Sets a function's reserved concurrency (`PutFunctionConcurrency`): at most the
    /// account limit minus the minimum unreserved concurrency and the other reservations;
    /// 0 disables the function.
    pub fn put_function_concurrency(&self, name: &str, reserved: u32) -> Result<()> {
        let entry = self.data().control.entry(name)?;
        let provisioned = self.data().control.provisioned_total(name)?;
        if reserved < provisioned {
            return Err(Error::invalid(format!(
                "reserved concurrency {reserved} is below the {provisioned} provisioned \
                 environments of {name}"
            )));
        }
        self.data()
            .counting
            .set_reserved(name, &entry.slots, Some(reserved))
    }

    /// Removes a function's reserved concurrency (`DeleteFunctionConcurrency`).
    pub fn delete_function_concurrency(&self, name: &str) -> Result<()> {
        let entry = self.data().control.entry(name)?;
        self.data().counting.set_reserved(name, &entry.slots, None)
    }

    /// Keeps `count` initialised environments for a published version or an alias
    /// (`PutProvisionedConcurrencyConfig`). They are created by the next maintenance pass
    /// and re-created when they die. The total over a function may not exceed its reserved
    /// concurrency, or the unreserved concurrency minus its minimum when it has none.
    pub fn put_provisioned_concurrency(
        &self,
        name: &str,
        qualifier: &str,
        count: u32,
    ) -> Result<()> {
        if count == 0 {
            return Err(Error::invalid(
                "provisioned concurrency must be at least 1; delete the configuration instead",
            ));
        }
        let entry = self.data().control.entry(name)?;
        let others = self.data().control.provisioned_total(name)?
            - self
                .data()
                .control
                .provisioned_for(name, qualifier)?
                .unwrap_or(0);
        let total = others + count;
        let limit = match entry.slots.reserved() {
            Some(reserved) => reserved,
            None => self.data().counting.available_reservation(name),
        };
        if total > limit {
            return Err(Error::invalid(format!(
                "provisioned concurrency {total} for {name} exceeds the {limit} available to \
                 it (its reserved concurrency, or the unreserved concurrency less its minimum)"
            )));
        }
        self.data()
            .control
            .set_provisioned(name, qualifier, Some(count))
    }

    /// Removes provisioned concurrency (`DeleteProvisionedConcurrencyConfig`); the
    /// environments are shut down by the next maintenance pass when idle.
    pub fn delete_provisioned_concurrency(&self, name: &str, qualifier: &str) -> Result<()> {
        self.data().control.set_provisioned(name, qualifier, None)
    }

    /// Sets the asynchronous invocation settings of a function (`qualifier` `None`), a
    /// version or an alias (`PutFunctionEventInvokeConfig`).
    pub fn put_event_invoke_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
        config: EventInvokeConfig,
    ) -> Result<()> {
        self.data()
            .control
            .set_event_invoke_config(name, qualifier, config)
    }

    /// Sets (or removes) the function's dead-letter sink (Lambda's `DeadLetterConfig`).
    pub fn set_dead_letter_sink(
        &self,
        name: &str,
        sink: Option<Arc<dyn DeadLetterSink>>,
    ) -> Result<()> {
        self.data().control.set_dead_letter(name, sink)
    }

    // ----- data plane -----

    /// Invokes a function (`Invoke`).
    pub fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse> {
        span!(
            "invoke",
            function = request.function_name.as_str(),
            invocation_type = request.invocation_type.as_str()
        );
        if self.shared.is_shutting_down() {
            return Err(Error::service("the service is shutting down"));
        }
        frontend::invoke(self.data(), &self.shared.queue, request)
    }

    /// Creates an event source mapping from `source` to `function` (`name` or
    /// `name:qualifier`); returns its id. In background mode a poller thread starts.
    pub fn create_event_source_mapping(
        &self,
        function: &str,
        source: Arc<dyn EventSource>,
        config: EventSourceMappingConfig,
    ) -> Result<String> {
        config.validate()?;
        self.data().control.resolve_static(function, None)?;
        let mapping = self.shared.mappings.add(function, source, config);
        let id = mapping.id.clone();
        if self.shared.config.background {
            self.shared.spawn_poller(mapping);
        }
        Ok(id)
    }

    /// Deletes an event source mapping; records it held go back to the source.
    pub fn delete_event_source_mapping(&self, id: &str) -> Result<()> {
        self.shared.mappings.delete(id)
    }

    /// The event source mappings.
    pub fn event_source_mappings(&self) -> Vec<EventSourceMappingInfo> {
        self.shared
            .mappings
            .all()
            .iter()
            .map(|m| m.info())
            .collect()
    }

    // ----- workers -----

    /// Adds a worker; returns its id.
    pub fn add_worker(&self, spec: WorkerSpec) -> WorkerId {
        self.data()
            .workers
            .placement
            .add_worker(spec, self.data().clock.now())
    }

    /// Declares a worker failed: its environments are lost (idle ones at once, busy ones
    /// when their invocation returns) and the others keep serving.
    pub fn fail_worker(&self, id: WorkerId) -> Result<()> {
        self.data().workers.fail_worker(id, self.data().clock.now())
    }

    /// The workers.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.data().workers.placement.workers()
    }

    // ----- time -----

    /// Does, on this thread, everything that is due at the clock's current time: reaps
    /// expired idle environments, pre-warms, tops provisioned concurrency up, drains workers
    /// whose lease ended, runs due asynchronous events (and their immediate consequences),
    /// and lets each event source mapping send the batches that are ready.
    pub fn run_pending(&self) -> Progress {
        let shared = &self.shared;
        let mut progress = Progress {
            environments_created: shared.maintain_guarded(),
            ..Progress::default()
        };
        progress.async_events_run = shared.queue.dispatch_ready(&shared.data);
        for mapping in shared.mappings.all() {
            // Bounded, so that a batch failing forever cannot hold this call.
            for _ in 0..1000 {
                if mapping.deleted.load(Ordering::Acquire) {
                    break;
                }
                match shared.step_guarded(&mapping) {
                    Step::Invoked => progress.event_source_batches += 1,
                    Step::Idle | Step::Blocked => break,
                }
            }
        }
        progress
    }

    // ----- metrics -----

    /// A snapshot of the service's metrics.
    pub fn metrics(&self) -> MetricsSnapshot {
        let data = self.data();
        let queue = &self.shared.queue;
        let totals = data.workers.totals();
        let mut snapshot = MetricsSnapshot {
            invocations: data
                .account_counters
                .snapshot(data.counting.total_in_flight()),
            unreserved_concurrent_executions: data.counting.unreserved_in_flight(),
            provisioned_concurrency_requested: totals.provisioned_requested,
            provisioned_concurrency_allocated: totals.provisioned_allocated,
            provisioned_concurrent_executions: totals.provisioned_busy,
            provisioned_utilization: if totals.provisioned_allocated == 0 {
                0.0
            } else {
                totals.provisioned_busy as f64 / totals.provisioned_allocated as f64
            },
            environments_idle: totals.idle,
            environments_busy: totals.busy,
            async_queue_depth: queue.depth(),
            async_oldest_event_age: queue.oldest_age(data.clock.now()),
            ..MetricsSnapshot::default()
        };
        snapshot.fill_service(&data.counters);
        snapshot
    }

    /// A function's invocation metrics.
    pub fn function_metrics(&self, name: &str) -> Result<InvocationMetrics> {
        let entry = self.data().control.entry(name)?;
        Ok(entry.metrics.snapshot(entry.slots.in_flight()))
    }

    /// Idle and busy environments of one function version (`name`, `name:qualifier`).
    pub fn environment_counts(&self, reference: &str) -> Result<(u64, u64)> {
        let info = self.data().control.get(reference, None)?;
        Ok(self.data().workers.pool_counts(info.pool))
    }

    // ----- shutdown -----

    /// Stops and joins the background threads, hands still-queued events to failure
    /// handling and shuts every environment down. Also done on drop.
    pub fn shutdown(self) {
        drop(self);
    }

    fn stop(&self) {
        let shared = &self.shared;
        if shared.shutting_down.swap(true, Ordering::AcqRel) {
            return;
        }
        // Dropping the sender disconnects every thread's stop receiver.
        lock(&self.stop).take();
        for mapping in shared.mappings.all() {
            mapping.deleted.store(true, Ordering::Release);
        }
        let threads = std::mem::take(&mut *lock(&shared.threads));
        for thread in threads {
            let _ = thread.join();
        }
        for mapping in shared.mappings.all() {
            mapping.release_all();
        }
        shared.queue.abandon_queued_events(&shared.data);
        shared.data.workers.retire_all(shared.data.clock.now());
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a [`Service`] and its threads share.
#[derive(Debug)]
struct Shared {
    config: ServiceConfig,
    data: DataPlane,
    queue: AsyncQueue,
    mappings: Mappings,
    shutting_down: AtomicBool,
    /// The background threads, joined at shutdown.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Disconnected when the service stops: every thread waits on it.
    stop: Receiver<()>,
}

impl Shared {
    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Keep-alive, pre-warm, provisioned concurrency, worker leases, due retries.
    fn maintain(&self) -> u64 {
        let now = self.data.clock.now();
        let targets: Vec<_> = self
            .data
            .control
            .provisioned_targets()
            .into_iter()
            .map(|(_, version, n)| (version, n))
            .collect();
        self.data.workers.set_provisioned_targets(&targets);
        let created = self.data.workers.maintain(now);
        self.queue.promote_due(now);
        created
    }

    /// [`Shared::maintain`] as a job that survives a panic (counted; nothing created).
    fn maintain_guarded(&self) -> u64 {
        catch_job(&self.data.counters.job_panics, || self.maintain()).unwrap_or(0)
    }

    /// One step of `mapping` as a job that survives a panic (counted, and taken as
    /// [`Step::Blocked`], so that a poller waits before it tries again).
    fn step_guarded(&self, mapping: &Mapping) -> Step {
        catch_job(&self.data.counters.job_panics, || mapping.step(&self.data))
            .unwrap_or(Step::Blocked)
    }

    /// Starts the maintenance thread and the async queue's dispatchers.
    fn start_background(self: &Arc<Self>) {
        self.spawn("sched-maintenance", |shared| {
            while shared.stop.recv_timeout(shared.config.tick)
                == Err(crossbeam_channel::RecvTimeoutError::Timeout)
            {
                shared.maintain_guarded();
            }
        });
        for index in 0..self.config.async_queue.dispatchers.max(1) {
            self.spawn(&format!("sched-async-{index}"), |shared| {
                let events = shared.queue.receiver().clone();
                loop {
                    crossbeam_channel::select! {
                        recv(events) -> event => match event {
                            Ok(event) => shared.queue.dispatch_guarded(&shared.data, event),
                            Err(_) => return,
                        },
                        recv(shared.stop) -> _ => return,
                    }
                }
            });
        }
    }

    /// Runs `body` on a new named thread, joined at shutdown.
    fn spawn(self: &Arc<Self>, name: &str, body: impl FnOnce(Arc<Shared>) + Send + 'static) {
        let shared = self.clone();
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || body(shared))
            .expect("spawning a service thread");
        lock(&self.threads).push(handle);
    }

    /// Starts the thread that polls an event source mapping until it is deleted.
    fn spawn_poller(self: &Arc<Self>, mapping: Arc<Mapping>) {
        self.spawn(&format!("esm-{}", mapping.id), move |shared| {
            loop {
                if mapping.deleted.load(Ordering::Acquire) {
                    return;
                }
                let wait = match shared.step_guarded(&mapping) {
                    Step::Invoked => Duration::ZERO,
                    Step::Idle => mapping
                        .next_deadline()
                        .map(|d| d.saturating_sub(shared.data.clock.now()))
                        .unwrap_or(mapping.config.poll_interval)
                        .min(mapping.config.poll_interval),
                    Step::Blocked => mapping.config.poll_interval,
                };
                if wait.is_zero() {
                    if shared.stop.try_recv() != Err(crossbeam_channel::TryRecvError::Empty) {
                        return;
                    }
                } else if shared.stop.recv_timeout(wait)
                    != Err(crossbeam_channel::RecvTimeoutError::Timeout)
                {
                    return;
                }
            }
        });
    }
}
