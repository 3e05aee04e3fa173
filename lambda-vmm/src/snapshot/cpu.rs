//! The CPU a snapshot's programs saw: its vendor and the CPUID feature flags KVM offered
//! their vCPUs, as a snapshot file records them.
//!
//! Every vCPU gets the CPUID KVM supports on the host (`vm/kvm.rs`). Programs read it during
//! Init and choose their code by it: glibc's string functions, Rust's `std_detect`, Go's
//! runtime, a JIT. An environment restored on a CPU without one of those features would
//! meet an instruction it lacks (`SIGILL`) long after the file was accepted. So a file
//! records the CPU it was taken on, and loading it on a host whose KVM offers another
//! vendor or fewer features is refused up front (`SnapshotError::Foreign`). More features
//! are fine: the programs never chose them.

use kvm_bindings::kvm_cpuid_entry2;

/// A register of a CPUID leaf.
#[derive(Debug, Clone, Copy)]
enum Register {
    Eax,
    Ebx,
    Ecx,
    Edx,
}

impl Register {
    fn name(self) -> &'static str {
        match self {
            Register::Eax => "EAX",
            Register::Ebx => "EBX",
            Register::Ecx => "ECX",
            Register::Edx => "EDX",
        }
    }

    fn of(self, entry: &kvm_cpuid_entry2) -> u32 {
        match self {
            Register::Eax => entry.eax,
            Register::Ebx => entry.ebx,
            Register::Ecx => entry.ecx,
            Register::Edx => entry.edx,
        }
    }
}

/// How many words of feature flags a record holds.
const WORDS: usize = 11;

/// The CPUID words (leaf, subleaf, register) whose bits are feature flags a program may
/// choose its instructions by: the basic and extended feature leaves, the structured
/// extended ones (AVX2, AVX-512, BMI, SHA, ...), and the XSAVE state components and
/// instructions.
const FEATURE_WORDS: [(u32, u32, Register); WORDS] = [
    (0x1, 0, Register::Ecx),
    (0x1, 0, Register::Edx),
    (0x7, 0, Register::Ebx),
    (0x7, 0, Register::Ecx),
    (0x7, 0, Register::Edx),
    (0x7, 1, Register::Eax),
    (0xd, 0, Register::Eax),
    (0xd, 0, Register::Edx),
    (0xd, 1, Register::Eax),
    (0x8000_0001, 0, Register::Ecx),
    (0x8000_0001, 0, Register::Edx),
];

/// The CPU a snapshot was taken on, as its programs could see it. Words are written as
/// their little-endian bytes, so a file holds them at fixed places after the vendor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct CpuRecord {
    /// The vendor string of CPUID leaf 0 (EBX, EDX, ECX): `GenuineIntel`, `AuthenticAMD`.
    vendor: [u8; 12],
    /// The words of [`FEATURE_WORDS`], in its order; a leaf KVM does not offer reads 0.
    features: [[u8; 4]; WORDS],
}

impl CpuRecord {
    /// The record of the CPUID table `entries` (what KVM gives every vCPU).
    pub(crate) fn of(entries: &[kvm_cpuid_entry2]) -> CpuRecord {
        let find = |leaf, subleaf| crate::vm::kvm::cpuid_entry(entries, leaf, subleaf);
        let mut vendor = [0u8; 12];
        if let Some(leaf0) = find(0, 0) {
            vendor[0..4].copy_from_slice(&leaf0.ebx.to_le_bytes());
            vendor[4..8].copy_from_slice(&leaf0.edx.to_le_bytes());
            vendor[8..12].copy_from_slice(&leaf0.ecx.to_le_bytes());
        }
        let features = FEATURE_WORDS.map(|(leaf, subleaf, register)| {
            find(leaf, subleaf)
                .map_or(0, |entry| register.of(entry))
                .to_le_bytes()
        });
        CpuRecord { vendor, features }
    }

    /// Whether programs that ran on the CPU of `self` can go on on `host`'s: the same
    /// vendor, and every feature flag of `self` also offered by `host`. Says what differs.
    pub(crate) fn fits(&self, host: &CpuRecord) -> Result<(), String> {
        if self.vendor != host.vendor {
            return Err(format!(
                "it was taken on a CPU of vendor {}, and this host's is of vendor {}",
                String::from_utf8_lossy(&self.vendor),
                String::from_utf8_lossy(&host.vendor)
            ));
        }
        let missing: Vec<String> = FEATURE_WORDS
            .iter()
            .zip(self.features.iter().zip(&host.features))
            .filter_map(|(&(leaf, subleaf, register), (taken, here))| {
                let lacking = u32::from_le_bytes(*taken) & !u32::from_le_bytes(*here);
                (lacking != 0).then(|| {
                    let bits: Vec<String> = (0..32)
                        .filter(|bit| lacking & (1 << bit) != 0)
                        .map(|bit| bit.to_string())
                        .collect();
                    format!(
                        "leaf {leaf:#x}.{subleaf} {} bit {}",
                        register.name(),
                        bits.join(", ")
                    )
                })
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(format!(
            "it was taken on a CPU with features this host's KVM does not offer (CPUID {}); \
             its programs may have chosen instructions by them during Init: take the snapshot \
             again on this host",
            missing.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32, [eax, ebx, ecx, edx]: [u32; 4]) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax,
            ebx,
            ecx,
            edx,
            ..Default::default()
        }
    }

    /// An Intel CPU with SSE4.2 (leaf 1 ECX bit 20), AVX2 (leaf 7 EBX bit 5) and, when
    /// `avx512`, AVX-512F (leaf 7 EBX bit 16).
    fn cpu(avx512: bool) -> Vec<kvm_cpuid_entry2> {
        let [ebx, edx, ecx] = [*b"Genu", *b"ineI", *b"ntel"].map(u32::from_le_bytes);
        vec![
            entry(0, 0, [0xd, ebx, ecx, edx]),
            entry(1, 0, [0x906ea, 0, 1 << 20, 1 << 25]),
            entry(7, 0, [0, (1 << 5) | (u32::from(avx512) << 16), 0, 0]),
        ]
    }

    #[test]
    fn a_snapshot_fits_a_cpu_with_its_features_or_more() {
        let small = CpuRecord::of(&cpu(false));
        let large = CpuRecord::of(&cpu(true));
        assert_eq!(&small.vendor, b"GenuineIntel");
        small.fits(&small).unwrap();
        small.fits(&large).unwrap();
    }

    #[test]
    fn a_snapshot_is_refused_on_a_cpu_lacking_a_feature_or_of_another_vendor() {
        let small = CpuRecord::of(&cpu(false));
        let large = CpuRecord::of(&cpu(true));
        let why = large.fits(&small).unwrap_err();
        assert!(why.contains("CPUID leaf 0x7.0 EBX bit 16)"), "{why}");

        let mut no_sse42 = cpu(true);
        no_sse42[1].ecx = 0;
        let mut no_avx = no_sse42.clone();
        no_avx[2].ebx = 0;
        let why = large.fits(&CpuRecord::of(&no_avx)).unwrap_err();
        assert!(
            why.contains("CPUID leaf 0x1.0 ECX bit 20; leaf 0x7.0 EBX bit 5, 16)"),
            "{why}"
        );

        let mut amd = cpu(true);
        let [ebx, edx, ecx] = [*b"Auth", *b"enti", *b"cAMD"].map(u32::from_le_bytes);
        amd[0] = entry(0, 0, [0xd, ebx, ecx, edx]);
        let why = small.fits(&CpuRecord::of(&amd)).unwrap_err();
        assert!(
            why.contains("of vendor GenuineIntel, and this host's is of vendor AuthenticAMD"),
            "{why}"
        );
    }
}
