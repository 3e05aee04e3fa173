//! What KVM requires of an XSAVE region before `KVM_SET_XSAVE` loads it, checked ahead of
//! time: a thread's FPU/SSE/AVX state read from a snapshot file is refused with the file,
//! rather than failing the first environment restored from it. The rules are Linux's for a
//! region in the standard (uncompacted) form, as user space passes it
//! (`validate_user_xstate_header` and the MXCSR check in `copy_uabi_to_xstate`).

use super::vcpu::XSAVE_BYTES;

/// Byte offset of MXCSR in the legacy area.
const MXCSR: usize = 24;
/// Byte offset of the XSAVE header's XSTATE_BV: the components the region holds.
const XSTATE_BV: usize = 512;
/// Byte offset of XCOMP_BV, which is zero in the standard form.
const XCOMP_BV: usize = 520;
/// The header's reserved bytes, which must be zero.
const HEADER_RESERVED: std::ops::Range<usize> = 528..576;
/// Components whose state MXCSR belongs to: x87, SSE and AVX.
const MXCSR_COMPONENTS: u64 = 0b111;

/// What this host's KVM loads in an XSAVE region ([`super::kvm::KvmContext::xsave_limits`]).
#[derive(Debug, Clone, Copy)]
pub struct XsaveLimits {
    /// The state components KVM supports (CPUID leaf 0xD's).
    pub components: u64,
    /// The CPU's MXCSR_MASK ([`crate::host::mxcsr_mask`]): the MXCSR bits it has.
    pub mxcsr_mask: u32,
}

/// Checks the [`XSAVE_BYTES`]-byte XSAVE region `region` against what KVM loads here,
/// `limits`. Says what is wrong ("holds ...", "has ...").
pub fn check(region: &[u8], limits: XsaveLimits) -> Result<(), String> {
    let supported_xcr0 = limits.components;
    if region.len() != XSAVE_BYTES {
        return Err(format!(
            "is {} bytes, not an XSAVE region's {XSAVE_BYTES}",
            region.len()
        ));
    }
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&region[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    let components = word(XSTATE_BV);
    if components & !supported_xcr0 != 0 {
        return Err(format!(
            "holds components {components:#x}, beyond the {supported_xcr0:#x} KVM supports here"
        ));
    }
    if word(XCOMP_BV) != 0 || region[HEADER_RESERVED].iter().any(|&byte| byte != 0) {
        return Err("has an XSAVE header not in the standard form".into());
    }
    let mxcsr = u32::from_le_bytes([
        region[MXCSR],
        region[MXCSR + 1],
        region[MXCSR + 2],
        region[MXCSR + 3],
    ]);
    if components & MXCSR_COMPONENTS != 0 && mxcsr & !limits.mxcsr_mask != 0 {
        return Err(format!(
            "has an MXCSR of {mxcsr:#x}, with bits this CPU lacks (its MXCSR_MASK is {:#x})",
            limits.mxcsr_mask
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forged_state::assert_refused;

    /// x87, SSE and AVX in use, MXCSR at its reset value.
    fn region() -> Vec<u8> {
        let mut region = vec![0u8; XSAVE_BYTES];
        region[MXCSR..MXCSR + 4].copy_from_slice(&0x1f80u32.to_le_bytes());
        region[XSTATE_BV] = 0b111;
        region
    }

    /// A CPU with DAZ and the components of `components`.
    fn limits(components: u64) -> XsaveLimits {
        XsaveLimits {
            components,
            mxcsr_mask: 0xffff,
        }
    }

    #[test]
    fn regions_kvm_would_refuse_are_refused() {
        let good = region();
        check(&good, limits(0b111)).unwrap();
        let refused = |change: &dyn Fn(&mut Vec<u8>), because: &str| {
            assert_refused(
                &good,
                change,
                |region: &Vec<u8>| check(region, limits(0b111)),
                because,
            );
        };
        refused(&|region| region[XSTATE_BV] = 0b1111, "beyond");
        refused(&|region| region[XSTATE_BV + 7] = 0x80, "beyond");
        refused(&|region| region[XCOMP_BV + 7] = 0x80, "standard form");
        refused(
            &|region| region[HEADER_RESERVED.end - 1] = 1,
            "standard form",
        );
        refused(&|region| region[MXCSR + 2] = 1, "MXCSR");
        refused(&|region| region.truncate(4095), "is 4095 bytes");
        // MXCSR does not count when none of its components is in the region.
        let mut untouched = region();
        untouched[XSTATE_BV] = 0;
        untouched[MXCSR + 3] = 0xff;
        check(&untouched, limits(0b111)).unwrap();
        // A component KVM supports here but the VMM never enables is still loadable.
        let mut pkru = region();
        pkru[XSTATE_BV + 1] = 0b10;
        check(&pkru, limits(0x2ff)).unwrap();
    }

    #[test]
    fn an_mxcsr_bit_the_cpu_lacks_is_refused() {
        // DAZ (bit 6) set: loadable where the CPU has it, refused where it does not.
        let mut daz = region();
        daz[MXCSR] |= 0x40;
        check(&daz, limits(0b111)).unwrap();
        let without_daz = XsaveLimits {
            components: 0b111,
            mxcsr_mask: 0xffbf,
        };
        let why = check(&daz, without_daz).unwrap_err();
        assert!(
            why.contains("MXCSR of 0x1fc0, with bits this CPU lacks (its MXCSR_MASK is 0xffbf)"),
            "{why}"
        );
        check(&region(), without_daz).unwrap();
    }
}
