//! The two function contracts side by side, each an [`ExecutionEnvironment`] on a
//! [`Machine`](crate::machine::Machine):
//!
//! - [`runtime_api`]: a Runtime API function kept warm in one micro-VM, Init once, then
//!   invocation after invocation until a crash, exit or timeout resets it;
//! - [`stdio`]: a one-shot function, a fresh micro-VM per invocation, the event on stdin and
//!   the response on stdout.
//!
//! Both end an invocation through [`lambda_core::ending`]; [`stats`] is what a run cost the
//! VMM, [`variables`] the guest's environment variables and [`file_system`] its files. [`guard`] turns a panic inside
//! `invoke` (or the backend's `create`) into an error instead of an unwinding panic.
//!
//! [`ExecutionEnvironment`]: lambda_core::ExecutionEnvironment

mod file_system;
pub(crate) mod guard;
mod runtime_api;
mod stats;
mod stdio;
mod variables;

pub use runtime_api::RuntimeApiEnvironment;
pub use stats::RunStats;
pub use stdio::StdioEnvironment;
pub(crate) use stdio::snapshot as snapshot_stdio;
