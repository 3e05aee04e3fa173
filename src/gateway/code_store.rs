//! Uploaded code: each zip a request carries is written to its own file in the code
//! directory, checked the way an environment will read it, and fingerprinted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_core::CodeLocation;
use sha2::{Digest, Sha256};

use super::api_error::ApiError;
use super::error::GatewayError;

/// The largest zip accepted in a request, as Lambda's direct upload (50 MB).
pub(super) const MAX_ZIP_BYTES: usize = 50 * 1024 * 1024;

/// Lambda's default code storage per account (75 GB): the gateway's default limit on the
/// zips it keeps.
pub(super) const DEFAULT_MAX_CODE_BYTES: u64 = 75 * 1024 * 1024 * 1024;

/// The directory uploads go to.
#[derive(Debug)]
pub(super) struct CodeStore {
    dir: PathBuf,
    /// Whether the directory is ours to remove when the gateway stops.
    owned: bool,
    next: AtomicU64,
}

/// A stored upload.
#[derive(Debug, Clone)]
pub(super) struct StoredCode {
    /// Where it is.
    pub location: CodeLocation,
    /// `CodeSha256`: the base64 SHA-256 of the zip.
    pub sha256: String,
    /// `CodeSize`: the zip's size in bytes.
    pub size: u64,
}

impl CodeStore {
    /// Uses `dir`, or a private directory under the system's temporary directory.
    pub fn open(dir: Option<&Path>) -> Result<Self, GatewayError> {
        static INSTANCE: AtomicU64 = AtomicU64::new(0);
        let (dir, owned) = match dir {
            Some(dir) => (dir.to_path_buf(), false),
            None => {
                let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
                let name = format!("lambda-gateway-{}-{n}", std::process::id());
                (std::env::temp_dir().join(name), true)
            }
        };
        std::fs::create_dir_all(&dir).map_err(|source| GatewayError::CodeDir {
            path: dir.clone(),
            source,
        })?;
        Ok(CodeStore {
            dir,
            owned,
            next: AtomicU64::new(0),
        })
    }

    /// Decodes `zip_base64`, writes it for `function` and checks that it is a zip holding a
    /// `bootstrap` within the limits on code; `room` is how many bytes of code storage are
    /// left.
    pub fn store(
        &self,
        function: &str,
        zip_base64: &str,
        room: u64,
    ) -> Result<StoredCode, ApiError> {
        let zip = STANDARD.decode(zip_base64.trim()).map_err(|error| {
            ApiError::invalid_parameter(format!("Code.ZipFile is not base64: {error}"))
        })?;
        if zip.len() > MAX_ZIP_BYTES {
            return Err(ApiError::new(
                413,
                "RequestEntityTooLargeException",
                format!(
                    "the zip has {} bytes; uploads hold at most {MAX_ZIP_BYTES}",
                    zip.len()
                ),
            ));
        }
        if zip.len() as u64 > room {
            return Err(ApiError::new(
                400,
                "CodeStorageExceededException",
                format!(
                    "Code storage limit exceeded: the zip has {} bytes and {room} are left; \
                     delete unused functions or versions",
                    zip.len()
                ),
            ));
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{function}.{n}.zip"));
        std::fs::write(&path, &zip).map_err(|error| {
            ApiError::service(format!(
                "cannot keep the code at {}: {error}",
                path.display()
            ))
        })?;
        let location = CodeLocation::Zip(path.clone());
        if let Err(error) = lambda_vmm::check_package(&location) {
            let _ = std::fs::remove_file(&path);
            return Err(ApiError::invalid_parameter(format!(
                "Could not unzip uploaded file. Please check your file, then try to upload \
                 again. ({error})"
            )));
        }
        Ok(StoredCode {
            location,
            sha256: STANDARD.encode(Sha256::digest(&zip)),
            size: zip.len() as u64,
        })
    }

    /// Removes one upload no version uses any more (a location outside the store is left).
    pub fn remove(&self, code: &CodeLocation) {
        if code.path().starts_with(&self.dir) {
            let _ = std::fs::remove_file(code.path());
        }
    }

    /// Removes every upload of a deleted function (names hold no `.`, so the prefix
    /// `name.` is the function's alone).
    pub fn remove_function(&self, function: &str) {
        let prefix = format!("{function}.");
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

impl Drop for CodeStore {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
