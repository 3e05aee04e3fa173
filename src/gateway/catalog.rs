//! What Lambda shows of a function that the service has no use for, kept by the gateway
//! per function version: the runtime and role it was given, its code's fingerprint, when it
//! last changed, its description, and alias descriptions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use lambda_sched::Version;

use super::time_format::iso8601;

/// One version's particulars.
#[derive(Debug, Clone)]
pub(super) struct VersionMeta {
    /// `Runtime`.
    pub runtime: String,
    /// `Role`.
    pub role: String,
    /// `CodeSha256`.
    pub code_sha256: String,
    /// `CodeSize`.
    pub code_size: u64,
    /// `LastModified`.
    pub last_modified: String,
    /// `Description` of `$LATEST` (a published version's is the service's).
    pub description: String,
    /// `RevisionId`: changes with every update.
    pub revision_id: String,
}

impl VersionMeta {
    /// Marks the version changed now.
    pub fn touch(&mut self) {
        self.last_modified = iso8601(SystemTime::now());
        self.revision_id = lambda_core::new_request_id();
    }
}

type Key = (String, String);

/// Every version's and alias's particulars, by function name.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    versions: Mutex<HashMap<Key, VersionMeta>>,
    alias_descriptions: Mutex<HashMap<Key, String>>,
}

fn key(name: &str, version: impl ToString) -> Key {
    (name.to_string(), version.to_string())
}

impl Catalog {
    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VersionMeta>> {
        // A panic while the lock was held left whole entries behind; they stay usable.
        self.versions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn aliases(&self) -> std::sync::MutexGuard<'_, HashMap<Key, String>> {
        self.alias_descriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// A version's particulars, if the gateway made it.
    pub fn get(&self, name: &str, version: Version) -> Option<VersionMeta> {
        self.versions().get(&key(name, version)).cloned()
    }

    /// Records a version's particulars.
    pub fn put(&self, name: &str, version: Version, meta: VersionMeta) {
        self.versions().insert(key(name, version), meta);
    }

    /// Changes `$LATEST`'s particulars (and marks it changed now).
    pub fn update_latest(&self, name: &str, change: impl FnOnce(&mut VersionMeta)) {
        if let Some(meta) = self.versions().get_mut(&key(name, Version::Latest)) {
            change(meta);
            meta.touch();
        }
    }

    /// Forgets one version (as the caller wrote it: `01` is version 1), or (`None`) the
    /// whole function with its aliases.
    pub fn remove(&self, name: &str, version: Option<&str>) {
        match version {
            Some(version) => {
                let version =
                    Version::parse(version).map_or(version.to_string(), |v| v.to_string());
                self.versions().remove(&key(name, version));
            }
            None => {
                self.versions().retain(|(n, _), _| n != name);
                self.aliases().retain(|(n, _), _| n != name);
            }
        }
    }

    /// An alias's description.
    pub fn alias_description(&self, name: &str, alias: &str) -> String {
        self.aliases()
            .get(&key(name, alias))
            .cloned()
            .unwrap_or_default()
    }

    /// Sets or (`None`) forgets an alias's description.
    pub fn set_alias_description(&self, name: &str, alias: &str, description: Option<String>) {
        match description {
            Some(description) => self.aliases().insert(key(name, alias), description),
            None => self.aliases().remove(&key(name, alias)),
        };
    }

    /// The sizes of all code the gateway holds (`AccountUsage.TotalCodeSize`).
    pub fn total_code_size(&self) -> u64 {
        self.versions().values().map(|m| m.code_size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(code_size: u64) -> VersionMeta {
        VersionMeta {
            runtime: "provided.al2023".into(),
            role: String::new(),
            code_sha256: String::new(),
            code_size,
            last_modified: String::new(),
            description: String::new(),
            revision_id: String::new(),
        }
    }

    #[test]
    fn a_version_is_forgotten_however_its_number_is_written() {
        let catalog = Catalog::default();
        catalog.put("f", Version::Latest, meta(5));
        catalog.put("f", Version::Published(1), meta(7));
        assert_eq!(catalog.total_code_size(), 12);
        catalog.remove("f", Some("01"));
        assert!(catalog.get("f", Version::Published(1)).is_none());
        assert_eq!(catalog.total_code_size(), 5);
        catalog.remove("f", None);
        assert_eq!(catalog.total_code_size(), 0);
    }
}
