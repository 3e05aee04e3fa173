//! The micro-VM backend: a [`Backend`] whose environments are KVM micro-VMs.

use std::sync::Arc;

use lambda_core::{Backend, Contract, EnvironmentError, ExecutionEnvironment, FunctionConfig};

use crate::env::guard::guarded;
use crate::env::{RuntimeApiEnvironment, StdioEnvironment};
use crate::error::VmmError;
use crate::machine::MachineOptions;
use crate::program::{CodePackage, ProgramCache, ProgramImage};
use crate::snap_start::{Known, SnapStart};
use crate::snapshot::{Snapshot, SnapshotError};
use crate::trace::span;
use crate::vm::kvm;
use crate::vm::spare::SparePool;

/// Creates execution environments as KVM micro-VMs.
///
/// ```no_run
/// use lambda_core::{Backend, CodeLocation, Contract, FunctionConfig, Invocation};
/// use lambda_vmm::MicroVmBackend;
///
/// let backend = MicroVmBackend::new()?;
/// let config = FunctionConfig::new("echo", CodeLocation::Executable("./echo".into()))
///     .with_contract(Contract::Stdio);
/// let mut environment = backend.create(&config)?;
/// let result = environment.invoke(Invocation::new(b"hi".to_vec()))?;
/// println!("{}", result.report);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A function's code is read, checked and staged once, when its first environment is made,
/// and kept (for the 32 programs used last) while its file is unchanged: later environments
/// map the same staged image.
#[derive(Clone, Default)]
pub struct MicroVmBackend {
    options: MachineOptions,
    programs: Arc<ProgramCache>,
    snap_start: Arc<SnapStart>,
    /// Machines each SnapStart snapshot keeps restored ahead.
    restored_ahead: usize,
}

impl std::fmt::Debug for MicroVmBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicroVmBackend")
            .field("spare_vms", &self.options.spares.is_some())
            .field("vdso", &!self.options.no_vdso)
            .field("huge_pages", &!self.options.no_huge_pages)
            .field("restored_ahead", &self.restored_ahead)
            .finish()
    }
}

impl MicroVmBackend {
    /// A backend on this host's `/dev/kvm`; fails when KVM cannot be used.
    ///
    /// The first call also limits glibc's `malloc` to one arena for the whole process
    /// (`mallopt(M_ARENA_MAX, 1)`), because with thousands of VMs in one process the heaps of
    /// the per-thread arenas cost every VM a notification each time they grow: restoring
    /// 5,000 environments on two threads ran 2.2-2.7x faster with one arena (`docs/platform.md`,
    /// "Many VMs in one process"). Threads that allocated before keep their arenas. A host
    /// that wants its own limit sets `GLIBC_TUNABLES=glibc.malloc.arena_max=N`, which is then
    /// left alone.
    pub fn new() -> Result<MicroVmBackend, VmmError> {
        kvm::context().map_err(VmmError::KvmUnavailable)?;
        crate::host::limit_malloc_arenas();
        Ok(MicroVmBackend::default())
    }

    /// Keeps `per_size` blank VMs ready for every memory size in use, made by a background
    /// thread, so a cold start skips VM creation (~1 ms here). A spare has never run
    /// anything; the pool is shared by every environment this backend (and its clones)
    /// creates, and stops with the last of them.
    pub fn with_spare_vms(mut self, per_size: usize) -> MicroVmBackend {
        self.options.spares = (per_size > 0).then(|| Arc::new(SparePool::new(per_size)));
        self
    }

    /// For [`snap_start`](FunctionConfig::snap_start) functions: each version's snapshot,
    /// once taken, keeps `per_version` machines restored ahead, warmed with the pages its
    /// first restored environment touched ([`Snapshot::keep_restored`]), so the version's
    /// later environments (cold starts, provisioned ones made later) start from one when one
    /// is ready. Each such machine holds a private copy of the memory its snapshot stored
    /// (1-2 MiB for small runtimes), and the snapshot's thread makes the next one while the
    /// last one taken runs. 0, the default, restores on the spot.
    pub fn with_restored_ahead(mut self, per_version: usize) -> MicroVmBackend {
        self.restored_ahead = per_version;
        self
    }

    /// The snapshot SnapStart took of `config`'s version (its configuration and its code as
    /// the file is now), if it took one and still keeps it: to write it to a file, or to
    /// wait for its machines restored ahead ([`Snapshot::wait_for_restored`]).
    pub fn snap_start_snapshot(&self, config: &FunctionConfig) -> Option<Snapshot> {
        let (image, _) = self.checked_code(config).ok()?;
        match self
            .snap_start
            .get(&SnapStart::key(config, image.identity()))?
        {
            Known::Ready(snapshot) => Some(snapshot),
            Known::Refused(_) => None,
        }
    }

    /// Whether SnapStart knows `config`'s version: snapshotted it, or found it could not.
    pub(crate) fn knows_snap_start_version(&self, config: &FunctionConfig) -> bool {
        self.checked_code(config).is_ok_and(|(image, _)| {
            self.snap_start
                .get(&SnapStart::key(config, image.identity()))
                .is_some()
        })
    }

    /// A version's snapshot was just taken: it keeps the machines asked for restored ahead.
    fn keep_ahead(&self, known: &Known) {
        if let (Known::Ready(snapshot), 1..) = (known, self.restored_ahead) {
            snapshot.keep_restored(self.restored_ahead);
        }
    }

    /// Restores plainly from a snapshot (no machine restored ahead) with only the frames
    /// its first restored run wrote copied in, not also those it read. By default both are
    /// copied once that run has taught the snapshot what it touched
    /// ([`Snapshot::pages_learnt`]): each environment then holds its own copy of what that
    /// run read (about 0.6 MiB for `runtime-loop`), and its first invocation takes one
    /// shadow-paging fault per eight neighbouring pages instead of one per page, which made
    /// 5,000 environments restored and invoked over 16 host processes 5-20% faster
    /// (`docs/snapshots.md`, "Copying in what the first run touched"). Lean restores keep
    /// the read pages shared with the snapshot, for the most environments per GB.
    pub fn with_lean_restores(mut self, lean: bool) -> MicroVmBackend {
        self.options.lean_restores = lean;
        self
    }

    /// Does not tell programs of the vDSO, so every clock reading is a syscall (a VM exit),
    /// as before there was one: for measuring what it saves. Programs behave the same.
    pub fn without_vdso(mut self) -> MicroVmBackend {
        self.options.no_vdso = true;
        self
    }

    /// Keeps guest memory on 4 KiB host pages: the host is never asked to back a 2 MiB
    /// chunk with a huge page. Programs behave the same; memory-heavy ones run slower (each
    /// 4 KiB page first touched costs the guest a trip through the hypervisor). For hosts
    /// where huge pages are unwanted, and for tests of the paths a host without them takes.
    pub fn without_huge_pages(mut self) -> MicroVmBackend {
        self.options.no_huge_pages = true;
        self
    }

    /// How many spare VMs of `memory_mb` are ready now.
    pub fn spare_vms_ready(&self, memory_mb: u32) -> usize {
        self.options
            .spares
            .as_ref()
            .map_or(0, |pool| pool.ready(u64::from(memory_mb) << 20))
    }

    /// Blocks until the spare VMs of `memory_mb` are all made (asking for them if no cold
    /// start has yet), and returns how many are ready: 0 without spare VMs, or when KVM
    /// refused to make one. For benchmarks and tests that want the background thread idle.
    pub fn wait_for_spare_vms(&self, memory_mb: u32) -> usize {
        self.options
            .spares
            .as_ref()
            .map_or(0, |pool| pool.wait_stocked(u64::from(memory_mb) << 20))
    }

    /// How many cold starts found a spare VM ready, and how many did not.
    pub fn spare_hits_and_misses(&self) -> (u64, u64) {
        self.options
            .spares
            .as_ref()
            .map_or((0, 0), |pool| pool.hits_and_misses())
    }

    /// Creates a one-shot stdio environment with the concrete type, which also reports
    /// [`RunStats`](crate::RunStats) (exits, syscalls) of its last invocation. With
    /// [`snap_start`](FunctionConfig::snap_start), its invocations run in VMs restored from
    /// the function's snapshot (taken at its first read of stdin, once per version).
    pub fn create_stdio(
        &self,
        config: &FunctionConfig,
    ) -> Result<StdioEnvironment, EnvironmentError> {
        let (image, package) = self.checked_code(config)?;
        if !config.snap_start {
            return Ok(StdioEnvironment::new(
                image,
                package,
                config.clone(),
                self.options.clone(),
            ));
        }
        let key = SnapStart::key(config, image.identity());
        let (known, made) = self.snap_start.get_or_make(&key, || {
            let taken = crate::env::snapshot_stdio(&image, &package, config, &self.options);
            match taken {
                Err(SnapshotError::Init(error)) => Err(error),
                taken => Ok(((), taken)),
            }
        })?;
        if made.is_some() {
            self.keep_ahead(&known);
        }
        Ok(match known {
            Known::Ready(snapshot) => StdioEnvironment::restoring(&snapshot, self.options.clone()),
            refused => {
                let mut environment =
                    StdioEnvironment::new(image, package, config.clone(), self.options.clone());
                environment.set_start(refused.start_without_snapshot());
                environment
            }
        })
    }

    /// Creates a warm Runtime API environment with the concrete type, running its Init. With
    /// [`snap_start`](FunctionConfig::snap_start), the first environment of a version is
    /// snapshotted after its Init, and the later ones are restored from the snapshot.
    pub fn create_runtime_api(
        &self,
        config: &FunctionConfig,
    ) -> Result<RuntimeApiEnvironment, EnvironmentError> {
        let (image, package) = self.checked_code(config)?;
        if !config.snap_start {
            return RuntimeApiEnvironment::start(
                image,
                package,
                config.clone(),
                self.options.clone(),
            );
        }
        let key = SnapStart::key(config, image.identity());
        let start = || {
            RuntimeApiEnvironment::start(
                image.clone(),
                package.clone(),
                config.clone(),
                self.options.clone(),
            )
        };
        let (known, made) = self.snap_start.get_or_make(&key, || {
            // The version's first environment: Init, then the snapshot; it serves as is.
            let mut environment = start()?;
            let taken = environment.snapshot();
            Ok::<_, EnvironmentError>((environment, taken))
        })?;
        match (known, made) {
            (known, Some(mut first)) => {
                self.keep_ahead(&known);
                first.set_start(known.start_without_snapshot());
                Ok(first)
            }
            (Known::Ready(snapshot), None) => {
                RuntimeApiEnvironment::restore(&snapshot, self.options.clone())
            }
            (refused, None) => {
                let mut environment = start()?;
                environment.set_start(refused.start_without_snapshot());
                Ok(environment)
            }
        }
    }

    /// Makes `snapshot` the SnapStart snapshot of its version (its configuration, and its
    /// code as the file is now): this backend's environments of that version are then
    /// restored from it, with no Init here. For a snapshot another backend took, in this
    /// process or another (read with [`MicroVmBackend::load_snapshot`]), so that a
    /// version's Init runs once across them, as Lambda's SnapStart runs it once per
    /// published version. Returns `false`, and changes nothing, if this backend already
    /// knows the version (snapshotted, or found it could not be).
    ///
    /// Errors: the snapshot's function code cannot be staged.
    pub fn adopt_snap_start_snapshot(&self, snapshot: Snapshot) -> Result<bool, EnvironmentError> {
        let (image, _) = self.checked_code(snapshot.config())?;
        let key = SnapStart::key(snapshot.config(), image.identity());
        let adopted = self.snap_start.adopt(&key, snapshot.clone());
        if adopted {
            self.keep_ahead(&Known::Ready(snapshot));
        }
        Ok(adopted)
    }

    /// How many function versions with SnapStart this backend has snapshotted (or found it
    /// could not snapshot) and keeps.
    pub fn snap_start_versions(&self) -> usize {
        self.snap_start.len()
    }
}

impl MicroVmBackend {
    /// Starts `config`'s function and snapshots it once its Init is done (see
    /// [`Snapshot`]): a Runtime API function once its runtime asks for the first invocation
    /// and every thread waits; a one-shot function at its first read of stdin. The
    /// environment used for it is shut down.
    ///
    /// ```no_run
    /// use lambda_core::{CodeLocation, Contract, ExecutionEnvironment, FunctionConfig, Invocation};
    /// use lambda_vmm::MicroVmBackend;
    ///
    /// let backend = MicroVmBackend::new()?.with_spare_vms(2);
    /// let config = FunctionConfig::new("echo", CodeLocation::Executable("./echo".into()))
    ///     .with_contract(Contract::Stdio);
    /// let snapshot = backend.snapshot(&config)?;
    /// let mut environment = backend.restore(&snapshot)?;
    /// let result = environment.invoke(Invocation::new(b"hi".to_vec()))?;
    /// assert!(result.report.restore_duration.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn snapshot(&self, config: &FunctionConfig) -> Result<Snapshot, SnapshotError> {
        span!("take_snapshot", function = config.name.as_str());
        let take = || match config.contract {
            Contract::RuntimeApi => {
                let mut environment = self
                    .create_runtime_api(config)
                    .map_err(SnapshotError::Init)?;
                let snapshot = environment.snapshot();
                Box::new(environment).shutdown();
                snapshot
            }
            Contract::Stdio => {
                let (image, package) = self.checked_code(config).map_err(SnapshotError::Init)?;
                crate::env::snapshot_stdio(&image, &package, config, &self.options)
            }
        };
        guarded("snapshot", take).unwrap_or_else(|panicked| Err(SnapshotError::Init(panicked)))
    }

    /// An environment restored from `snapshot`, in a micro-VM of its own (a spare one if
    /// [`MicroVmBackend::with_spare_vms`] keeps them): a Runtime API function ready for its
    /// first invocation, whose REPORT then says `Restore Duration` instead of `Init Duration`;
    /// a one-shot function whose every invocation runs in a fresh VM restored from it.
    pub fn restore(
        &self,
        snapshot: &Snapshot,
    ) -> Result<Box<dyn ExecutionEnvironment>, EnvironmentError> {
        let restore = || -> Result<Box<dyn ExecutionEnvironment>, EnvironmentError> {
            match snapshot.contract() {
                Contract::Stdio => Ok(Box::new(self.restore_stdio(snapshot)?)),
                Contract::RuntimeApi => Ok(Box::new(self.restore_runtime_api(snapshot)?)),
            }
        };
        guarded("restore", restore).unwrap_or_else(Err)
    }

    /// Reads a snapshot file written by [`Snapshot::write_to`]. It is refused with a
    /// [`SnapshotError`] saying why when it is not a snapshot file, was written by another
    /// format version, is damaged (checksum, encoding, contents), was taken on a CPU of
    /// another vendor or with a feature this host's KVM does not offer, or by a build whose
    /// kernel area (vDSO, stubs) differs, or when its function's code has changed since.
    ///
    /// The function's configuration is the one the file holds, host paths included: its
    /// code, base image and layers are read from where the file says, and environments
    /// restored from it see them. Use [`MicroVmBackend::load_snapshot_of`] when the
    /// configuration is known, so that a file of another one is refused before any of it
    /// is read.
    pub fn load_snapshot(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Snapshot, SnapshotError> {
        self.read_snapshot(path.as_ref(), None)
    }

    /// [`MicroVmBackend::load_snapshot`] for a file that must have been taken of `config`:
    /// one taken of any other configuration (another function, code location, memory size,
    /// environment, base image, layer or setting) is refused with
    /// [`SnapshotError::Foreign`] before its code, base image or layers are read.
    pub fn load_snapshot_of(
        &self,
        path: impl AsRef<std::path::Path>,
        config: &FunctionConfig,
    ) -> Result<Snapshot, SnapshotError> {
        self.read_snapshot(path.as_ref(), Some(config))
    }

    /// Both loads: the file at `path`, refused unless taken of `expected` when one is
    /// given, its function's code checked as a new environment's is (`checked_code`).
    fn read_snapshot(
        &self,
        path: &std::path::Path,
        expected: Option<&FunctionConfig>,
    ) -> Result<Snapshot, SnapshotError> {
        Snapshot::read_from(path, expected, |config| {
            self.checked_code(config).map_err(SnapshotError::Init)
        })
    }

    /// [`MicroVmBackend::restore`] for a Runtime API function, with the concrete type; fails
    /// for a one-shot function's snapshot.
    pub fn restore_runtime_api(
        &self,
        snapshot: &Snapshot,
    ) -> Result<RuntimeApiEnvironment, EnvironmentError> {
        if snapshot.contract() != Contract::RuntimeApi {
            return Err(VmmError::Restore(SnapshotError::Foreign(
                "it is a one-shot function's, not a Runtime API function's".into(),
            ))
            .into());
        }
        RuntimeApiEnvironment::restore(snapshot, self.options.clone())
    }

    /// [`MicroVmBackend::restore`] for a one-shot function, with the concrete type; fails
    /// for a Runtime API function's snapshot. Nothing is restored until an invocation (each
    /// gets its own VM).
    pub fn restore_stdio(&self, snapshot: &Snapshot) -> Result<StdioEnvironment, EnvironmentError> {
        if snapshot.contract() != Contract::Stdio {
            return Err(VmmError::Restore(SnapshotError::Foreign(
                "it is a Runtime API function's, not a one-shot function's".into(),
            ))
            .into());
        }
        Ok(StdioEnvironment::restoring(snapshot, self.options.clone()))
    }

    /// Validates the configuration and reads and checks the function's code (or takes it from
    /// the cache), before any VM exists.
    fn checked_code(
        &self,
        config: &FunctionConfig,
    ) -> Result<(ProgramImage, CodePackage), EnvironmentError> {
        config.validate()?;
        let (image, package) = self
            .programs
            .load(&config.code, config.base_image.as_deref(), &config.layers)
            .map_err(VmmError::Load)?;
        image
            .check_fits(config.memory_bytes())
            .map_err(VmmError::Load)?;
        Ok((image, package))
    }
}

impl Backend for MicroVmBackend {
    fn name(&self) -> &str {
        "kvm"
    }

    /// Creates the environment of `config`'s contract; a panic inside (Init included) is an
    /// [`EnvironmentError::Failed`] naming it.
    fn create(
        &self,
        config: &FunctionConfig,
    ) -> Result<Box<dyn ExecutionEnvironment>, EnvironmentError> {
        span!("create", function = config.name.as_str());
        let create = || -> Result<Box<dyn ExecutionEnvironment>, EnvironmentError> {
            match config.contract {
                Contract::Stdio => Ok(Box::new(self.create_stdio(config)?)),
                Contract::RuntimeApi => Ok(Box::new(self.create_runtime_api(config)?)),
            }
        };
        guarded("create", create).unwrap_or_else(Err)
    }
}
