//! Snapshots of a function's environment once its Init is done, and environments restored
//! from them: Lambda's SnapStart, with the micro-VM's memory shared copy-on-write. What a
//! snapshot holds is in `machine/snapshot.rs`; how and when it is taken, on [`Snapshot`].

mod cpu;
mod file;
mod ready;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lambda_core::{Contract, FunctionConfig};

pub use crate::error::SnapshotError;
use lambda_core::logs::LogCollector;

use crate::error::VmmError;
use crate::machine::{Lesson, Machine, MachineOptions, MachineSnapshot};
use crate::program::CodePackage;
use crate::trace::span;

/// How long a function that has finished its Init may keep some thread runnable before the
/// snapshot is given up (it never went quiescent).
pub const QUIESCE_TIMEOUT: Duration = Duration::from_secs(1);

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
    /// Machines restored from it ahead of time ([`Snapshot::keep_restored`]).
    pub ready: ready::ReadyStock,
    /// What the first restored machine to finish a run touched: machines restored ahead
    /// touch its pages before they are handed out, and plain restores copy in the frames it
    /// touched, or only those it wrote (`machine/warm.rs`).
    pub lesson: OnceLock<Lesson>,
}

impl Frozen {
    /// A machine in the frozen state, its output going to `log`: one restored ahead if one is
    /// ready ([`Snapshot::keep_restored`]), else one restored now (into a spare VM if
    /// `options` has one), with the frames an earlier restored run touched (only those it
    /// wrote, with [`MachineOptions::lean_restores`]) copied in once that is known
    /// ([`Machine::populate_touched`]).
    pub fn machine(
        &self,
        options: &MachineOptions,
        log: LogCollector,
    ) -> Result<Machine, VmmError> {
        let start = std::time::Instant::now();
        match self.ready.take() {
            Some(mut machine) => {
                machine.hand_over(log, start.elapsed());
                Ok(machine)
            }
            None => {
                let mut machine = Machine::restore(&self.machine, &self.config, options, log)?;
                if let Some(lesson) = self.lesson.get() {
                    machine.populate_touched(lesson, options.lean_restores);
                }
                Ok(machine)
            }
        }
    }

    /// Keeps what `machine` (restored from this snapshot, after its first run) says its
    /// program touched, if nothing was learnt yet and it can tell (see
    /// [`Machine::lesson`]).
    pub fn learn(&self, machine: &mut Machine) {
        if self.lesson.get().is_some() {
            return;
        }
        span!("learn_touches", function = self.config.name.as_str());
        if let Some(lesson) = machine.lesson() {
            let _ = self.lesson.set(lesson);
        }
    }
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

    /// Keeps `count` environments' machines restored from this snapshot ahead of time, by a
    /// background thread; 0 stops it. Environments restored from the snapshot (on any
    /// backend) then start from one of them when one is ready: their Restore Duration is the
    /// time to take it.
    ///
    /// Once an environment restored from the snapshot has run its first invocation, the
    /// snapshot knows which pages that invocation touched ([`Snapshot::pages_learnt`]). From
    /// then on each machine restored ahead has the stored pages copied in and is **warmed**:
    /// its vCPU touches those pages before it is handed out, so the program's own first
    /// touches cost nothing (`docs/snapshots.md`; [`RunStats::warmed_pages`](crate::RunStats)
    /// says how many). Before that, machines restored ahead are plain restores, and the
    /// first one to run teaches. Each warmed machine holds its own copy of the stored memory,
    /// so keep a few for latency, not thousands. If a restore fails, the thread stops and
    /// restores happen on the spot again. The thread ends with the last clone of the
    /// snapshot.
    pub fn keep_restored(&self, count: usize) {
        ready::ReadyStock::keep(&self.frozen, count);
    }

    /// How many machines restored ahead are ready now ([`Snapshot::keep_restored`]).
    pub fn restored_ready(&self) -> usize {
        self.frozen.ready.ready()
    }

    /// How many pages a machine restored ahead touches before it is handed out
    /// ([`Snapshot::keep_restored`]): those the first environment restored from this snapshot
    /// touched in its first invocation (at most 4,096), learnt then; `None` until then.
    /// From then on, environments restored plainly (no machine restored ahead) also start
    /// with the frames that invocation touched copied in (only those it wrote on a backend
    /// with [`with_lean_restores`](crate::MicroVmBackend::with_lean_restores);
    /// [`RunStats::copied_pages`](crate::RunStats) says how many), which spares a process
    /// holding thousands of VMs most of a first invocation's cost (`docs/snapshots.md`).
    pub fn pages_learnt(&self) -> Option<usize> {
        self.frozen.lesson.get().map(|lesson| lesson.pages.len())
    }

    /// Blocks until as many machines restored ahead are ready as were asked for (or the
    /// thread stopped); returns how many are. For benchmarks and tests.
    pub fn wait_for_restored(&self) -> usize {
        self.frozen.ready.wait_stocked()
    }

    /// Writes the snapshot to `path` (replacing any file there), to be read back by
    /// [`MicroVmBackend::load_snapshot`](crate::MicroVmBackend::load_snapshot), in this
    /// process or another. The file holds the function's configuration, its state (the
    /// kernel's, so also the files the guest sees under `/var/task`, its package's) and the
    /// memory it had written, with a format version and a checksum. The staged program is
    /// made again from the configuration's code location when the file is loaded, and that
    /// code must be unchanged. A file is as trusted as the function's code: the checksum
    /// catches damage, not forgery.
    pub fn write_to(&self, path: impl AsRef<std::path::Path>) -> Result<(), SnapshotError> {
        file::write(&self.frozen, path.as_ref())
    }

    /// Reads a snapshot file written by [`Snapshot::write_to`], refused unless it was taken
    /// of `expected` when that is given; `load_code` gives the function's checked program
    /// for the configuration it holds.
    pub(crate) fn read_from(
        path: &std::path::Path,
        expected: Option<&FunctionConfig>,
        load_code: impl FnOnce(
            &FunctionConfig,
        )
            -> Result<(crate::program::ProgramImage, CodePackage), SnapshotError>,
    ) -> Result<Snapshot, SnapshotError> {
        file::read(path, expected, load_code).map(Snapshot::new)
    }
}
