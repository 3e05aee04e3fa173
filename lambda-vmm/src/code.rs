//! A function's code: a static executable, or a zip holding one named `bootstrap`.

use std::io::Read;

use lambda_core::CodeLocation;

use crate::loader::{LoadError, MAX_PROGRAM_BYTES};

/// Reads the program bytes a code location names.
pub fn read_program(code: &CodeLocation) -> Result<Vec<u8>, LoadError> {
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
                return Err(LoadError::Malformed(format!(
                    "{size} bytes is over the {MAX_PROGRAM_BYTES}-byte limit"
                )));
            }
            std::fs::read(path).map_err(|e| unreadable(e.to_string()))
        }
        CodeLocation::Zip(_) => {
            let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
            let mut archive = zip::ZipArchive::new(file)
                .map_err(|e| unreadable(format!("not a readable zip archive: {e}")))?;
            let mut entry = archive.by_name("bootstrap").map_err(|_| {
                unreadable("the zip has no file named `bootstrap` at its top level".into())
            })?;
            if entry.size() > MAX_PROGRAM_BYTES {
                return Err(LoadError::Malformed(format!(
                    "bootstrap is {} bytes, over the {MAX_PROGRAM_BYTES}-byte limit",
                    entry.size()
                )));
            }
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry
                .by_ref()
                .take(MAX_PROGRAM_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| unreadable(format!("cannot extract bootstrap: {e}")))?;
            if bytes.len() as u64 > MAX_PROGRAM_BYTES {
                return Err(LoadError::Malformed(
                    "bootstrap is over the size limit".into(),
                ));
            }
            Ok(bytes)
        }
    }
}
