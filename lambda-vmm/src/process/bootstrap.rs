//! The program an environment runs: the function's executable as it is, or the `bootstrap`
//! extracted from its zip into the environment's private directory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use lambda_core::{CodeLocation, EnvironmentError};

/// Largest `bootstrap` extracted from a zip: Lambda's limit on an unzipped deployment package.
pub(super) const MAX_BOOTSTRAP_BYTES: u64 = 250 << 20;

/// A runnable program and the directory the runtime is told its code is in.
#[derive(Debug, Clone)]
pub(super) struct Program {
    /// The executable, as an absolute path.
    pub(super) path: PathBuf,
    /// `LAMBDA_TASK_ROOT` for this backend: the directory holding the code.
    pub(super) task_root: PathBuf,
}

/// Finds or extracts the program of `code`; a zip's `bootstrap` goes to `task_dir` with mode
/// 0755.
pub(super) fn prepare(code: &CodeLocation, task_dir: &Path) -> Result<Program, EnvironmentError> {
    let path = code.path();
    let invalid = |reason: String| EnvironmentError::Code(format!("{}: {reason}", path.display()));
    match code {
        CodeLocation::Executable(_) => {
            let path = path
                .canonicalize()
                .map_err(|error| invalid(format!("cannot open the executable: {error}")))?;
            if !path.is_file() {
                return Err(invalid("not a regular file".into()));
            }
            let task_root = path.parent().unwrap_or(Path::new("/")).to_path_buf();
            Ok(Program { path, task_root })
        }
        CodeLocation::Zip(_) => {
            let file = File::open(path)
                .map_err(|error| invalid(format!("cannot open the zip: {error}")))?;
            let mut archive = zip::ZipArchive::new(file)
                .map_err(|error| invalid(format!("not a readable zip archive: {error}")))?;
            let mut entry = archive.by_name("bootstrap").map_err(|_| {
                invalid(
                    "the zip has no file named `bootstrap` at its top level; a custom runtime's \
                     package must hold its executable under that name"
                        .into(),
                )
            })?;
            if entry.is_dir() {
                return Err(invalid("`bootstrap` in the zip is a directory".into()));
            }
            if entry.size() > MAX_BOOTSTRAP_BYTES {
                return Err(invalid(format!(
                    "`bootstrap` is {} bytes, over the {MAX_BOOTSTRAP_BYTES}-byte limit",
                    entry.size()
                )));
            }
            let target = task_dir.join("bootstrap");
            let mut extract = || -> io::Result<u64> {
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o755)
                    .open(&target)?;
                io::copy(&mut (&mut entry).take(MAX_BOOTSTRAP_BYTES + 1), &mut out)
            };
            let written = extract()
                .map_err(|error| invalid(format!("cannot extract `bootstrap`: {error}")))?;
            if written > MAX_BOOTSTRAP_BYTES {
                return Err(invalid("`bootstrap` is over the size limit".into()));
            }
            Ok(Program {
                path: target,
                task_root: task_dir.to_path_buf(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::process::workdir::WorkDir;

    fn zip_with(dir: &Path, name: &str, entries: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join(name);
        let mut writer = zip::ZipWriter::new(File::create(&path).unwrap());
        for (entry, data) in entries {
            writer
                .start_file(*entry, zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap();
        path
    }

    #[test]
    fn extracts_bootstrap_executable() {
        let work = WorkDir::create(&std::env::temp_dir()).unwrap();
        let zip = zip_with(
            &work.tmp(),
            "f.zip",
            &[("README", b"hi"), ("bootstrap", b"#!/bin/sh\necho hi\n")],
        );
        let program = prepare(&CodeLocation::Zip(zip), &work.task()).unwrap();
        assert_eq!(program.path, work.task().join("bootstrap"));
        assert_eq!(program.task_root, work.task());
        assert_eq!(
            std::fs::read(&program.path).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        let mode = std::fs::metadata(&program.path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn missing_bootstrap_is_a_code_error() {
        let work = WorkDir::create(&std::env::temp_dir()).unwrap();
        let zip = zip_with(&work.tmp(), "f.zip", &[("main", b"x")]);
        let error = prepare(&CodeLocation::Zip(zip), &work.task()).unwrap_err();
        let EnvironmentError::Code(message) = error else {
            panic!("{error:?}")
        };
        assert!(message.contains("no file named `bootstrap`"), "{message}");

        std::fs::write(work.tmp().join("not.zip"), b"plain text").unwrap();
        let error = prepare(&CodeLocation::Zip(work.tmp().join("not.zip")), &work.task());
        assert!(
            matches!(error, Err(EnvironmentError::Code(m)) if m.contains("not a readable zip"))
        );
    }

    #[test]
    fn executables_are_made_absolute_and_must_exist() {
        let work = WorkDir::create(&std::env::temp_dir()).unwrap();
        let program = prepare(&CodeLocation::Executable("/bin/sh".into()), &work.task()).unwrap();
        assert!(program.path.is_absolute());
        let missing = prepare(
            &CodeLocation::Executable("/nonexistent/fn".into()),
            &work.task(),
        );
        assert!(matches!(missing, Err(EnvironmentError::Code(_))));
        let dir = prepare(&CodeLocation::Executable("/tmp".into()), &work.task());
        assert!(matches!(dir, Err(EnvironmentError::Code(m)) if m.contains("not a regular file")));
    }
}
