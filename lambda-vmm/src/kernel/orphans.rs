//! Files and directories removed while a descriptor has them open. Linux keeps such an inode
//! until its last descriptor closes: the file is still read and written through the
//! descriptor (a common way to make a temporary file: `tmpfile(3)` and Python's
//! `TemporaryFile` where `O_TMPFILE` is refused), and a new file made at its old path is
//! another file. Here the filesystem keeps the entry as an orphan (`vfs::orphan_path`), the
//! descriptors that had it open are renamed to its orphan path, and the orphan goes once no
//! descriptor names it. An `O_TMPFILE` file is such an orphan from the start. A working
//! directory is held the same way: it follows renames, and once removed it is kept until
//! the process leaves it (relative paths from it answer `ENOENT`, `getcwd` too).

use std::collections::BTreeSet;

use super::{Errno, Kernel, vfs};

impl Kernel {
    /// Whether a descriptor of the running process, or of a parent waiting in `fork`, has
    /// file or directory `path` open, or one of them works in it.
    fn is_open(&self, path: &str) -> bool {
        self.fd_tables().any(|table| table.names(path)) || self.cwds().any(|cwd| cwd == path)
    }

    /// Removes file or empty directory `path` (`unlink`, `rmdir`); descriptors that have it
    /// open keep it.
    pub(super) fn remove_path(&mut self, path: &str, dir: bool) -> Result<(), Errno> {
        let open = self.is_open(path);
        let orphaned = self.fs.remove(path, dir, open)?;
        self.follow_removed(path, orphaned);
        Ok(())
    }

    /// Renames `from` to `to` (`renameat2`): descriptors and working directories that have a
    /// replaced `to` keep it, and those on `from` or under it follow the move.
    pub(super) fn rename_path(
        &mut self,
        from: &str,
        to: &str,
        flags: vfs::RenameFlags,
    ) -> Result<(), Errno> {
        let to_open = !flags.exchange && self.is_open(to);
        let orphaned = self.fs.rename(from, to, flags, to_open)?;
        self.follow_removed(to, orphaned);
        for table in self.fd_tables_mut() {
            table.rename_paths(from, to, flags.exchange);
        }
        for cwd in self.cwds_mut() {
            if let Some(renamed) = vfs::renamed(cwd, from, to, flags.exchange) {
                *cwd = renamed;
            }
        }
        Ok(())
    }

    /// Renames the descriptors open on `path`, and the working directories that are `path`,
    /// to the orphan path of `orphaned`, the inode the filesystem kept for them when it
    /// removed `path`.
    fn follow_removed(&mut self, path: &str, orphaned: Option<u64>) {
        let Some(inode) = orphaned else {
            return;
        };
        let orphan = vfs::orphan_path(inode);
        for table in self.fd_tables_mut() {
            table.repath(path, &orphan);
        }
        for cwd in self.cwds_mut().filter(|cwd| *cwd == path) {
            cwd.clone_from(&orphan);
        }
    }

    /// Every path the descriptors and working directories name.
    fn held_paths(&self) -> impl Iterator<Item = &str> {
        self.fd_tables()
            .flat_map(|table| table.paths())
            .chain(self.cwds().map(String::as_str))
    }

    /// The removed entries the descriptors and working directories name.
    fn named_orphans(&self) -> BTreeSet<u64> {
        self.held_paths().filter_map(vfs::orphan_inode).collect()
    }

    /// Lets the filesystem drop the removed entries nothing names any more (after a
    /// descriptor closed or the working directory changed). One pass over the descriptors,
    /// however many entries are kept.
    pub(super) fn release_orphans(&mut self) {
        if self.fs.orphans().next().is_none() {
            return;
        }
        let named = self.named_orphans();
        let unnamed: Vec<u64> = self
            .fs
            .orphans()
            .filter(|inode| !named.contains(inode))
            .collect();
        for inode in unnamed {
            self.fs.release_orphan(inode);
        }
    }

    /// Checks the paths open descriptions and working directories name in a kernel read
    /// from a snapshot file: each is a path in normal form or the orphan path of a removed
    /// entry the filesystem keeps, and each such entry is named (the last descriptor's close
    /// would have dropped it). Says what is wrong.
    pub(super) fn check_open_paths(&self) -> Result<(), String> {
        let kept: BTreeSet<u64> = self.fs.orphans().collect();
        for path in self.held_paths() {
            let fine = match vfs::orphan_inode(path) {
                Some(inode) => vfs::orphan_path(inode) == path && kept.contains(&inode),
                None => vfs::is_normal(path),
            };
            if !fine {
                return Err(format!(
                    "a descriptor or working directory names {path:?}, neither a path in \
                     normal form nor a removed entry the filesystem keeps"
                ));
            }
        }
        let named = self.named_orphans();
        if let Some(inode) = kept.iter().find(|inode| !named.contains(inode)) {
            return Err(format!(
                "it keeps removed inode {inode}, which nothing has open"
            ));
        }
        Ok(())
    }
}
