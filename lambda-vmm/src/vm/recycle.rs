//! VMs that ran, made as good as new for the next program instead of torn down.
//!
//! Tearing a VM down costs 0.2-1.7 ms here (most of it closing its KVM descriptor), and making
//! a new one 0.3-0.8 ms; making one that ran new again costs 0.3-0.4 ms in the restore bench
//! (medians, 2026-12-06): its memory replaced by fresh memory, KVM made to drop every shadow
//! page table it had built (`shadow.rs`), the kernel area written again, every vCPU reset
//! ([`MicroVm::renew`], `docs/platform.md`, "Recycling a VM that ran"). VMs given up on the
//! teardown thread ([`super::teardown::dispose`]) or shut down
//! ([`crate::machine::Machine::destroy`]) are renewed and kept here, a few per memory size;
//! machines and the spare pool take them before making new ones. A VM whose run wrecked a
//! vCPU (a triple fault), or that fails to renew, is torn down, as are those beyond
//! [`MAX_KEPT_PER_SIZE`].

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::MicroVm;
use crate::sync::lock;

/// Most renewed VMs kept per memory size; more are torn down. Each idle one holds its kernel
/// area (64 KiB), KVM's own state for it and its vCPUs, and one KVM worker thread.
pub const MAX_KEPT_PER_SIZE: usize = 2;

/// Renewed VMs by memory size in bytes.
fn kept() -> &'static Mutex<BTreeMap<u64, Vec<MicroVm>>> {
    static KEPT: Mutex<BTreeMap<u64, Vec<MicroVm>>> = Mutex::new(BTreeMap::new());
    &KEPT
}

/// Makes `vm` new and keeps it, if fewer than [`MAX_KEPT_PER_SIZE`] of its size are kept;
/// otherwise, or if it cannot be made new, tears it down.
pub fn keep_or_drop(vm: Box<MicroVm>) {
    let size = vm.memory.size();
    let room = || {
        lock(kept())
            .get(&size)
            .is_none_or(|vms| vms.len() < MAX_KEPT_PER_SIZE)
    };
    if !room() {
        return;
    }
    if let Ok(renewed) = vm.renew() {
        let mut kept = lock(kept());
        let vms = kept.entry(size).or_default();
        if vms.len() < MAX_KEPT_PER_SIZE {
            vms.push(renewed);
        }
    }
}

/// A renewed VM of `memory_bytes`, if one is kept: as [`MicroVm::new`] leaves one, with its
/// first vCPU set up for ring 3, and any further vCPUs it had.
pub fn take(memory_bytes: u64) -> Option<Box<MicroVm>> {
    lock(kept())
        .get_mut(&memory_bytes)
        .and_then(Vec::pop)
        .map(Box::new)
}

/// Tears down every VM kept for reuse, on this thread. VMs are kept so a few idle ones are
/// ready for the next programs; this gives their memory, descriptors and KVM's worker threads
/// back (and lets leak checks count a process without them). Call
/// [`wait_for_teardown`](super::teardown::wait_for_teardown) first to include VMs still on
/// their way.
pub fn release_kept_vms() {
    let kept = std::mem::take(&mut *lock(kept()));
    drop(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many renewed VMs of `memory_bytes` are kept.
    fn kept_count(memory_bytes: u64) -> usize {
        lock(kept()).get(&memory_bytes).map_or(0, Vec::len)
    }
    use crate::mm::physical::{KERNEL_BASE, USER_BASE};
    use crate::vm::layout;

    #[test]
    #[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
    fn a_renewed_vm_keeps_nothing_of_the_last_program() {
        // A size no other test uses, so the counts below are this test's own.
        const SIZE: u64 = 136 << 20;
        let mut vm = MicroVm::new(SIZE).expect("a VM (needs /dev/kvm)");
        vm.vcpus[0].start(0x40_0000, 0x7000).expect("start");
        // Traces of a program: its memory, the kernel stack (writable at ring 3 here), the
        // vCPU's SSE control word.
        let physical = vm.memory.physical();
        physical.write(USER_BASE + 0x5000, b"the last program's secret");
        physical.write(layout::KERNEL_STACK_BOTTOM, b"left on the kernel stack");
        let mut fpu = *vm.vcpus[0].save_fpu().expect("xsave");
        fpu.region[6] = 0x1fbf;
        vm.vcpus[0].load_fpu(&fpu).expect("load");

        keep_or_drop(Box::new(vm));
        assert_eq!(kept_count(SIZE), 1);
        let renewed = take(SIZE).expect("kept");
        assert_eq!(kept_count(SIZE), 0);
        let physical = renewed.memory.physical();
        let new = crate::vm::guest_memory(SIZE).expect("memory");
        assert_eq!(
            physical.resident_bytes(USER_BASE, SIZE),
            new.physical().resident_bytes(USER_BASE, SIZE),
            "no page kept but the new address space's tables"
        );
        let mut bytes = [0u8; 32];
        physical.read(USER_BASE + 0x5000, &mut bytes);
        assert_eq!(bytes, [0; 32]);
        physical.read(layout::KERNEL_STACK_BOTTOM, &mut bytes);
        assert_eq!(bytes, [0; 32]);
        // The kernel area is written again as for a new VM.
        for at in [layout::GDT + 8, layout::IDT, KERNEL_BASE + 255 * 8] {
            assert_ne!(physical.read_u64(at), 0);
            assert_eq!(physical.read_u64(at), new.physical().read_u64(at));
        }
        let fpu = renewed.vcpus[0].save_fpu().expect("xsave");
        assert_eq!(fpu.region[6], 0x1f80, "MXCSR at its reset value");
        assert_eq!(renewed.vcpus[0].exits(), 0);
        // More than the limit are torn down.
        for _ in 0..=MAX_KEPT_PER_SIZE {
            keep_or_drop(Box::new(MicroVm::new(SIZE).expect("a VM")));
        }
        assert_eq!(kept_count(SIZE), MAX_KEPT_PER_SIZE);
        drop(renewed);
    }
}
