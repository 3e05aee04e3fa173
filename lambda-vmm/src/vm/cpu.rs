//! Long mode at CPL3 from the first instruction: page tables, GDT, TSS, IDT, the syscall and
//! exception stubs, and the vCPU registers that make them live. No boot code runs: the VMM
//! writes the final state directly (see PLATFORM.md for why ring-0 code is kept to a few
//! instructions).

use kvm_bindings::{Msrs, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, kvm_xcrs};
use kvm_ioctls::VcpuFd;

use super::layout::{self, Layout, selector};
use super::memory::GuestMemory;

const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_USER: u64 = 1 << 2;
const PTE_LARGE: u64 = 1 << 7;

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

/// Writes page tables, descriptor tables and stubs into the kernel area of `memory`.
pub fn write_kernel_structures(memory: &GuestMemory) {
    write_page_tables(memory);
    write_gdt_and_tss(memory);
    write_idt_and_stubs(memory);
}

/// Identity map of all guest memory with 2 MiB pages, a hole for the stack guard, and 4 KiB
/// pages for the kernel area in the first 2 MiB.
///
/// The kernel area's pages carry the user bit because PVM runs the guest's ring 0 with user
/// page permissions (a supervisor-only stub page faults on fetch there). They are read-only
/// instead, so the program cannot rewrite its page tables, descriptors or stubs; only the
/// kernel stack is writable, and it holds nothing but transient frames. The null page is not
/// mapped, so a null dereference faults.
fn write_page_tables(memory: &GuestMemory) {
    let layout: &Layout = memory.layout();
    let large_pages = layout.mapped_end / layout::LARGE_PAGE;
    let directories = large_pages.div_ceil(512);
    let table_flags = PTE_PRESENT | PTE_WRITABLE | PTE_USER;
    memory.write_kernel(layout::PML4, &(layout::PDPT | table_flags).to_le_bytes());
    let mut pdpt = Vec::with_capacity(directories as usize * 8);
    for directory in 0..directories {
        let address = layout::PAGE_DIRECTORIES + directory * layout::PAGE;
        pdpt.extend_from_slice(&(address | table_flags).to_le_bytes());
    }
    memory.write_kernel(layout::PDPT, &pdpt);
    let mut entries = Vec::with_capacity(large_pages as usize * 8);
    for page in 0..large_pages {
        let address = page * layout::LARGE_PAGE;
        let entry = if address == 0 {
            layout::LOW_PAGE_TABLE | table_flags
        } else if (layout.guard_start..layout.stack_bottom).contains(&address) {
            0
        } else {
            address | PTE_PRESENT | PTE_WRITABLE | PTE_USER | PTE_LARGE
        };
        entries.extend_from_slice(&entry.to_le_bytes());
    }
    memory.write_kernel(layout::PAGE_DIRECTORIES, &entries);

    let mut low = Vec::with_capacity(512 * 8);
    for page in 0..512u64 {
        let address = page * layout::PAGE;
        let entry = if address == 0 || address >= layout::KERNEL_STACK_TOP {
            0
        } else if address >= layout::KERNEL_STACK_BOTTOM {
            address | PTE_PRESENT | PTE_WRITABLE | PTE_USER
        } else {
            address | PTE_PRESENT | PTE_USER
        };
        low.extend_from_slice(&entry.to_le_bytes());
    }
    memory.write_kernel(layout::LOW_PAGE_TABLE, &low);
}

/// Size of the TSS proper; the I/O permission bitmap follows it.
const TSS_SIZE: u64 = 104;
/// Bytes of I/O bitmap: one bit per port up to the highest port the stubs use, plus the
/// all-ones byte the CPU requires after it.
const IO_BITMAP_BYTES: u64 = (layout::EXCEPTION_PORT as u64) / 8 + 2;
/// The TSS limit: TSS plus bitmap, minus one.
pub const TSS_LIMIT: u64 = TSS_SIZE + IO_BITMAP_BYTES - 1;

fn write_gdt_and_tss(memory: &GuestMemory) {
    let tss_base = layout::TSS;
    let tss_low = TSS_LIMIT
        | ((tss_base & 0xff_ffff) << 16)
        | (0x89 << 40)
        | (((tss_base >> 24) & 0xff) << 56);
    let gdt: [u64; 7] = [
        0,
        0x00af_9b00_0000_ffff, // kernel code: present, DPL0, 64-bit
        0x00cf_9300_0000_ffff, // kernel data
        0x00cf_f300_0000_ffff, // user data: DPL3
        0x00af_fb00_0000_ffff, // user code: DPL3, 64-bit
        tss_low,
        tss_base >> 32,
    ];
    let bytes: Vec<u8> = gdt.iter().flat_map(|d| d.to_le_bytes()).collect();
    memory.write_kernel(layout::GDT, &bytes);
    let mut tss = vec![0u8; (TSS_LIMIT + 1) as usize];
    tss[4..12].copy_from_slice(&layout::KERNEL_STACK_TOP.to_le_bytes());
    tss[102..104].copy_from_slice(&(TSS_SIZE as u16).to_le_bytes());
    // PVM hosts check the I/O bitmap even for the ring-0 stubs: allow exactly the two
    // ports they write, deny every other port.
    let bitmap = &mut tss[TSS_SIZE as usize..];
    bitmap.fill(0xff);
    for port in [layout::SYSCALL_PORT, layout::EXCEPTION_PORT] {
        bitmap[usize::from(port / 8)] &= !(1 << (port % 8));
    }
    memory.write_kernel(tss_base, &tss);
}

fn write_idt_and_stubs(memory: &GuestMemory) {
    let mut idt = Vec::with_capacity(32 * 16);
    let mut stubs = Vec::with_capacity(32 * layout::EXCEPTION_STUB_SIZE as usize);
    for vector in 0..32u64 {
        let handler = layout::EXCEPTION_STUBS + vector * layout::EXCEPTION_STUB_SIZE;
        let low = (handler & 0xffff)
            | (u64::from(selector::KERNEL_CODE) << 16)
            | (0x8e << 40) // present, DPL0, 64-bit interrupt gate
            | (((handler >> 16) & 0xffff) << 48);
        idt.extend_from_slice(&low.to_le_bytes());
        idt.extend_from_slice(&(handler >> 32).to_le_bytes());
        let mut stub = [0xf4u8; layout::EXCEPTION_STUB_SIZE as usize]; // hlt padding
        stub[..4].copy_from_slice(&[0xb0, vector as u8, 0xe6, layout::EXCEPTION_PORT as u8]);
        stubs.extend_from_slice(&stub);
    }
    memory.write_kernel(layout::IDT, &idt);
    memory.write_kernel(layout::EXCEPTION_STUBS, &stubs);
    memory.write_kernel(layout::SYSCALL_ENTRY, &SYSCALL_STUB);
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

/// Puts the vCPU in 64-bit mode at CPL3 with paging, SSE/AVX, `syscall` and the IDT set up,
/// about to run `entry` with stack pointer `stack`.
pub fn configure_vcpu(vcpu: &VcpuFd, entry: u64, stack: u64) -> Result<(), kvm_ioctls::Error> {
    let mut sregs: kvm_sregs = vcpu.get_sregs()?;
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
    sregs.cr3 = layout::PML4;
    sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE;
    sregs.efer = EFER_SCE | EFER_LME | EFER_LMA;
    sregs.cs = user_code_segment();
    let data = user_data_segment();
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.gdt.base = layout::GDT;
    sregs.gdt.limit = 7 * 8 - 1;
    sregs.idt.base = layout::IDT;
    sregs.idt.limit = 32 * 16 - 1;
    sregs.tr = kvm_segment {
        base: layout::TSS,
        limit: TSS_LIMIT as u32,
        selector: selector::TSS,
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
        (MSR_LSTAR, layout::SYSCALL_ENTRY),
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
    vcpu.set_regs(&regs)
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
