//! Why a gateway could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

#[cfg(doc)]
use super::Gateway;

/// Why a [`Gateway`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address asked for.
        address: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The code directory could not be created.
    #[error("cannot create the code directory {path}: {source}")]
    CodeDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The settings are unusable.
    #[error("invalid gateway setting: {0}")]
    Config(String),
    /// The server's threads could not be started.
    #[error("cannot start the gateway's threads: {0}")]
    Runtime(#[source] std::io::Error),
}
