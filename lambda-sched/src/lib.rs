//! The function service: Lambda's control plane and data plane as a library.
//!
//! A [`Service`] holds functions and runs them on any [`lambda_core::Backend`] (the KVM
//! micro-VM backend of `lambda-vmm`, its development backend, or the [`fake`] test double).
//!
//! # Reading order
//!
//! The modules read from the top down: each one uses only the modules below it in this list.
//! [`Service::invoke`] leads from `service` to [`frontend`], then to [`data_plane`], which asks
//! [`counting`] for a permit and [`worker_manager`] for an environment.
//!
//! 1. `service`: the [`Service`] handle, whose methods are Lambda's API, and the background
//!    threads it shares its state with (maintenance, async dispatchers, event-source pollers).
//! 2. Where invocations come from:
//!    - [`frontend`]: the `Invoke` API, synchronous, asynchronous (queued) or dry run;
//!    - [`async_queue`]: queued events, their retries and maximum age, and their final outcome;
//!    - [`event_source`]: mappings that poll a source and invoke with batches of records.
//! 3. [`data_plane`]: one synchronous invocation in three steps (acquire a permit and an
//!    environment, execute, account) and the [`InvokeResponse`] it makes.
//! 4. [`worker_manager`]: the pools of idle and busy environments: warm routing, keep-alive,
//!    pre-warming, provisioned concurrency, workers' leases and failures.
//! 5. [`control_plane`]: functions, their versions and aliases (with weighted routing), and what
//!    is set per function or qualifier (provisioned concurrency, async settings, dead letters).
//! 6. What those build on:
//!    - [`placement`]: which [`worker`] gets a new environment;
//!    - [`keep_alive`]: how long an idle environment is kept, or when it is pre-warmed;
//!    - [`counting`]: account and reserved concurrency, the scale-up rate, throttles;
//!    - [`event_invoke_config`] (a function's async settings) and [`destination`] (where the
//!      outcome of an async invocation goes, dead-letter sinks);
//!    - `boundary`: the one place the scheduler calls into the backend, where a backend's
//!      panic becomes an error (see below).
//! 7. The vocabulary: [`ids`] (versions, pools, workers), [`error`], [`metrics`] (what a user
//!    can read), [`clock`] (everything that depends on time reads one, so tests run hours of
//!    keep-alive in milliseconds) and `sync` (locks that survive a panic).
//!
//! Beside the path: [`fake`], a backend that runs no code, for tests, and [`simulation`], which
//! replays a synthetic trace through the worker manager on a virtual clock.
//!
//! # Panics
//!
//! A backend that panics fails one invocation, never a thread of the service. Every call into
//! the backend (`create` with its Init, `invoke`, `shutdown`) goes through `catch_unwind`:
//!
//! - a panic in `create`, or in `invoke`, makes that invocation's function error
//!   `Sandbox.Failure`, with a message naming the panic; the environment, if there is one, is
//!   shut down and never reused; the concurrency permit and the worker's memory are released.
//!   A synchronous caller gets the error; an asynchronous event is retried and then goes to its
//!   on-failure destination and dead-letter sink, as after any function error; an event-source
//!   batch is retried and its records then reported as failed;
//! - a panic in `shutdown` is swallowed: the environment is gone and its memory is back.
//!
//! [`MetricsSnapshot::backend_panics`] counts them. The background threads (maintenance, the
//! async dispatchers, the event-source pollers) also catch a panic around each job (a
//! maintenance pass, one event, one batch), whatever raised it (a keep-alive or placement
//! policy, an event source, a destination), count it in [`MetricsSnapshot::job_panics`] and go
//! on with the next job, and so does [`Service::run_pending`]; locks are taken so that one a
//! panic poisoned still works. The [`fake`] backend panics on command (`fake:panic`,
//! `FAKE_CREATE=panic`, `FAKE_SHUTDOWN=panic`).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use lambda_core::{CodeLocation, FunctionConfig};
//! use lambda_sched::{fake::FakeBackend, InvokeRequest, Service, StartKind};
//!
//! let service = Service::builder(FakeBackend::new()).manual().build().unwrap();
//! service
//!     .create_function(FunctionConfig::new("echo", CodeLocation::Executable("/fake".into())))
//!     .unwrap();
//! let first = service.invoke(InvokeRequest::new("echo", "hi")).unwrap();
//! assert_eq!(first.payload, b"hi");
//! assert_eq!(first.start, Some(StartKind::Cold));
//! let second = service.invoke(InvokeRequest::new("echo", "again")).unwrap();
//! assert_eq!(second.start, Some(StartKind::Warm));
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

// In the reading order of the crate documentation.
mod service;

pub mod async_queue;
pub mod event_source;
pub mod frontend;

pub mod data_plane;

pub mod worker_manager;

pub mod control_plane;

mod boundary;
pub mod counting;
pub mod destination;
pub mod event_invoke_config;
pub mod keep_alive;
pub mod placement;
pub mod worker;

pub mod clock;
pub mod error;
pub mod ids;
pub mod metrics;
mod sync;
mod trace;

pub mod fake;
pub mod simulation;

pub use async_queue::AsyncQueueConfig;
pub use clock::{Clock, ManualClock, SystemClock};
pub use control_plane::{AliasInfo, AliasRouting, FunctionInfo};
pub use counting::ConcurrencyLimits;
pub use data_plane::InvokeResponse;
pub use destination::{
    Condition, DeadLetter, DeadLetterSink, Destination, InvocationRecord, Recorder,
};
pub use error::{Error, Result, ThrottleReason};
pub use event_invoke_config::EventInvokeConfig;
pub use event_source::{
    EventSource, EventSourceMappingConfig, EventSourceMappingInfo, MemoryQueue, SourceRecord,
};
pub use frontend::{InvocationType, InvokeRequest};
pub use ids::{PoolId, Version, WorkerId};
pub use keep_alive::{
    FixedTtl, HybridHistogram, HybridHistogramConfig, KeepAlivePolicy, Retention,
};
pub use metrics::{DurationStats, InvocationMetrics, MetricsSnapshot};
pub use placement::{BestFit, LeastLoaded, PlacementPolicy, WorkerView};
pub use service::{Progress, Service, ServiceBuilder, ServiceConfig};
pub use worker::{WorkerInfo, WorkerSpec, WorkerState};
pub use worker_manager::StartKind;
