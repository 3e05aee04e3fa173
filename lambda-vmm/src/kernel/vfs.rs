//! The environment's filesystem, in memory: the function's code read-only at `/var/task`, a
//! writable `/tmp` limited to the function's ephemeral storage, and nothing else. No host path
//! is ever opened on the guest's behalf.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Errno;

/// Where the function's code appears.
pub const TASK_ROOT: &str = "/var/task";
/// The writable scratch directory.
pub const TMP_ROOT: &str = "/tmp";

/// Most files and directories `/tmp` may hold: the quota counts bytes, and this bounds what
/// empty files and long names can cost the host.
pub const MAX_TMP_ENTRIES: usize = 16_384;

/// File contents: shared read-only code, or a private writable buffer.
#[derive(Debug, Clone)]
enum Contents {
    Shared(Arc<[u8]>),
    Owned(Vec<u8>),
}

impl Contents {
    fn bytes(&self) -> &[u8] {
        match self {
            Contents::Shared(bytes) => bytes,
            Contents::Owned(bytes) => bytes,
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    Directory,
    File(Contents),
}

#[derive(Debug, Clone)]
struct Entry {
    node: Node,
    inode: u64,
    writable: bool,
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
}

/// The filesystem of one execution environment.
#[derive(Debug, Clone)]
pub struct FileSystem {
    entries: BTreeMap<String, Entry>,
    next_inode: u64,
    tmp_used: u64,
    tmp_quota: u64,
    tmp_entries: usize,
}

/// Resolves `path` (absolute, or relative to `cwd`) to a normalized absolute path.
pub fn normalize(cwd: &str, path: &[u8]) -> Result<String, Errno> {
    let path = std::str::from_utf8(path).map_err(|_| Errno(libc::ENOENT))?;
    if path.is_empty() {
        return Err(Errno(libc::ENOENT));
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
    Ok(format!("/{}", parts.join("/")))
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(index) => &path[..index],
    }
}

fn is_under_tmp(path: &str) -> bool {
    path.strip_prefix(TMP_ROOT)
        .is_some_and(|rest| rest.starts_with('/'))
}

impl FileSystem {
    /// A filesystem whose `/var/task` holds `task_files` (name -> contents) and whose `/tmp`
    /// may hold `tmp_quota` bytes.
    pub fn new(task_files: &[(String, Arc<[u8]>)], tmp_quota: u64) -> FileSystem {
        let mut fs = FileSystem {
            entries: BTreeMap::new(),
            next_inode: 1,
            tmp_used: 0,
            tmp_quota,
            tmp_entries: 0,
        };
        for dir in ["/", "/var", TASK_ROOT] {
            fs.insert(dir, Node::Directory, false);
        }
        fs.insert(TMP_ROOT, Node::Directory, true);
        for (name, bytes) in task_files {
            let Ok(path) = normalize(TASK_ROOT, name.as_bytes()) else {
                continue;
            };
            if !path.starts_with(TASK_ROOT) {
                continue;
            }
            // Parent directories of nested files.
            let mut parent = parent_of(&path).to_string();
            let mut missing = Vec::new();
            while !fs.entries.contains_key(&parent) {
                missing.push(parent.clone());
                parent = parent_of(&parent).to_string();
            }
            for dir in missing.into_iter().rev() {
                fs.insert(&dir, Node::Directory, false);
            }
            fs.insert(&path, Node::File(Contents::Shared(bytes.clone())), false);
        }
        fs
    }

    fn insert(&mut self, path: &str, node: Node, writable: bool) {
        let inode = self.next_inode;
        self.next_inode += 1;
        self.entries.insert(
            path.to_string(),
            Entry {
                node,
                inode,
                writable,
            },
        );
    }

    /// Metadata of `path`.
    pub fn metadata(&self, path: &str) -> Result<Metadata, Errno> {
        let entry = self.entries.get(path).ok_or(Errno(libc::ENOENT))?;
        Ok(Metadata {
            inode: entry.inode,
            is_dir: matches!(entry.node, Node::Directory),
            size: match &entry.node {
                Node::Directory => 0,
                Node::File(contents) => contents.bytes().len() as u64,
            },
            writable: entry.writable,
        })
    }

    fn writable_parent(&self, path: &str) -> Result<(), Errno> {
        let parent = self
            .entries
            .get(parent_of(path))
            .ok_or(Errno(libc::ENOENT))?;
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
        if self.tmp_entries >= MAX_TMP_ENTRIES {
            return Err(Errno(libc::ENOSPC));
        }
        self.tmp_entries += 1;
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

    /// Removes a file (`dir == false`) or an empty directory (`dir == true`).
    pub fn remove(&mut self, path: &str, dir: bool) -> Result<(), Errno> {
        let entry = self.entries.get(path).ok_or(Errno(libc::ENOENT))?;
        if !entry.writable || !is_under_tmp(path) {
            return Err(Errno(if path.starts_with(TASK_ROOT) {
                libc::EROFS
            } else {
                libc::EACCES
            }));
        }
        match (&entry.node, dir) {
            (Node::Directory, false) => return Err(Errno(libc::EISDIR)),
            (Node::File(_), true) => return Err(Errno(libc::ENOTDIR)),
            (Node::Directory, true) if !self.children(path).is_empty() => {
                return Err(Errno(libc::ENOTEMPTY));
            }
            _ => {}
        }
        if let Some(Entry {
            node: Node::File(contents),
            ..
        }) = self.entries.remove(path)
        {
            self.tmp_used -= contents.bytes().len() as u64;
        }
        self.tmp_entries -= 1;
        Ok(())
    }

    /// Renames a file or empty directory inside `/tmp`.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), Errno> {
        if !is_under_tmp(from) || !is_under_tmp(to) {
            return Err(Errno(libc::EXDEV));
        }
        let entry = self.entries.get(from).ok_or(Errno(libc::ENOENT))?;
        if matches!(entry.node, Node::Directory) && !self.children(from).is_empty() {
            return Err(Errno(libc::EBUSY));
        }
        self.writable_parent(to)?;
        if let Some(existing) = self.entries.get(to)
            && matches!(existing.node, Node::Directory)
        {
            return Err(Errno(libc::EISDIR));
        }
        if self.entries.contains_key(to) {
            self.remove(to, false)?;
        }
        let entry = self.entries.remove(from).expect("checked above");
        self.entries.insert(to.to_string(), entry);
        Ok(())
    }

    /// Names in directory `path`, with whether each is a directory and its inode.
    pub fn children(&self, path: &str) -> Vec<(String, bool, u64)> {
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

    /// Reads up to `len` bytes of file `path` from `offset`.
    pub fn read_at(&self, path: &str, offset: u64, len: usize) -> Result<&[u8], Errno> {
        match self.entries.get(path).map(|e| &e.node) {
            Some(Node::File(contents)) => {
                let bytes = contents.bytes();
                let start = (offset as usize).min(bytes.len());
                let end = start + len.min(bytes.len() - start);
                Ok(&bytes[start..end])
            }
            Some(Node::Directory) => Err(Errno(libc::EISDIR)),
            None => Err(Errno(libc::ENOENT)),
        }
    }

    fn owned_file(&mut self, path: &str) -> Result<&mut Vec<u8>, Errno> {
        let entry = self.entries.get_mut(path).ok_or(Errno(libc::ENOENT))?;
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
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(Errno(libc::EFBIG))?;
        let growth = end.saturating_sub(file.len() as u64);
        if used + growth > quota {
            return Err(Errno(libc::ENOSPC));
        }
        if end as usize > file.len() {
            file.resize(end as usize, 0);
        }
        file[offset as usize..end as usize].copy_from_slice(data);
        self.tmp_used += growth;
        Ok(data.len())
    }

    /// Sets the length of file `path`.
    pub fn truncate(&mut self, path: &str, len: u64) -> Result<(), Errno> {
        let (used, quota) = (self.tmp_used, self.tmp_quota);
        let file = self.owned_file(path)?;
        let old = file.len() as u64;
        if len > old && used + (len - old) > quota {
            return Err(Errno(libc::ENOSPC));
        }
        file.resize(len as usize, 0);
        self.tmp_used = used - old + len;
        Ok(())
    }

    /// Bytes used in `/tmp`.
    pub fn tmp_used(&self) -> u64 {
        self.tmp_used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs() -> FileSystem {
        let code: Arc<[u8]> = Arc::from(&b"\x7fELF..."[..]);
        FileSystem::new(
            &[
                ("bootstrap".into(), code.clone()),
                ("lib/data.txt".into(), code),
            ],
            100,
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
        assert_eq!(fs.read_at("/var/task/bootstrap", 1, 3).unwrap(), b"ELF");
        assert_eq!(fs.create_file("/var/task/new"), Err(Errno(libc::EROFS)));
        assert_eq!(
            fs.write_at("/var/task/bootstrap", 0, b"x"),
            Err(Errno(libc::EROFS))
        );
        assert_eq!(
            fs.remove("/var/task/bootstrap", false),
            Err(Errno(libc::EROFS))
        );
        fs.create_file("/tmp/a").unwrap();
        assert_eq!(fs.write_at("/tmp/a", 0, &[1; 60]).unwrap(), 60);
        fs.create_file("/tmp/b").unwrap();
        assert_eq!(fs.write_at("/tmp/b", 0, &[1; 41]), Err(Errno(libc::ENOSPC)));
        fs.remove("/tmp/a", false).unwrap();
        assert_eq!(fs.write_at("/tmp/b", 0, &[1; 41]).unwrap(), 41);
        assert_eq!(fs.tmp_used(), 41);
        fs.truncate("/tmp/b", 10).unwrap();
        assert_eq!(fs.tmp_used(), 10);
        let names: Vec<String> = fs.children("/tmp").into_iter().map(|c| c.0).collect();
        assert_eq!(names, ["b"]);
        fs.rename("/tmp/b", "/tmp/c").unwrap();
        assert_eq!(fs.read_at("/tmp/c", 0, 100).unwrap().len(), 10);
    }

    #[test]
    fn tmp_entries_are_bounded() {
        let mut fs = fs();
        for i in 0..MAX_TMP_ENTRIES {
            fs.create_file(&format!("/tmp/{i}")).unwrap();
        }
        assert_eq!(fs.create_file("/tmp/one-more"), Err(Errno(libc::ENOSPC)));
        assert_eq!(fs.mkdir("/tmp/dir"), Err(Errno(libc::ENOSPC)));
        fs.remove("/tmp/0", false).unwrap();
        fs.mkdir("/tmp/dir").unwrap();
    }
}
