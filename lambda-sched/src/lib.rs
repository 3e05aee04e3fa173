//! The function service: Lambda's control plane and data plane as a library.
//!
//! A [`Service`] holds functions and runs them on any [`lambda_core::Backend`] (the KVM
//! micro-VM backend of `lambda-vmm`, its development backend, or the [`fake`] test double).
//! An invocation's path is readable in the module names:
//!
//! [`frontend`] (sync, async, dry run) -> [`control_plane`] (which version) -> [`counting`]
//! (concurrency and throttling) -> [`worker_manager`] (a warm, provisioned or new environment,
//! kept alive by a [`keep_alive`] policy) -> [`placement`] (which [`worker`] gets a new
//! environment) -> the environment, and back. Asynchronous events wait in the [`async_queue`];
//! [`event_source`] mappings poll sources and invoke with batches. Everything that depends on
//! time reads a [`clock`], so tests and the [`simulation`] run hours of keep-alive in
//! milliseconds. [`metrics`] are what a user can read.
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

pub mod async_queue;
pub mod clock;
pub mod control_plane;
pub mod counting;
pub mod data_plane;
pub mod destination;
pub mod error;
pub mod event_invoke_config;
pub mod event_source;
pub mod fake;
pub mod frontend;
pub mod ids;
pub mod keep_alive;
pub mod metrics;
pub mod placement;
mod service;
pub mod simulation;
mod sync;
pub mod worker;
pub mod worker_manager;

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
