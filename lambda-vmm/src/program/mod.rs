//! The program a function runs, from its package to its first instruction: the package (an
//! executable, or a zip holding `bootstrap`), the checked ELF image staged once per program,
//! the initial stack `execve` would build, and the syscall sites rewritten to enter the VMM
//! directly.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

mod cache;
mod error;
mod exec_cache;
mod image;
mod layers;
mod package;
mod resolve;
mod script;
mod stack;
mod syscall_sites;

pub(crate) use cache::ProgramCache;
pub use error::LoadError;
pub use exec_cache::ExecCache;
pub(crate) use image::ProgramImage;
#[cfg(feature = "fuzzing")]
pub(crate) use package::read_zip;
pub(crate) use package::{CodePackage, open_regular, read_code_file, read_package};
pub(crate) use resolve::{ProgramFiles, ResolveError, Unrunnable, resolve};
pub(crate) use stack::{StartupInfo, build_stack};
