//! A base image: a directory tree of the host that the guest sees, read-only, as its `/`
//! (except `/var/task` and `/tmp`, which stay the environment's own), as Lambda's runtimes
//! see Amazon Linux. It holds what a dynamically linked program needs that its package does
//! not: the dynamic linker, glibc, a shell, an interpreter.
//!
//! Every lookup goes through [`host::open_beneath`], which resolves the path as if the
//! image's directory were `/`: `..` stops at it, absolute symbolic links are resolved inside
//! it, and `/proc`'s magic links are refused, so no guest path names a host file outside the
//! image. Only directories and regular files are shown; anything else (devices, sockets,
//! FIFOs) answers `EACCES`. Nothing is ever opened for writing.
//!
//! `read` reads from the host file each time (through the host's page cache), and so does
//! the loader for a program or interpreter it stages itself. A file that is mapped is read
//! once and kept, per image, for every environment
//! that uses it (by the host's device and inode, so two names of one file share one copy),
//! frozen in a sealed memory file (`host::FrozenFile`) whose pages guest mappings map
//! copy-on-write, so environments share them until they write.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::host::{self, FrozenFile};
use crate::sync::lock;

/// Largest single file of an image the guest may read (bigger ones answer `EFBIG`).
pub const MAX_IMAGE_FILE_BYTES: u64 = 1 << 30;
/// Most bytes of an image's files kept in host memory; files read past it are read again
/// each time they are opened rather than kept.
pub const MAX_KEPT_BYTES: u64 = 4 << 30;
/// Most bytes one read of an image file returns (a shorter read than asked, which Linux
/// allows for any file): what one guest `read` can make the host allocate.
pub const MAX_READ_BYTES: usize = 16 << 20;
/// Inode numbers of image files are the host's with this bit set, apart from the
/// environment's own files (numbered from 1).
const IMAGE_INODE: u64 = 1 << 62;

/// What `stat` says about a path of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageMetadata {
    /// Whether it is a directory (else a regular file).
    pub is_dir: bool,
    /// Size in bytes.
    pub size: u64,
    /// Whether any execute bit is set.
    pub executable: bool,
    /// Inode number as the guest sees it.
    pub inode: u64,
}

/// A host file's identity, for sharing its contents between names and environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileKey {
    device: u64,
    inode: u64,
    size: u64,
    modified: i64,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    root: File,
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    files: HashMap<FileKey, Arc<ImageFile>>,
    bytes: u64,
}

/// A file of the image, frozen, with what is learned about it once for every environment.
#[derive(Debug)]
pub struct ImageFile {
    frozen: FrozenFile,
    /// The file offsets of its `syscall` instructions, once a mapping asked.
    syscall_offsets: OnceLock<BTreeSet<u64>>,
}

impl ImageFile {
    /// The file offsets of the `syscall` instructions in its code, found by `find` the first
    /// time they are asked for (decoding a library is not free) and kept.
    pub fn syscall_offsets(&self, find: impl FnOnce(&[u8]) -> BTreeSet<u64>) -> &BTreeSet<u64> {
        self.syscall_offsets.get_or_init(|| find(&self.frozen))
    }
}

impl std::ops::Deref for ImageFile {
    type Target = FrozenFile;

    fn deref(&self) -> &FrozenFile {
        &self.frozen
    }
}

/// A read-only directory tree of the host mounted as the guest's `/`. Cheap to clone:
/// clones share the open directory and the files read so far.
#[derive(Debug, Clone)]
pub struct BaseImage {
    inner: Arc<Inner>,
}

impl PartialEq for BaseImage {
    fn eq(&self, other: &BaseImage) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// The image-relative form of a normalized guest path (`/` is `.`).
fn relative(guest_path: &str) -> io::Result<CString> {
    let relative = guest_path.trim_start_matches('/');
    let relative = if relative.is_empty() { "." } else { relative };
    CString::new(relative).map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))
}

/// Up to `len` bytes of `file` from `offset`: fewer if the file shrank meanwhile.
fn read_range(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let at = offset.saturating_add(filled as u64);
        match file.read_at(&mut bytes[filled..], at) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

impl BaseImage {
    /// Opens the image rooted at the host directory `path`.
    pub fn open(path: &Path) -> io::Result<BaseImage> {
        use std::os::unix::fs::OpenOptionsExt;
        let root = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)?;
        Ok(BaseImage {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                root,
                kept: Mutex::new(Kept::default()),
            }),
        })
    }

    /// The host directory it was opened from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Opens a guest path inside the image (read-only, never blocking on a FIFO) with its
    /// host metadata; only directories and regular files are let through.
    fn open_path(&self, guest_path: &str) -> io::Result<(File, std::fs::Metadata)> {
        let file = host::open_beneath(
            &self.inner.root,
            &relative(guest_path)?,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
        )?;
        let metadata = file.metadata()?;
        if !metadata.is_dir() && !metadata.is_file() {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        Ok((file, metadata))
    }

    /// What `stat` reports for a guest path (symbolic links followed inside the image).
    pub fn metadata(&self, guest_path: &str) -> io::Result<ImageMetadata> {
        let (_, metadata) = self.open_path(guest_path)?;
        Ok(ImageMetadata {
            is_dir: metadata.is_dir(),
            size: if metadata.is_dir() { 0 } else { metadata.len() },
            executable: metadata.mode() & 0o111 != 0,
            inode: metadata.ino() | IMAGE_INODE,
        })
    }

    /// Opens the regular file at a guest path (a directory answers `EISDIR`).
    fn regular_file(&self, guest_path: &str) -> io::Result<(File, std::fs::Metadata)> {
        let (file, metadata) = self.open_path(guest_path)?;
        if metadata.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        Ok((file, metadata))
    }

    /// The whole of a file opened by [`BaseImage::regular_file`], at most
    /// [`MAX_IMAGE_FILE_BYTES`] (`EFBIG` past it).
    fn whole(file: &File, metadata: &std::fs::Metadata) -> io::Result<Vec<u8>> {
        if metadata.len() > MAX_IMAGE_FILE_BYTES {
            return Err(io::Error::from_raw_os_error(libc::EFBIG));
        }
        // Within MAX_IMAGE_FILE_BYTES, so within host sizes.
        let len = usize::try_from(metadata.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        read_range(file, 0, len)
    }

    /// The whole regular file at a guest path, read from the host now and not kept: for a
    /// program or interpreter, which the loader stages itself.
    pub fn read_file(&self, guest_path: &str) -> io::Result<Vec<u8>> {
        let (file, metadata) = self.regular_file(guest_path)?;
        BaseImage::whole(&file, &metadata)
    }

    /// The regular file at a guest path, frozen for mapping: kept from an earlier call for
    /// the same (unchanged) host file, or read now.
    pub fn contents(&self, guest_path: &str) -> io::Result<Arc<ImageFile>> {
        let (file, metadata) = self.regular_file(guest_path)?;
        let key = FileKey {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.len(),
            modified: metadata
                .mtime_nsec()
                .saturating_add(metadata.mtime().saturating_mul(1_000_000_000)),
        };
        if let Some(bytes) = lock(&self.inner.kept).files.get(&key) {
            return Ok(bytes.clone());
        }
        let bytes = Arc::new(ImageFile {
            frozen: FrozenFile::new(c"lambda-image-file", &BaseImage::whole(&file, &metadata)?)?,
            syscall_offsets: OnceLock::new(),
        });
        let mut kept = lock(&self.inner.kept);
        let size = bytes.len() as u64;
        if kept.bytes.saturating_add(size) <= MAX_KEPT_BYTES {
            kept.bytes = kept.bytes.saturating_add(size);
            kept.files.insert(key, bytes.clone());
        }
        Ok(bytes)
    }

    /// Up to `len` bytes (at most [`MAX_READ_BYTES`]) of the regular file at a guest path
    /// from `offset`, read from the host now (through the host's page cache; nothing is
    /// kept).
    pub fn read_at(&self, guest_path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let (file, metadata) = self.regular_file(guest_path)?;
        let available = metadata.len().saturating_sub(offset);
        let len = len
            .min(MAX_READ_BYTES)
            .min(usize::try_from(available).unwrap_or(usize::MAX));
        read_range(&file, offset, len)
    }

    /// The target of the symbolic link at a guest path, as stored (the link itself is not
    /// followed; the directories leading to it are, inside the image). `EINVAL` if it is not
    /// a link.
    pub fn read_link(&self, guest_path: &str) -> io::Result<PathBuf> {
        use std::os::fd::AsRawFd;
        let (parent, name) = match guest_path.rsplit_once('/') {
            Some((parent, name)) if !name.is_empty() && name != "." && name != ".." => {
                (parent, name)
            }
            _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        };
        let (dir, metadata) = self.open_path(if parent.is_empty() { "/" } else { parent })?;
        if !metadata.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        // `name` is one component with no `/`, looked up in a directory of the image; the
        // link is read, never followed.
        std::fs::read_link(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
    }

    /// The entries of the directory at a guest path: name, whether it is a directory, and
    /// inode number. Symbolic links are listed as what they point to inside the image;
    /// dangling ones, and entries that are neither files nor directories, are left out.
    pub fn children(&self, guest_path: &str) -> io::Result<Vec<(String, bool, u64)>> {
        let (dir, metadata) = self.open_path(guest_path)?;
        if !metadata.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        use std::os::fd::AsRawFd;
        let listing = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))?;
        let mut children = Vec::new();
        for entry in listing {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not UTF-8: the guest's paths are
            };
            let file_type = entry.file_type()?;
            let (is_dir, inode) = if file_type.is_symlink() {
                let target = format!("{}/{name}", guest_path.trim_end_matches('/'));
                match self.metadata(&target) {
                    Ok(meta) => (meta.is_dir, meta.inode),
                    Err(_) => continue,
                }
            } else if file_type.is_dir() || file_type.is_file() {
                (file_type.is_dir(), entry.ino() | IMAGE_INODE)
            } else {
                continue;
            };
            children.push((name, is_dir, inode));
        }
        children.sort();
        Ok(children)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(test: &str) -> (PathBuf, PathBuf) {
        let base = std::env::temp_dir().join(format!("base-image-{test}-{}", std::process::id()));
        let root = base.join("root");
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(root.join("lib")).unwrap();
        std::fs::write(root.join("lib/libx.so"), b"library").unwrap();
        std::fs::write(base.join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink("/lib/libx.so", root.join("absolute")).unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("lib/escape")).unwrap();
        std::os::unix::fs::symlink(base.join("secret"), root.join("host")).unwrap();
        std::os::unix::fs::symlink("lib", root.join("lib64")).unwrap();
        (base, root)
    }

    #[test]
    fn paths_and_links_stay_inside_the_image() {
        let (base, root) = image("links");
        let image = BaseImage::open(&root).unwrap();
        assert_eq!(&image.contents("/lib/libx.so").unwrap()[..], b"library");
        assert_eq!(image.read_at("/lib64/libx.so", 3, 100).unwrap(), b"rary");
        assert_eq!(image.read_at("/lib/libx.so", 100, 10).unwrap(), b"");
        // An absolute link is resolved inside the image.
        assert_eq!(&image.contents("/absolute").unwrap()[..], b"library");
        assert_eq!(&image.contents("/lib64/libx.so").unwrap()[..], b"library");
        assert_eq!(image.read_file("/absolute").unwrap(), b"library");
        assert_eq!(
            image.read_file("/lib").unwrap_err().raw_os_error(),
            Some(libc::EISDIR)
        );
        // `..` stops at the root: `../../secret` from /lib is /secret of the image.
        let enoent =
            |r: io::Result<Arc<ImageFile>>| r.unwrap_err().raw_os_error() == Some(libc::ENOENT);
        assert!(enoent(image.contents("/lib/escape")));
        assert!(enoent(image.contents("/host")));
        assert!(enoent(image.contents("/../secret")));
        assert_eq!(
            image.contents("/lib").unwrap_err().raw_os_error(),
            Some(libc::EISDIR)
        );
        let names: Vec<String> = image
            .children("/")
            .unwrap()
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(names, ["absolute", "lib", "lib64"]);
        assert!(image.metadata("/lib64").unwrap().is_dir);
        assert_eq!(image.read_link("/lib64").unwrap(), Path::new("lib"));
        assert_eq!(
            image.read_link("/lib/escape").unwrap(),
            Path::new("../../secret")
        );
        let einval = |r: io::Result<PathBuf>| r.unwrap_err().raw_os_error() == Some(libc::EINVAL);
        assert!(einval(image.read_link("/lib/libx.so")));
        assert!(einval(image.read_link("/")));
        // Two names of one file share one copy.
        let a = image.contents("/lib/libx.so").unwrap();
        let b = image.contents("/absolute").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn fifos_and_missing_roots_are_refused() {
        let (base, root) = image("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status()
            .unwrap();
        assert!(made.success());
        let image = BaseImage::open(&root).unwrap();
        assert_eq!(
            image.metadata("/fifo").unwrap_err().raw_os_error(),
            Some(libc::EACCES)
        );
        assert!(BaseImage::open(&base.join("missing")).is_err());
        assert!(BaseImage::open(&base.join("secret")).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
