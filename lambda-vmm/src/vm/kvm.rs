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

static CONTEXT: OnceLock<Result<KvmContext, String>> = OnceLock::new();

/// The shared KVM context, or why KVM cannot be used on this host.
pub fn context() -> Result<&'static KvmContext, String> {
    CONTEXT
        .get_or_init(|| {
            let kvm = Kvm::new().map_err(|e| format!("cannot open /dev/kvm: {e}"))?;
            let version = kvm.get_api_version();
            if version != 12 {
                return Err(format!("unsupported KVM API version {version} (need 12)"));
            }
            let cpuid = kvm
                .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
                .map_err(|e| format!("cannot read the supported CPUID: {e}"))?;
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
