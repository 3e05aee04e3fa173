//! Errors of the micro-VM backend.

use std::error::Error;

use lambda_core::EnvironmentError;
use lambda_core::runtime_api::DeliverError;

use crate::program::LoadError;
use crate::vm::{KvmUnavailable, VmError};

/// Why a micro-VM environment could not be made or could not run an invocation. A function
/// that fails (crashes, exits, times out) is not one of these: that is an outcome.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// `/dev/kvm` is missing, not accessible, or not usable.
    #[error("KVM is unavailable")]
    KvmUnavailable(#[source] KvmUnavailable),
    /// The micro-VM could not be made or run: a KVM call, guest memory, the vCPU kick.
    #[error("the micro-VM failed")]
    Vm(#[source] VmError),
    /// The function's code is not a program this backend can run.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The Runtime API would not take the invocation.
    #[error("the Runtime API refused the invocation")]
    Deliver(#[source] DeliverError),
    /// An environment could not be restored from a snapshot.
    #[error("the environment could not be restored from its snapshot")]
    Restore(#[source] SnapshotError),
    /// A reset environment could not start its function again for a reason of the host's
    /// (an Init that fails is an outcome, not this).
    #[error("the environment could not start again")]
    Restart(#[source] EnvironmentError),
}

/// Why a snapshot could not be taken, or an environment not restored from one.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The function's Init failed (or could not run), so there is no state to snapshot.
    #[error("the function's Init failed")]
    Init(#[source] EnvironmentError),
    /// The function did not reach a point where all its threads wait: it kept a thread
    /// running, or ended, before waiting for its event.
    #[error("the function never went quiescent: {0}")]
    NotQuiescent(String),
    /// The environment holds no running function (it was reset by a crash or timeout).
    #[error("the environment has no running function to snapshot (it was reset)")]
    NoMachine,
    /// A snapshot file of an environment whose program replaced itself with `execve`: the
    /// file names the function's code, which is no longer what runs. Such a snapshot can be
    /// kept in memory.
    #[error(
        "the function's program replaced itself with execve ({0}), so a snapshot file, which \
         names the function's code, cannot describe it: keep the snapshot in memory instead"
    )]
    Replaced(String),
    /// The snapshot does not fit the function it is restored for.
    #[error("the snapshot does not fit: {0}")]
    Foreign(String),
    /// The host could not store or map the snapshot's memory.
    #[error("cannot store or map the snapshot's memory")]
    Memory(#[source] std::io::Error),
    /// KVM failed while reading the vCPU's state.
    #[error("the micro-VM failed while taking the snapshot")]
    Vm(#[source] VmError),
    /// A snapshot file (or the function's code file) could not be read or written.
    #[error("cannot read or write {}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a snapshot file (it does not start with the magic bytes).
    #[error("{} is not a snapshot file", .0.display())]
    NotASnapshot(std::path::PathBuf),
    /// The file was written in another format version.
    #[error("the snapshot file is of format version {found}; this build reads version {expected}")]
    Version {
        /// The file's version.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// The file is damaged: its checksum, its encoding or its contents do not hold together.
    #[error("the snapshot file is corrupt: {0}")]
    Corrupt(String),
}

impl From<VmError> for VmmError {
    fn from(error: VmError) -> VmmError {
        match error {
            VmError::Unavailable(why) => VmmError::KvmUnavailable(why),
            other => VmmError::Vm(other),
        }
    }
}

impl From<KvmUnavailable> for VmmError {
    fn from(error: KvmUnavailable) -> VmmError {
        VmmError::KvmUnavailable(error)
    }
}

/// `error` and its sources, `: `-separated, as a person should read it in one line.
pub(crate) fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<VmmError> for EnvironmentError {
    fn from(error: VmmError) -> EnvironmentError {
        match &error {
            VmmError::KvmUnavailable(_) => EnvironmentError::Unavailable(chain(&error)),
            VmmError::Load(_) => EnvironmentError::Code(chain(&error)),
            _ => EnvironmentError::Failed {
                message: chain(&error),
                source: Some(std::sync::Arc::new(error)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_reads_in_one_line() {
        let error =
            VmmError::KvmUnavailable(KvmUnavailable::Open(kvm_ioctls::Error::new(libc::EACCES)));
        let text = chain(&error);
        assert!(
            text.starts_with("KVM is unavailable: cannot open /dev/kvm: is it present"),
            "{text}"
        );
        assert!(text.ends_with("Permission denied (os error 13)"), "{text}");
        assert!(matches!(
            EnvironmentError::from(error),
            EnvironmentError::Unavailable(message) if message == text
        ));
    }
}
