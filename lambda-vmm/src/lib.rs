//! One execution environment per KVM micro-VM.
//!
//! (Being written.)

pub mod process;

pub use process::ProcessBackend;
