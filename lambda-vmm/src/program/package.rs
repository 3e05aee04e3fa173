//! A function's code: an executable, or a zip holding one named `bootstrap` (and any other
//! files, which appear under `/var/task`); with its layers (`layers.rs`) and base image.

use std::io::{Read, Seek};
use std::sync::Arc;

use lambda_core::CodeLocation;

use super::error::LoadError;
use super::resolve::{ProgramFiles, Unrunnable};
use crate::base_image::BaseImage;

/// Largest package accepted, unzipped (Lambda's limit on unzipped code).
pub const MAX_PROGRAM_BYTES: u64 = 250 << 20;

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
            let size = std::fs::metadata(path)
                .map_err(|e| unreadable(e.to_string()))?
                .len();
            if size > MAX_PROGRAM_BYTES {
                return Err(too_big());
            }
            let program: Arc<[u8]> = std::fs::read(path)
                .map_err(|e| unreadable(e.to_string()))?
                .into();
            Ok(CodePackage {
                files: Arc::from(vec![("bootstrap".to_string(), program.clone())]),
                program,
                base_image: None,
                layers: Arc::from(Vec::new()),
            })
        }
        CodeLocation::Zip(_) => {
            let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
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
