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
/// MXCSR's defined bits; a CPU's MXCSR_MASK (which Linux checks against) holds at most
/// these, so a state with any other bit set is one KVM refuses everywhere.
const MXCSR_DEFINED: u32 = 0xffff;

/// Checks the [`XSAVE_BYTES`]-byte XSAVE region `region` for a vCPU whose KVM supports the
/// state components `supported_xcr0` (CPUID leaf 0xD's, [`super::kvm::KvmContext`]). Says
/// what is wrong ("holds ...", "has ..."). A region that passes can still be refused by a
/// CPU whose MXCSR_MASK lacks a bit (DAZ on the oldest x86-64 CPUs): KVM_SET_XSAVE then
/// fails with `EINVAL`.
pub fn check(region: &[u8], supported_xcr0: u64) -> Result<(), String> {
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
    if components & MXCSR_COMPONENTS != 0 && mxcsr & !MXCSR_DEFINED != 0 {
        return Err(format!(
            "has an MXCSR of {mxcsr:#x}, with reserved bits set"
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

    #[test]
    fn regions_kvm_would_refuse_are_refused() {
        let good = region();
        check(&good, 0b111).unwrap();
        let refused = |change: &dyn Fn(&mut Vec<u8>), because: &str| {
            assert_refused(
                &good,
                change,
                |region: &Vec<u8>| check(region, 0b111),
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
        check(&untouched, 0b111).unwrap();
        // A component KVM supports here but the VMM never enables is still loadable.
        let mut pkru = region();
        pkru[XSTATE_BV + 1] = 0b10;
        check(&pkru, 0x2ff).unwrap();
    }
}
