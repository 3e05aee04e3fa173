//! The identifiers several parts of the service share: a function [`Version`], the [`PoolId`]
//! of its environments and the [`WorkerId`] of a host.

use std::fmt;

/// A function version: `$LATEST` or a published number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// The unpublished, mutable version.
    Latest,
    /// An immutable published version, numbered from 1.
    Published(u32),
}

impl Version {
    /// Parses `$LATEST` or a version number.
    pub fn parse(text: &str) -> Option<Version> {
        if text == "$LATEST" {
            return Some(Version::Latest);
        }
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok().filter(|n| *n > 0).map(Version::Published)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("$LATEST"),
            Version::Published(n) => write!(f, "{n}"),
        }
    }
}

/// Identifies the environments of one function version (or one revision of `$LATEST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId(pub u64);

/// Identifies a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u64);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker-{}", self.0)
    }
}
