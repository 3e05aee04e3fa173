//! Checked programs kept for the environments that follow: a function's package is read,
//! its ELF checked and staged, and its code scanned once, as Lambda keeps code on the worker,
//! and every environment of the function maps the same staged image (and learns syscall sites
//! into the same set).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use lambda_core::CodeLocation;

use super::error::LoadError;
use super::image::ProgramImage;
use super::layers::read_layers;
use super::package::{CodePackage, MAX_PROGRAM_BYTES, read_package};
use crate::base_image::BaseImage;
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
    base_image: Option<PathBuf>,
    /// Each layer with its size and modification time (a directory layer's own: a file
    /// changed deep inside it is seen once the function's code or the layer's directory
    /// changes).
    layers: Vec<(PathBuf, u64, Option<SystemTime>)>,
}

impl Key {
    fn of(
        code: &CodeLocation,
        base_image: Option<&Path>,
        layers: &[PathBuf],
    ) -> Result<Key, LoadError> {
        let path = code.path().to_path_buf();
        let metadata = std::fs::metadata(&path).map_err(|error| LoadError::Unreadable {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        let layers = layers
            .iter()
            .map(|layer| {
                let metadata = std::fs::metadata(layer).map_err(|error| LoadError::Layer {
                    path: layer.display().to_string(),
                    reason: error.to_string(),
                })?;
                Ok((layer.clone(), metadata.len(), metadata.modified().ok()))
            })
            .collect::<Result<_, LoadError>>()?;
        Ok(Key {
            location: code.clone(),
            path,
            len: metadata.len(),
            modified: metadata.modified().ok(),
            base_image: base_image.map(Path::to_path_buf),
            layers,
        })
    }
}

/// Checked programs by package, and the base images they use.
#[derive(Debug, Default)]
pub struct ProgramCache {
    entries: Mutex<VecDeque<(Key, ProgramImage, CodePackage)>>,
    /// Base images by host directory, opened once and shared by every function using them.
    images: Mutex<HashMap<PathBuf, BaseImage>>,
}

impl ProgramCache {
    /// The checked program of `code`, with `layers` under `/opt` and over the base image at
    /// `base_image` if given: from the cache if the files are unchanged, else read, checked
    /// and kept.
    pub fn load(
        &self,
        code: &CodeLocation,
        base_image: Option<&Path>,
        layers: &[PathBuf],
    ) -> Result<(ProgramImage, CodePackage), LoadError> {
        let key = Key::of(code, base_image, layers)?;
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
        let mut package = read_package(code)?;
        package.base_image = base_image.map(|dir| self.base_image(dir)).transpose()?;
        if !layers.is_empty() {
            let code_bytes: u64 = package.files.iter().map(|(_, b)| b.len() as u64).sum();
            let budget = MAX_PROGRAM_BYTES.saturating_sub(code_bytes);
            package.layers = read_layers(layers, budget)?.into();
        }
        let image = ProgramImage::from_package(&package)?;
        let mut entries = lock(&self.entries);
        entries.retain(|(k, ..)| k.location != key.location);
        entries.push_front((key, image.clone(), package.clone()));
        entries.truncate(PROGRAM_CACHE_CAPACITY);
        Ok((image, package))
    }

    /// The base image at `dir`, opened now or earlier.
    fn base_image(&self, dir: &Path) -> Result<BaseImage, LoadError> {
        let mut images = lock(&self.images);
        if let Some(image) = images.get(dir) {
            return Ok(image.clone());
        }
        let image = BaseImage::open(dir).map_err(|error| LoadError::BaseImage {
            path: dir.display().to_string(),
            reason: match error.raw_os_error() {
                Some(libc::ENOTDIR) => "it is not a directory".into(),
                _ => error.to_string(),
            },
        })?;
        images.insert(dir.to_path_buf(), image.clone());
        Ok(image)
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
        std::fs::write(&path, b"plain text\n").unwrap();
        let cache = ProgramCache::default();
        let code = CodeLocation::Executable(path.clone());
        assert_eq!(cache.load(&code, None, &[]).unwrap_err(), LoadError::NotElf);
        assert_eq!(cache.len(), 0, "a refused program is not kept");
        let missing = CodeLocation::Executable(dir.join("missing"));
        assert!(matches!(
            cache.load(&missing, None, &[]),
            Err(LoadError::Unreadable { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
