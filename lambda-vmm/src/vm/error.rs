//! Why a micro-VM could not be made or run.

use super::kick::KickError;
use super::kvm::KvmUnavailable;
use crate::mm::physical::AllocError;

/// A failure of the KVM plumbing: the host's KVM, a KVM call, guest memory, or the kick that
/// stops a vCPU at its deadline. What the guest does is never one of these: a guest that
/// faults or wrecks its CPU state ends its own run, as a crash.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// KVM cannot be used on this host.
    #[error(transparent)]
    Unavailable(#[from] KvmUnavailable),
    /// A KVM call failed.
    #[error("{call} failed")]
    Kvm {
        /// The ioctl or step that failed, such as `KVM_CREATE_VM`.
        call: &'static str,
        /// Its error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Guest memory could not be set up.
    #[error(transparent)]
    Memory(#[from] AllocError),
    /// The vDSO built with the crate failed its checks (a build problem).
    #[error("the guest's vDSO is unusable: {0}")]
    Vdso(&'static str),
    /// The vCPU's thread could not be made stoppable from another thread.
    #[error(transparent)]
    Kick(#[from] KickError),
}

impl VmError {
    /// Wraps a failed KVM call named `call`, for `map_err`.
    pub(crate) fn kvm(call: &'static str) -> impl Fn(kvm_ioctls::Error) -> VmError {
        move |source| VmError::Kvm { call, source }
    }
}
