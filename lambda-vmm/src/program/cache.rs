//! Checked programs kept for the environments that follow: a function's package is read,
//! its ELF checked and staged, and its code scanned once, as Lambda keeps code on the worker,
//! and every environment of the function maps the same staged image (and learns syscall sites
//! into the same set).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use lambda_core::CodeLocation;

use super::error::LoadError;
use super::image::ProgramImage;
use super::package::{CodePackage, read_package};
use crate::sync::lock;

/// How many distinct programs a cache keeps; the least recently used goes first.
pub const PROGRAM_CACHE_CAPACITY: usize = 32;

/// What identifies a package on disk: where it is, and its size and modification time (a
/// rewritten file is read again).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    location: CodeLocation,
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

impl Key {
    fn of(code: &CodeLocation) -> Result<Key, LoadError> {
        let path = code.path().to_path_buf();
        let metadata = std::fs::metadata(&path).map_err(|error| LoadError::Unreadable {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        Ok(Key {
            location: code.clone(),
            path,
            len: metadata.len(),
            modified: metadata.modified().ok(),
        })
    }
}

/// Checked programs by package.
#[derive(Debug, Default)]
pub struct ProgramCache {
    entries: Mutex<VecDeque<(Key, ProgramImage, CodePackage)>>,
}

impl ProgramCache {
    /// The checked program of `code`: from the cache if the file is unchanged, else read,
    /// checked and kept.
    pub fn load(&self, code: &CodeLocation) -> Result<(ProgramImage, CodePackage), LoadError> {
        let key = Key::of(code)?;
        {
            let mut entries = lock(&self.entries);
            if let Some(index) = entries.iter().position(|(k, ..)| *k == key)
                && let Some(entry) = entries.remove(index)
            {
                let found = (entry.1.clone(), entry.2.clone());
                entries.push_front(entry);
                return Ok(found);
            }
        }
        let package = read_package(code)?;
        let image = ProgramImage::from_package(&package)?;
        let mut entries = lock(&self.entries);
        entries.retain(|(k, ..)| k.location != key.location);
        entries.push_front((key, image.clone(), package.clone()));
        entries.truncate(PROGRAM_CACHE_CAPACITY);
        Ok((image, package))
    }

    /// How many programs are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_file_is_read_once_and_a_rewritten_one_again() {
        let dir = std::env::temp_dir().join(format!("program-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not-elf");
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        let cache = ProgramCache::default();
        let code = CodeLocation::Executable(path.clone());
        assert_eq!(cache.load(&code).unwrap_err(), LoadError::NotElf);
        assert_eq!(cache.len(), 0, "a refused program is not kept");
        let missing = CodeLocation::Executable(dir.join("missing"));
        assert!(matches!(
            cache.load(&missing),
            Err(LoadError::Unreadable { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
