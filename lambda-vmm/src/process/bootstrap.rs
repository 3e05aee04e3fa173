//! The program an environment runs: the function's executable as it is, or the `bootstrap`
//! extracted from its zip into the environment's private directory.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use lambda_core::{CodeLocation, EnvironmentError};

use super::workdir::WorkDir;

/// A runnable program and the directory the runtime is told its code is in.
#[derive(Debug, Clone)]
pub(super) struct Program {
    /// The executable, as an absolute path.
    pub(super) path: PathBuf,
    /// `LAMBDA_TASK_ROOT` for this backend: the directory holding the code.
    pub(super) task_root: PathBuf,
}

/// A fresh private directory under `temp_root` for one environment, with the program of
/// `code` prepared for it.
pub(super) fn stage(
    code: &CodeLocation,
    temp_root: &Path,
) -> Result<(WorkDir, Program), EnvironmentError> {
    let workdir = WorkDir::create(temp_root).map_err(|error| {
        EnvironmentError::failed_because(
            format!(
                "cannot create a private directory under {}",
                temp_root.display()
            ),
            error,
        )
    })?;
    let program = prepare(code, &workdir.task())?;
    Ok((workdir, program))
}

/// Finds or extracts the program of `code`; a zip's files go to `task_dir`, `bootstrap` with
/// mode 0755, the others 0644.
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
            // The same reading (limits, messages) as the micro-VM backend's.
            let package = crate::program::read_package(code)
                .map_err(|error| EnvironmentError::Code(error.to_string()))?;
            let target = task_dir.join("bootstrap");
            // Every file of the package, as the micro-VM's /var/task shows them; names were
            // checked by `read_package` to stay inside the directory.
            for (name, bytes) in package.files.iter() {
                let path = task_dir.join(name);
                let mode = if path == target { 0o755 } else { 0o644 };
                let extract = || -> io::Result<()> {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    let mut out = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(mode)
                        .open(&path)?;
                    out.write_all(bytes)
                };
                extract().map_err(|error| invalid(format!("cannot extract `{name}`: {error}")))?;
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
    use std::fs::File;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

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
            &[
                ("README", b"hi"),
                ("bootstrap", b"#!/bin/sh\necho hi\n"),
                ("lib/handler.py", b"def handler(): pass\n"),
            ],
        );
        let program = prepare(&CodeLocation::Zip(zip), &work.task()).unwrap();
        // The other files are there too, readable and not executable.
        assert_eq!(std::fs::read(work.task().join("README")).unwrap(), b"hi");
        let handler = work.task().join("lib/handler.py");
        assert_eq!(
            std::fs::metadata(&handler).unwrap().permissions().mode() & 0o777,
            0o644
        );
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
