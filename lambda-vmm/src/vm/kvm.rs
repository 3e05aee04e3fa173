//! The process-wide KVM handle and what is learned from it once.

use std::sync::OnceLock;

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::Kvm;

/// `/dev/kvm` and the CPUID table every vCPU gets, opened and read once per process.
pub struct KvmContext {
    /// The open `/dev/kvm`.
    pub kvm: Kvm,
    /// The host's supported CPUID, passed through to the guest.
    pub cpuid: CpuId,
    /// `AT_HWCAP` for the guest: CPUID leaf 1's EDX.
    pub hwcap: u64,
}

/// Why KVM cannot be used on this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvmUnavailable {
    /// `/dev/kvm` could not be opened.
    #[error(
        "cannot open /dev/kvm: is it present, and readable and writable by this user? (on a \
         cloud VM, nested virtualization must be enabled)"
    )]
    Open(#[source] kvm_ioctls::Error),
    /// The kernel's KVM speaks another API version.
    #[error("unsupported KVM API version {0} (need 12)")]
    ApiVersion(i32),
    /// KVM would not say which CPUID features it supports.
    #[error("cannot read the CPUID features KVM supports")]
    Cpuid(#[source] kvm_ioctls::Error),
}

static CONTEXT: OnceLock<Result<KvmContext, KvmUnavailable>> = OnceLock::new();

/// The shared KVM context, or why KVM cannot be used on this host.
pub fn context() -> Result<&'static KvmContext, KvmUnavailable> {
    CONTEXT
        .get_or_init(|| {
            let kvm = Kvm::new().map_err(KvmUnavailable::Open)?;
            let version = kvm.get_api_version();
            if version != 12 {
                return Err(KvmUnavailable::ApiVersion(version));
            }
            let cpuid = kvm
                .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
                .map_err(KvmUnavailable::Cpuid)?;
            let hwcap = cpuid
                .as_slice()
                .iter()
                .find(|e| e.function == 1 && e.index == 0)
                .map_or(0, |e| u64::from(e.edx));
            Ok(KvmContext { kvm, cpuid, hwcap })
        })
        .as_ref()
        .map_err(Clone::clone)
}
