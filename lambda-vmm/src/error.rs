//! Errors of the micro-VM backend.

use lambda_core::EnvironmentError;

/// Why a micro-VM could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// `/dev/kvm` is missing, not accessible, or not usable.
    #[error("KVM is unavailable: {0} (is /dev/kvm present and readable by this user?)")]
    KvmUnavailable(String),
    /// A KVM call failed.
    #[error("{0} failed: {1}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    /// Guest memory could not be allocated.
    #[error("guest memory: {0}")]
    Memory(String),
    /// The function's code is not a program this backend can run.
    #[error(transparent)]
    Load(#[from] crate::loader::LoadError),
    /// The guest left the CPU in a state it cannot continue from.
    #[error("guest failure: {0}")]
    GuestFailure(String),
    /// A host facility (signals, threads) failed.
    #[error("host failure: {0}")]
    Host(String),
}

impl VmmError {
    /// Wraps a failed KVM call named `what`, for `map_err`.
    pub(crate) fn kvm(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> VmmError {
        move |e| VmmError::Kvm(what, e)
    }
}

impl From<VmmError> for EnvironmentError {
    fn from(error: VmmError) -> EnvironmentError {
        match error {
            VmmError::KvmUnavailable(_) => EnvironmentError::Unavailable(error.to_string()),
            VmmError::Load(_) => EnvironmentError::Code(error.to_string()),
            _ => EnvironmentError::Failed(error.to_string()),
        }
    }
}
