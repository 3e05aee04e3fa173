//! An environment's private directory: `task/` for extracted code, `tmp/` for the function's
//! scratch space (and its working directory). Removed with everything in it when dropped.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A private directory under a temporary root, deleted on drop.
#[derive(Debug)]
pub(super) struct WorkDir {
    root: PathBuf,
}

impl WorkDir {
    /// Creates `<parent>/lambda-process-<pid>-<n>` with `task/` and `tmp/` inside. The name
    /// is new (`create_dir` fails on an existing one), so two environments never share one.
    pub(super) fn create(parent: &Path) -> io::Result<WorkDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let root = parent.join(format!("lambda-process-{}-{n}", std::process::id()));
            match std::fs::create_dir(&root) {
                Ok(()) => {
                    let dir = WorkDir { root };
                    std::fs::create_dir(dir.task())?;
                    std::fs::create_dir(dir.tmp())?;
                    return Ok(dir);
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// Where extracted code goes.
    pub(super) fn task(&self) -> PathBuf {
        self.root.join("task")
    }

    /// The function's scratch directory and working directory.
    pub(super) fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_distinct_and_removed_on_drop() {
        let parent = std::env::temp_dir();
        let a = WorkDir::create(&parent).unwrap();
        let b = WorkDir::create(&parent).unwrap();
        assert_ne!(a.tmp(), b.tmp());
        std::fs::write(a.tmp().join("file"), b"x").unwrap();
        let root = a.root.clone();
        assert!(a.task().is_dir());
        drop(a);
        assert!(!root.exists());
        assert!(b.tmp().is_dir());
    }
}
