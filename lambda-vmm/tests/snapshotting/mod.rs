//! A backend whose environments are restored from snapshots, for running the lifecycle
//! scenarios on restored environments (shared by the snapshot test binaries).

#![allow(dead_code)] // Each test crate uses what it needs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use lambda_core::{Backend, EnvironmentError, ExecutionEnvironment, FunctionConfig};
use lambda_vmm::{MicroVmBackend, Snapshot, SnapshotError};

/// Creates each environment by restoring a snapshot of its function, taken the first time
/// the function (the same configuration) is asked for. A function whose Init fails is
/// reported as the plain backend reports it; one that cannot be snapshotted otherwise is a
/// test failure.
pub struct Restoring {
    backend: MicroVmBackend,
    snapshots: Mutex<HashMap<String, Snapshot>>,
    restored: AtomicUsize,
}

impl Restoring {
    pub fn new(backend: MicroVmBackend) -> Restoring {
        Restoring {
            backend,
            snapshots: Mutex::new(HashMap::new()),
            restored: AtomicUsize::new(0),
        }
    }

    /// How many environments were restored.
    pub fn restored(&self) -> usize {
        self.restored.load(Ordering::Relaxed)
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
                    self.snapshots.lock().unwrap().insert(key, snapshot.clone());
                    snapshot
                }
                Err(SnapshotError::Init(error)) => return Err(error),
                Err(other) => panic!("{}: no snapshot: {other}", config.name),
            },
        };
        let environment = self.backend.restore(&snapshot)?;
        self.restored.fetch_add(1, Ordering::Relaxed);
        Ok(environment)
    }
}
