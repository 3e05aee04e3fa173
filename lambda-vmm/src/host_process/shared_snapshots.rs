//! SnapStart across host processes: the engine's table of function versions and their
//! snapshot files. A version's first environment runs its Init in one host process, which
//! snapshots it (its own SnapStart) and then writes the snapshot to a file in a directory
//! of the engine's; every other process restores that version's environments from the file
//! instead of running an Init of its own. So a version's Init runs once for the backend, as
//! Lambda's SnapStart runs it once per published version (`docs/host-processes.md`).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use lambda_core::FunctionConfig;

use crate::snap_start::MAX_SNAPSHOTS;
use crate::sync::lock;

/// What the engine knows of one version.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) enum Version {
    /// Nothing yet: the next create of it runs its Init and tries to share its snapshot.
    #[default]
    Unknown,
    /// Its snapshot is in this file.
    File(PathBuf),
    /// It has no file to share (it could not be snapshotted, or the file not written): each
    /// process snapshots it by itself, as without sharing.
    Unshared,
}

/// The versions seen, each behind a lock of its own that a version's first create holds
/// through its Init, so the creates of that version arriving meanwhile wait for the file
/// instead of running Inits of their own in other processes.
#[derive(Debug)]
pub(crate) struct SharedSnapshots {
    /// The directory of the snapshot files (made, private to this user, at the first file).
    dir: PathBuf,
    versions: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    by_key: HashMap<String, Arc<Mutex<Version>>>,
    /// Keys in the order first seen, to drop the oldest past [`MAX_SNAPSHOTS`].
    order: VecDeque<String>,
    /// Files written so far, for the next file's name.
    files: u64,
}

impl SharedSnapshots {
    /// A table whose files go in a directory of the system's temporary one named for this
    /// process and `instance`.
    pub fn new(instance: u64) -> SharedSnapshots {
        SharedSnapshots {
            dir: std::env::temp_dir().join(format!(
                "lambda-snap-start-{}-{instance}",
                std::process::id()
            )),
            versions: Mutex::new(Table::default()),
        }
    }

    /// The key of `config`'s version: its whole configuration, and its code file's length
    /// and modification time (a host reading the file checks the code's contents too).
    /// `None` if the code file cannot be looked at: that version is not shared.
    pub fn key(config: &FunctionConfig) -> Option<String> {
        let metadata = std::fs::metadata(config.code.path()).ok()?;
        let modified = metadata
            .modified()
            .ok()?
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_nanos();
        Some(format!("{}/{modified}/{config:?}", metadata.len()))
    }

    /// The lock of version `key`, made if new. Past [`MAX_SNAPSHOTS`] versions, the oldest
    /// is forgotten and its file removed (a process that read it keeps its snapshot).
    pub fn version(&self, key: &str) -> Arc<Mutex<Version>> {
        let mut table = lock(&self.versions);
        if let Some(version) = table.by_key.get(key) {
            return Arc::clone(version);
        }
        let version = Arc::new(Mutex::new(Version::Unknown));
        table.by_key.insert(key.to_string(), Arc::clone(&version));
        table.order.push_back(key.to_string());
        while table.order.len() > MAX_SNAPSHOTS {
            let Some(oldest) = table.order.pop_front() else {
                break;
            };
            if let Some(dropped) = table.by_key.remove(&oldest)
                && let Ok(Version::File(path)) = dropped.try_lock().map(|version| version.clone())
            {
                let _ = std::fs::remove_file(path);
            }
        }
        version
    }

    /// A path for the next snapshot file, in the directory (made now if it is not there,
    /// readable by this user only).
    pub fn next_file(&self) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        let number = {
            let mut table = lock(&self.versions);
            table.files = table.files.saturating_add(1);
            table.files
        };
        match std::fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
        Ok(self.dir.join(format!("version-{number}.snap")))
    }

    /// The directory of the files (made at the first one).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SharedSnapshots {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lambda_core::CodeLocation;

    #[test]
    fn versions_are_told_apart_by_configuration_and_code() {
        let dir = std::env::temp_dir().join(format!("shared-snap-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let code = dir.join("bootstrap");
        std::fs::write(&code, b"one").unwrap();
        let config = FunctionConfig::new("f", CodeLocation::Executable(code.clone()));
        let key = SharedSnapshots::key(&config).unwrap();
        assert_eq!(SharedSnapshots::key(&config).unwrap(), key);
        let other = config.clone().with_memory_mb(256);
        assert_ne!(SharedSnapshots::key(&other).unwrap(), key);
        std::fs::write(&code, b"three").unwrap();
        assert_ne!(
            SharedSnapshots::key(&config).unwrap(),
            key,
            "the code changed"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(SharedSnapshots::key(&config), None, "no code to look at");
    }

    #[test]
    fn old_versions_are_forgotten_with_their_files_and_the_directory_goes_last() {
        let shared = SharedSnapshots::new(u64::MAX);
        let first = shared.next_file().unwrap();
        std::fs::write(&first, b"snapshot").unwrap();
        *lock(&shared.version("v0")) = Version::File(first.clone());
        for n in 1..=MAX_SNAPSHOTS {
            shared.version(&format!("v{n}"));
        }
        assert!(!first.exists(), "the oldest version's file is removed");
        assert_eq!(
            *lock(&shared.version("v0")),
            Version::Unknown,
            "and it is new again"
        );
        let dir = shared.dir().to_path_buf();
        assert!(dir.is_dir());
        drop(shared);
        assert!(!dir.exists());
    }
}
