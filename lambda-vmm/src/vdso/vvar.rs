//! The vDSO's data page: what `vdso/vdso.c` reads (`struct vvar`), written by the VMM only
//! while no vCPU runs, under a sequence count all the same so a reader can never mix two
//! versions.

use crate::mm::physical::PhysicalMemory;

/// `flags` bit: the clock parameters are valid.
const CLOCK_VALID: u32 = 1;

/// Offsets in the page, as `struct vvar` lays them out.
mod offset {
    pub const SEQ: u64 = 0;
    pub const FLAGS: u64 = 4;
    pub const TSC_BASE: u64 = 8;
    pub const MULT: u64 = 16;
    pub const MONOTONIC_NS: u64 = 24;
    pub const REALTIME_NS: u64 = 32;
    pub const CPU: u64 = 40;
}

/// The clock a program reads: at guest TSC `tsc_base` the clocks read `monotonic_ns` and
/// `realtime_ns`, and each TSC tick is `mult / 2^32` nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockParams {
    /// The guest's TSC when the base times were taken.
    pub tsc_base: u64,
    /// Nanoseconds per tick, 32.32 fixed point.
    pub mult: u64,
    /// `CLOCK_MONOTONIC` at `tsc_base`, nanoseconds since the VM started.
    pub monotonic_ns: u64,
    /// `CLOCK_REALTIME` at `tsc_base`, nanoseconds since the epoch.
    pub realtime_ns: u64,
}

impl ClockParams {
    /// Nanoseconds elapsed since `tsc_base` at guest TSC `tsc`, as the vDSO computes them.
    pub fn elapsed_ns(&self, tsc: u64) -> u64 {
        let ticks = tsc.saturating_sub(self.tsc_base);
        let ns = u128::from(ticks).saturating_mul(u128::from(self.mult)) >> 32;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// The monotonic clock at guest TSC `tsc`.
    pub fn monotonic_at(&self, tsc: u64) -> u64 {
        self.monotonic_ns.saturating_add(self.elapsed_ns(tsc))
    }

    /// The realtime clock at guest TSC `tsc`.
    pub fn realtime_at(&self, tsc: u64) -> u64 {
        self.realtime_ns.saturating_add(self.elapsed_ns(tsc))
    }
}

/// Writes the page at `frame`: `params`, or `None` to send the program to the syscalls.
/// The sequence count goes odd, then the fields, then even again.
pub fn write(physical: &PhysicalMemory, frame: u64, params: Option<ClockParams>, cpu: u32) {
    let at = |offset: u64| frame.saturating_add(offset);
    let seq = u32::from_le_bytes(read4(physical, at(offset::SEQ)));
    physical.write(at(offset::SEQ), &(seq | 1).to_le_bytes());
    let flags = if params.is_some() { CLOCK_VALID } else { 0 };
    physical.write(at(offset::FLAGS), &flags.to_le_bytes());
    if let Some(params) = params {
        physical.write_u64(at(offset::TSC_BASE), params.tsc_base);
        physical.write_u64(at(offset::MULT), params.mult);
        physical.write_u64(at(offset::MONOTONIC_NS), params.monotonic_ns);
        physical.write_u64(at(offset::REALTIME_NS), params.realtime_ns);
    }
    physical.write(at(offset::CPU), &cpu.to_le_bytes());
    physical.write(at(offset::SEQ), &(seq | 1).wrapping_add(1).to_le_bytes());
}

fn read4(physical: &PhysicalMemory, addr: u64) -> [u8; 4] {
    let mut bytes = [0u8; 4];
    physical.read(addr, &mut bytes);
    bytes
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::mm::physical::KERNEL_BASE;

    #[test]
    fn the_page_reads_as_the_c_struct_does() {
        let physical = PhysicalMemory::new(16 << 20).unwrap();
        let params = ClockParams {
            tsc_base: 1000,
            mult: 3 << 31, // 1.5 ns per tick
            monotonic_ns: 5,
            realtime_ns: 7,
        };
        write(&physical, KERNEL_BASE, Some(params), 0);
        assert_eq!(physical.read_u64(KERNEL_BASE) & 0xffff_ffff, 2);
        assert_eq!(physical.read_u64(KERNEL_BASE) >> 32, u64::from(CLOCK_VALID));
        assert_eq!(physical.read_u64(KERNEL_BASE + 8), 1000);
        assert_eq!(physical.read_u64(KERNEL_BASE + 24), 5);
        assert_eq!(params.monotonic_at(1100), 155);
        assert_eq!(params.realtime_at(900), 7);
        write(&physical, KERNEL_BASE, None, 0);
        assert_eq!(physical.read_u64(KERNEL_BASE), 4);
    }
}
