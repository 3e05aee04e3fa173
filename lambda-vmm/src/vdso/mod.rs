//! The guest's vDSO: a small shared object (`vdso/vdso.c`, built by `build.rs`) mapped into
//! every program with its data page, so `clock_gettime`, `gettimeofday`, `time` and `getcpu`
//! answer inside the guest without a VM exit, from the TSC and parameters the VMM refreshes
//! before each run.
//!
//! `image` checks and places the code; `vvar` is the data page's layout; `tsc` turns host
//! clocks and the TSC into the parameters, which the kernel's own clock (`kernel/time.rs`)
//! uses too, so a program sees one clock whichever way it asks.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

mod image;
mod tsc;
mod vvar;

pub use image::{MAX_PAGES, image};
pub use tsc::{TscClock, guest_tsc_rate};
pub use vvar::write as write_vvar;
