//! Programs that `execve` started, kept checked and staged for the next exec of the same
//! file: checking a program decodes its code for syscall sites, 8 ms for a 900 KB static
//! binary here, which a shell loop or a handler running the same command on every
//! invocation would pay each time. The syscall sites a cached program learned stay learned.
//!
//! An entry is found by the file's length and CRC-32 and then compared byte for byte, so
//! one function's file can never stand in for another's, whatever its checksum. The cache
//! is bounded in entries and in the bytes it keeps.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::error::LoadError;
use super::image::ProgramImage;
use crate::sync::lock;

/// Most programs kept.
pub const MAX_PROGRAMS: usize = 32;
/// Most bytes of program files kept (their staged images take about as much again).
pub const MAX_BYTES: usize = 256 << 20;

/// What a file is checked as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Program,
    Interpreter,
}

struct Entry {
    role: Role,
    crc32: u32,
    bytes: Arc<[u8]>,
    image: ProgramImage,
}

/// Checked programs by file contents, most recently used last.
#[derive(Default)]
pub struct ExecCache {
    entries: Mutex<VecDeque<Entry>>,
}

impl std::fmt::Debug for ExecCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecCache")
            .field("programs", &lock(&self.entries).len())
            .finish()
    }
}

impl ExecCache {
    /// The program in `bytes`, checked ([`ProgramImage::parse`]), from the cache if it
    /// holds the same file.
    pub fn parse(&self, bytes: &Arc<[u8]>) -> Result<ProgramImage, LoadError> {
        self.get_or_parse(Role::Program, bytes)
    }

    /// The interpreter in `bytes`, checked ([`ProgramImage::parse_interpreter`]), from the
    /// cache if it holds the same file.
    pub fn parse_interpreter(&self, bytes: &Arc<[u8]>) -> Result<ProgramImage, LoadError> {
        self.get_or_parse(Role::Interpreter, bytes)
    }

    /// How many programs the cache holds.
    #[cfg(test)]
    fn programs(&self) -> usize {
        lock(&self.entries).len()
    }

    fn get_or_parse(&self, role: Role, bytes: &Arc<[u8]>) -> Result<ProgramImage, LoadError> {
        let crc32 = crc32fast::hash(bytes);
        {
            let mut entries = lock(&self.entries);
            let found = entries.iter().position(|entry| {
                entry.role == role && entry.crc32 == crc32 && *entry.bytes == **bytes
            });
            if let Some(index) = found
                && let Some(entry) = entries.remove(index)
            {
                let image = entry.image.clone();
                entries.push_back(entry);
                return Ok(image);
            }
        }
        // Checked without the lock: another exec may check the same file meanwhile, and
        // the later one is kept.
        let image = match role {
            Role::Program => ProgramImage::parse(bytes)?,
            Role::Interpreter => ProgramImage::parse_interpreter(bytes)?,
        };
        if bytes.len() <= MAX_BYTES {
            let mut entries = lock(&self.entries);
            entries.push_back(Entry {
                role,
                crc32,
                bytes: bytes.clone(),
                image: image.clone(),
            });
            let mut kept: usize = entries.iter().map(|entry| entry.bytes.len()).sum();
            while entries.len() > MAX_PROGRAMS || kept > MAX_BYTES {
                let Some(oldest) = entries.pop_front() else {
                    break;
                };
                kept = kept.saturating_sub(oldest.bytes.len());
            }
        }
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::image::tests::program as elf;

    /// A small static program; `tag` bytes past its segment make a different file.
    fn file(tag: &[u8]) -> Vec<u8> {
        let mut bytes = elf(&[(0, 200, 0x40_0000)], 200);
        bytes.extend_from_slice(tag);
        bytes
    }

    #[test]
    fn the_same_file_is_checked_once_and_a_different_one_again() {
        let cache = ExecCache::default();
        let program: Arc<[u8]> = file(b"").into();
        let first = cache.parse(&program).unwrap();
        let again = cache.parse(&Arc::from(program.to_vec())).unwrap();
        assert_eq!(first.identity(), again.identity(), "the same staged image");
        assert_eq!(cache.programs(), 1);
        // The same bytes checked as an interpreter are another entry (and refused: a
        // fixed-address program is no interpreter).
        assert!(cache.parse_interpreter(&program).is_err());
        // A different file: checked anew.
        let other = cache.parse(&Arc::from(file(b"x"))).unwrap();
        assert_ne!(first.identity(), other.identity());
        assert_eq!(cache.programs(), 2);
        // Not a program: the error, nothing kept.
        assert!(cache.parse(&Arc::from(&b"not a program"[..])).is_err());
        assert_eq!(cache.programs(), 2);
    }

    #[test]
    fn the_cache_keeps_at_most_its_bound() {
        let cache = ExecCache::default();
        for n in 0..MAX_PROGRAMS + 3 {
            // Bytes past the segment change the file, not the program.
            cache.parse(&Arc::from(file(&n.to_le_bytes()))).unwrap();
        }
        assert_eq!(cache.programs(), MAX_PROGRAMS);
    }
}
