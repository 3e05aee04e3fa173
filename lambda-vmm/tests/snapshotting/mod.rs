//! A backend whose environments are restored from snapshots, for running the lifecycle
//! scenarios on restored environments (shared by the snapshot test binaries).

#![allow(dead_code)] // Each test crate uses what it needs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use lambda_core::{
    Backend, Contract, EnvironmentError, ExecutionEnvironment, FunctionConfig, Invocation,
};
use lambda_vmm::{MicroVmBackend, Snapshot, SnapshotError};

/// Creates each environment by restoring a snapshot of its function, taken the first time
/// the function (the same configuration) is asked for. A function whose Init fails is
/// reported as the plain backend reports it; one that cannot be snapshotted otherwise is a
/// test failure.
///
/// Each snapshot goes through a file first (written, then loaded back as a file of the
/// function's configuration), unless the program replaced itself with `execve` (such a
/// snapshot cannot be written): so every scenario also shows that a file of it loads and
/// passes the load's checks.
///
/// [`Restoring::warmed`] restores from machines restored ahead and warmed instead, from the
/// snapshot as taken.
pub struct Restoring {
    backend: MicroVmBackend,
    snapshots: Mutex<HashMap<String, Snapshot>>,
    restored: AtomicUsize,
    warm: bool,
    warmed: AtomicUsize,
}

/// Snapshot files written so far by this test process (for their names: tests run at once).
static FILES: AtomicUsize = AtomicUsize::new(0);

impl Restoring {
    pub fn new(backend: MicroVmBackend) -> Restoring {
        Restoring {
            backend,
            snapshots: Mutex::new(HashMap::new()),
            restored: AtomicUsize::new(0),
            warm: false,
            warmed: AtomicUsize::new(0),
        }
    }

    /// Each snapshot, once taken, teaches its machines restored ahead what to touch (one
    /// restored environment runs one invocation, `{}`, whatever it answers) and keeps one
    /// restored ahead; each environment waits for it, so it starts from a warmed machine.
    pub fn warmed(backend: MicroVmBackend) -> Restoring {
        Restoring {
            warm: true,
            ..Restoring::new(backend)
        }
    }

    /// How many environments were restored.
    pub fn restored(&self) -> usize {
        self.restored.load(Ordering::Relaxed)
    }

    /// How many environments started from a warmed machine (a one-shot one: whose first run
    /// found a machine restored after the teaching ready).
    pub fn warmed_count(&self) -> usize {
        self.warmed.load(Ordering::Relaxed)
    }

    /// `snapshot` of `config` written to a file and loaded back with
    /// [`MicroVmBackend::load_snapshot_of`] (or as it is, if it cannot be written because its
    /// program replaced itself).
    fn through_a_file(&self, snapshot: Snapshot, config: &FunctionConfig) -> Snapshot {
        let path = std::env::temp_dir().join(format!(
            "lambda-snapshotting-{}-{}.snap",
            std::process::id(),
            FILES.fetch_add(1, Ordering::Relaxed)
        ));
        match snapshot.write_to(&path) {
            Ok(()) => {}
            Err(SnapshotError::Replaced(_)) => return snapshot,
            Err(error) => panic!(
                "{}: cannot write its snapshot: {error}",
                snapshot.config().name
            ),
        }
        let loaded = self.backend.load_snapshot_of(&path, config);
        std::fs::remove_file(&path).expect("remove the snapshot file");
        loaded.unwrap_or_else(|error| {
            panic!(
                "{}: its snapshot file is refused: {error}",
                snapshot.config().name
            )
        })
    }

    fn teach(&self, snapshot: &Snapshot) {
        let mut teacher = self.backend.restore(snapshot).expect("restore a teacher");
        let _ = teacher.invoke(Invocation::new(b"{}".to_vec()));
        teacher.shutdown();
        assert!(
            snapshot.pages_learnt().is_some(),
            "the teacher taught nothing"
        );
        snapshot.keep_restored(1);
    }
}

impl Backend for Restoring {
    fn name(&self) -> &str {
        "kvm (restored from snapshots)"
    }

    fn create(
        &self,
        config: &FunctionConfig,
    ) -> Result<Box<dyn ExecutionEnvironment>, EnvironmentError> {
        let key = format!("{config:?}");
        let known = self.snapshots.lock().unwrap().get(&key).cloned();
        let snapshot = match known {
            Some(snapshot) => snapshot,
            None => match self.backend.snapshot(config) {
                Ok(snapshot) => {
                    let snapshot = if self.warm {
                        self.teach(&snapshot);
                        snapshot
                    } else {
                        self.through_a_file(snapshot, config)
                    };
                    self.snapshots.lock().unwrap().insert(key, snapshot.clone());
                    snapshot
                }
                Err(SnapshotError::Init(error)) => return Err(error),
                Err(other) => panic!("{}: no snapshot: {other}", config.name),
            },
        };
        self.restored.fetch_add(1, Ordering::Relaxed);
        if !self.warm {
            return self.backend.restore(&snapshot);
        }
        assert_eq!(snapshot.wait_for_restored(), 1);
        if snapshot.contract() == Contract::Stdio {
            // Its first run takes the machine now ready, restored after the teaching.
            self.warmed.fetch_add(1, Ordering::Relaxed);
            return self.backend.restore(&snapshot);
        }
        let environment = self.backend.restore_runtime_api(&snapshot)?;
        if environment.init_stats().warmed_pages > 0 {
            self.warmed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Box::new(environment))
    }
}
