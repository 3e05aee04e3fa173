//! The process-wide KVM handle and what is learned from it once.

use std::sync::OnceLock;

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, kvm_cpuid_entry2};
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

impl KvmContext {
    /// The XSAVE state components KVM supports (CPUID leaf 0xD, subleaf 0: EDX:EAX), which
    /// bounds what a thread's saved FPU state may hold.
    pub fn supported_xcr0(&self) -> u64 {
        cpuid_entry(self.cpuid.as_slice(), 0xd, 0).map_or(0, |entry| {
            u64::from(entry.eax) | (u64::from(entry.edx) << 32)
        })
    }

    /// What KVM loads in a vCPU's XSAVE region here: the state components it supports and
    /// the CPU's MXCSR_MASK.
    pub fn xsave_limits(&self) -> super::xsave::XsaveLimits {
        super::xsave::XsaveLimits {
            components: self.supported_xcr0(),
            mxcsr_mask: crate::host::mxcsr_mask(),
        }
    }
}

/// The entry of CPUID table `entries` for `leaf` and `subleaf`, if it has one.
pub fn cpuid_entry(
    entries: &[kvm_cpuid_entry2],
    leaf: u32,
    subleaf: u32,
) -> Option<&kvm_cpuid_entry2> {
    entries
        .iter()
        .find(|entry| entry.function == leaf && entry.index == subleaf)
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
            let hwcap = cpuid_entry(cpuid.as_slice(), 1, 0).map_or(0, |e| u64::from(e.edx));
            Ok(KvmContext { kvm, cpuid, hwcap })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Most times [`retry_interrupted`] makes a call.
const MAX_INTERRUPTED: usize = 100;

/// Makes a KVM call again while it fails with `EINTR` (at most 100 times): making a VM
/// registers it on the process's memory map, which takes every lock of the map and gives up
/// with `EINTR` when a signal arrives meanwhile (`mm_take_all_locks`), having done nothing.
/// With thousands of VMs in the process that takes milliseconds (`docs/platform.md`, "Many
/// VMs in one process"), so a signal for the thread (a profiler's, a debugger attaching)
/// can land there.
pub fn retry_interrupted<T>(
    mut call: impl FnMut() -> Result<T, kvm_ioctls::Error>,
) -> Result<T, kvm_ioctls::Error> {
    let mut tries = 1;
    loop {
        match call() {
            Err(error) if error.errno() == libc::EINTR && tries < MAX_INTERRUPTED => {
                tries += 1;
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupted_calls_are_made_again_and_other_errors_returned() {
        let interrupted = || kvm_ioctls::Error::new(libc::EINTR);
        let mut calls = 0;
        let made = retry_interrupted(|| {
            calls += 1;
            if calls < 3 {
                Err(interrupted())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(made.unwrap(), 3);

        calls = 0;
        let failed = retry_interrupted(|| -> Result<(), _> {
            calls += 1;
            Err(kvm_ioctls::Error::new(libc::ENOMEM))
        });
        assert_eq!(failed.unwrap_err().errno(), libc::ENOMEM);
        assert_eq!(calls, 1);

        calls = 0;
        let storm = retry_interrupted(|| -> Result<(), _> {
            calls += 1;
            Err(interrupted())
        });
        assert_eq!(storm.unwrap_err().errno(), libc::EINTR);
        assert_eq!(calls, MAX_INTERRUPTED);
    }
}
