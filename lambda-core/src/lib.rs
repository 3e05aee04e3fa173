//! The vocabulary of the function engine.
//!
//! `lambda-core` holds what every other crate of the family agrees on and nothing that needs
//! KVM or threads:
//!
//! - [`FunctionConfig`]: a function's name, code, memory, timeout and environment, validated
//!   against Lambda's limits ([`limits`]).
//! - [`Invocation`]: one event to run, with its request id and deadline; a
//!   [`ResponseStream`] receives a streamed response as the runtime writes it.
//! - [`InvokeOutcome`] and [`FunctionError`]: a response payload or an error carrying Lambda's
//!   error type names ([`ErrorType`]).
//! - [`Report`]: the figures of one invocation, whose `Display` is Lambda's `REPORT` line.
//! - [`ending`]: how an invocation ends ([`Ending`], [`Stop`]), put in Lambda's words once for
//!   every backend: outcome, reset, the platform's log line, `REPORT`; [`Signal`] names.
//! - The execution-environment lifecycle ([`Backend`], [`ExecutionEnvironment`]): create and
//!   initialise, invoke, shut down. The scheduler drives environments only through these traits,
//!   so a fake can stand in for a micro-VM in tests.
//! - [`runtime_api`]: Lambda's Runtime API as a sans-IO server, and the standard environment
//!   variables of a function; [`logs`]: an invocation's bounded log with its START / END /
//!   REPORT lines and tail.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod calendar;
mod config;
pub mod ending;
mod invocation;
mod lifecycle;
pub mod limits;
pub mod logs;
mod outcome;
mod report;
mod request_id;
mod response_stream;
pub mod runtime_api;
mod signal;

pub use config::{CodeLocation, ConfigError, Contract, FunctionConfig};
pub use ending::{Ending, Measured, Stop};
pub use invocation::Invocation;
pub use lifecycle::{
    Backend, EnvironmentError, EnvironmentStart, ExecutionEnvironment, InvokeResult, ResetReason,
    panic_message,
};
pub use outcome::{ErrorType, FunctionError, InvokeOutcome};
pub use report::Report;
pub use request_id::new_request_id;
pub use response_stream::{ResponseSink, ResponseStream};
pub use signal::Signal;
