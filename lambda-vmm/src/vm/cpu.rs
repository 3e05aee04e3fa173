//! Long mode at CPL3 from the first instruction: the kernel area's tables (GDT, TSS, IDT),
//! the syscall and exception stubs, the page-table entries that map them, and the vCPU
//! registers that make them live. No boot code runs: the VMM writes the final state directly
//! (see `docs/platform.md` for why ring-0 code is kept to a few instructions). The program's
//! own page tables are `mm`'s.

use kvm_bindings::{Msrs, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, kvm_xcrs};
use kvm_ioctls::VcpuFd;

use super::layout::{self, selector};
use crate::mm::KernelPages;
use crate::mm::layout::PAGE;
use crate::mm::physical::PhysicalMemory;

const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_USER: u64 = 1 << 2;
const PTE_ACCESSED: u64 = 1 << 5;
const PTE_DIRTY: u64 = 1 << 6;
const PTE_NO_EXECUTE: u64 = 1 << 63;

const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_AM: u64 = 1 << 18;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_OSXSAVE: u64 = 1 << 18;
const EFER_SCE: u64 = 1 << 0;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// No-execute page protection: the program's non-executable pages fault on fetch.
const EFER_NXE: u64 = 1 << 11;

const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_SFMASK: u32 = 0xc000_0084;
/// The FS base MSR: `arch_prctl(ARCH_SET_FS)` writes it.
pub const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;

/// RFLAGS bits cleared on `syscall` entry: TF, IF, DF, AC, NT (as Linux does).
const SYSCALL_RFLAGS_MASK: u64 = 0x4_7700;
/// XCR0 with x87, SSE and AVX state enabled (glibc's AVX string routines need it).
const XCR0_X87_SSE_AVX: u64 = 0b111;

/// `out SYSCALL_PORT, al; iretq`.
const SYSCALL_STUB: [u8; 4] = [0xe6, layout::SYSCALL_PORT as u8, 0x48, 0xcf];

/// Writes the kernel area: descriptor tables, stubs, and the page-table entries that map
/// them at `KERNEL_VIRT`. Returns where the pages `mm` needs lie.
pub fn write_kernel_structures(physical: &PhysicalMemory, vdso_pages: u64) -> KernelPages {
    write_page_tables(physical);
    write_gdt_and_tss(physical);
    write_idt_and_stubs(physical);
    KernelPages {
        root: layout::PML4,
        vvar: layout::VVAR_FRAME,
        vdso: layout::VDSO_FRAMES,
        vdso_pages,
    }
}

/// The tables from the PML4 down to the page table of the last 2 MiB, and its entries for
/// the mapped kernel pages. The program's mappings share the upper tables (its stack and
/// vDSO lie in the same 512 GiB); `mm` adds their entries.
fn write_page_tables(physical: &PhysicalMemory) {
    let table = PTE_PRESENT | PTE_WRITABLE | PTE_USER | PTE_ACCESSED;
    let kernel = crate::mm::layout::KERNEL_VIRT;
    let index = |level: u32| (kernel >> (12 + 9 * (level - 1))) & 0x1ff;
    physical.write_u64(layout::PML4 + index(4) * 8, layout::KERNEL_PDPT | table);
    physical.write_u64(
        layout::KERNEL_PDPT + index(3) * 8,
        layout::KERNEL_PD | table,
    );
    physical.write_u64(layout::KERNEL_PD + index(2) * 8, layout::KERNEL_PT | table);
    for (start, end, writable) in layout::MAPPED {
        let mut page = start;
        while page < end {
            let mut entry = page | PTE_PRESENT | PTE_USER | PTE_ACCESSED | PTE_DIRTY;
            if writable {
                entry |= PTE_WRITABLE;
            }
            if start != layout::SYSCALL_ENTRY {
                entry |= PTE_NO_EXECUTE;
            }
            let slot = (layout::virt(page) >> 12) & 0x1ff;
            physical.write_u64(layout::KERNEL_PT + slot * 8, entry);
            page += PAGE;
        }
    }
}

/// Size of the TSS proper; the I/O permission bitmap follows it.
const TSS_SIZE: u64 = 104;
/// The highest port a stub writes to.
const HIGHEST_PORT: u16 = layout::EXCEPTION_PORTS + 31;
/// Bytes of I/O bitmap: one bit per port up to the highest port the stubs use, plus the
/// all-ones byte the CPU requires after it.
const IO_BITMAP_BYTES: u64 = (HIGHEST_PORT as u64) / 8 + 2;
/// The TSS limit: TSS plus bitmap, minus one.
pub const TSS_LIMIT: u64 = TSS_SIZE + IO_BITMAP_BYTES - 1;

fn write_gdt_and_tss(physical: &PhysicalMemory) {
    let mut gdt: Vec<u64> = vec![
        0,
        0x00af_9b00_0000_ffff, // kernel code: present, DPL0, 64-bit
        0x00cf_9300_0000_ffff, // kernel data
        0x00cf_f300_0000_ffff, // user data: DPL3
        0x00af_fb00_0000_ffff, // user code: DPL3, 64-bit
    ];
    let mut tss = vec![0u8; (TSS_LIMIT + 1) as usize];
    tss[102..104].copy_from_slice(&(TSS_SIZE as u16).to_le_bytes());
    // PVM hosts check the I/O bitmap even for the ring-0 stubs: allow exactly the ports
    // they write, deny every other port.
    let bitmap = &mut tss[TSS_SIZE as usize..];
    bitmap.fill(0xff);
    let ports = std::iter::once(layout::SYSCALL_PORT).chain(layout::EXCEPTION_PORTS..=HIGHEST_PORT);
    for port in ports {
        bitmap[usize::from(port / 8)] &= !(1 << (port % 8));
    }
    // One TSS per vCPU, each with its own kernel stack (RSP0): two vCPUs taking an exception
    // at once push their frames on different stacks.
    for slot in 0..layout::MAX_VCPUS {
        let tss_base = layout::virt(layout::tss(slot));
        gdt.push(
            TSS_LIMIT
                | ((tss_base & 0xff_ffff) << 16)
                | (0x89 << 40)
                | (((tss_base >> 24) & 0xff) << 56),
        );
        gdt.push(tss_base >> 32);
        let rsp0 = layout::virt(layout::kernel_stack(slot).1);
        tss[4..12].copy_from_slice(&rsp0.to_le_bytes());
        physical.write(layout::tss(slot), &tss);
    }
    debug_assert_eq!(gdt.len() as u64, layout::GDT_ENTRIES);
    let bytes: Vec<u8> = gdt.iter().flat_map(|d| d.to_le_bytes()).collect();
    physical.write(layout::GDT, &bytes);
}

fn write_idt_and_stubs(physical: &PhysicalMemory) {
    let mut idt = Vec::with_capacity(32 * 16);
    let mut stubs = Vec::with_capacity(32 * layout::EXCEPTION_STUB_SIZE as usize);
    for vector in 0..32u8 {
        let handler =
            layout::virt(layout::EXCEPTION_STUBS) + u64::from(vector) * layout::EXCEPTION_STUB_SIZE;
        let low = (handler & 0xffff)
            | (u64::from(selector::KERNEL_CODE) << 16)
            | (0x8e << 40) // present, DPL0, 64-bit interrupt gate
            | (((handler >> 16) & 0xffff) << 48);
        idt.extend_from_slice(&low.to_le_bytes());
        idt.extend_from_slice(&(handler >> 32).to_le_bytes());
        let mut stub = vec![0xe6, layout::EXCEPTION_PORTS as u8 + vector]; // out port, al
        if super::exception::has_error_code(vector) {
            stub.extend_from_slice(&[0x48, 0x83, 0xc4, 0x08]); // add rsp, 8
        }
        stub.extend_from_slice(&[0x48, 0xcf]); // iretq
        stub.resize(layout::EXCEPTION_STUB_SIZE as usize, 0xf4); // hlt padding
        stubs.extend_from_slice(&stub);
    }
    physical.write(layout::IDT, &idt);
    physical.write(layout::EXCEPTION_STUBS, &stubs);
    physical.write(layout::SYSCALL_ENTRY, &SYSCALL_STUB);
    physical.write(layout::TOUCH_READ_STUB, &touch_stub(false));
    physical.write(layout::TOUCH_WRITE_STUB, &touch_stub(true));
}

/// Bytes of a touch stub's code: where `rip` is after its `out`.
pub fn touch_stub_len(write: bool) -> u64 {
    touch_stub(write).len() as u64
}

/// The machine code of a touch stub ([`layout::TOUCH_READ_STUB`]): for each general
/// register but `rsp` (encoding 4), `cmp byte [reg], 0` (reading) or `lock or byte [reg], 0`
/// (writing, the byte unchanged), then `out SYSCALL_PORT, al`.
fn touch_stub(write: bool) -> Vec<u8> {
    let mut code = Vec::with_capacity(0x100);
    for reg in (0u8..16).filter(|&reg| reg != 4) {
        if write {
            code.push(0xf0); // lock
        }
        if reg >= 8 {
            code.push(0x41); // REX.B: r8-r15
        }
        code.push(0x80); // group 1, byte operand, 8-bit immediate
        let opcode_field = if write { 1 } else { 7 }; // /1 or, /7 cmp
        let low = reg & 7;
        match low {
            // rbp/r13 with no displacement would mean RIP-relative: use disp8 0.
            5 => code.extend_from_slice(&[0x40 | (opcode_field << 3) | low, 0]),
            // r12 needs a SIB byte (base r12, no index).
            4 => code.extend_from_slice(&[(opcode_field << 3) | 4, 0x24]),
            _ => code.push((opcode_field << 3) | low),
        }
        code.push(0); // the immediate
    }
    code.extend_from_slice(&[0xe6, layout::SYSCALL_PORT as u8]);
    code
}

fn segment(selector: u16, code: bool, dpl: u8) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 11 } else { 3 },
        present: 1,
        dpl,
        db: u8::from(!code),
        s: 1,
        l: u8::from(code),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// The user code segment that returning to the program restores.
pub fn user_code_segment() -> kvm_segment {
    segment(selector::USER_CODE, true, 3)
}

/// The user data/stack segment.
pub fn user_data_segment() -> kvm_segment {
    segment(selector::USER_DATA, false, 3)
}

/// Puts vCPU `slot` in 64-bit mode at CPL3 with paging, SSE/AVX, `syscall`, the IDT and its
/// own TSS set up, about to run `entry` with stack pointer `stack`; returns the special
/// registers it set (a return to the program at ring 3 loads them again).
pub fn configure_vcpu(
    vcpu: &VcpuFd,
    slot: usize,
    entry: u64,
    stack: u64,
) -> Result<kvm_sregs, kvm_ioctls::Error> {
    let mut sregs: kvm_sregs = vcpu.get_sregs()?;
    // A vCPU made new for another program (`vm/recycle.rs`) keeps nothing of the last one's
    // faults either.
    sregs.cr2 = 0;
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
    sregs.cr3 = layout::PML4;
    sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE;
    sregs.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
    sregs.cs = user_code_segment();
    let data = user_data_segment();
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.gdt.base = layout::virt(layout::GDT);
    sregs.gdt.limit = (layout::GDT_ENTRIES * 8 - 1) as u16;
    sregs.idt.base = layout::virt(layout::IDT);
    sregs.idt.limit = 32 * 16 - 1;
    sregs.tr = kvm_segment {
        base: layout::virt(layout::tss(slot)),
        limit: TSS_LIMIT as u32,
        selector: selector::tss(slot),
        type_: 11,
        present: 1,
        dpl: 0,
        db: 0,
        s: 0,
        l: 0,
        g: 0,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    vcpu.set_sregs(&sregs)?;

    let mut xcrs = kvm_xcrs {
        nr_xcrs: 1,
        ..Default::default()
    };
    xcrs.xcrs[0].xcr = 0;
    xcrs.xcrs[0].value = XCR0_X87_SSE_AVX;
    vcpu.set_xcrs(&xcrs)?;

    let star = (u64::from(selector::KERNEL_DATA) << 48) | (u64::from(selector::KERNEL_CODE) << 32);
    let entries = [
        (MSR_STAR, star),
        (MSR_LSTAR, layout::virt(layout::SYSCALL_ENTRY)),
        (MSR_SFMASK, SYSCALL_RFLAGS_MASK),
        (MSR_FS_BASE, 0),
        (MSR_GS_BASE, 0),
    ];
    set_msrs(vcpu, &entries)?;

    let regs = kvm_regs {
        rip: entry,
        rsp: stack,
        rflags: 0x2,
        ..Default::default()
    };
    vcpu.set_regs(&regs)?;
    Ok(sregs)
}

/// Writes model-specific registers, failing unless KVM accepted all of them.
pub fn set_msrs(vcpu: &VcpuFd, entries: &[(u32, u64)]) -> Result<(), kvm_ioctls::Error> {
    let entries: Vec<kvm_msr_entry> = entries
        .iter()
        .map(|&(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    let msrs = Msrs::from_entries(&entries).map_err(|_| kvm_ioctls::Error::new(libc::E2BIG))?;
    let written = vcpu.set_msrs(&msrs)?;
    if written != entries.len() {
        return Err(kvm_ioctls::Error::new(libc::EINVAL));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_touch_stubs_touch_through_every_register_but_rsp_then_exit() {
        let read = touch_stub(false);
        let write = touch_stub(true);
        // cmp byte [rax], 0 ... cmp byte [r15], 0; lock or byte [rax], 0 ... (checked with
        // objdump): rbp and r13 take a zero displacement, r12 a SIB byte.
        assert_eq!(read[..3], [0x80, 0x38, 0x00]);
        assert_eq!(read[0x0c..0x10], [0x80, 0x7d, 0x00, 0x00]);
        assert_eq!(read[0x26..0x2b], [0x41, 0x80, 0x3c, 0x24, 0x00]);
        assert_eq!(write[..4], [0xf0, 0x80, 0x08, 0x00]);
        assert_eq!(write[0x31..0x37], [0xf0, 0x41, 0x80, 0x0c, 0x24, 0x00]);
        for stub in [&read, &write] {
            assert_eq!(stub[stub.len() - 2..], [0xe6, layout::SYSCALL_PORT as u8]);
            assert_eq!(stub.iter().filter(|&&byte| byte == 0x80).count(), 16);
        }
        assert_eq!((read.len(), write.len()), (58, 73));
        assert_eq!(touch_stub_len(true), 73);
        // Each fits between its start and the next thing on the page.
        assert!(layout::TOUCH_READ_STUB + read.len() as u64 <= layout::TOUCH_WRITE_STUB);
        assert!(layout::TOUCH_WRITE_STUB + write.len() as u64 <= layout::SYSCALL_ENTRY + 0x1000);
    }
}
