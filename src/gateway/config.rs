//! A gateway's settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::code_store::DEFAULT_MAX_CODE_BYTES;
use super::signature::Credentials;

#[cfg(doc)]
use super::Gateway;

/// Settings of a [`Gateway`].
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The address to listen on; port 0 picks a free port ([`Gateway::local_addr`] tells it).
    pub listen: SocketAddr,
    /// Where uploaded code is kept (one zip per upload). `None`: a private directory under
    /// the system's temporary directory, removed when the gateway stops.
    pub code_dir: Option<PathBuf>,
    /// The base image given to functions created with a `provided.al2023` or `provided.al2`
    /// runtime, so a `bootstrap` can be a dynamically linked program or a script (see
    /// `docs/base-image.md`). `None`: functions run static programs only.
    pub base_image: Option<PathBuf>,
    /// When set, every API request must carry an AWS Signature Version 4 made with these
    /// credentials (any region; service `lambda`), else it is refused with 403
    /// `InvalidSignatureException` or `UnrecognizedClientException`. `None` (the default)
    /// accepts any credentials, as local emulators do. Function URLs then need a signature
    /// too (Lambda's `AuthType` `AWS_IAM`) unless [`GatewayConfig::open_function_urls`].
    pub credentials: Option<Credentials>,
    /// With [`GatewayConfig::credentials`] set, serve Function URLs unsigned (`AuthType`
    /// `NONE`) while the API stays signed. Default `false`. Without credentials every
    /// request is served unsigned and this changes nothing.
    pub open_function_urls: bool,
    /// The most bytes of zips the gateway keeps (`AccountLimit.TotalCodeSize`; an upload
    /// past it is refused with `CodeStorageExceededException`). Default: Lambda's 75 GB.
    pub max_code_bytes: u64,
    /// Most connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (also the idle time of a
    /// kept-alive connection).
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// How long a response's write may make no progress (the client not reading) before
    /// the connection is closed.
    pub write_timeout: Duration,
    /// Most bytes of request bodies held at once, across connections; a request waits
    /// (within its body timeout) until its body fits. It must be at least the largest
    /// body an operation takes (70 MB, for `CreateFunction`).
    pub max_body_bytes_in_flight: usize,
    /// Threads that run requests (an invocation holds one for as long as the function runs).
    pub max_blocking_threads: usize,
}

impl GatewayConfig {
    /// Defaults: 1,024 connections, 30 s for headers, for a body and for a stalled write,
    /// 256 MiB of bodies in flight, 512 request threads.
    pub fn new(listen: SocketAddr) -> Self {
        GatewayConfig {
            listen,
            code_dir: None,
            base_image: None,
            credentials: None,
            open_function_urls: false,
            max_code_bytes: DEFAULT_MAX_CODE_BYTES,
            max_connections: 1024,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_body_bytes_in_flight: 256 << 20,
            max_blocking_threads: 512,
        }
    }
}
