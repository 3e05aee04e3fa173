//! The environment's filesystem: the function's code read-only at `/var/task`, its layers
//! read-only at `/opt` and a writable `/tmp` limited to the function's ephemeral storage,
//! all in memory, and, when the function has a base image, the image's files read-only
//! everywhere else. The only host
//! paths opened on the guest's behalf are the image's, through `BaseImage`, which keeps
//! every lookup inside the image.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::Errno;
use crate::base_image::{BaseImage, ImageFile};

/// Where the function's code appears.
pub const TASK_ROOT: &str = "/var/task";
/// The writable scratch directory.
pub const TMP_ROOT: &str = "/tmp";
/// Where the function's layers appear.
pub const OPT_ROOT: &str = "/opt";

/// Most files and directories `/tmp` may hold: the quota counts bytes, and this bounds what
/// empty files can cost the host.
pub const MAX_TMP_ENTRIES: usize = 16_384;
/// Most bytes of path names `/tmp`'s entries may hold together (each entry is kept under its
/// whole path): what long names can cost the host.
pub const MAX_TMP_NAME_BYTES: usize = 4 << 20;
/// Longest path accepted (Linux's `PATH_MAX`, with its NUL).
pub const PATH_MAX: usize = 4096;
/// Longest name of one path component (Linux's `NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Bytes `/tmp` may hold for a function with `ephemeral_storage_mb` of ephemeral storage.
pub fn tmp_quota(ephemeral_storage_mb: u32) -> u64 {
    u64::from(ephemeral_storage_mb) << 20
}

/// File contents: shared read-only code, or a private writable buffer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Contents {
    Shared(#[serde(with = "crate::file_forms::shared_bytes")] Arc<[u8]>),
    Owned(#[serde(with = "serde_bytes")] Vec<u8>),
}

impl Contents {
    fn bytes(&self) -> &[u8] {
        match self {
            Contents::Shared(bytes) => bytes,
            Contents::Owned(bytes) => bytes,
        }
    }

    /// Its length in bytes.
    fn size(&self) -> u64 {
        u64::try_from(self.bytes().len()).unwrap_or(u64::MAX)
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Node {
    Directory,
    File(Contents),
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Entry {
    node: Node,
    inode: u64,
    writable: bool,
}

/// A `/tmp` file or directory removed (or replaced by a rename) while a descriptor still had
/// it open. As Linux keeps an unlinked inode until its last descriptor closes, it is gone
/// from its directory but still read, written and counted against `/tmp` through the
/// descriptors, which name it by [`orphan_path`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Orphan {
    /// Where it was when it was removed, or the directory an unnamed (`O_TMPFILE`) file
    /// was made in.
    former: String,
    entry: Entry,
}

/// The name descriptors use for the removed file or directory with inode `inode`. It does
/// not start with `/`, and a path a program gives cannot hold a NUL, so no program can name
/// it, and renames, which move paths under `/tmp`, never touch it.
pub fn orphan_path(inode: u64) -> String {
    format!("\0{inode}")
}

/// The inode an [`orphan_path`] names.
pub fn orphan_inode(path: &str) -> Option<u64> {
    path.strip_prefix('\0')?.parse().ok()
}

/// What `stat` reports about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// Inode number, unique within the environment.
    pub inode: u64,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Whether the guest may change it.
    pub writable: bool,
    /// Whether it may be executed (mode 0755 rather than 0644).
    pub executable: bool,
    /// Whether no directory lists it: removed while open, or made by `O_TMPFILE`
    /// (`st_nlink` 0).
    pub removed: bool,
}

/// The filesystem of one execution environment.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FileSystem {
    entries: BTreeMap<String, Entry>,
    next_inode: u64,
    tmp_used: u64,
    tmp_quota: u64,
    tmp_entries: usize,
    tmp_name_bytes: usize,
    /// Removed entries still held (by descriptors or working directories), by inode. Their
    /// bytes and their slots stay in `/tmp`'s books (as an unlinked file's do on Linux's
    /// tmpfs), their names do not.
    orphans: BTreeMap<u64, Orphan>,
    /// The base image under everything else, if the function has one. Not part of a
    /// snapshot file's state: the function's configuration names it, and it is attached
    /// again when the file is loaded.
    #[serde(skip)]
    image: Option<BaseImage>,
}

/// `renameat2`'s flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenameFlags {
    /// `RENAME_NOREPLACE`: fail with `EEXIST` rather than replace the target.
    pub no_replace: bool,
    /// `RENAME_EXCHANGE`: swap the two paths, which must both exist.
    pub exchange: bool,
}

impl RenameFlags {
    /// Reads `renameat2`'s flags; `RENAME_WHITEOUT`, unknown bits, and `NOREPLACE` with
    /// `EXCHANGE` answer `EINVAL`.
    pub fn from_bits(bits: u64) -> Result<RenameFlags, Errno> {
        const NOREPLACE: u64 = 1;
        const EXCHANGE: u64 = 2;
        let flags = RenameFlags {
            no_replace: bits & NOREPLACE != 0,
            exchange: bits & EXCHANGE != 0,
        };
        if bits & !(NOREPLACE | EXCHANGE) != 0 || (flags.no_replace && flags.exchange) {
            return Err(Errno(libc::EINVAL));
        }
        Ok(flags)
    }
}

/// Resolves `path` (absolute, or relative to `cwd`) to a normalized absolute path. A name
/// longer than `NAME_MAX`, or a result longer than `PATH_MAX`, answers `ENAMETOOLONG`.
pub fn normalize(cwd: &str, path: &[u8]) -> Result<String, Errno> {
    let path = std::str::from_utf8(path).map_err(|_| Errno(libc::ENOENT))?;
    if path.is_empty() {
        return Err(Errno(libc::ENOENT));
    }
    if path.split('/').any(|part| part.len() > NAME_MAX) {
        return Err(Errno(libc::ENAMETOOLONG));
    }
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{cwd}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let normalized = format!("/{}", parts.join("/"));
    if normalized.len() >= PATH_MAX {
        return Err(Errno(libc::ENAMETOOLONG));
    }
    Ok(normalized)
}

/// Whether `path` is an absolute path in the form [`normalize`] gives (and so shorter than
/// `PATH_MAX`).
pub fn is_normal(path: &str) -> bool {
    normalize("/", path.as_bytes()).as_deref() == Ok(path)
}

/// Where `path` is after a rename of `from` to `to` (or, with `exchange`, their exchange),
/// if the rename moved it: it is one of them or lies under one.
pub fn renamed(path: &str, from: &str, to: &str, exchange: bool) -> Option<String> {
    let moved = |old: &str, new: &str| -> Option<String> {
        let rest = path.strip_prefix(old)?;
        (rest.is_empty() || rest.starts_with('/')).then(|| format!("{new}{rest}"))
    };
    moved(from, to).or_else(|| exchange.then(|| moved(to, from)).flatten())
}

/// Whether `path` is `dir` or lies under it.
fn is_within(path: &str, dir: &str) -> bool {
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(index) => &path[..index],
    }
}

/// Whether `path` is in a tree that is always the environment's own, never the image's.
fn is_own_tree(path: &str) -> bool {
    [TASK_ROOT, OPT_ROOT, TMP_ROOT]
        .iter()
        .any(|root| is_within(path, root))
}

fn is_under_tmp(path: &str) -> bool {
    path.strip_prefix(TMP_ROOT)
        .is_some_and(|rest| rest.starts_with('/'))
}

impl FileSystem {
    /// A filesystem whose `/var/task` holds `task_files` (name -> contents), whose `/opt`
    /// holds `layer_files`, whose `/tmp` may hold `tmp_quota` bytes, and whose other paths
    /// are `image`'s, if given.
    pub fn new(
        task_files: &[(String, Arc<[u8]>)],
        layer_files: &[(String, Arc<[u8]>)],
        tmp_quota: u64,
        image: Option<BaseImage>,
    ) -> FileSystem {
        let mut fs = FileSystem {
            entries: BTreeMap::new(),
            next_inode: 1,
            tmp_used: 0,
            tmp_quota,
            tmp_entries: 0,
            tmp_name_bytes: 0,
            orphans: BTreeMap::new(),
            image,
        };
        for dir in ["/", "/var", TASK_ROOT, OPT_ROOT] {
            fs.insert(dir, Node::Directory, false);
        }
        fs.insert(TMP_ROOT, Node::Directory, true);
        fs.mount(TASK_ROOT, task_files);
        fs.mount(OPT_ROOT, layer_files);
        fs
    }

    /// Adds read-only `files` (name -> contents) under the directory `root`, with the
    /// directories they need; names that would leave `root` are skipped.
    fn mount(&mut self, root: &str, files: &[(String, Arc<[u8]>)]) {
        for (name, bytes) in files {
            let Ok(path) = normalize(root, name.as_bytes()) else {
                continue;
            };
            if !is_within(&path, root) || path == root {
                continue;
            }
            // Parent directories of nested files.
            let mut parent = parent_of(&path).to_string();
            let mut missing = Vec::new();
            while !self.entries.contains_key(&parent) {
                missing.push(parent.clone());
                parent = parent_of(&parent).to_string();
            }
            for dir in missing.into_iter().rev() {
                self.insert(&dir, Node::Directory, false);
            }
            self.insert(&path, Node::File(Contents::Shared(bytes.clone())), false);
        }
    }

    /// Puts `image` under everything that is not `/var/task`, `/opt` or `/tmp`.
    pub fn set_image(&mut self, image: Option<BaseImage>) {
        self.image = image;
    }

    /// The base image, if `path` is one of its paths: not in memory, and not under
    /// `/var/task`, `/opt` or `/tmp` (which the image cannot shadow or add to).
    fn image_for(&self, path: &str) -> Option<&BaseImage> {
        let image = self.image.as_ref()?;
        let own =
            self.entries.contains_key(path) || is_own_tree(path) || orphan_inode(path).is_some();
        (!own).then_some(image)
    }

    /// The error for changing `path` that may not be changed: `EROFS` in the read-only trees
    /// (`/var/task`, `/opt`, the base image), as a read-only mount answers; `EACCES` for the
    /// environment's own directories (`/`, `/var`, `/tmp` itself).
    pub fn read_only_error(&self, path: &str) -> Errno {
        let read_only_tree =
            (is_own_tree(path) && !is_within(path, TMP_ROOT)) || self.image_for(path).is_some();
        Errno(if read_only_tree {
            libc::EROFS
        } else {
            libc::EACCES
        })
    }

    fn insert(&mut self, path: &str, node: Node, writable: bool) {
        let inode = self.next_inode;
        self.next_inode = self.next_inode.saturating_add(1);
        self.entries.insert(
            path.to_string(),
            Entry {
                node,
                inode,
                writable,
            },
        );
    }

    /// The entry at `path`, or the removed one an [`orphan_path`] names.
    fn entry(&self, path: &str) -> Option<&Entry> {
        match orphan_inode(path) {
            Some(inode) => self.orphans.get(&inode).map(|orphan| &orphan.entry),
            None => self.entries.get(path),
        }
    }

    /// [`FileSystem::entry`] for a change.
    fn entry_mut(&mut self, path: &str) -> Option<&mut Entry> {
        match orphan_inode(path) {
            Some(inode) => self.orphans.get_mut(&inode).map(|orphan| &mut orphan.entry),
            None => self.entries.get_mut(path),
        }
    }

    /// Metadata of `path`.
    pub fn metadata(&self, path: &str) -> Result<Metadata, Errno> {
        if let Some(image) = self.image_for(path) {
            let meta = image.metadata(path).map_err(Errno::from_io)?;
            return Ok(Metadata {
                inode: meta.inode,
                is_dir: meta.is_dir,
                size: meta.size,
                writable: false,
                executable: meta.executable,
                removed: false,
            });
        }
        let entry = self.entry(path).ok_or(Errno(libc::ENOENT))?;
        Ok(Metadata {
            inode: entry.inode,
            is_dir: matches!(entry.node, Node::Directory),
            size: match &entry.node {
                Node::Directory => 0,
                Node::File(contents) => contents.size(),
            },
            writable: entry.writable,
            executable: is_within(path, TASK_ROOT) || is_within(path, OPT_ROOT),
            removed: orphan_inode(path).is_some(),
        })
    }

    fn writable_parent(&self, path: &str) -> Result<(), Errno> {
        let parent_path = parent_of(path);
        if let Some(image) = self.image_for(parent_path) {
            // A directory of the image: read-only, as a read-only mount answers.
            let meta = image.metadata(parent_path).map_err(Errno::from_io)?;
            return Err(Errno(if meta.is_dir {
                libc::EROFS
            } else {
                libc::ENOTDIR
            }));
        }
        let parent = self.entries.get(parent_path).ok_or(Errno(libc::ENOENT))?;
        match (&parent.node, parent.writable) {
            (Node::Directory, true) => Ok(()),
            (Node::Directory, false) => Err(Errno(libc::EROFS)),
            _ => Err(Errno(libc::ENOTDIR)),
        }
    }

    /// Adds a new writable entry under `/tmp`, within the entry limit.
    fn create(&mut self, path: &str, node: Node) -> Result<(), Errno> {
        if self.entries.contains_key(path) {
            return Err(Errno(libc::EEXIST));
        }
        self.writable_parent(path)?;
        let name_bytes = self.tmp_name_bytes.saturating_add(path.len());
        if self.tmp_entries >= MAX_TMP_ENTRIES || name_bytes > MAX_TMP_NAME_BYTES {
            return Err(Errno(libc::ENOSPC));
        }
        self.tmp_entries = self.tmp_entries.saturating_add(1);
        self.tmp_name_bytes = name_bytes;
        self.insert(path, node, true);
        Ok(())
    }

    /// Creates an empty file (for `O_CREAT`); fails if it exists.
    pub fn create_file(&mut self, path: &str) -> Result<(), Errno> {
        self.create(path, Node::File(Contents::Owned(Vec::new())))
    }

    /// Creates a directory.
    pub fn mkdir(&mut self, path: &str) -> Result<(), Errno> {
        self.create(path, Node::Directory)
    }

    /// Removes a file (`dir == false`) or an empty directory (`dir == true`). If something
    /// holds `path` (`open`: a descriptor, or a working directory), the entry is kept as an
    /// orphan and its inode returned: the caller renames what holds it to its
    /// [`orphan_path`].
    pub fn remove(&mut self, path: &str, dir: bool, open: bool) -> Result<Option<u64>, Errno> {
        if let Some(image) = self.image_for(path) {
            image.metadata(path).map_err(Errno::from_io)?;
            return Err(Errno(libc::EROFS));
        }
        let entry = self.entries.get(path).ok_or(Errno(libc::ENOENT))?;
        if !entry.writable || !is_under_tmp(path) {
            return Err(self.read_only_error(path));
        }
        match (&entry.node, dir) {
            (Node::Directory, false) => return Err(Errno(libc::EISDIR)),
            (Node::File(_), true) => return Err(Errno(libc::ENOTDIR)),
            (Node::Directory, true) if !self.children(path).is_empty() => {
                return Err(Errno(libc::ENOTEMPTY));
            }
            _ => {}
        }
        if open {
            return Ok(self.orphan(path));
        }
        self.forget(path);
        Ok(None)
    }

    /// Takes the entry at `path` out of its directory and keeps it as an orphan; returns its
    /// inode.
    fn orphan(&mut self, path: &str) -> Option<u64> {
        let entry = self.entries.remove(path)?;
        self.tmp_name_bytes = self.tmp_name_bytes.saturating_sub(path.len());
        let inode = entry.inode;
        self.orphans.insert(
            inode,
            Orphan {
                former: path.to_string(),
                entry,
            },
        );
        Some(inode)
    }

    /// Makes an unnamed empty file in directory `dir` (`O_TMPFILE`), kept as an orphan from
    /// the start; returns its inode. `EOPNOTSUPP` outside `/tmp` (a read-only file system
    /// makes none), `ENOSPC` past the entry limit.
    pub fn create_unnamed(&mut self, dir: &str) -> Result<u64, Errno> {
        let meta = self.metadata(dir)?;
        if !meta.is_dir {
            return Err(Errno(libc::ENOTDIR));
        }
        if !is_within(dir, TMP_ROOT) || orphan_inode(dir).is_some() {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        if self.tmp_entries >= MAX_TMP_ENTRIES {
            return Err(Errno(libc::ENOSPC));
        }
        self.tmp_entries = self.tmp_entries.saturating_add(1);
        let inode = self.next_inode;
        self.next_inode = self.next_inode.saturating_add(1);
        let entry = Entry {
            node: Node::File(Contents::Owned(Vec::new())),
            inode,
            writable: true,
        };
        let former = dir.to_string();
        self.orphans.insert(inode, Orphan { former, entry });
        Ok(inode)
    }

    /// Lets go of the removed entry with `inode`, whose last descriptor has closed: its bytes
    /// and its slot leave `/tmp`'s books.
    pub fn release_orphan(&mut self, inode: u64) {
        if let Some(orphan) = self.orphans.remove(&inode) {
            self.unbook(&orphan.entry);
        }
    }

    /// The inodes of the removed entries still held (by descriptors or working directories).
    pub fn orphans(&self) -> impl Iterator<Item = u64> + '_ {
        self.orphans.keys().copied()
    }

    /// Removes a `/tmp` entry from the books: its bytes, its slot and its name.
    fn forget(&mut self, path: &str) -> Option<Entry> {
        let entry = self.entries.remove(path)?;
        self.unbook(&entry);
        self.tmp_name_bytes = self.tmp_name_bytes.saturating_sub(path.len());
        Some(entry)
    }

    /// Takes a `/tmp` entry that is gone for good out of the books: its bytes and its slot
    /// (its name, if it still had one, is the caller's).
    fn unbook(&mut self, entry: &Entry) {
        if let Node::File(contents) = &entry.node {
            self.tmp_used = self.tmp_used.saturating_sub(contents.size());
        }
        self.tmp_entries = self.tmp_entries.saturating_sub(1);
    }

    /// Renames (or, with `RENAME_EXCHANGE`, swaps) a file or directory inside `/tmp`, with
    /// everything under a directory. Linux's errors: `EXDEV` across filesystems, `EINVAL`
    /// for a directory moved into itself, `EEXIST` with `RENAME_NOREPLACE`, `EISDIR` /
    /// `ENOTDIR` for a file and a directory, `ENOTEMPTY` over a non-empty directory. A target
    /// replaced while a descriptor has it open (`to_open`) is kept as [`FileSystem::remove`]
    /// keeps it, and its inode returned.
    pub fn rename(
        &mut self,
        from: &str,
        to: &str,
        flags: RenameFlags,
        to_open: bool,
    ) -> Result<Option<u64>, Errno> {
        if !is_under_tmp(from) || !is_under_tmp(to) {
            return Err(Errno(libc::EXDEV));
        }
        let source_is_dir = match self.entries.get(from) {
            Some(entry) => matches!(entry.node, Node::Directory),
            None => return Err(Errno(libc::ENOENT)),
        };
        self.writable_parent(to)?;
        if from == to {
            return Ok(None);
        }
        if is_within(to, from) || (flags.exchange && is_within(from, to)) {
            return Err(Errno(libc::EINVAL));
        }
        let target_is_dir = self
            .entries
            .get(to)
            .map(|entry| matches!(entry.node, Node::Directory));
        if flags.exchange {
            if target_is_dir.is_none() {
                return Err(Errno(libc::ENOENT));
            }
            let parked = format!("{from}\0exchange");
            self.move_tree(from, &parked)?;
            self.move_tree(to, from)?;
            return self.move_tree(&parked, to).map(|()| None);
        }
        match target_is_dir {
            Some(_) if flags.no_replace => Err(Errno(libc::EEXIST)),
            Some(true) if !source_is_dir => Err(Errno(libc::EISDIR)),
            Some(false) if source_is_dir => Err(Errno(libc::ENOTDIR)),
            Some(true) if !self.children(to).is_empty() => Err(Errno(libc::ENOTEMPTY)),
            Some(is_dir) => {
                // The move must fit before the target goes, or a refused rename would
                // have removed it. The target is a file or an empty directory: its own
                // name is all it frees.
                self.plan_move(from, to, to.len())?;
                let orphaned = self.remove(to, is_dir, to_open)?;
                self.move_tree(from, to)?;
                Ok(orphaned)
            }
            None => self.move_tree(from, to).map(|()| None),
        }
    }

    /// Moves `from` and everything under it to `to`, keeping the name budget.
    fn move_tree(&mut self, from: &str, to: &str) -> Result<(), Errno> {
        let (moving, budget) = self.plan_move(from, to, 0)?;
        let renamed = |path: &str| format!("{to}{}", path.get(from.len()..).unwrap_or_default());
        for path in moving {
            if let Some(entry) = self.entries.remove(&path) {
                self.entries.insert(renamed(&path), entry);
            }
        }
        self.tmp_name_bytes = budget;
        Ok(())
    }

    /// The paths [`FileSystem::move_tree`] would move, and the name bytes `/tmp` would hold
    /// after it once `freed` name bytes are gone; `ENAMETOOLONG` if a moved path or the name
    /// budget would be too long.
    fn plan_move(&self, from: &str, to: &str, freed: usize) -> Result<(Vec<String>, usize), Errno> {
        let moving: Vec<String> = self
            .entries
            .range(from.to_string()..)
            .map(|(path, _)| path)
            .take_while(|path| path.starts_with(from))
            .filter(|path| is_within(path, from))
            .cloned()
            .collect();
        let renamed = |path: &str| format!("{to}{}", path.get(from.len()..).unwrap_or_default());
        let (old_bytes, new_bytes) = moving.iter().fold((0usize, 0usize), |(old, new), path| {
            (
                old.saturating_add(path.len()),
                new.saturating_add(renamed(path).len()),
            )
        });
        let budget = self
            .tmp_name_bytes
            .saturating_sub(freed)
            .saturating_sub(old_bytes)
            .saturating_add(new_bytes);
        if budget > MAX_TMP_NAME_BYTES || moving.iter().any(|path| renamed(path).len() >= PATH_MAX)
        {
            return Err(Errno(libc::ENAMETOOLONG));
        }
        Ok((moving, budget))
    }

    /// Names in directory `path`, with whether each is a directory and its inode.
    pub fn children(&self, path: &str) -> Vec<(String, bool, u64)> {
        let own = self.own_children(path);
        let image = match &self.image {
            Some(image) if !is_own_tree(path) => image.children(path).unwrap_or_default(),
            _ => return own,
        };
        // The environment's own entries (`/var`, `/tmp`) win over the image's of that name.
        let mut merged = own;
        for child in image {
            if !merged.iter().any(|(name, ..)| *name == child.0) {
                merged.push(child);
            }
        }
        merged
    }

    fn own_children(&self, path: &str) -> Vec<(String, bool, u64)> {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        self.entries
            .range(prefix.clone()..)
            .take_while(|(name, _)| name.starts_with(&prefix))
            .filter(|(name, _)| !name[prefix.len()..].contains('/') && name.len() > prefix.len())
            .map(|(name, entry)| {
                (
                    name[prefix.len()..].to_string(),
                    matches!(entry.node, Node::Directory),
                    entry.inode,
                )
            })
            .collect()
    }

    /// The target of the base image's symbolic link at `path`; `EINVAL` for anything else
    /// (the environment's own files have no links).
    pub fn read_link(&self, path: &str) -> Result<Vec<u8>, Errno> {
        use std::os::unix::ffi::OsStrExt;
        match self.image_for(path) {
            Some(image) => image
                .read_link(path)
                .map(|target| target.as_os_str().as_bytes().to_vec())
                .map_err(Errno::from_io),
            None => {
                self.metadata(path)?;
                Err(Errno(libc::EINVAL))
            }
        }
    }

    /// The base image's file at `path`, frozen, for mapping its pages into guest memory
    /// without a copy; `None` for any other file (the environment's own are copied).
    pub fn image_file(&self, path: &str) -> Option<Arc<ImageFile>> {
        self.image_for(path)?.contents(path).ok()
    }

    /// Reads up to `len` bytes of file `path` from `offset` (a copy of what was read, for a
    /// file of the base image).
    pub fn read_at(&self, path: &str, offset: u64, len: usize) -> Result<Cow<'_, [u8]>, Errno> {
        let window = |bytes: &[u8]| -> std::ops::Range<usize> {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            start..start.saturating_add(len).min(bytes.len())
        };
        if let Some(image) = self.image_for(path) {
            let bytes = image.read_at(path, offset, len).map_err(Errno::from_io)?;
            return Ok(Cow::Owned(bytes));
        }
        match self.entry(path).map(|e| &e.node) {
            Some(Node::File(contents)) => {
                let bytes = contents.bytes();
                Ok(Cow::Borrowed(bytes.get(window(bytes)).unwrap_or_default()))
            }
            Some(Node::Directory) => Err(Errno(libc::EISDIR)),
            None => Err(Errno(libc::ENOENT)),
        }
    }

    /// The whole contents of file `path` (read from the host for a file of the base image,
    /// shared for the function's own files, copied for `/tmp`'s).
    pub fn read_file(&self, path: &str) -> Result<Arc<[u8]>, Errno> {
        if let Some(image) = self.image_for(path) {
            return image.read_file(path).map(Arc::from).map_err(Errno::from_io);
        }
        match self.entry(path).map(|e| &e.node) {
            Some(Node::File(Contents::Shared(bytes))) => Ok(bytes.clone()),
            Some(Node::File(Contents::Owned(bytes))) => Ok(Arc::from(bytes.as_slice())),
            Some(Node::Directory) => Err(Errno(libc::EISDIR)),
            None => Err(Errno(libc::ENOENT)),
        }
    }

    fn owned_file(&mut self, path: &str) -> Result<&mut Vec<u8>, Errno> {
        let entry = self.entry_mut(path).ok_or(Errno(libc::ENOENT))?;
        if !entry.writable {
            return Err(Errno(libc::EROFS));
        }
        match &mut entry.node {
            Node::File(Contents::Owned(bytes)) => Ok(bytes),
            Node::File(Contents::Shared(_)) => Err(Errno(libc::EROFS)),
            Node::Directory => Err(Errno(libc::EISDIR)),
        }
    }

    /// Writes `data` into file `path` at `offset`, within the `/tmp` quota.
    pub fn write_at(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        let (used, quota) = (self.tmp_used, self.tmp_quota);
        let file = self.owned_file(path)?;
        let len = u64::try_from(data.len()).map_err(|_| Errno(libc::EFBIG))?;
        // Linux's largest file is `i64::MAX` bytes: past it, EFBIG before anything else.
        let end = offset
            .checked_add(len)
            .filter(|end| i64::try_from(*end).is_ok())
            .ok_or(Errno(libc::EFBIG))?;
        let growth = end.saturating_sub(u64::try_from(file.len()).unwrap_or(u64::MAX));
        if used.saturating_add(growth) > quota {
            return Err(Errno(libc::ENOSPC));
        }
        // Within the quota, so within host sizes.
        let (start, end) = match (usize::try_from(offset), usize::try_from(end)) {
            (Ok(start), Ok(end)) => (start, end),
            _ => return Err(Errno(libc::EFBIG)),
        };
        if end > file.len() {
            file.resize(end, 0);
        }
        file.get_mut(start..end)
            .ok_or(Errno(libc::EFBIG))?
            .copy_from_slice(data);
        self.tmp_used = used.saturating_add(growth);
        Ok(data.len())
    }

    /// Sets the length of file `path`.
    pub fn truncate(&mut self, path: &str, len: u64) -> Result<(), Errno> {
        let (used, quota) = (self.tmp_used, self.tmp_quota);
        let file = self.owned_file(path)?;
        let old = u64::try_from(file.len()).unwrap_or(u64::MAX);
        if len > old && used.saturating_add(len.saturating_sub(old)) > quota {
            return Err(Errno(libc::ENOSPC));
        }
        file.resize(usize::try_from(len).map_err(|_| Errno(libc::EFBIG))?, 0);
        self.tmp_used = used.saturating_sub(old).saturating_add(len);
        Ok(())
    }

    /// Bytes `/tmp` may hold.
    pub fn tmp_quota(&self) -> u64 {
        self.tmp_quota
    }

    /// Bytes used in `/tmp`.
    pub fn tmp_used(&self) -> u64 {
        self.tmp_used
    }

    /// Checks a filesystem read from a snapshot file against what this module's own methods
    /// could have made for a function whose `/tmp` may hold `tmp_quota` bytes: the quota
    /// itself, paths in normal form under an existing directory, only `/tmp` writable and
    /// holding the environment's own bytes, removed entries kept for open descriptors only
    /// from `/tmp` and counted in its books, inode numbers unique and below the next one,
    /// and `/tmp`'s books (bytes, entries, name bytes) equal to what it holds and within
    /// their limits. A forged quota or books would let the guest hold more of the host's
    /// memory than its ephemeral storage. Says what is wrong.
    pub fn check(&self, tmp_quota: u64) -> Result<(), String> {
        if self.tmp_quota != tmp_quota {
            return Err(format!(
                "its /tmp quota is {} bytes where the function's ephemeral storage is {tmp_quota}",
                self.tmp_quota
            ));
        }
        let is_dir = |path: &str| {
            self.entries
                .get(path)
                .is_some_and(|entry| matches!(entry.node, Node::Directory))
        };
        if let Some(dir) = ["/", "/var", TASK_ROOT, OPT_ROOT, TMP_ROOT]
            .into_iter()
            .find(|dir| !is_dir(dir))
        {
            return Err(format!("it has no directory {dir}"));
        }
        let (mut used, mut entries, mut name_bytes) = (0u64, 0usize, 0usize);
        let mut inodes = std::collections::BTreeSet::new();
        for (path, entry) in &self.entries {
            if !is_normal(path) {
                return Err(format!("it holds a path not in normal form ({path:?})"));
            }
            if path != "/" && !is_dir(parent_of(path)) {
                return Err(format!("{path} is not in a directory it holds"));
            }
            let own = is_under_tmp(path);
            if entry.writable != (own || path == TMP_ROOT) {
                return Err(format!(
                    "{path} is writable where Lambda's is not, or not where it is"
                ));
            }
            if let Node::File(contents) = &entry.node {
                match (contents, own) {
                    (Contents::Owned(_), true) => {
                        used = used.saturating_add(contents.size());
                    }
                    (Contents::Shared(_), false) => {}
                    _ => {
                        return Err(format!(
                            "{path} holds bytes of the wrong kind for its place"
                        ));
                    }
                }
            }
            if own {
                entries = entries.saturating_add(1);
                name_bytes = name_bytes.saturating_add(path.len());
            }
            if entry.inode >= self.next_inode || !inodes.insert(entry.inode) {
                return Err(format!(
                    "{path}'s inode number is reused or not yet handed out"
                ));
            }
        }
        for (inode, orphan) in &self.orphans {
            let Orphan { former, entry } = orphan;
            if entry.inode != *inode
                || !is_within(former, TMP_ROOT)
                || !is_normal(former)
                || !entry.writable
            {
                return Err(format!(
                    "it keeps a removed entry ({former:?}, inode {inode}) that was not in /tmp"
                ));
            }
            match &entry.node {
                Node::File(contents @ Contents::Owned(_)) => {
                    used = used.saturating_add(contents.size());
                }
                Node::Directory => {}
                Node::File(Contents::Shared(_)) => {
                    return Err(format!("its removed {former} holds shared bytes"));
                }
            }
            entries = entries.saturating_add(1);
            if *inode >= self.next_inode || !inodes.insert(*inode) {
                return Err(format!(
                    "removed {former}'s inode number is reused or not yet handed out"
                ));
            }
        }
        if (used, entries, name_bytes) != (self.tmp_used, self.tmp_entries, self.tmp_name_bytes) {
            return Err(format!(
                "its /tmp books ({} bytes, {} entries, {} name bytes) are not what /tmp holds \
                 ({used}, {entries}, {name_bytes})",
                self.tmp_used, self.tmp_entries, self.tmp_name_bytes
            ));
        }
        if used > tmp_quota || entries > MAX_TMP_ENTRIES || name_bytes > MAX_TMP_NAME_BYTES {
            return Err(format!(
                "its /tmp holds more than a function may ({used} bytes, {entries} entries, \
                 {name_bytes} name bytes)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forged_state::assert_refused;

    fn fs() -> FileSystem {
        let code: Arc<[u8]> = Arc::from(&b"\x7fELF..."[..]);
        FileSystem::new(
            &[
                ("bootstrap".into(), code.clone()),
                ("lib/data.txt".into(), code),
            ],
            &[("python/lib.py".into(), Arc::from(&b"layer"[..]))],
            100,
            None,
        )
    }

    #[test]
    fn paths_normalize_and_never_escape() {
        assert_eq!(normalize("/var/task", b"a/../b").unwrap(), "/var/task/b");
        assert_eq!(
            normalize("/var/task", b"../../../etc/passwd").unwrap(),
            "/etc/passwd"
        );
        assert_eq!(normalize("/", b"/../../tmp//x/.").unwrap(), "/tmp/x");
        assert!(normalize("/", b"").is_err());
        let fs = fs();
        assert_eq!(fs.metadata("/etc/passwd"), Err(Errno(libc::ENOENT)));
    }

    #[test]
    fn task_is_read_only_and_tmp_is_bounded() {
        let mut fs = fs();
        assert!(fs.metadata("/var/task/lib").unwrap().is_dir);
        assert_eq!(&*fs.read_at("/var/task/bootstrap", 1, 3).unwrap(), b"ELF");
        assert_eq!(fs.create_file("/var/task/new"), Err(Errno(libc::EROFS)));
        assert_eq!(
            fs.write_at("/var/task/bootstrap", 0, b"x"),
            Err(Errno(libc::EROFS))
        );
        assert_eq!(
            fs.remove("/var/task/bootstrap", false, false),
            Err(Errno(libc::EROFS))
        );
        fs.create_file("/tmp/a").unwrap();
        assert_eq!(fs.write_at("/tmp/a", 0, &[1; 60]).unwrap(), 60);
        fs.create_file("/tmp/b").unwrap();
        assert_eq!(fs.write_at("/tmp/b", 0, &[1; 41]), Err(Errno(libc::ENOSPC)));
        fs.remove("/tmp/a", false, false).unwrap();
        assert_eq!(fs.write_at("/tmp/b", 0, &[1; 41]).unwrap(), 41);
        assert_eq!(fs.tmp_used(), 41);
        fs.truncate("/tmp/b", 10).unwrap();
        assert_eq!(fs.tmp_used(), 10);
        let names: Vec<String> = fs.children("/tmp").into_iter().map(|c| c.0).collect();
        assert_eq!(names, ["b"]);
        fs.rename("/tmp/b", "/tmp/c", RenameFlags::default(), false)
            .unwrap();
        assert_eq!(fs.read_at("/tmp/c", 0, 100).unwrap().len(), 10);
        fs.check(100).unwrap();
    }

    #[test]
    fn names_are_bounded_like_linux() {
        let long = "n".repeat(NAME_MAX + 1);
        assert_eq!(
            normalize("/tmp", long.as_bytes()),
            Err(Errno(libc::ENAMETOOLONG))
        );
        assert!(normalize("/tmp", "n".repeat(NAME_MAX).as_bytes()).is_ok());
        let deep = "d/".repeat(PATH_MAX / 2);
        assert_eq!(
            normalize("/tmp", deep.as_bytes()),
            Err(Errno(libc::ENAMETOOLONG))
        );
        // Long names run out of the name budget before they cost the host much.
        let mut fs = fs();
        let name = "x".repeat(250);
        let mut made = 0usize;
        let refused = loop {
            match fs.create_file(&format!("/tmp/{made:05}{name}")) {
                Ok(()) => made += 1,
                Err(error) => break error,
            }
        };
        assert_eq!(refused, Errno(libc::ENOSPC));
        // The name budget, not the entry count, stopped it, and it was kept.
        assert!(made < MAX_TMP_ENTRIES, "{made}");
        assert!(fs.tmp_name_bytes <= MAX_TMP_NAME_BYTES);
        assert!(fs.tmp_name_bytes > MAX_TMP_NAME_BYTES - 300);
    }

    #[test]
    fn a_rename_refused_for_a_path_too_long_leaves_its_target() {
        let mut fs = fs();
        let mut deep = "/tmp/s".to_string();
        fs.mkdir(&deep).unwrap();
        while deep.len() + 1 + NAME_MAX < PATH_MAX {
            deep = format!("{deep}/{}", "d".repeat(NAME_MAX));
            fs.mkdir(&deep).unwrap();
        }
        let last = format!("{deep}/{}", "f".repeat(PATH_MAX - 2 - deep.len()));
        fs.create_file(&last).unwrap();
        fs.mkdir("/tmp/target").unwrap();
        // Under the target's longer name, the deepest path would reach PATH_MAX.
        assert_eq!(
            fs.rename("/tmp/s", "/tmp/target", RenameFlags::default(), false),
            Err(Errno(libc::ENAMETOOLONG))
        );
        assert!(fs.metadata("/tmp/target").unwrap().is_dir);
        assert!(fs.metadata(&last).is_ok());
        fs.check(100).unwrap();
    }

    #[test]
    fn renames_follow_linux() {
        let mut fs = fs();
        let plain = RenameFlags::default();
        fs.mkdir("/tmp/a").unwrap();
        fs.mkdir("/tmp/a/b").unwrap();
        fs.create_file("/tmp/a/b/f").unwrap();
        fs.write_at("/tmp/a/b/f", 0, b"data").unwrap();
        // Into itself: EINVAL, whatever the depth.
        assert_eq!(
            fs.rename("/tmp/a", "/tmp/a/c", plain, false),
            Err(Errno(libc::EINVAL))
        );
        assert_eq!(
            fs.rename("/tmp/a", "/tmp/a/b/c", plain, false),
            Err(Errno(libc::EINVAL))
        );
        // A non-empty directory moves with its contents.
        fs.rename("/tmp/a", "/tmp/z", plain, false).unwrap();
        assert_eq!(&*fs.read_at("/tmp/z/b/f", 0, 10).unwrap(), b"data");
        assert_eq!(fs.metadata("/tmp/a"), Err(Errno(libc::ENOENT)));
        // NOREPLACE, files over directories and directories over files.
        fs.create_file("/tmp/g").unwrap();
        let no_replace = RenameFlags {
            no_replace: true,
            exchange: false,
        };
        assert_eq!(
            fs.rename("/tmp/g", "/tmp/z", no_replace, false),
            Err(Errno(libc::EEXIST))
        );
        assert_eq!(
            fs.rename("/tmp/g", "/tmp/z", plain, false),
            Err(Errno(libc::EISDIR))
        );
        assert_eq!(
            fs.rename("/tmp/z", "/tmp/g", plain, false),
            Err(Errno(libc::ENOTDIR))
        );
        fs.mkdir("/tmp/full").unwrap();
        fs.create_file("/tmp/full/x").unwrap();
        fs.mkdir("/tmp/empty").unwrap();
        assert_eq!(
            fs.rename("/tmp/empty", "/tmp/full", plain, false),
            Err(Errno(libc::ENOTEMPTY))
        );
        fs.rename("/tmp/full", "/tmp/empty", plain, false).unwrap();
        assert!(fs.metadata("/tmp/empty/x").is_ok());
        // EXCHANGE swaps whole trees; both must exist.
        let exchange = RenameFlags {
            no_replace: false,
            exchange: true,
        };
        fs.rename("/tmp/g", "/tmp/z", exchange, false).unwrap();
        assert!(fs.metadata("/tmp/g/b/f").is_ok());
        assert!(!fs.metadata("/tmp/z").unwrap().is_dir);
        assert_eq!(
            fs.rename("/tmp/z", "/tmp/none", exchange, false),
            Err(Errno(libc::ENOENT))
        );
        assert_eq!(RenameFlags::from_bits(4), Err(Errno(libc::EINVAL)));
        assert_eq!(RenameFlags::from_bits(3), Err(Errno(libc::EINVAL)));
        // What these calls made is what a snapshot file may hold.
        fs.check(100).unwrap();
        // The books still balance: removing everything frees every slot and name byte.
        for path in ["/tmp/g/b/f", "/tmp/empty/x", "/tmp/z"] {
            fs.remove(path, false, false).unwrap();
        }
        for dir in ["/tmp/g/b", "/tmp/g", "/tmp/empty"] {
            fs.remove(dir, true, false).unwrap();
        }
        assert_eq!((fs.tmp_entries, fs.tmp_name_bytes), (0, 0));
    }

    #[test]
    fn tmp_entries_are_bounded() {
        let mut fs = fs();
        for i in 0..MAX_TMP_ENTRIES {
            fs.create_file(&format!("/tmp/{i}")).unwrap();
        }
        assert_eq!(fs.create_file("/tmp/one-more"), Err(Errno(libc::ENOSPC)));
        assert_eq!(fs.mkdir("/tmp/dir"), Err(Errno(libc::ENOSPC)));
        fs.remove("/tmp/0", false, false).unwrap();
        fs.mkdir("/tmp/dir").unwrap();
    }

    #[test]
    fn forged_filesystems_are_refused() {
        let mut good = fs();
        good.mkdir("/tmp/d").unwrap();
        good.create_file("/tmp/d/f").unwrap();
        good.write_at("/tmp/d/f", 0, b"twelve bytes").unwrap();
        good.check(100).unwrap();
        let refused = |forge: &dyn Fn(&mut FileSystem), because: &str| {
            assert_refused(&good, forge, |fs: &FileSystem| fs.check(100), because);
        };
        // A quota other than the function's, or books that make room the quota does not.
        refused(&|fs| fs.tmp_quota = u64::MAX, "quota");
        assert!(good.check(200).is_err());
        refused(&|fs| fs.tmp_used = 0, "books");
        refused(&|fs| fs.tmp_entries = 0, "books");
        refused(&|fs| fs.tmp_name_bytes = 0, "books");
        // Over the limits with books to match.
        refused(
            &|fs| {
                let file = fs.owned_file("/tmp/d/f").unwrap();
                file.resize(101, 0);
                fs.tmp_used = 101;
            },
            "more than a function may",
        );
        // A tree that does not hold together.
        refused(
            &|fs| drop(fs.entries.remove("/tmp/d")),
            "not in a directory",
        );
        refused(&|fs| drop(fs.entries.remove("/tmp")), "no directory /tmp");
        refused(
            &|fs| {
                let entry = fs.entries.remove("/tmp/d/f").unwrap();
                fs.entries.insert("/tmp/d/./f".into(), entry);
            },
            "normal form",
        );
        // Code made writable, or the environment's own bytes outside /tmp.
        refused(
            &|fs| fs.entries.get_mut("/var/task/bootstrap").unwrap().writable = true,
            "writable",
        );
        refused(
            &|fs| {
                let entry = fs.entries.get_mut("/var/task/bootstrap").unwrap();
                entry.node = Node::File(Contents::Owned(vec![0; 4]));
            },
            "wrong kind",
        );
        // Inode numbers that a new entry would repeat.
        refused(&|fs| fs.next_inode = 2, "inode");
        refused(
            &|fs| fs.entries.get_mut("/tmp/d").unwrap().inode = 1,
            "inode",
        );
        // A removed entry kept for a descriptor: counted in /tmp's books without its name,
        // from /tmp only, with its own inode number.
        let mut kept = good.clone();
        let inode = kept.remove("/tmp/d/f", false, true).unwrap().unwrap();
        assert_eq!(
            kept.read_at(&orphan_path(inode), 0, 5).unwrap(),
            &b"twelv"[..]
        );
        assert_eq!(kept.tmp_used(), 12);
        kept.check(100).unwrap();
        let refused = |forge: &dyn Fn(&mut FileSystem), because: &str| {
            assert_refused(&kept, forge, |fs: &FileSystem| fs.check(100), because);
        };
        refused(&|fs| fs.tmp_used = 0, "books");
        refused(&|fs| fs.tmp_entries = 1, "books");
        refused(
            &|fs| fs.orphans.get_mut(&inode).unwrap().former = "/var/task/f".into(),
            "not in /tmp",
        );
        refused(
            &|fs| fs.orphans.get_mut(&inode).unwrap().entry.inode = 1,
            "not in /tmp",
        );
        refused(
            &|fs| {
                let orphan = fs.orphans.remove(&inode).unwrap();
                fs.orphans.insert(
                    1,
                    Orphan {
                        entry: Entry {
                            inode: 1,
                            ..orphan.entry
                        },
                        ..orphan
                    },
                );
            },
            "inode",
        );
        refused(
            &|fs| {
                let entry = &mut fs.orphans.get_mut(&inode).unwrap().entry;
                entry.node = Node::File(Contents::Shared(Arc::from(&b"twelve bytes"[..])));
            },
            "shared bytes",
        );
        kept.release_orphan(inode);
        assert_eq!((kept.tmp_used(), kept.orphans().count()), (0, 0));
        kept.check(100).unwrap();
    }
}
