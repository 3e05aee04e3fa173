//! Snapshot files: a snapshot written to disk and read back, checked.
//!
//! ```text
//! offset  size  what
//! 0       8     magic "LMBDSNAP"
//! 8       4     format version (little-endian), FORMAT_VERSION
//! 12      4     CRC-32 of everything after the first 24 bytes
//! 16      8     length of the state that follows
//! 24      ...   the state (postcard): the function's configuration, the length and CRC-32
//!               of its code file, the CPU it was taken on (`CpuRecord`), the CRC-32 of
//!               the kernel area its build writes (`vm::kernel_area_identity`), Init's
//!               duration, and the machine's state (address space, kernel, threads;
//!               `MachineState`)
//! ...     ...   the stored memory: the bytes of each stored range, in the state's order
//! ```
//!
//! A file is refused, before anything of it is used, when it is not a regular file or not a
//! snapshot (magic), was written by another format version, fails its CRC, does not decode,
//! was taken on a CPU of another vendor or with a feature this host's KVM does not offer
//! (`CpuRecord::fits`), was taken by a build of the VMM that writes another kernel area
//! into its VMs (vDSO, stubs, descriptor and page tables), names memory outside the
//! function's, holds less or more memory than its state says, its page tables reach beyond
//! what the VMM's own can or its frame pool or the stretches' backings do not hold together
//! (`SavedSpace::check`), or its filesystem, descriptor table, pipes or thread table do
//! not (`Kernel::check`: a forged `/tmp` quota or books would let the guest hold more host
//! memory than its ephemeral storage), or its kernel is not of the function's contract, or
//! not between calls and waiting for an invocation (`Kernel::check`, `RuntimeApi::check`),
//! or its threads are not the kernel's, not all waiting in a call, or one's FS base or FPU
//! state is one KVM would refuse (`Tasks::check`, `vm::xsave::check`). When the caller
//! gives the configuration the file must be of, a file of another is refused before
//! anything it names is read. Its function's code is read again and must be the code the
//! snapshot was taken of (length and CRC-32 agree).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use lambda_core::FunctionConfig;

use super::cpu::CpuRecord;
use super::{Frozen, SnapshotError};
use crate::file_forms::with_epoch;
use crate::machine::{MachineSnapshot, MachineState, OwnedMachineState};
use crate::program::{CodePackage, ProgramImage, open_regular, read_code_file};

/// The bytes every snapshot file starts with.
pub const MAGIC: [u8; 8] = *b"LMBDSNAP";
/// The version of the format this build writes and reads.
pub const FORMAT_VERSION: u32 = 5;
/// Bytes before the state.
const HEADER: usize = 24;

/// The state as written.
#[derive(serde::Serialize)]
struct StateOut<'a> {
    config: &'a FunctionConfig,
    code: CodeIdentity,
    cpu: CpuRecord,
    kernel_area: [u8; 4],
    init_nanos: u64,
    machine: MachineState<'a>,
}

/// The state as read (the same fields in the same order).
#[derive(serde::Deserialize)]
struct StateIn {
    config: FunctionConfig,
    code: CodeIdentity,
    cpu: CpuRecord,
    kernel_area: [u8; 4],
    init_nanos: u64,
    machine: OwnedMachineState,
}

/// What tells a function's code file apart from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct CodeIdentity {
    len: u64,
    crc32: u32,
}

impl CodeIdentity {
    fn of(config: &FunctionConfig) -> Result<CodeIdentity, SnapshotError> {
        let path = config.code.path();
        let io = |source| SnapshotError::File {
            path: path.to_path_buf(),
            source,
        };
        let bytes = read_code_file(path).map_err(io)?.ok_or_else(|| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "over Lambda's limit on a function's code",
            ))
        })?;
        Ok(CodeIdentity {
            len: bytes.len() as u64,
            crc32: crc32fast::hash(&bytes),
        })
    }
}

fn corrupt(why: impl Into<String>) -> SnapshotError {
    SnapshotError::Corrupt(why.into())
}

/// The process's KVM context, which a snapshot needs to be written or read.
fn kvm() -> Result<&'static crate::vm::kvm::KvmContext, SnapshotError> {
    crate::vm::kvm::context().map_err(|why| SnapshotError::Vm(crate::vm::VmError::Unavailable(why)))
}

/// The CRC-32 of the kernel area this build writes, as a snapshot file records it.
fn kernel_area() -> Result<[u8; 4], SnapshotError> {
    crate::vm::kernel_area_identity()
        .map(u32::to_le_bytes)
        .map_err(SnapshotError::Vm)
}

/// The CPU this host's KVM gives every vCPU, as a snapshot file records it.
fn host_cpu() -> Result<CpuRecord, SnapshotError> {
    Ok(CpuRecord::of(kvm()?.cpuid.as_slice()))
}

/// Writes `frozen` to `path` (replacing any file there).
pub(crate) fn write(frozen: &Frozen, path: &Path) -> Result<(), SnapshotError> {
    let io = |source| SnapshotError::File {
        path: path.to_path_buf(),
        source,
    };
    let image = frozen.machine.image();
    if image.started_by_exec() {
        return Err(SnapshotError::Replaced(image.exe_path().to_string()));
    }
    let machine = frozen.machine.state();
    // The body: the state, then the stored memory.
    let mut body = with_epoch(|| {
        postcard::to_stdvec(&StateOut {
            config: &frozen.config,
            code: CodeIdentity::of(&frozen.config)?,
            // The snapshot was taken in this process, whose vCPUs all get this CPUID.
            cpu: host_cpu()?,
            kernel_area: kernel_area()?,
            init_nanos: u64::try_from(frozen.init_duration.as_nanos()).unwrap_or(u64::MAX),
            machine,
        })
        .map_err(|error| corrupt(format!("cannot encode the state: {error}")))
    })?;
    let state_len = body.len();
    let memory = frozen.machine.memory();
    for &(addr, len) in machine.saved.stored() {
        let start = body.len();
        body.resize(start + len as usize, 0);
        memory
            .read_exact_at(&mut body[start..], addr)
            .map_err(SnapshotError::Memory)?;
    }
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    header.extend_from_slice(&(state_len as u64).to_le_bytes());
    let mut file = File::create(path).map_err(io)?;
    file.write_all(&header).map_err(io)?;
    file.write_all(&body).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Reads the snapshot at `path`, checked (see the module documentation); `load_code` gives
/// the function's program for its configuration. With `expected`, a file taken of any other
/// configuration is refused before its code, base image or layers are read.
pub(crate) fn read(
    path: &Path,
    expected: Option<&FunctionConfig>,
    load_code: impl FnOnce(&FunctionConfig) -> Result<(ProgramImage, CodePackage), SnapshotError>,
) -> Result<Frozen, SnapshotError> {
    let io = |source| SnapshotError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    open_regular(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.len() < HEADER || bytes[..8] != MAGIC {
        return Err(SnapshotError::NotASnapshot(path.to_path_buf()));
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default());
    let version = word(8);
    if version != FORMAT_VERSION {
        return Err(SnapshotError::Version {
            found: version,
            expected: FORMAT_VERSION,
        });
    }
    let body = &bytes[HEADER..];
    if crc32fast::hash(body) != word(12) {
        return Err(corrupt("its checksum does not match its contents"));
    }
    let state_len = u64::from_le_bytes(bytes[16..24].try_into().unwrap_or_default());
    let state_len = usize::try_from(state_len)
        .ok()
        .filter(|&len| len <= body.len())
        .ok_or_else(|| corrupt("its state runs past the end of the file"))?;
    let (state, memory_bytes) = body.split_at(state_len);
    let state: StateIn = with_epoch(|| postcard::from_bytes(state))
        .map_err(|error| corrupt(format!("its state does not decode: {error}")))?;
    let config = state.config;
    config
        .validate()
        .map_err(|error| corrupt(format!("its function configuration is invalid: {error}")))?;
    if let Some(expected) = expected
        && config != *expected
    {
        return Err(SnapshotError::Foreign(format!(
            "it was taken of function `{}` with another configuration than the one given for \
             `{}` (its code, contract, memory, environment, base image, layers or another \
             setting differ)",
            config.name, expected.name
        )));
    }
    state
        .cpu
        .fits(&host_cpu()?)
        .map_err(SnapshotError::Foreign)?;
    if state.kernel_area != kernel_area()? {
        return Err(SnapshotError::Foreign(
            "it was taken by a build of the VMM that writes another kernel area (vDSO, stubs, \
             descriptor and page tables) into its VMs, and its programs hold addresses into \
             that one: take the snapshot again with this build"
                .into(),
        ));
    }
    if state.machine.memory_bytes != config.memory_bytes() {
        return Err(corrupt(format!(
            "it holds {} bytes of memory for a function of {} MB",
            state.machine.memory_bytes, config.memory_mb
        )));
    }
    // The stored ranges must lie in the function's memory, page-aligned, in order, and
    // account for every byte after the state.
    let mut expected = 0u64;
    let mut previous_end = 0u64;
    for &(addr, len) in state.machine.saved.stored() {
        let end = addr.saturating_add(len);
        if addr % 4096 != 0 || len % 4096 != 0 || addr < previous_end || end > config.memory_bytes()
        {
            return Err(corrupt(format!(
                "it stores memory at {addr:#x} (+{len:#x}), outside the function's or out of order"
            )));
        }
        previous_end = end;
        expected = expected.saturating_add(len);
    }
    if expected != memory_bytes.len() as u64 {
        return Err(corrupt(format!(
            "it holds {} bytes of memory where its state lists {expected}",
            memory_bytes.len()
        )));
    }
    if CodeIdentity::of(&config)? != state.code {
        return Err(SnapshotError::Foreign(format!(
            "the function's code ({}) is not the code the snapshot was taken of",
            config.code.path().display()
        )));
    }
    state
        .machine
        .kernel
        .check(&config)
        .map_err(|why| corrupt(format!("its kernel state does not hold together: {why}")))?;
    state
        .machine
        .check_threads(kvm()?.xsave_limits())
        .map_err(|why| corrupt(format!("its threads: {why}")))?;
    let (image, package) = load_code(&config)?;
    let mut machine = state.machine;
    machine.kernel.attach_base_image(package.base_image.clone());
    let memory =
        crate::host::sealable_memory_file(c"lambda-snapshot").map_err(SnapshotError::Memory)?;
    memory
        .set_len(machine.memory_bytes)
        .map_err(SnapshotError::Memory)?;
    let mut cursor = 0usize;
    for &(addr, len) in machine.saved.stored() {
        let len = len as usize;
        memory
            .write_all_at(&memory_bytes[cursor..cursor + len], addr)
            .map_err(SnapshotError::Memory)?;
        cursor += len;
    }
    crate::host::seal_contents(&memory).map_err(SnapshotError::Memory)?;
    let kernel_leaves = crate::vm::kernel_area_leaves().map_err(SnapshotError::Vm)?;
    machine
        .saved
        .check(machine.memory_bytes, kernel_leaves, |addr, frame| {
            memory.read_exact_at(frame, addr)
        })
        .map_err(|why| corrupt(format!("its {why}")))?;
    Ok(Frozen {
        machine: MachineSnapshot::from_parts(machine, memory, image),
        package,
        config,
        init_duration: Duration::from_nanos(state.init_nanos),
        ready: Default::default(),
        lesson: Default::default(),
    })
}
