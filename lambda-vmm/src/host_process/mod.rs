//! Spreading environments over VM host processes.
//!
//! KVM hangs one MMU notifier per VM off the process that made it, and each new VM walks
//! every mapping of that process: with thousands of VMs in one process, making another one
//! costs milliseconds, and a host that ages pages (DAMON, reclaim) pays for every VM of the
//! process on every page it samples (`docs/platform.md`, "Many VMs in one process" and "The
//! host's DAMON"). A [`HostProcessBackend`] keeps its environments in several child
//! processes instead, each running a [`MicroVmBackend`](crate::MicroVmBackend) behind
//! [`serve_stdio`]: the engine sends each call (create, invoke, shut down) down a pipe and
//! reads the answer back (`wire.rs` has the protocol), so the cost of a VM grows with the VMs
//! of its own process only. A host process that dies takes only its own environments with
//! it; their calls fail with [`EnvironmentError::Failed`] naming how it ended, and the next
//! environment for its place starts a new one.
//!
//! What differs from a `MicroVmBackend` in the engine's process:
//!
//! - SnapStart snapshots are shared through files: a version's first environment runs its
//!   Init in one process, which snapshots it and writes the snapshot to a file in a private
//!   directory of the engine's; the other processes restore the version from that file
//!   (`shared_snapshots.rs`). One Init per version in all, as in one process; each process
//!   reads the file once, and learns by itself what a first restored run touches.
//! - A call costs a round trip over a pipe and four thread hand-offs: 77-133 us more per warm
//!   invocation on the nested hosts this was measured on (`docs/host-processes.md`);
//!   payloads and responses are copied through the pipe.
//! - A host process that stops answering is given the function's timeout and the backend's
//!   [`Patience`], then killed.
//! - The host program is a separate executable: this crate's `lambda-vmm-host` binary, or
//!   any program whose `main` calls [`serve_stdio`].

mod answering;
mod environment;
mod process;
mod serve;
mod shared_snapshots;
mod wire;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lambda_core::{
    Backend, EnvironmentError, EnvironmentStart, ExecutionEnvironment, FunctionConfig,
};

use crate::sync::lock;
use environment::RemoteEnvironment;
use process::HostProcess;
pub use serve::{serve, serve_stdio};
use shared_snapshots::{SharedSnapshots, Version};
pub use wire::HostOptions;
use wire::{ReplyBody, RequestBody};

/// How long the engine waits for a host process's answer before it takes the process to be
/// broken, kills it, and fails the call (and every other call on that process). The VMM in
/// the process keeps the function's own time limits, so only a process that stopped working
/// runs past these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// For a create: Init's own limit, a snapshot's, a wait behind another create of the
    /// same version, and a margin for a loaded host. 120 s by default.
    pub create: Duration,
    /// For an invocation, beyond the function's timeout: an Init that resets the
    /// environment first, and a margin for a loaded host. 70 s by default. Also for a
    /// shutdown.
    pub invoke: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Patience {
            create: Duration::from_secs(120),
            invoke: lambda_core::limits::INIT_TIMEOUT + Duration::from_secs(60),
        }
    }
}

/// The file name of the VM host program this crate builds (`src/bin/lambda-vmm-host.rs`).
pub const HOST_PROGRAM_NAME: &str = "lambda-vmm-host";

/// Why a VM host process could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HostProcessError {
    /// A backend needs at least one host process.
    #[error("a HostProcessBackend needs at least one VM host process")]
    NoProcesses,
    /// No host program was found beside the running one
    /// ([`HostProcessBackend::start_beside_current_exe`]).
    #[error(
        "no VM host program `{HOST_PROGRAM_NAME}` beside {} or one directory up: build it \
         with `cargo build --release -p lambda-vmm --bin lambda-vmm-host`",
        exe.display()
    )]
    NotFound {
        /// The running program.
        exe: PathBuf,
    },
    /// The host program could not be started.
    #[error(
        "cannot start the VM host program {}: {source} (build it with `cargo build \
         --release -p lambda-vmm --bin lambda-vmm-host`, or pass the path of a program that calls \
         `lambda_vmm::host_process::serve_stdio`)",
        program.display()
    )]
    Start {
        /// The program.
        program: PathBuf,
        /// What starting it said.
        #[source]
        source: std::io::Error,
    },
    /// The host process cannot run VMs on this host.
    #[error("the VM host process cannot run VMs: {0}")]
    Unavailable(String),
    /// The program started but did not speak the host protocol.
    #[error("the VM host program {} did not answer as a VM host: {detail}", program.display())]
    Protocol {
        /// The program.
        program: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

impl From<HostProcessError> for EnvironmentError {
    fn from(error: HostProcessError) -> Self {
        match error {
            HostProcessError::Unavailable(_)
            | HostProcessError::Start { .. }
            | HostProcessError::NotFound { .. } => EnvironmentError::Unavailable(error.to_string()),
            other => EnvironmentError::failed_because("starting a VM host process", other),
        }
    }
}

/// A [`Backend`] whose environments live in a fixed number of VM host processes (see the
/// [module](self) documentation). Each new environment goes to the process holding the fewest;
/// a process that has died is started again when its turn comes. Clones share the processes,
/// which exit once the last clone and the last of their environments are dropped (dropping
/// the last waits for each process to shut its environments down and exit).
#[derive(Clone)]
pub struct HostProcessBackend {
    inner: Arc<Inner>,
}

struct Inner {
    program: PathBuf,
    options: HostOptions,
    patience: Mutex<Patience>,
    slots: Vec<Mutex<Option<Arc<HostProcess>>>>,
    /// SnapStart versions and their snapshot files.
    shared: SharedSnapshots,
}

/// Backends made so far in this process, to name each one's snapshot directory.
static BACKENDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl std::fmt::Debug for HostProcessBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostProcessBackend")
            .field("program", &self.inner.program)
            .field("processes", &self.inner.slots.len())
            .field("options", &self.inner.options)
            .finish()
    }
}

impl HostProcessBackend {
    /// Starts `processes` VM host processes running `program`, each with a `MicroVmBackend`
    /// made with `options`, and waits until all are ready.
    ///
    /// Errors: `processes` is 0, `program` cannot be started or does not speak the protocol,
    /// or the host cannot run VMs (KVM unusable); processes already started are stopped.
    pub fn start(
        program: impl Into<PathBuf>,
        processes: usize,
        options: HostOptions,
    ) -> Result<HostProcessBackend, HostProcessError> {
        if processes == 0 {
            return Err(HostProcessError::NoProcesses);
        }
        let program = program.into();
        let mut slots = Vec::with_capacity(processes);
        for _ in 0..processes {
            let process = HostProcess::start(&program, &options)?;
            slots.push(Mutex::new(Some(Arc::new(process))));
        }
        Ok(HostProcessBackend {
            inner: Arc::new(Inner {
                program,
                options,
                patience: Mutex::new(Patience::default()),
                slots,
                shared: SharedSnapshots::new(BACKENDS.fetch_add(1, Ordering::Relaxed)),
            }),
        })
    }

    /// Where a program built by the same `cargo` build as the running one finds
    /// [`HOST_PROGRAM_NAME`]: beside its executable, or one directory up (tests and examples
    /// run from `target/<profile>/deps` and `target/<profile>/examples`). `None` if neither
    /// holds it.
    pub fn program_beside_current_exe() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let dir = exe.parent()?;
        [Some(dir), dir.parent()]
            .into_iter()
            .flatten()
            .map(|dir| dir.join(HOST_PROGRAM_NAME))
            .find(|path| path.is_file())
    }

    /// [`start`](Self::start) with the host program [`program_beside_current_exe`]
    /// finds: for examples, tests and benches built by the same `cargo` as the host program.
    ///
    /// Errors: [`HostProcessError::NotFound`] (saying how to build it) when there is none,
    /// then those of [`start`](Self::start).
    ///
    /// [`program_beside_current_exe`]: Self::program_beside_current_exe
    pub fn start_beside_current_exe(
        processes: usize,
        options: HostOptions,
    ) -> Result<HostProcessBackend, HostProcessError> {
        let program =
            Self::program_beside_current_exe().ok_or_else(|| HostProcessError::NotFound {
                exe: std::env::current_exe().unwrap_or_default(),
            })?;
        Self::start(program, processes, options)
    }

    /// Sets how long calls made from now on wait for a host process (for this backend and
    /// its clones).
    pub fn set_patience(&self, patience: Patience) {
        *lock(&self.inner.patience) = patience;
    }

    /// How long calls wait for a host process.
    pub fn patience(&self) -> Patience {
        *lock(&self.inner.patience)
    }

    /// The host program.
    pub fn program(&self) -> &Path {
        &self.inner.program
    }

    /// The directory holding the SnapStart snapshot files the host processes share, one per
    /// function version (at most 32; the oldest is removed first): a directory of the
    /// system's temporary one, readable by this user only, made at the first file and
    /// removed with the last clone of the backend. Each file holds what the version's
    /// function had written to memory by the end of its Init.
    pub fn snapshot_dir(&self) -> &Path {
        self.inner.shared.dir()
    }

    /// The ids of the host processes running now, in slot order; `None` for a slot whose
    /// process has ended and not been started again.
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.per_slot(|process| live(process).map(|process| process.pid()))
    }

    /// How many live environments each host process holds, in slot order.
    pub fn environments_per_process(&self) -> Vec<usize> {
        self.per_slot(|process| {
            process.map_or(0, |process| process.environments.load(Ordering::Relaxed))
        })
    }

    /// `look` at each slot's process (if it has one), in slot order.
    fn per_slot<T>(&self, look: impl Fn(Option<&Arc<HostProcess>>) -> T) -> Vec<T> {
        self.inner
            .slots
            .iter()
            .map(|slot| look(lock(slot).as_ref()))
            .collect()
    }

    /// The host process for the next environment: the live one holding the fewest (a dead
    /// one counts as empty and is started again).
    fn pick(&self) -> Result<Arc<HostProcess>, HostProcessError> {
        let load = |slot: &Mutex<Option<Arc<HostProcess>>>| {
            live(lock(slot).as_ref())
                .map_or(0, |process| process.environments.load(Ordering::Relaxed))
        };
        let slot = self
            .inner
            .slots
            .iter()
            .min_by_key(|slot| load(slot))
            .ok_or(HostProcessError::NoProcesses)?;
        let mut slot = lock(slot);
        match live(slot.as_ref()) {
            Some(process) => Ok(Arc::clone(process)),
            None => {
                // Drop the dead one first: it reaps its process.
                *slot = None;
                let process = Arc::new(HostProcess::start(
                    &self.inner.program,
                    &self.inner.options,
                )?);
                *slot = Some(Arc::clone(&process));
                Ok(process)
            }
        }
    }
}

/// A slot's process if it is still answering (not ended, killed or abandoned).
fn live(process: Option<&Arc<HostProcess>>) -> Option<&Arc<HostProcess>> {
    process.filter(|process| !process.is_gone())
}

impl Backend for HostProcessBackend {
    fn name(&self) -> &str {
        "kvm-host-processes"
    }

    /// Creates the environment in the host process holding the fewest; its Init (or restore)
    /// runs there. A configuration out of range is refused here, before any process hears
    /// of it. Under SnapStart, a version's first environment runs its Init and its process
    /// writes the snapshot to a file the other processes restore from (`shared_snapshots.rs`);
    /// creates of the version made meanwhile wait for it.
    fn create(
        &self,
        config: &FunctionConfig,
    ) -> Result<Box<dyn ExecutionEnvironment>, EnvironmentError> {
        config.validate()?;
        let Some(key) = config
            .snap_start
            .then(|| SharedSnapshots::key(config))
            .flatten()
        else {
            return Ok(self.create_in_one(config, None)?.0);
        };
        let version = self.inner.shared.version(&key);
        let mut known = lock(&version);
        match &*known {
            Version::File(path) => {
                let path = path.clone();
                drop(known);
                Ok(self.create_in_one(config, Some(path))?.0)
            }
            Version::Unshared => {
                drop(known);
                Ok(self.create_in_one(config, None)?.0)
            }
            Version::Unknown => {
                // The version's first environment: its process snapshots it (or already had).
                let (environment, host) = self.create_in_one(config, None)?;
                *known = match environment.start() {
                    EnvironmentStart::Init | EnvironmentStart::Restored => {
                        self.share(&host, config)
                    }
                    EnvironmentStart::SnapshotRefused(_) => Version::Unshared,
                };
                Ok(environment)
            }
        }
    }
}

impl HostProcessBackend {
    /// Asks `host`, which snapshotted `config`'s version, to write the snapshot to a new
    /// file: the version's [`Version::File`], or [`Version::Unshared`] if that fails.
    fn share(&self, host: &HostProcess, config: &FunctionConfig) -> Version {
        let Ok(path) = self.inner.shared.next_file() else {
            return Version::Unshared;
        };
        let saved = host.request(
            RequestBody::SaveSnapshot {
                config: config.clone(),
                path: path.clone(),
            },
            self.patience().create,
            "a snapshot's writing",
        );
        match saved {
            Ok(ReplyBody::Saved) => Version::File(path),
            _ => {
                let _ = std::fs::remove_file(&path);
                Version::Unshared
            }
        }
    }

    /// Creates an environment of `config` in the host process holding the fewest, which
    /// restores it from `snapshot_file` if it knows nothing of its SnapStart version yet.
    fn create_in_one(
        &self,
        config: &FunctionConfig,
        snapshot_file: Option<PathBuf>,
    ) -> Result<(Box<dyn ExecutionEnvironment>, Arc<HostProcess>), EnvironmentError> {
        let patience = self.patience();
        let host = self.pick()?;
        host.environments.fetch_add(1, Ordering::Relaxed);
        // From here the environment count is the RemoteEnvironment's to give back, or this
        // guard's if none is made.
        let made = (|| {
            let request = RequestBody::Create {
                config: config.clone(),
                snapshot_file,
            };
            match host.request(request, patience.create, "a create")? {
                ReplyBody::Created {
                    environment,
                    init_duration,
                    start,
                    fresh_per_invocation,
                } => Ok((environment, init_duration, start, fresh_per_invocation)),
                ReplyBody::Failed(error) => Err(error.into()),
                _ => Err(host.unexpected_reply("a create")),
            }
        })();
        match made {
            Ok((number, init_duration, start, fresh_per_invocation)) => Ok((
                Box::new(RemoteEnvironment {
                    host: Arc::clone(&host),
                    number,
                    timeout: config.timeout,
                    patience: patience.invoke,
                    init_duration,
                    start,
                    fresh_per_invocation,
                    released: false,
                }),
                host,
            )),
            Err(error) => {
                host.environments.fetch_sub(1, Ordering::Relaxed);
                Err(error)
            }
        }
    }
}
