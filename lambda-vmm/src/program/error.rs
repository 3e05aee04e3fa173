//! Why a function's code cannot run.

/// Why a file cannot be run as a function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// Not an ELF file at all.
    #[error(
        "neither an ELF executable (no ELF magic number) nor a #! script: build an x86-64 \
         Linux program"
    )]
    NotElf,
    /// An ELF file for another class, byte order or machine.
    #[error("{0}: only 64-bit little-endian x86-64 programs can run")]
    WrongArchitecture(String),
    /// A dynamically linked program, for a function without a base image.
    #[error(
        "dynamically linked program (it asks for the interpreter {0}) and the function has no \
         base image: give it one (FunctionConfig::with_base_image, docs/base-image.md), or link \
         it statically (gcc -static, or RUSTFLAGS=\"-C target-feature=+crt-static\")"
    )]
    Dynamic(String),
    /// The base image cannot be used.
    #[error("cannot use {path} as a base image: {reason}")]
    BaseImage {
        /// The host directory the configuration names.
        path: String,
        /// Why.
        reason: String,
    },
    /// The interpreter a dynamic program names cannot be loaded from the base image.
    #[error("the program's interpreter {interpreter} {reason}")]
    Interpreter {
        /// The path the program names.
        interpreter: String,
        /// The base image's host directory.
        image: String,
        /// Why.
        reason: String,
    },
    /// A `#!` script that cannot be started: its line, or the interpreter it names.
    #[error("cannot run the script {path}: {reason}")]
    Script {
        /// The script.
        path: String,
        /// Why.
        reason: String,
    },
    /// A layer that cannot be used.
    #[error("cannot use the layer {path}: {reason}")]
    Layer {
        /// The layer's zip or directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// Neither an executable nor a static-pie.
    #[error("ELF type {0} is not an executable: build a program, not a library or object")]
    NotExecutable(u16),
    /// Headers or segments point outside the file or are inconsistent.
    #[error("malformed or truncated ELF file: {0}")]
    Malformed(String),
    /// The program does not fit in the function's memory.
    #[error("the program needs {needed} MB of memory but the function has {memory_mb} MB")]
    TooLarge {
        /// MB the image needs (plus stack).
        needed: u64,
        /// The function's memory size.
        memory_mb: u64,
    },
}
