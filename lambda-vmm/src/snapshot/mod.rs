//! Snapshots of a function's environment once its Init is done, and environments restored
//! from them: Lambda's SnapStart, with the micro-VM's memory shared copy-on-write. What a
//! snapshot holds is in `machine/snapshot.rs`; how and when it is taken, on [`Snapshot`].

mod file;
pub(crate) mod forms;

use std::sync::Arc;
use std::time::Duration;

use lambda_core::{Contract, EnvironmentError, FunctionConfig};

use crate::machine::MachineSnapshot;
use crate::program::CodePackage;
use crate::vm::VmError;

/// How long a function that has finished its Init may keep some thread runnable before the
/// snapshot is given up (it never went quiescent).
pub const QUIESCE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a snapshot could not be taken, or an environment not restored from one.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The function's Init failed (or could not run), so there is no state to snapshot.
    #[error("the function's Init failed")]
    Init(#[source] EnvironmentError),
    /// The function did not reach a point where all its threads wait: it kept a thread
    /// running, or ended, before waiting for its event.
    #[error("the function never went quiescent: {0}")]
    NotQuiescent(String),
    /// The environment holds no running function (it was reset by a crash or timeout).
    #[error("the environment has no running function to snapshot (it was reset)")]
    NoMachine,
    /// The snapshot does not fit the function it is restored for.
    #[error("the snapshot does not fit: {0}")]
    Foreign(String),
    /// The host could not store or map the snapshot's memory.
    #[error("cannot store or map the snapshot's memory")]
    Memory(#[source] std::io::Error),
    /// KVM failed while reading the vCPU's state.
    #[error("the micro-VM failed while taking the snapshot")]
    Vm(#[source] VmError),
    /// A snapshot file (or the function's code file) could not be read or written.
    #[error("cannot read or write {}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a snapshot file (it does not start with the magic bytes).
    #[error("{} is not a snapshot file", .0.display())]
    NotASnapshot(std::path::PathBuf),
    /// The file was written in another format version.
    #[error("the snapshot file is of format version {found}; this build reads version {expected}")]
    Version {
        /// The file's version.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// The file is damaged: its checksum, its encoding or its contents do not hold together.
    #[error("the snapshot file is corrupt: {0}")]
    Corrupt(String),
}

/// A function's environment frozen after Init. Cheap to clone: clones share the frozen
/// state. Made by [`MicroVmBackend::snapshot`](crate::MicroVmBackend::snapshot);
/// environments come from [`MicroVmBackend::restore`](crate::MicroVmBackend::restore).
///
/// It is taken where the function waits for its first event, with every one of its threads
/// waiting in a call: for a Runtime API function once the runtime has asked for its first
/// invocation, for a one-shot function when it first reads stdin. Each environment restored
/// from it starts there, in a micro-VM of its own: the snapshot's memory is mapped
/// copy-on-write (restored environments share the pages none of them wrote; a write in one
/// is seen by no other, nor by the snapshot), and the kernel's state (descriptors, `/tmp`,
/// sockets, the Runtime API connection, threads, signals) is a copy of its own.
///
/// Uniqueness, as SnapStart documents it: `getrandom` asks the host each time, and the
/// clocks (syscalls and vDSO) read the host's time, so both are fresh after a restore. What
/// the program drew from its own generator during Init (a seeded PRNG, a hash map's keys),
/// and the `AT_RANDOM` bytes it was started with, are the same in every environment
/// restored from one snapshot: a program that needs unique values must draw them after
/// Init.
#[derive(Clone)]
pub struct Snapshot {
    frozen: Arc<Frozen>,
}

pub(crate) struct Frozen {
    pub machine: MachineSnapshot,
    pub package: CodePackage,
    pub config: FunctionConfig,
    pub init_duration: Duration,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("function", &self.frozen.config.name)
            .field("contract", &self.frozen.config.contract)
            .field("memory_mb", &self.frozen.config.memory_mb)
            .field("stored_bytes", &self.stored_bytes())
            .field("threads", &self.threads())
            .finish()
    }
}

impl Snapshot {
    pub(crate) fn new(frozen: Frozen) -> Snapshot {
        Snapshot {
            frozen: Arc::new(frozen),
        }
    }

    pub(crate) fn frozen(&self) -> &Frozen {
        &self.frozen
    }

    /// The configuration of the function it was taken of; environments restored from it
    /// run with this configuration.
    pub fn config(&self) -> &FunctionConfig {
        &self.frozen.config
    }

    /// Which contract the function follows (where it was snapshotted).
    pub fn contract(&self) -> Contract {
        self.frozen.config.contract
    }

    /// How long the Init before the snapshot took (for a one-shot function: from the start
    /// until its first read of stdin).
    pub fn init_duration(&self) -> Duration {
        self.frozen.init_duration
    }

    /// Bytes of guest memory the snapshot holds (pages that read as zero are not stored);
    /// shared by every environment restored from it.
    pub fn stored_bytes(&self) -> u64 {
        self.frozen.machine.stored_bytes()
    }

    /// How many threads the function had when it was snapshotted.
    pub fn threads(&self) -> usize {
        self.frozen.machine.threads()
    }

    /// Writes the snapshot to `path` (replacing any file there), to be read back by
    /// [`MicroVmBackend::load_snapshot`](crate::MicroVmBackend::load_snapshot), in this
    /// process or another. The file holds the function's configuration, its state and the
    /// memory it had written, with a format version and a checksum; not its code, which is
    /// read again from the configuration's code location when the file is loaded and must
    /// be unchanged. A file is as trusted as the function's code: the checksum catches
    /// damage, not forgery.
    pub fn write_to(&self, path: impl AsRef<std::path::Path>) -> Result<(), SnapshotError> {
        file::write(&self.frozen, path.as_ref())
    }

    /// Reads a snapshot file written by [`Snapshot::write_to`]; `load_code` gives the
    /// function's checked program for the configuration it holds.
    pub(crate) fn read_from(
        path: &std::path::Path,
        load_code: impl FnOnce(
            &FunctionConfig,
        )
            -> Result<(crate::program::ProgramImage, CodePackage), SnapshotError>,
    ) -> Result<Snapshot, SnapshotError> {
        file::read(path, load_code).map(Snapshot::new)
    }
}
