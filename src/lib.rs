//! AWS Lambda as a library: functions run in KVM micro-VMs and are scheduled the way Lambda
//! schedules them.
//!
//! This crate re-exports the family:
//! - [`core`] (`lambda-core`): configuration, invocations, outcomes, REPORT lines and the
//!   execution-environment lifecycle traits.
//! - [`vmm`] (`lambda-vmm`): one execution environment per KVM micro-VM.
//! - [`sched`] (`lambda-sched`): the function service that schedules environments.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use lambda_core as core;
pub use lambda_sched as sched;
pub use lambda_vmm as vmm;

#[cfg(feature = "gateway")]
pub mod gateway;
