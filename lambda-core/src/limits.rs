//! Lambda's limits, as numbers the rest of the family checks against.

use std::time::Duration;

/// Smallest memory size a function can have, in MB.
pub const MIN_MEMORY_MB: u32 = 128;
/// Largest memory size a function can have, in MB.
pub const MAX_MEMORY_MB: u32 = 10_240;
/// Memory size when none is given, in MB.
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// Memory that buys one vCPU: Lambda gives a function the equivalent of one vCPU at 1,769 MB
/// and one more per further 1,769 MB.
pub const MEMORY_MB_PER_VCPU: u32 = 1_769;
/// Most vCPUs a function gets (at 10,240 MB).
pub const MAX_VCPUS: u32 = 6;

/// The vCPUs `memory_mb` of memory buys: 1 up to [`MEMORY_MB_PER_VCPU`], one more per further
/// [`MEMORY_MB_PER_VCPU`], at most [`MAX_VCPUS`].
pub fn vcpus_for_memory_mb(memory_mb: u32) -> u32 {
    memory_mb.div_ceil(MEMORY_MB_PER_VCPU).clamp(1, MAX_VCPUS)
}

/// Shortest timeout a function can have.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest timeout a function can have (15 minutes).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(900);
/// Timeout when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// Total size of a function's environment variables (keys plus values), in bytes.
pub const MAX_ENVIRONMENT_BYTES: usize = 4 * 1024;

/// Smallest `/tmp` a function can have, in MB.
pub const MIN_EPHEMERAL_STORAGE_MB: u32 = 512;
/// Largest `/tmp` a function can have, in MB.
pub const MAX_EPHEMERAL_STORAGE_MB: u32 = 10_240;
/// `/tmp` size when none is given, in MB.
pub const DEFAULT_EPHEMERAL_STORAGE_MB: u32 = 512;

/// Largest payload of a synchronous invocation, each way, in bytes (6 MB).
pub const MAX_SYNC_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Largest response a function in response streaming mode may stream, in bytes (20 MB). A
/// streamed body past it ends the invocation with `Function.ResponseSizeTooLarge`; the bytes
/// up to it have already reached the caller. A streamed response buffered for a caller that
/// did not ask to stream it is held to the synchronous limit ([`MAX_SYNC_PAYLOAD_BYTES`]).
pub const MAX_STREAMED_RESPONSE_BYTES: usize = 20 * 1024 * 1024;
/// Largest payload of an asynchronous invocation, in bytes (1 MB).
pub const MAX_ASYNC_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Longest a function name can be.
pub const MAX_FUNCTION_NAME_LEN: usize = 64;

/// Most layers a function may have.
pub const MAX_LAYERS: usize = 5;

/// How long Init may take before the environment is given up.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an invocation's log is returned with its outcome (Lambda's `X-Amz-Log-Result`).
pub const LOG_TAIL_BYTES: usize = 4 * 1024;
