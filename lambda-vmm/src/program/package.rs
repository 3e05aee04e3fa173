//! A function's code: an executable, or a zip holding one named `bootstrap` (and any other
//! files, which appear under `/var/task`); with its layers (`layers.rs`) and base image.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;
use std::sync::Arc;

use lambda_core::CodeLocation;

use super::error::LoadError;
use super::resolve::{ProgramFiles, Unrunnable};
use crate::base_image::BaseImage;

/// Largest package accepted, unzipped (Lambda's limit on unzipped code).
pub const MAX_PROGRAM_BYTES: u64 = 250 << 20;

/// Opens `path` for reading if it is a regular file. A device, a FIFO or a socket is refused
/// before anything is read from it, since reading one could block or never end (`/dev/zero`
/// as a function's code would fill the host's memory); the open itself does not wait for a
/// FIFO's writer.
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

/// Reads the regular file at `path` whole ([`open_regular`]), or `Ok(None)` if it holds
/// more than [`MAX_PROGRAM_BYTES`].
pub fn read_code_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = open_regular(path)?;
    let size = file.metadata()?.len();
    if size > MAX_PROGRAM_BYTES {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // A file that grows while it is read stops at the limit too.
    file.take(MAX_PROGRAM_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= MAX_PROGRAM_BYTES).then_some(bytes))
}

/// Files read into memory: each one's path (relative to where they appear) and contents.
pub type Files = Vec<(String, Arc<[u8]>)>;

/// The files of a function's package, read into memory once.
#[derive(Debug, Clone)]
pub struct CodePackage {
    /// Paths relative to `/var/task`, with their contents.
    pub files: Arc<[(String, Arc<[u8]>)]>,
    /// The program (`bootstrap`).
    pub program: Arc<[u8]>,
    /// The base image the function's configuration names, opened.
    pub base_image: Option<BaseImage>,
    /// The function's layers merged: paths relative to `/opt`, with their contents.
    pub layers: Arc<[(String, Arc<[u8]>)]>,
}

impl ProgramFiles for CodePackage {
    /// The executable file at the absolute guest `path`, for a `#!` line or an interpreter:
    /// from the package under `/var/task`, the layers under `/opt`, else from the base image.
    fn executable(&self, path: &str) -> Result<Arc<[u8]>, Unrunnable> {
        for (root, files, what) in [
            ("/var/task/", &self.files, "the function's package"),
            ("/opt/", &self.layers, "the function's layers"),
        ] {
            if let Some(name) = path.strip_prefix(root) {
                return files
                    .iter()
                    .find(|(file, _)| file == name)
                    .map(|(_, bytes)| bytes.clone())
                    .ok_or_else(|| Unrunnable::new(libc::ENOENT, format!("is not in {what}")));
            }
        }
        let Some(image) = &self.base_image else {
            return Err(Unrunnable::new(
                libc::ENOENT,
                "is outside /var/task and /opt and the function has no base image",
            ));
        };
        let where_ = || format!("in the base image {}", image.path().display());
        let io_errno = |error: &std::io::Error| error.raw_os_error().unwrap_or(libc::EIO);
        let metadata = image.metadata(path).map_err(|error| {
            Unrunnable::new(
                io_errno(&error),
                format!("cannot be found {}: {error}", where_()),
            )
        })?;
        if metadata.is_dir || !metadata.executable {
            return Err(Unrunnable::new(
                libc::EACCES,
                format!("is not an executable file {}", where_()),
            ));
        }
        image.read_file(path).map(Arc::from).map_err(|error| {
            Unrunnable::new(
                io_errno(&error),
                format!("cannot be read {}: {error}", where_()),
            )
        })
    }
}

/// Reads the package a code location names.
pub fn read_package(code: &CodeLocation) -> Result<CodePackage, LoadError> {
    let path = code.path();
    let unreadable = |reason: String| LoadError::Unreadable {
        path: path.display().to_string(),
        reason,
    };
    match code {
        CodeLocation::Executable(_) => {
            let program: Arc<[u8]> = read_code_file(path)
                .map_err(|e| unreadable(e.to_string()))?
                .ok_or_else(too_big)?
                .into();
            Ok(CodePackage {
                files: Arc::from(vec![("bootstrap".to_string(), program.clone())]),
                program,
                base_image: None,
                layers: Arc::from(Vec::new()),
            })
        }
        CodeLocation::Zip(_) => {
            let file = open_regular(path).map_err(|e| unreadable(e.to_string()))?;
            read_zip(file, &path.display().to_string())
        }
    }
}

fn too_big() -> LoadError {
    LoadError::Malformed(format!(
        "the code is over the {MAX_PROGRAM_BYTES}-byte limit of unzipped code"
    ))
}

/// Reads a zip package from `archive`; `path` names it in errors.
pub fn read_zip(archive: impl Read + Seek, path: &str) -> Result<CodePackage, LoadError> {
    let unreadable = |reason: String| LoadError::Unreadable {
        path: path.to_string(),
        reason,
    };
    let files = zip_files(archive, MAX_PROGRAM_BYTES).map_err(|error| match error {
        ZipError::Unreadable(reason) => unreadable(reason),
        ZipError::TooBig => too_big(),
    })?;
    let program = files
        .iter()
        .find(|(name, _)| name == "bootstrap")
        .map(|(_, bytes)| bytes.clone())
        .ok_or_else(|| {
            unreadable("the zip has no file named `bootstrap` at its top level".into())
        })?;
    Ok(CodePackage {
        files: files.into(),
        program,
        base_image: None,
        layers: Arc::from(Vec::new()),
    })
}

/// Why a zip's files could not be read.
pub(super) enum ZipError {
    /// Not a zip, or an entry that does not extract.
    Unreadable(String),
    /// More than the budget of bytes, unzipped.
    TooBig,
}

/// The files of a zip archive, names relative to where it is unpacked (entries that would
/// escape it are left out), at most `budget` bytes unzipped.
pub(super) fn zip_files(archive: impl Read + Seek, budget: u64) -> Result<Files, ZipError> {
    let mut archive = zip::ZipArchive::new(archive)
        .map_err(|e| ZipError::Unreadable(format!("not a readable zip archive: {e}")))?;
    let mut files = Vec::new();
    let mut total = 0u64;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| ZipError::Unreadable(format!("bad zip entry: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let Some(name) = entry.enclosed_name() else {
            continue; // an entry that would escape the directory
        };
        let name = name.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry
            .by_ref()
            .take(budget.saturating_add(1).saturating_sub(total))
            .read_to_end(&mut bytes)
            .map_err(|e| ZipError::Unreadable(format!("cannot extract {name}: {e}")))?;
        total = total.saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        if total > budget {
            return Err(ZipError::TooBig);
        }
        files.push((name, Arc::<[u8]>::from(bytes)));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    /// A device or a directory named as a function's code is refused before anything is
    /// read: `/dev/null` gave an empty program, and `/dev/zero` was read until the host's
    /// memory ran out (not tried here, so that a regression cannot take the host down).
    #[test]
    fn code_that_is_not_a_regular_file_is_refused_unread() {
        for path in ["/dev/null", "/"] {
            for code in [
                CodeLocation::Executable(path.into()),
                CodeLocation::Zip(path.into()),
            ] {
                let error = read_package(&code).expect_err(path).to_string();
                assert!(
                    error.contains(path) && error.contains("not a regular file"),
                    "{error}"
                );
            }
            assert_eq!(
                read_code_file(Path::new(path)).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
        let file = std::env::temp_dir().join(format!("lambda-code-{}", std::process::id()));
        std::fs::write(&file, b"\x7fELF").unwrap();
        let read = read_code_file(&file);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(read.unwrap().as_deref(), Some(&b"\x7fELF"[..]));
    }

    fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in entries {
            writer
                .start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn reads_a_zip_from_memory_and_skips_escaping_names() {
        let bytes = zip(&[
            ("../outside", b"x"),
            ("/etc/passwd", b"x"),
            ("bootstrap", b"program"),
            ("lib/data.txt", b"data"),
        ]);
        let package = read_zip(Cursor::new(bytes), "mem.zip").unwrap();
        assert_eq!(&*package.program, b"program");
        let names: Vec<&str> = package.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["bootstrap", "lib/data.txt"]);
    }

    #[test]
    fn a_zip_without_bootstrap_or_not_a_zip_is_unreadable() {
        let no_bootstrap = zip(&[("main", b"program")]);
        for bytes in [no_bootstrap, b"PK\x05\x06 not really".to_vec(), Vec::new()] {
            assert!(matches!(
                read_zip(Cursor::new(bytes), "mem.zip"),
                Err(LoadError::Unreadable { path, .. }) if path == "mem.zip"
            ));
        }
    }
}
