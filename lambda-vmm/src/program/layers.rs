//! A function's layers: zip archives or host directories whose files appear under `/opt`,
//! merged in order (a later layer's file wins), within Lambda's 250 MB limit on a function's
//! code and layers unzipped together.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::LoadError;
use super::package::{Files, MAX_PROGRAM_BYTES, ZipError, open_regular, zip_files};

/// Most files one directory layer may hold (its bytes count against the size limit too).
pub const MAX_LAYER_FILES: usize = 100_000;

/// The files of `layers` merged, paths relative to `/opt`, within `budget` bytes (what the
/// function's own code leaves of the limit).
pub fn read_layers(layers: &[PathBuf], budget: u64) -> Result<Files, LoadError> {
    let mut merged: BTreeMap<String, Arc<[u8]>> = BTreeMap::new();
    let mut left = budget;
    for layer in layers {
        let fail = |reason: String| LoadError::Layer {
            path: layer.display().to_string(),
            reason,
        };
        let too_big = || {
            fail(format!(
                "the function's code and layers are over Lambda's limit of {MAX_PROGRAM_BYTES} \
                 bytes unzipped"
            ))
        };
        let metadata = std::fs::metadata(layer).map_err(|error| fail(error.to_string()))?;
        let files = if metadata.is_dir() {
            directory_files(layer, left).map_err(|error| match error {
                ZipError::TooBig => too_big(),
                ZipError::Unreadable(reason) => fail(reason),
            })?
        } else {
            let file = open_regular(layer).map_err(|error| fail(error.to_string()))?;
            zip_files(file, left).map_err(|error| match error {
                ZipError::TooBig => too_big(),
                ZipError::Unreadable(reason) => {
                    fail(format!("{reason} (a layer is a zip or a directory)"))
                }
            })?
        };
        for (name, bytes) in files {
            left = left.saturating_sub(bytes.len() as u64);
            merged.insert(name, bytes);
        }
    }
    Ok(merged.into_iter().collect())
}

/// The regular files under `root`, names relative to it, at most `budget` bytes. Symbolic
/// links are not followed (a link could name any host file) and are left out, with
/// everything else that is not a regular file or a directory.
fn directory_files(root: &Path, budget: u64) -> Result<Files, ZipError> {
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| ZipError::Unreadable(format!("cannot list {}: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| ZipError::Unreadable(e.to_string()))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| ZipError::Unreadable(format!("{}: {e}", path.display())))?;
            if kind.is_dir() {
                pending.push(path);
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let Some(name) = path
                .strip_prefix(root)
                .ok()
                .and_then(|name| name.to_str())
                .map(str::to_string)
            else {
                continue; // not UTF-8: the guest's paths are
            };
            if files.len() >= MAX_LAYER_FILES {
                return Err(ZipError::Unreadable(format!(
                    "it holds more than {MAX_LAYER_FILES} files"
                )));
            }
            let mut bytes = Vec::new();
            std::fs::File::open(&path)
                .and_then(|file| {
                    file.take(budget.saturating_add(1).saturating_sub(total))
                        .read_to_end(&mut bytes)
                })
                .map_err(|e| {
                    ZipError::Unreadable(format!("cannot read {}: {e}", path.display()))
                })?;
            total = total.saturating_add(bytes.len() as u64);
            if total > budget {
                return Err(ZipError::TooBig);
            }
            files.push((name, Arc::from(bytes)));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("layers-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn zip(path: &Path, entries: &[(&str, &[u8])]) {
        let mut writer = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        for (name, bytes) in entries {
            writer
                .start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap();
    }

    #[test]
    fn later_layers_win_and_directories_count_as_layers() {
        let dir = scratch("merge");
        zip(
            &dir.join("one.zip"),
            &[
                ("lib/a.so", b"one"),
                ("bin/tool", b"one"),
                ("../escape", b"x"),
            ],
        );
        let two = dir.join("two");
        std::fs::create_dir_all(two.join("lib")).unwrap();
        std::fs::write(two.join("lib/a.so"), b"two").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", two.join("lib/passwd")).unwrap();
        let files = read_layers(&[dir.join("one.zip"), two.clone()], 1 << 20).unwrap();
        let files: BTreeMap<String, Vec<u8>> =
            files.into_iter().map(|(n, b)| (n, b.to_vec())).collect();
        assert_eq!(files["lib/a.so"], b"two");
        assert_eq!(files["bin/tool"], b"one");
        // Neither the escaping zip entry nor the directory's link is there.
        assert_eq!(files.len(), 2, "{files:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_layers_are_refused_naming_them() {
        let dir = scratch("bad");
        let text = dir.join("notes.txt");
        std::fs::write(&text, b"not a zip").unwrap();
        let missing = dir.join("missing.zip");
        zip(&dir.join("big.zip"), &[("blob", &[0u8; 2048])]);
        for (layer, budget, why) in [
            (text, 1 << 20, "not a readable zip archive"),
            (missing, 1 << 20, "No such file"),
            (dir.join("big.zip"), 1024, "over Lambda's limit"),
        ] {
            let error = read_layers(std::slice::from_ref(&layer), budget)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&layer.display().to_string()) && error.contains(why),
                "{error}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
