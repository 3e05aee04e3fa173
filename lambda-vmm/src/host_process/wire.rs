//! What the engine and a VM host process say to each other, and how it is framed on the pipes
//! between them: each message is a 4-byte little-endian length and that many bytes of
//! `postcard` (the encoding the snapshot files use).
//!
//! The engine writes [`Request`]s to the host's standard input; the host writes [`Reply`]s
//! to the descriptor that was its standard output. Every request carries a call number, and
//! every reply names the call it belongs to: an invocation's reply may be preceded by
//! [`ReplyBody::Chunk`]s of its streamed response, and replies to different calls interleave.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use lambda_core::{
    EnvironmentError, EnvironmentStart, FunctionConfig, FunctionError, Invocation, InvokeResult,
};
use serde::{Deserialize, Serialize};

/// The largest message either side accepts: a 6 MB payload or response with its framing, and
/// room to spare. A longer length is a broken or hostile peer, not a message.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// What the engine asks of a host process once it started it: the options of the host's
/// `MicroVmBackend`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOptions {
    /// Blank VMs kept ready per memory size (`MicroVmBackend::with_spare_vms`).
    pub spare_vms: usize,
    /// Machines kept restored ahead per SnapStart version
    /// (`MicroVmBackend::with_restored_ahead`).
    pub restored_ahead: usize,
    /// Plain restores copy in only the frames a first restored run wrote, not also those it
    /// read (`MicroVmBackend::with_lean_restores`).
    pub lean_restores: bool,
}

/// This protocol's name and version, which a host's [`Hello::Ready`] must carry: `LVH` and
/// version 2 (2 added [`HostOptions::lean_restores`] and snapshot files shared between
/// hosts). A change to any message makes a new version.
pub const PROTOCOL: u32 = 0x4c56_4802;

/// The host's first message, answering the [`HostOptions`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hello {
    /// The host made its backend and takes requests.
    Ready {
        /// [`PROTOCOL`], as the host knows it.
        protocol: u32,
        /// The host's process id.
        pid: u32,
    },
    /// The host cannot run VMs (KVM unusable); it exits after saying why.
    Unavailable(String),
}

/// One request of the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The call's number, unique among the calls in flight.
    pub call: u64,
    /// What is asked.
    pub body: RequestBody,
}

/// What the engine asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestBody {
    /// Make an environment of this function (its Init, or its restore under SnapStart).
    Create {
        /// The function.
        config: FunctionConfig,
        /// Under SnapStart, a snapshot file of the version (written by another host, asked
        /// with [`RequestBody::SaveSnapshot`]) to restore from if this host knows nothing of
        /// the version yet, instead of running an Init of its own. A file that cannot be
        /// used is passed over: the host then snapshots the version itself.
        snapshot_file: Option<PathBuf>,
    },
    /// Write the SnapStart snapshot this host took of the function's version to a file.
    SaveSnapshot {
        /// The function (its version).
        config: FunctionConfig,
        /// Where to write it.
        path: PathBuf,
    },
    /// Run one invocation in an environment the host made.
    Invoke {
        /// The environment, as [`ReplyBody::Created`] named it.
        environment: u64,
        /// The invocation (its response stream is not sent: see `streamed`).
        invocation: Invocation,
        /// Whether the caller streams the response: the host then sends its pieces as
        /// [`ReplyBody::Chunk`]s before the result.
        streamed: bool,
    },
    /// Shut an environment down.
    Shutdown {
        /// The environment.
        environment: u64,
    },
}

/// One reply of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The call this answers.
    pub call: u64,
    /// The answer.
    pub body: ReplyBody,
}

/// What the host answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplyBody {
    /// The environment asked for is ready.
    Created {
        /// Its number in this host.
        environment: u64,
        /// How long its Init took.
        init_duration: Duration,
        /// How it started.
        start: EnvironmentStart,
        /// Whether every invocation starts the function afresh.
        fresh_per_invocation: bool,
    },
    /// The invocation ended.
    Invoked(InvokeResult),
    /// A piece of a streamed response, in order; more replies follow for the same call.
    Chunk(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The environment was shut down.
    ShutDown,
    /// The snapshot was written.
    Saved,
    /// The call failed.
    Failed(WireError),
}

/// An [`EnvironmentError`] as it crosses the pipe: the same variants, with a typed source
/// reduced to its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireError {
    /// [`EnvironmentError::Unavailable`].
    Unavailable(String),
    /// [`EnvironmentError::Code`].
    Code(String),
    /// [`EnvironmentError::Init`].
    Init {
        /// The error.
        error: FunctionError,
        /// How long Init ran.
        init_duration: Duration,
        /// The end of its log.
        #[serde(with = "serde_bytes")]
        log_tail: Vec<u8>,
    },
    /// [`EnvironmentError::Failed`], and a configuration error (which the engine checks
    /// before it sends a configuration).
    Failed(String),
}

impl From<EnvironmentError> for WireError {
    fn from(error: EnvironmentError) -> Self {
        match error {
            EnvironmentError::Unavailable(message) => WireError::Unavailable(message),
            EnvironmentError::Code(message) => WireError::Code(message),
            EnvironmentError::Init {
                error,
                init_duration,
                log_tail,
            } => WireError::Init {
                error,
                init_duration,
                log_tail,
            },
            EnvironmentError::Config(error) => WireError::Failed(error.to_string()),
            EnvironmentError::Failed { message, .. } => WireError::Failed(message),
        }
    }
}

impl From<WireError> for EnvironmentError {
    fn from(error: WireError) -> Self {
        match error {
            WireError::Unavailable(message) => EnvironmentError::Unavailable(message),
            WireError::Code(message) => EnvironmentError::Code(message),
            WireError::Init {
                error,
                init_duration,
                log_tail,
            } => EnvironmentError::Init {
                error,
                init_duration,
                log_tail,
            },
            WireError::Failed(message) => EnvironmentError::failed(message),
        }
    }
}

/// Writes `message` as one frame and flushes it.
pub fn write_message<T: Serialize>(out: &mut impl Write, message: &T) -> io::Result<()> {
    let bytes = postcard::to_stdvec(message).map_err(io::Error::other)?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a message of {} bytes is over the limit of {MAX_MESSAGE_BYTES}",
                bytes.len()
            ),
        ));
    }
    let length = u32::try_from(bytes.len()).map_err(io::Error::other)?;
    out.write_all(&length.to_le_bytes())?;
    out.write_all(&bytes)?;
    out.flush()
}

/// Reads one frame: `Ok(None)` at a clean end of the stream (before a frame's first byte),
/// an error for a truncated frame, a length over [`MAX_MESSAGE_BYTES`] or bytes that do not
/// decode as a `T`.
pub fn read_message<T: for<'de> Deserialize<'de>>(input: &mut impl Read) -> io::Result<Option<T>> {
    let mut length = [0u8; 4];
    let mut filled = 0;
    while filled < length.len() {
        match input.read(&mut length[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    let length = usize::try_from(u32::from_le_bytes(length)).map_err(io::Error::other)?;
    if length > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {length} bytes is over the limit of {MAX_MESSAGE_BYTES}"),
        ));
    }
    let mut bytes = vec![0u8; length];
    input.read_exact(&mut bytes)?;
    postcard::from_bytes(&bytes)
        .map(Some)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_core::{CodeLocation, ErrorType, InvokeOutcome, Report};

    fn round_trip<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug>(
        message: T,
    ) {
        let mut bytes = Vec::new();
        write_message(&mut bytes, &message).unwrap();
        let mut input = &bytes[..];
        assert_eq!(read_message::<T>(&mut input).unwrap(), Some(message));
        assert_eq!(read_message::<T>(&mut input).unwrap(), None);
    }

    /// Byte buffers cross as one run (`serde_bytes`), in the layout postcard gave them as
    /// sequences of `u8`, element by element, before: a varint length, then the bytes. So the
    /// protocol and snapshot files are unchanged.
    #[test]
    fn byte_buffers_keep_their_layout() {
        let bytes = vec![1u8, 2, 200, 0];
        let as_sequence = postcard::to_stdvec(&bytes).unwrap();
        assert_eq!(as_sequence, [4, 1, 2, 200, 0]);
        let chunk = postcard::to_stdvec(&ReplyBody::Chunk(bytes.clone())).unwrap();
        assert_eq!(chunk[1..], as_sequence[..]);
        let response = postcard::to_stdvec(&InvokeOutcome::Response(bytes.clone())).unwrap();
        assert_eq!(response, [&[0u8][..], &as_sequence].concat());
        let mut invocation = Invocation::new(bytes.clone());
        invocation.request_id = "r".into();
        let encoded = postcard::to_stdvec(&invocation).unwrap();
        assert_eq!(encoded[..7], [1, b'r', 4, 1, 2, 200, 0]);
        // A large buffer survives both ways.
        let large: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        round_trip(ReplyBody::Chunk(large));
    }

    #[test]
    fn every_message_survives_the_pipe() {
        let config = FunctionConfig::new("f", CodeLocation::Executable("/bin/true".into()));
        round_trip(Request {
            call: 1,
            body: RequestBody::Create {
                config: config.clone().with_snap_start(true),
                snapshot_file: Some("/tmp/v0.snap".into()),
            },
        });
        round_trip(Request {
            call: 4,
            body: RequestBody::SaveSnapshot {
                config,
                path: "/tmp/v1.snap".into(),
            },
        });
        round_trip(Reply {
            call: 4,
            body: ReplyBody::Saved,
        });
        round_trip(Request {
            call: 2,
            body: RequestBody::Invoke {
                environment: 7,
                invocation: Invocation::new(vec![0u8, 255, 1]),
                streamed: true,
            },
        });
        let report = Report {
            request_id: "r".into(),
            duration: Duration::from_micros(1_234),
            memory_size_mb: 128,
            max_memory_used_mb: 3,
            init_duration: None,
            restore_duration: Some(Duration::from_micros(50)),
        };
        round_trip(Reply {
            call: 2,
            body: ReplyBody::Invoked(InvokeResult {
                outcome: InvokeOutcome::Response(b"ok".to_vec()),
                report,
                log_tail: b"log".to_vec(),
                reset: Some(lambda_core::ResetReason::Timeout),
            }),
        });
        round_trip(Reply {
            call: 3,
            body: ReplyBody::Created {
                environment: 7,
                init_duration: Duration::from_millis(5),
                start: EnvironmentStart::SnapshotRefused("why".into()),
                fresh_per_invocation: false,
            },
        });
        round_trip(Hello::Ready {
            protocol: PROTOCOL,
            pid: 42,
        });
        round_trip(HostOptions {
            spare_vms: 1,
            restored_ahead: 2,
            lean_restores: true,
        });
    }

    #[test]
    fn errors_keep_their_kind_and_message() {
        let init = EnvironmentError::Init {
            error: FunctionError::new(ErrorType::RuntimeExitError, "exited"),
            init_duration: Duration::from_millis(3),
            log_tail: b"tail".to_vec(),
        };
        let back = EnvironmentError::from(WireError::from(init.clone()));
        assert_eq!(back.to_string(), init.to_string());
        assert_eq!(back.to_function_error(), init.to_function_error());
        let failed = EnvironmentError::failed_because("KVM_RUN failed", io::Error::other("EIO"));
        let back = EnvironmentError::from(WireError::from(failed.clone()));
        assert!(matches!(back, EnvironmentError::Failed { .. }));
        assert_eq!(back.to_string(), failed.to_string());
        let code = EnvironmentError::Code("not an ELF".into());
        assert!(matches!(
            EnvironmentError::from(WireError::from(code)),
            EnvironmentError::Code(message) if message == "not an ELF"
        ));
    }

    #[test]
    fn a_broken_stream_is_an_error_not_a_message() {
        let mut bytes = Vec::new();
        write_message(
            &mut bytes,
            &Hello::Ready {
                protocol: PROTOCOL,
                pid: 1,
            },
        )
        .unwrap();
        // Cut inside the length, then inside the body.
        assert!(read_message::<Hello>(&mut &bytes[..2]).is_err());
        assert!(read_message::<Hello>(&mut &bytes[..bytes.len() - 1]).is_err());
        // A length over the limit is refused before anything is allocated for it.
        let huge = u32::MAX.to_le_bytes();
        let error = read_message::<Hello>(&mut &huge[..]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        // Bytes that are not a message.
        let mut junk = 3u32.to_le_bytes().to_vec();
        junk.extend([0xff, 0xff, 0xff]);
        assert!(read_message::<Hello>(&mut &junk[..]).is_err());
    }
}
