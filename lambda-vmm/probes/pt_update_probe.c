/* Probe: what happens when the VMM edits the guest's page tables (in guest memory, through its
 * own mapping) while the vCPU is stopped between KVM_RUN calls, and what guest page faults and
 * first touches cost. The guest runs at CPL3 with 4-level paging; the area under test
 * (VA 0x40000000+) uses 4 KiB PTEs in page-table pages the guest cannot reach (GPA 0x200000+,
 * outside its own mappings). The guest is a tiny command loop: it exits with `out 0x90`, then runs
 * the command the VMM left in a mailbox (read/write a qword, touch N pages, INVLPG or CR3 reload
 * at ring 0 through a `ud2` -> #UD handler that ends in `iretq`; `int n` at CPL3 raises #UD on
 * PVM, so it cannot be used to enter ring 0). #PF goes through an IDT to a CPL0 stub that exits
 * with `out 0xae` (the VMM then redirects or emulates IRET) or with `out 0xaf; add rsp,8; iretq`
 * (the guest returns and retries by itself). Exits are counted with KVM_GET_STATS_FD.
 *
 *   a  visibility matrix: 8 kinds of page-table change x 12 things the VMM (or guest) does
 *      afterwards, 5 trials each on distinct pages; prints how many trials saw the change.
 *   b  cost of each mechanism and what it costs the guest afterwards (re-reading a 512-page
 *      working set that was already mapped).
 *   c  end-to-end cost of a guest #PF resolved by the VMM (2048 distinct pages per run), variants.
 *   d  first-touch cost per 4 KiB page: pre-populated 4K PTEs (with/without Accessed+Dirty preset)
 *      vs 2 MiB guest pages; host memory pre-faulted or fresh; host THP or not.
 *   e  recycling a VM that ran for another guest: the memory slot's whole host range replaced with
 *      MAP_FIXED (anonymous, or a memfd MAP_PRIVATE; or anonymous with the memslot deleted and
 *      added again; or anonymous with the memslot kept and another 4 KiB slot, over a read-only
 *      page, added and deleted), the structures written again at the same guest-physical addresses, the
 *      registers set again; does the new guest see only its own page tables (5 kinds of change,
 *      5 trials each), and what it costs against a teardown and a new VM.
 *
 * Build: gcc -O2 pt_update_probe.c -o pt_update_probe
 * Run:   ./pt_update_probe a | b | c | d | e   (no argument = a-d; ~25 s in total; e ~3 s)
 * Seen here (PVM host, 2026-12-04 10:58-10:59 UTC, 3 runs; full output in output/pt_update_run*.txt):
 *   a: identical in every run. After the guest has used a page, a VMM edit that removes or reduces
 *      access (present->not-present, RW->RO, repoint, PD entry cleared) is NOT seen: 0/5 after
 *      nothing, KVM_SET_SREGS (same values, other gdt limit, CR4.PGE toggled, other CR3 value),
 *      200 idle exits + 20 ms, guest INVLPG, guest MOV CR3, or mprotect of the page-table page.
 *      It IS seen 5/5 after madvise(MADV_DONTNEED) or mprotect(RO)+mprotect(RW) on the host mapping
 *      of the OLD target page, or after deleting and re-adding the memslot. not-present->present
 *      and RO->RW are always seen. A never-touched neighbour is stale too if its PTE had A=1
 *      (KVM prefetches 8 PTEs per shadow fault).
 *   b: GET+SET_SREGS 10.7-11.1 us, MADV_DONTNEED 1.7-1.8 us, mprotect pair 6.3-6.5 us, memslot
 *      delete+re-add 0.11-2.8 ms + 1.2-1.4 ms to re-touch 512 pages; one exit round trip 38-39 us.
 *   c: 61-81 us per fault (4 exits) when the guest stub ends in iretq; 90-103 us when the VMM
 *      emulates IRET; 16 pages per fault with A+D preset: 5.7-6.0 us per page.
 *   d: 4K PTEs pre-populated: 1 exit per page, 16-19.6 us per page; with A+D preset: 1/8 exit,
 *      2.4-4.8 us; 2 MiB guest pages on host THP: 1/512 exit, 0.05-0.21 us; fresh host memory
 *      defeats KVM's prefetch (1 exit per page again).
 *   e (2026-12-05 17:34 UTC, 3 runs, output/pt_update_e_run*.txt): remapped only, the recycled guest
 *      saw its own tables 5/5 in four cases but 0/5 when a page-table frame now served another
 *      2 MiB (the old 2 MiB, unmapped, still read the new page: links between shadow tables
 *      survive remapping); remapped with the memslot deleted and added again, 5/5 in all five.
 *      Recycling cost 38-48 us remapped only, 128-133 us with the memslot re-added; tearing down
 *      a VM that ran 222-239 us here (up to 1749 us under load), making a new one 326-349 us.
 *   e (2026-12-06 09:09 UTC, 3 runs, output/pt_update_e_flush_run*.txt): with the memory's slot
 *      kept and a 4 KiB slot elsewhere added and deleted, 5/5 in all five cases (deleting any slot
 *      drops every shadow page, the memory's or not); 136-211 us against 180-251 us re-adding the
 *      128 MiB slot and 78-93 us remapped only (a loaded host: tearing down 489-704 us).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ---------------- guest code (copied into guest memory; never run by the host) -------------- */
extern const uint8_t g_user_start[], g_user_end[], g_loop_top[], g_fault_return[];
extern const uint8_t g_k_start[], g_k_end[], k_pf_vmm[], k_pf_iret[], k_ud[], k_other[];
__asm__(
    ".pushsection .rodata\n"
    ".code64\n"
    ".globl g_user_start, g_user_end, g_loop_top, g_fault_return\n"
    "g_user_start:\n"
    "g_loop_top:\n"
    "  outb %al, $0x90\n"
    "  movq 0x5000, %rax\n"   /* op */
    "  movq 0x5008, %rsi\n"   /* addr */
    "  movq 0x5010, %rcx\n"   /* count */
    "  movq 0x5018, %rdx\n"   /* value */
    "  cmpq $1, %rax\n  je 1f\n"
    "  cmpq $2, %rax\n  je 2f\n"
    "  cmpq $3, %rax\n  je 3f\n"
    "  cmpq $4, %rax\n  je 4f\n"
    "  cmpq $5, %rax\n  je 5f\n"
    "  cmpq $6, %rax\n  je 6f\n"
    "  jmp g_loop_top\n"
    "1: movq (%rsi), %rax\n  movq %rax, 0x5020\n  jmp g_loop_top\n"          /* read qword */
    "2: movq %rdx, (%rsi)\n  jmp g_loop_top\n"                               /* write qword */
    "3: xorl %eax, %eax\n"                                                    /* read-touch */
    "31: addq (%rsi), %rax\n  addq $4096, %rsi\n  decq %rcx\n  jnz 31b\n"
    "  movq %rax, 0x5020\n  jmp g_loop_top\n"
    "4: movb %dl, (%rsi)\n  addq $4096, %rsi\n  decq %rcx\n  jnz 4b\n  jmp g_loop_top\n" /* write-touch */
    "5: xorl %edx, %edx\n  ud2\n  jmp g_loop_top\n"      /* #UD handler (ring 0): invlpg (%rsi) */
    "6: movl $1, %edx\n  ud2\n  jmp g_loop_top\n"        /* #UD handler (ring 0): reload CR3 */
    "g_fault_return:\n  movq $1, 0x5028\n  jmp g_loop_top\n"
    "g_user_end:\n"
    ".globl g_k_start, g_k_end, k_pf_vmm, k_pf_iret, k_ud, k_other\n"
    "g_k_start:\n"
    "k_pf_vmm:  outb %al, $0xae\n  hlt\n"
    "k_pf_iret: outb %al, $0xaf\n  addq $8, %rsp\n  iretq\n"
    "k_ud:      testq %rdx, %rdx\n  jnz 1f\n  invlpg (%rsi)\n  jmp 2f\n"
    "1:         movq %cr3, %rax\n  movq %rax, %cr3\n"
    "2:         addq $2, (%rsp)\n  iretq\n"
    "k_other:   outb %al, $0xa0\n  hlt\n"
    "g_k_end:\n"
    ".popsection\n");

/* ---------------- layout ---------------- */
#define MEMSZ      (128ULL << 20)
#define MBOX       0x5000ULL
#define USER_CODE  0x10000ULL
#define KSTUB      0x20000ULL
#define RSP0       0x9000ULL
#define PML4       0x200000ULL
#define PML4_ALIAS 0x201000ULL
#define PDPT       0x202000ULL
#define PD0        0x203000ULL
#define PD1        0x204000ULL
#define PT_BASE    0x210000ULL   /* NPT page tables for VA 0x40000000.. */
#define NPT        32            /* 32*512 = 16384 4K pages = 64 MiB of VA */
#define VA_BASE    0x40000000ULL
#define DATA_BASE  0x1000000ULL  /* phys of 4K page idx = DATA_BASE + idx*4K, idx < 16384 */
#define BIG_VA     0x60000000ULL /* 2 MiB pages, PD1 index 256.. */
#define BIG_PHYS   0x6000000ULL  /* 16 MiB of 2 MiB-page backing */

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
static double median(double *v, int n) { qsort(v, n, sizeof *v, cmpd); return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2; }

static int kvm = -1, runsz;
struct vm {
  int fd, vcpu, stats; struct kvm_run *run; uint8_t *mem, *map; size_t mapsz; int pf_mode;
  uint8_t *flush;   /* part e: a host page for a 4 KiB slot added and deleted only to drop shadow pages */
};
/* part e: give each VM a host page for a 4 KiB memory slot above its memory (slot 1, at FLUSH_GPA). */
static int with_flush_slot = 0;
#define FLUSH_GPA MEMSZ
static void flush_slot(struct vm *v, uint64_t size) {
  struct kvm_userspace_memory_region reg = {.slot = 1, .guest_phys_addr = FLUSH_GPA, .memory_size = size, .userspace_addr = (uintptr_t)v->flush};
  if (ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &reg) < 0) { perror("flush slot"); exit(1); }
}
/* a named counter from the vCPU's binary stats (KVM_GET_STATS_FD): exits, pf_fixed, pf_guest, ... */
static uint64_t stat(struct vm *v, const char *name) {
  struct kvm_stats_header h; pread(v->stats, &h, sizeof h, 0);
  int dsz = sizeof(struct kvm_stats_desc) + h.name_size; char *d = malloc(dsz * h.num_desc);
  pread(v->stats, d, dsz * h.num_desc, h.desc_offset); uint64_t val = ~0ULL;
  for (unsigned i = 0; i < h.num_desc; i++) {
    struct kvm_stats_desc *sd = (void *)(d + i * dsz);
    if (!strcmp(sd->name, name)) { pread(v->stats, &val, 8, h.data_offset + sd->offset); break; }
  }
  free(d); return val;
}
static struct kvm_segment ucs = {.base = 0, .limit = 0xffffffff, .selector = 0x23, .present = 1, .type = 11, .dpl = 3, .db = 0, .s = 1, .l = 1, .g = 1};
static struct kvm_segment uds = {.base = 0, .limit = 0xffffffff, .selector = 0x1b, .present = 1, .type = 3, .dpl = 3, .db = 1, .s = 1, .l = 0, .g = 1};

static uint64_t *pte(struct vm *v, int idx) { return (uint64_t *)(v->mem + PT_BASE + (uint64_t)idx * 8); }
static uint64_t data_phys(int idx) { return DATA_BASE + (uint64_t)idx * 4096; }
static uint64_t va(int idx) { return VA_BASE + (uint64_t)idx * 4096; }
static uint64_t *mbox(struct vm *v) { return (uint64_t *)(v->mem + MBOX); }

static void set_idt_gate(struct vm *v, int vec, uint64_t h, int dpl) {
  uint64_t *idt = (uint64_t *)(v->mem + 0x700);
  idt[2 * vec] = (h & 0xffff) | (0x08ULL << 16) | ((uint64_t)(0x8e | (dpl << 5)) << 40) | (((h >> 16) & 0xffff) << 48);
  idt[2 * vec + 1] = h >> 32;
}
static uint64_t kaddr(const uint8_t *sym) { return KSTUB + (sym - g_k_start); }
static void set_pf_mode(struct vm *v, int iret) { v->pf_mode = iret; set_idt_gate(v, 14, kaddr(iret ? k_pf_iret : k_pf_vmm), 0); }

static void vm_setup(struct vm *v);
/* thp: 0 = MADV_NOHUGEPAGE, 1 = MADV_HUGEPAGE. prefault_data: memset the data areas from the host. */
static struct vm *vm_create(int thp, int prefault_data) {
  struct vm *v = calloc(1, sizeof *v);
  v->fd = ioctl(kvm, KVM_CREATE_VM, 0);
  if (v->fd < 0) { perror("KVM_CREATE_VM"); exit(1); }
  v->mapsz = MEMSZ + (2 << 20);
  v->map = mmap(0, v->mapsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  v->mem = (uint8_t *)(((uintptr_t)v->map + (2 << 20) - 1) & ~(uintptr_t)((2 << 20) - 1));
  madvise(v->mem, MEMSZ, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  struct kvm_userspace_memory_region reg = {.slot = 0, .guest_phys_addr = 0, .memory_size = MEMSZ, .userspace_addr = (uintptr_t)v->mem};
  if (ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &reg) < 0) { perror("memslot"); exit(1); }
  if (with_flush_slot) {
    v->flush = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  }
  v->vcpu = ioctl(v->fd, KVM_CREATE_VCPU, 0);
  if (v->vcpu < 0) { perror("vcpu"); exit(1); }
  v->run = mmap(0, runsz, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
  v->stats = ioctl(v->vcpu, KVM_GET_STATS_FD, 0);
  struct { struct kvm_cpuid2 c; struct kvm_cpuid_entry2 e[100]; } cp = {.c.nent = 100};
  ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cp); ioctl(v->vcpu, KVM_SET_CPUID2, &cp);
  vm_setup(v);
  if (prefault_data) { memset(v->mem + DATA_BASE, 0, 4096 * 4096ULL); memset(v->mem + BIG_PHYS, 0, 16 << 20); }
  return v;
}
/* Writes the guest's page tables, descriptor tables, code and stubs into its memory, and sets
 * the vCPU up to start at the command loop at CPL3. */
static void vm_setup(struct vm *v) {
  uint8_t *m = v->mem;
  uint64_t *pml4 = (uint64_t *)(m + PML4), *pml4a = (uint64_t *)(m + PML4_ALIAS), *pdpt = (uint64_t *)(m + PDPT);
  uint64_t *pd0 = (uint64_t *)(m + PD0), *pd1 = (uint64_t *)(m + PD1);
  pml4[0] = PDPT | 7; pml4a[0] = PDPT | 7;
  pdpt[0] = PD0 | 7; pdpt[1] = PD1 | 7;
  pd0[0] = 0 | 0x87;                                   /* 0-2 MiB: code, stubs, GDT/IDT/TSS, stacks, mailbox */
  for (int j = 0; j < NPT; j++) pd1[j] = (PT_BASE + j * 0x1000ULL) | 7;
  for (int j = 0; j < 8; j++) pd1[256 + j] = (BIG_PHYS + j * 0x200000ULL) | 0x87;
  uint64_t *gdt = (uint64_t *)(m + 0x500);
  gdt[0] = 0; gdt[1] = 0x00af9b000000ffffULL; gdt[2] = 0x00cf93000000ffffULL; gdt[3] = 0x00cff3000000ffffULL; gdt[4] = 0x00affb000000ffffULL;
  uint64_t tss = 0x600; memset(m + tss, 0, 104); uint64_t rsp0 = RSP0; memcpy(m + tss + 4, &rsp0, 8);
  gdt[5] = 103 | ((tss & 0xffffff) << 16) | (0x89ULL << 40) | (((tss >> 24) & 0xff) << 56); gdt[6] = tss >> 32;
  memcpy(m + USER_CODE, g_user_start, g_user_end - g_user_start);
  memcpy(m + KSTUB, g_k_start, g_k_end - g_k_start);
  for (int vec = 0; vec < 0x83; vec++) {   /* per-vector stub: mov al,vec; out 0xa0,al; hlt */
    uint8_t *h = m + KSTUB + 0x400 + vec * 8; h[0] = 0xb0; h[1] = vec; h[2] = 0xe6; h[3] = 0xa0; h[4] = 0xf4;
    set_idt_gate(v, vec, KSTUB + 0x400 + vec * 8, 0); }
  set_pf_mode(v, 0);
  set_idt_gate(v, 6, kaddr(k_ud), 0);
  struct kvm_sregs s; ioctl(v->vcpu, KVM_GET_SREGS, &s);
  s.cr3 = PML4; s.cr4 = (1 << 5) | (1 << 9) | (1 << 10); s.cr0 = 0x80050033; s.efer = 0x501;
  s.cs = ucs; s.ds = s.es = s.fs = s.gs = s.ss = uds; s.gdt.base = 0x500; s.gdt.limit = 55; s.idt.base = 0x700; s.idt.limit = 0x83 * 16 - 1;
  struct kvm_segment tr = {.base = tss, .limit = 103, .selector = 0x28, .present = 1, .type = 11, .dpl = 0, .s = 0}; s.tr = tr;
  if (ioctl(v->vcpu, KVM_SET_SREGS, &s) < 0) { perror("sregs"); exit(1); }
  struct kvm_regs g = {0}; g.rip = USER_CODE; g.rflags = 2; g.rsp = 0x8000; ioctl(v->vcpu, KVM_SET_REGS, &g);
}
static void vm_destroy(struct vm *v) {
  close(v->stats); munmap(v->run, runsz); close(v->vcpu); close(v->fd); munmap(v->map, v->mapsz);
  if (v->flush) munmap(v->flush, 4096);
  free(v);
}

/* Run until the guest reaches its command loop (port 0x90), or a #PF stub port.
 * Returns the port number. Other exits abort. */
static int run_once(struct vm *v) {
  for (;;) {
    if (ioctl(v->vcpu, KVM_RUN, 0) < 0) { if (errno == EINTR) continue; perror("KVM_RUN"); exit(1); }
    struct kvm_run *r = v->run;
    if (r->exit_reason == KVM_EXIT_IO) return r->io.port;
    struct kvm_regs g; ioctl(v->vcpu, KVM_GET_REGS, &g);
    fprintf(stderr, "unexpected exit %d rip=%llx\n", r->exit_reason, g.rip); exit(1);
  }
}
/* Emulate IRET after a #PF in k_pf_vmm, redirecting to `newrip` (0: retry the faulting insn). */
static void vmm_iret(struct vm *v, uint64_t newrip) {
  struct kvm_regs g; ioctl(v->vcpu, KVM_GET_REGS, &g);
  uint64_t *f = (uint64_t *)(v->mem + g.rsp);           /* err, rip, cs, rflags, rsp, ss */
  g.rip = newrip ? newrip : f[1]; g.rflags = f[3]; g.rsp = f[4];
  ioctl(v->vcpu, KVM_SET_REGS, &g);
  struct kvm_sregs s; ioctl(v->vcpu, KVM_GET_SREGS, &s); s.cs = ucs; s.ss = uds; ioctl(v->vcpu, KVM_SET_SREGS, &s);
}
/* Issue a command; returns 1 if the command faulted (#PF; the VMM sends the guest back to its
 * loop with the fault flagged), 0 otherwise. *cr2 gets the fault address. */
static int cmd(struct vm *v, uint64_t op, uint64_t addr, uint64_t count, uint64_t val, uint64_t *cr2) {
  uint64_t *mb = mbox(v); mb[0] = op; mb[1] = addr; mb[2] = count; mb[3] = val; mb[5] = 0;
  int port = run_once(v);
  if (port == 0x90) return 0;
  if (port == 0xae) {
    struct kvm_sregs s; ioctl(v->vcpu, KVM_GET_SREGS, &s); if (cr2) *cr2 = s.cr2;
    vmm_iret(v, USER_CODE + (g_fault_return - g_user_start));
    port = run_once(v);
    if (port != 0x90) { fprintf(stderr, "after redirect port %x\n", port); exit(1); }
    return 1;
  }
  struct kvm_regs g; ioctl(v->vcpu, KVM_GET_REGS, &g); struct kvm_sregs s; ioctl(v->vcpu, KVM_GET_SREGS, &s);
  uint64_t *f = (uint64_t *)(v->mem + g.rsp);
  fprintf(stderr, "unexpected port %x vector %llu rip %llx cr2 %llx stack %llx %llx %llx\n", port, g.rax & 0xff, g.rip, s.cr2, (unsigned long long)f[0], (unsigned long long)f[1], (unsigned long long)f[2]); exit(1);
}
static void vm_start(struct vm *v) { int p = run_once(v); if (p != 0x90) { fprintf(stderr, "start port %x\n", p); exit(1); } }

/* ---------------- a: visibility matrix ---------------- */
enum { T_UNMAP, T_MAP, T_RO2RW, T_RW2RO, T_REPOINT, T_NEIGHBOR, T_NEIGHBOR_A, T_PD_UNMAP, NT };
static const char *tname[NT] = {"present->not-present, read", "not-present->present, read", "RO->RW, write",
                                "RW->RO, write", "repoint PTE to other page, read", "unmap never-touched neighbour, read",
                                "same, PTEs had the Accessed bit set", "clear the PD entry above A, read"};
enum { M_NONE, M_SREGS_SAME, M_SREGS_GDT, M_SREGS_CR4, M_SREGS_CR3, M_GUEST_IDLE, M_G_INVLPG, M_G_CR3,
       M_DONTNEED, M_MPROTECT, M_MPROT_PT, M_MEMSLOT, NM };
static const char *mname[NM] = {"nothing", "SET_SREGS same", "SET_SREGS gdt.limit", "SET_SREGS CR4.PGE^",
                                "SET_SREGS other CR3", "guest idles 200 exits+20ms", "guest INVLPG (ring0)",
                                "guest MOV CR3 (ring0)", "MADV_DONTNEED old page", "mprotect RO+RW old page", "mprotect RO+RW page-table page",
                                "memslot delete+re-add"};
static uint64_t magic(uint64_t phys) { return 0xA000000000000000ULL | phys; }
static void fill(struct vm *v, uint64_t phys) { *(uint64_t *)(v->mem + phys) = magic(phys); }

static uint64_t g_ptphys;   /* host page holding the edited entry, for M_MPROT_PT */
static void apply_mech(struct vm *v, int m, int idx, uint64_t oldphys) {
  struct kvm_sregs s;
  switch (m) {
  case M_NONE: break;
  case M_SREGS_SAME: ioctl(v->vcpu, KVM_GET_SREGS, &s); if (ioctl(v->vcpu, KVM_SET_SREGS, &s)) perror("set_sregs"); break;
  case M_SREGS_GDT: ioctl(v->vcpu, KVM_GET_SREGS, &s); s.gdt.limit = s.gdt.limit == 55 ? 63 : 55; if (ioctl(v->vcpu, KVM_SET_SREGS, &s)) perror("set_sregs"); break;
  case M_SREGS_CR4: ioctl(v->vcpu, KVM_GET_SREGS, &s); s.cr4 ^= 1 << 7; if (ioctl(v->vcpu, KVM_SET_SREGS, &s)) perror("set_sregs cr4"); break;
  case M_SREGS_CR3: ioctl(v->vcpu, KVM_GET_SREGS, &s); s.cr3 = s.cr3 == PML4 ? PML4_ALIAS : PML4; if (ioctl(v->vcpu, KVM_SET_SREGS, &s)) perror("set_sregs cr3"); break;
  case M_GUEST_IDLE: for (int i = 0; i < 200; i++) cmd(v, 0, 0, 0, 0, 0); usleep(20000); break;
  case M_G_INVLPG: if (cmd(v, 5, va(idx), 0, 0, 0)) printf("invlpg faulted?\n"); break;
  case M_G_CR3: if (cmd(v, 6, 0, 0, 0, 0)) printf("cr3 reload faulted?\n"); break;
  case M_DONTNEED: madvise(v->mem + oldphys, 4096, MADV_DONTNEED); break;
  case M_MPROTECT: mprotect(v->mem + oldphys, 4096, PROT_READ); mprotect(v->mem + oldphys, 4096, PROT_READ | PROT_WRITE); break;
  case M_MPROT_PT: mprotect(v->mem + g_ptphys, 4096, PROT_READ); mprotect(v->mem + g_ptphys, 4096, PROT_READ | PROT_WRITE); break;
  case M_MEMSLOT: {
    struct kvm_userspace_memory_region reg = {.slot = 0, .guest_phys_addr = 0, .memory_size = 0, .userspace_addr = (uintptr_t)v->mem};
    ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &reg); reg.memory_size = MEMSZ;
    if (ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &reg)) perror("memslot re-add");
    break; }
  }
}
/* one trial; returns 1 if the change was visible to the guest, 0 if stale, -1 unexpected */
static int trial(struct vm *v, int t, int m, int idx) {
  uint64_t P = data_phys(idx), Q = data_phys(idx + 8), N1 = data_phys(idx + 1);
  fill(v, P); fill(v, Q); fill(v, N1);
  uint64_t *e = pte(v, idx), cr2 = 0; int f;
  g_ptphys = (PT_BASE + (uint64_t)idx * 8) & ~0xfffULL;
  switch (t) {
  case T_UNMAP:
    *e = P | 7; if (cmd(v, 1, va(idx), 0, 0, 0) || mbox(v)[4] != magic(P)) return -1;
    *e = 0; apply_mech(v, m, idx, P); if (m == M_DONTNEED) fill(v, P);
    f = cmd(v, 1, va(idx), 0, 0, &cr2); return f ? (cr2 == va(idx) ? 1 : -1) : 0;
  case T_MAP:
    *e = 0; if (!cmd(v, 1, va(idx), 0, 0, 0)) return -1;
    *e = P | 7; apply_mech(v, m, idx, P); if (m == M_DONTNEED) fill(v, P);
    f = cmd(v, 1, va(idx), 0, 0, 0); return f ? 0 : (mbox(v)[4] == magic(P) ? 1 : -1);
  case T_RO2RW:
    *e = P | 5; if (cmd(v, 1, va(idx), 0, 0, 0)) return -1;
    *e = P | 7; apply_mech(v, m, idx, P);
    f = cmd(v, 2, va(idx), 0, 0x1234, 0); return f ? 0 : 1;
  case T_RW2RO:
    *e = P | 7; if (cmd(v, 2, va(idx), 0, 0x1234, 0)) return -1;
    *e = P | 5; apply_mech(v, m, idx, P);
    f = cmd(v, 2, va(idx), 0, 0x5678, 0); return f ? 1 : 0;
  case T_REPOINT:
    *e = P | 7; if (cmd(v, 1, va(idx), 0, 0, 0) || mbox(v)[4] != magic(P)) return -1;
    *e = Q | 7; apply_mech(v, m, idx, P); if (m == M_DONTNEED) fill(v, P);
    f = cmd(v, 1, va(idx), 0, 0, 0); if (f) return -1;
    return mbox(v)[4] == magic(Q) ? 1 : mbox(v)[4] == magic(P) ? 0 : -1;
  case T_NEIGHBOR: {
    uint64_t *e1 = pte(v, idx + 1);
    *e = P | 7; *e1 = N1 | 7; if (cmd(v, 1, va(idx), 0, 0, 0)) return -1;   /* touch idx only */
    *e1 = 0; apply_mech(v, m, idx + 1, N1); if (m == M_DONTNEED) fill(v, N1);
    f = cmd(v, 1, va(idx + 1), 0, 0, &cr2); return f ? 1 : 0; }
  case T_NEIGHBOR_A: {
    uint64_t *e1 = pte(v, idx + 1);
    *e = P | 0x27; *e1 = N1 | 0x27; if (cmd(v, 1, va(idx), 0, 0, 0)) return -1;
    *e1 = 0; apply_mech(v, m, idx + 1, N1); if (m == M_DONTNEED) fill(v, N1);
    f = cmd(v, 1, va(idx + 1), 0, 0, &cr2); return f ? 1 : 0; }
  case T_PD_UNMAP: {
    uint64_t *pde = (uint64_t *)(v->mem + PD1) + idx / 512; g_ptphys = PD1;
    *e = P | 7; if (cmd(v, 1, va(idx), 0, 0, 0) || mbox(v)[4] != magic(P)) return -1;
    uint64_t saved = *pde; *pde = 0; apply_mech(v, m, idx, P); if (m == M_DONTNEED) fill(v, P);
    f = cmd(v, 1, va(idx), 0, 0, &cr2); *pde = saved;
    /* put everything back in a state KVM knows about for the next trial */
    madvise(v->mem + P, 4096, MADV_DONTNEED);
    return f ? 1 : 0; }
  }
  return -1;
}
static void part_a(void) {
  printf("== a: is a host-side PTE edit visible to the guest? (visible/trials; '!' = unexpected result)\n");
  printf("%-36s", "change \\ then");
  for (int m = 0; m < NM; m++) printf(" | %s", mname[m]);
  printf("\n");
  struct vm *v = vm_create(0, 1); vm_start(v);
  int idx = 0; const int TR = 5;
  for (int t = 0; t < NT; t++) {
    printf("%-36s", tname[t]);
    for (int m = 0; m < NM; m++) {
      int vis = 0, bad = 0;
      for (int k = 0; k < TR; k++) {
        int r;
        if (t == T_PD_UNMAP) { static int pk; r = trial(v, t, m, (24 + pk % 8) * 512 + (pk / 8) * 16); pk++; }
        else { r = trial(v, t, m, idx); idx += 16; }
        if (r < 0) bad++; else vis += r; }
      printf(" | %d/%d%s", vis, TR, bad ? "!" : "");
    }
    printf("\n");
  }
  vm_destroy(v);
}

/* ---------------- b: mechanism costs ---------------- */
static void part_b(void) {
  printf("== b: cost of each mechanism (median of 200; us) and the guest's re-read of a 512-page working set afterwards\n");
  struct vm *v = vm_create(0, 1); vm_start(v);
  const int WS = 512, R = 200;
  for (int i = 0; i < WS; i++) *pte(v, i) = data_phys(i) | 7;
  cmd(v, 3, va(0), WS, 0, 0); cmd(v, 3, va(0), WS, 0, 0);
  static double tm[NM][200], tw[NM][200], tnoop[200];
  for (int i = 0; i < R; i++) { double t0 = now(); cmd(v, 0, 0, 0, 0, 0); tnoop[i] = (now() - t0) * 1e6; }
  for (int m = 0; m < NM; m++) {
    int reps = m == M_GUEST_IDLE ? 0 : (m == M_MEMSLOT ? 40 : R);
    for (int i = 0; i < reps; i++) {
      int page = WS + 1 + (i % 64);   /* the page whose host mapping is poked (not in the working set) */
      *pte(v, page) = data_phys(page) | 7;
      double t0 = now(); apply_mech(v, m, page, data_phys(page)); double t1 = now();
      cmd(v, 3, va(0), WS, 0, 0); double t2 = now();
      tm[m][i] = (t1 - t0) * 1e6; tw[m][i] = (t2 - t1) * 1e6;
    }
    if (!reps) continue;
    printf("  %-28s mechanism %8.2f us   then re-read 512 mapped pages %8.1f us\n", mname[m], median(tm[m], reps), median(tw[m], reps));
  }
  double tg[200], ts[200];
  for (int i = 0; i < R; i++) { struct kvm_sregs s; double t0 = now(); ioctl(v->vcpu, KVM_GET_SREGS, &s); double t1 = now(); ioctl(v->vcpu, KVM_SET_SREGS, &s); tg[i] = (t1 - t0) * 1e6; ts[i] = (now() - t1) * 1e6; }
  printf("  plain command round trip (one exit) %.1f us; KVM_GET_SREGS alone %.2f us; KVM_SET_SREGS alone %.2f us\n", median(tnoop, R), median(tg, R), median(ts, R));
  vm_destroy(v);
}

/* ---------------- c: guest page fault cost ---------------- */
/* variant 0: stub out 0xae + VMM emulates IRET (GET/SET_REGS + GET/SET_SREGS) and retries
 * variant 1: stub out 0xaf; add rsp,8; iretq in guest; VMM gets CR2 with KVM_GET_SREGS
 * variant 2: as 1 but CR2 comes from kvm_run sync regs (KVM_SYNC_X86_SREGS): no ioctl besides KVM_RUN
 * variant 3: as 2 but the VMM maps the aligned group of 16 pages around each fault (fault-around)
 * variant 4: as 3 with the Accessed+Dirty bits preset in the PTEs the VMM writes
 * variant 5: as 4 with groups of 64 pages
 * variant 6: as 2 (one page per fault) with A+D preset */
static double g_ex, g_emu, g_pff;
static double fault_run(int variant, int N, int *nfaults) {
  struct vm *v = vm_create(0, 1); vm_start(v);
  set_pf_mode(v, variant >= 1);
  if (variant >= 2) v->run->kvm_valid_regs = KVM_SYNC_X86_SREGS;
  uint64_t *mb = mbox(v); mb[0] = 3; mb[1] = va(0); mb[2] = N; mb[3] = 0;
  int faults = 0; uint64_t e0 = stat(v, "exits"), m0 = stat(v, "insn_emulation"), f0 = stat(v, "pf_fixed"); double t0 = now();
  for (;;) {
    int port = run_once(v);
    if (port == 0x90) break;
    uint64_t cr2;
    if (variant >= 2) cr2 = v->run->s.regs.sregs.cr2;
    else { struct kvm_sregs s; ioctl(v->vcpu, KVM_GET_SREGS, &s); cr2 = s.cr2; }
    int idx = (cr2 - VA_BASE) >> 12; faults++;
    uint64_t fl = variant >= 4 ? 0x67 : 7; int grp = variant == 3 || variant == 4 ? 16 : variant == 5 ? 64 : 1;
    int b = idx & ~(grp - 1); for (int j = b; j < b + grp; j++) *pte(v, j) = data_phys(j) | fl;
    if (port == 0xae) vmm_iret(v, 0);
  }
  double t = now() - t0;
  g_ex = (double)(stat(v, "exits") - e0) / N; g_emu = (double)(stat(v, "insn_emulation") - m0) / N; g_pff = (double)(stat(v, "pf_fixed") - f0) / N;
  if (mb[4] != 0) printf("checksum %llx?\n", (unsigned long long)mb[4]);
  v->run->kvm_valid_regs = 0; vm_destroy(v);
  *nfaults = faults; return t;
}
static double noop_rt(void) {
  struct vm *v = vm_create(0, 0); vm_start(v); double t[200];
  for (int i = 0; i < 200; i++) { double t0 = now(); cmd(v, 0, 0, 0, 0, 0); t[i] = (now() - t0) * 1e6; }
  vm_destroy(v); return median(t, 200);
}
static void part_c(void) {
  printf("== c: guest #PF resolved by the VMM, 2048 distinct pages per run, host memory pre-faulted (median of 5 runs)\n");
  const char *vn[7] = {"out+hlt stub, VMM emulates IRET (4 reg ioctls)", "out;iretq stub, CR2 via KVM_GET_SREGS",
                       "out;iretq stub, CR2 via sync regs", "same + VMM maps 16 pages per fault",
                       "same + 16 pages per fault, PTEs with A+D set", "same + 64 pages per fault, PTEs with A+D set",
                       "1 page per fault, PTE with A+D set"};
  const int N = 2048;
  for (int var = 0; var < 7; var++) {
    double per[5], perpage[5]; int nf = 0;
    for (int r = 0; r < 5; r++) { double t = fault_run(var, N, &nf); per[r] = t * 1e6 / nf; perpage[r] = t * 1e6 / N; }
    printf("  %-48s %5d faults: %6.1f us per fault, %6.1f us per page; per page: %.2f exits, %.2f pf_fixed, %.2f insn_emulation\n",
           vn[var], nf, median(per, 5), median(perpage, 5), g_ex, g_pff, g_emu);
  }
  printf("  reference: one plain exit round trip (out 0x90, no ioctl besides KVM_RUN) %.1f us\n", noop_rt());
  /* breakdown, one page at a time (200 samples each, medians) */
  struct vm *v = vm_create(0, 1); vm_start(v); set_pf_mode(v, 1);
  double a[200], b[200], c1[200], c2[200];
  for (int i = 0; i < 200; i++) { double t0 = now(); cmd(v, 0, 0, 0, 0, 0); a[i] = (now() - t0) * 1e6; }
  for (int i = 0; i < 200; i++) { int idx = 16 * i; *pte(v, idx) = data_phys(idx) | 7;
    double t0 = now(); cmd(v, 1, va(idx), 0, 0, 0); b[i] = (now() - t0) * 1e6; }
  for (int i = 0; i < 200; i++) { int idx = 16 * i + 4; uint64_t *mb = mbox(v); mb[0] = 1; mb[1] = va(idx);
    double t0 = now(); int p = run_once(v); double t1 = now();
    if (p != 0xaf) { printf("expected a fault, port %x\n", p); break; }
    *pte(v, idx) = data_phys(idx) | 7; p = run_once(v); double t2 = now();
    if (p != 0x90) { printf("expected loop, port %x\n", p); break; }
    c1[i] = (t1 - t0) * 1e6; c2[i] = (t2 - t1) * 1e6; }
  printf("  breakdown: command round trip %.1f us; read of a mapped, never-touched page (1 shadow fault + exit) %.1f us;\n"
         "             unmapped page: run -> #PF stub exit %.1f us, PTE set + resume (iretq, retry, shadow fault) -> next exit %.1f us\n",
         median(a, 200), median(b, 200), median(c1, 200), median(c2, 200));
  vm_destroy(v);
}

/* ---------------- d: first touch ---------------- */
/* kind 0: 4K PTEs pre-populated (ad: with Accessed+Dirty preset); kind 1: 2 MiB guest pages */
static double d_ex, d_pff;
static void touch_run(int kind, int thp, int prefault, int write, int ad, double *first, double *second) {
  struct vm *v = vm_create(thp, prefault); vm_start(v);
  const int N = 4096; uint64_t base;
  if (kind == 0) { for (int i = 0; i < N; i++) *pte(v, i) = data_phys(i) | (ad ? 0x67 : 7); base = va(0); }
  else { base = BIG_VA; if (ad) for (int j = 0; j < 8; j++) ((uint64_t *)(v->mem + PD1))[256 + j] |= 0x60; }
  uint64_t e0 = stat(v, "exits"), f0 = stat(v, "pf_fixed");
  double t0 = now(); cmd(v, write ? 4 : 3, base, N, 1, 0); double t1 = now();
  d_ex = (double)(stat(v, "exits") - e0) / N; d_pff = (double)(stat(v, "pf_fixed") - f0) / N; cmd(v, write ? 4 : 3, base, N, 1, 0); double t2 = now();
  *first = (t1 - t0) * 1e6 / N; *second = (t2 - t1) * 1e6 / N;
  vm_destroy(v);
}
static void part_d(void) {
  printf("== d: touch 4096 x 4 KiB pages (16 MiB) once per page; us per page (median of 5 runs; includes 1 exit per pass)\n");
  struct { int kind, thp, prefault, write, ad; const char *n; } cs[] = {
    {0, 0, 1, 0, 0, "4K PTEs pre-populated, host pre-faulted, read"},
    {0, 0, 1, 1, 0, "4K PTEs pre-populated, host pre-faulted, write"},
    {0, 0, 0, 1, 0, "4K PTEs pre-populated, host fresh, write"},
    {0, 1, 1, 1, 0, "4K PTEs pre-populated, host THP pre-faulted, write"},
    {0, 0, 1, 0, 1, "4K PTEs with A+D preset, host pre-faulted, read"},
    {0, 0, 1, 1, 1, "4K PTEs with A+D preset, host pre-faulted, write"},
    {0, 0, 0, 1, 1, "4K PTEs with A+D preset, host fresh, write"},
    {0, 1, 1, 1, 1, "4K PTEs with A+D preset, host THP pre-faulted, write"},
    {1, 0, 1, 1, 0, "2M guest pages, host 4K pre-faulted, write"},
    {1, 0, 0, 1, 0, "2M guest pages, host 4K fresh, write"},
    {1, 1, 1, 1, 0, "2M guest pages, host THP pre-faulted, write"},
    {1, 1, 0, 1, 0, "2M guest pages, host THP fresh, write"},
    {1, 1, 0, 1, 1, "2M guest pages with A+D preset, host THP fresh, write"},
  };
  for (unsigned c = 0; c < sizeof cs / sizeof *cs; c++) {
    double f[5], s[5];
    for (int r = 0; r < 5; r++) touch_run(cs[c].kind, cs[c].thp, cs[c].prefault, cs[c].write, cs[c].ad, &f[r], &s[r]);
    printf("  %-54s first touch %6.3f us/page, second pass %6.3f us/page; first pass per page: %.3f exits, %.3f pf_fixed\n",
           cs[c].n, median(f, 5), median(s, 5), d_ex, d_pff);
  }
}

/* ---------------- e: a VM that ran, recycled for another guest ---------------- */
/* The whole memory slot's host range replaced with MAP_FIXED (fresh anonymous memory, or a
 * memfd mapped MAP_PRIVATE as a snapshot restore maps it), the guest's structures written
 * again at the same guest-physical addresses, the vCPU's registers set again. The old guest
 * read page P through va(idx); the new tables say something else about va(idx). */
enum { R_REPOINT, R_UNMAP, R_PD_UNMAP, R_RW2RO, R_TABLE_REUSE, NR };
static const char *rname[NR] = {"va now maps another page, read", "va now not present, read",
                                "PD entry above it gone, read", "page now read-only, write",
                                "its page table serves another 2 MiB now, read"};
static int memfd_for_recycle = -1;
static void recycle(struct vm *v, int how) {
  void *at;
  if (how != 1) at = mmap(v->mem, MEMSZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  else at = mmap(v->mem, MEMSZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE | MAP_FIXED, memfd_for_recycle, 0);
  if (at != v->mem) { perror("recycle mmap"); exit(1); }
  if (how == 2) {   /* and the memslot deleted and added again: KVM drops every shadow page */
    struct kvm_userspace_memory_region reg = {.slot = 0, .guest_phys_addr = 0, .memory_size = 0, .userspace_addr = (uintptr_t)v->mem};
    ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &reg); reg.memory_size = MEMSZ;
    if (ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &reg)) { perror("memslot re-add"); exit(1); }
  }
  if (how == 3) {   /* slot 0 stays; a 4 KiB slot 1 over a read-only page is added, then deleted */
    flush_slot(v, 4096);
    flush_slot(v, 0);
  }
  vm_setup(v);
}
static int recycle_trial(int kind, int how, int idx) {
  struct vm *v = vm_create(0, 1); vm_start(v);
  uint64_t P = data_phys(idx), Q = data_phys(idx + 8), cr2 = 0;
  fill(v, P); *pte(v, idx) = P | 7;
  if (cmd(v, 1, va(idx), 0, 0, 0) || mbox(v)[4] != magic(P)) { vm_destroy(v); return -1; }
  if (kind == R_RW2RO && cmd(v, 2, va(idx), 0, 0x1234, 0)) { vm_destroy(v); return -1; }
  recycle(v, how); vm_start(v);
  fill(v, P); fill(v, Q);
  int f, r = -1;
  switch (kind) {
  case R_REPOINT: *pte(v, idx) = Q | 7; f = cmd(v, 1, va(idx), 0, 0, 0);
    r = f ? -1 : mbox(v)[4] == magic(Q) ? 1 : 0; break;
  case R_UNMAP: *pte(v, idx) = 0; f = cmd(v, 1, va(idx), 0, 0, &cr2); r = f ? (cr2 == va(idx)) : 0; break;
  case R_PD_UNMAP: ((uint64_t *)(v->mem + PD1))[idx / 512] = 0; f = cmd(v, 1, va(idx), 0, 0, &cr2);
    r = f ? (cr2 == va(idx)) : 0; break;
  case R_RW2RO: *pte(v, idx) = P | 5; f = cmd(v, 2, va(idx), 0, 0x5678, 0); r = f ? 1 : 0; break;
  case R_TABLE_REUSE: {
    /* The new guest maps nothing in va(idx)'s 2 MiB; the page-table frame that served it
     * serves another 2 MiB, where it maps Q. Use that, then read va(idx): a fault is fresh. */
    uint64_t *pd1 = (uint64_t *)(v->mem + PD1); int k = idx / 512, m = NPT - 1 - k;
    pd1[k] = 0; pd1[m] = (PT_BASE + (uint64_t)k * 0x1000) | 7; *pte(v, idx) = Q | 7;
    if (cmd(v, 1, va(m * 512 + idx % 512), 0, 0, 0) || mbox(v)[4] != magic(Q)) { r = -1; break; }
    f = cmd(v, 1, va(idx), 0, 0, &cr2); r = f ? (cr2 == va(idx)) : 0; break; }
  }
  vm_destroy(v); return r;
}
static void part_e(void) {
  printf("== e: a VM that ran, recycled: is the new guest's view its own? (fresh/trials; '!' = unexpected)\n");
  memfd_for_recycle = memfd_create("recycle", 0);
  if (memfd_for_recycle < 0 || ftruncate(memfd_for_recycle, MEMSZ)) { perror("memfd"); exit(1); }
  const char *hows[4] = {"MAP_FIXED anonymous", "MAP_FIXED memfd MAP_PRIVATE", "anonymous + memslot re-added",
                         "anonymous + a 4 KiB slot added, deleted"};
  with_flush_slot = 1;
  for (int kind = 0; kind < NR; kind++) {
    printf("  %-46s", rname[kind]);
    for (int how = 0; how < 4; how++) {
      int fresh = 0, bad = 0; const int TR = 5;
      for (int k = 0; k < TR; k++) { int r = recycle_trial(kind, how, 16 * k + 3); if (r < 0) bad++; else fresh += r; }
      printf(" | %s: %d/%d%s", hows[how], fresh, TR, bad ? "!" : "");
    }
    printf("\n");
  }
  /* cost: recycling against tearing down and making a new VM (median of 50) */
  const int R = 50; static double tr[4][50], td[50], tc[50];
  for (int how = 0; how < 4; how++) {
    struct vm *v = vm_create(0, 1); vm_start(v);
    for (int i = 0; i < R; i++) {
      for (int j = 0; j < 64; j++) *pte(v, j) = data_phys(j) | 7;
      cmd(v, 4, va(0), 64, 1, 0);   /* the guest writes 64 pages */
      double t0 = now(); recycle(v, how); tr[how][i] = (now() - t0) * 1e6; vm_start(v);
    }
    vm_destroy(v);
  }
  for (int i = 0; i < R; i++) {
    struct vm *v = vm_create(0, 0); vm_start(v);
    for (int j = 0; j < 64; j++) *pte(v, j) = data_phys(j) | 7;
    cmd(v, 4, va(0), 64, 1, 0);
    double t0 = now(); vm_destroy(v); double t1 = now(); td[i] = (t1 - t0) * 1e6;
    v = vm_create(0, 0); tc[i] = (now() - t1) * 1e6; vm_destroy(v);
  }
  printf("  recycle (remap the 128 MiB slot, write the structures, set the registers): anonymous %.1f us, memfd %.1f us,\n"
         "  anonymous with the memslot re-added %.1f us, anonymous with a 4 KiB slot added and deleted %.1f us;\n"
         "  against: tear down a VM that ran %.1f us, make a new VM with its vCPU and structures %.1f us\n",
         median(tr[0], R), median(tr[1], R), median(tr[2], R), median(tr[3], R), median(td, R), median(tc, R));
  with_flush_slot = 0;
  close(memfd_for_recycle);
}

int main(int argc, char **argv) {
  setvbuf(stdout, 0, _IONBF, 0);
  kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) { perror("/dev/kvm"); return 1; }
  runsz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  const char *w = argc > 1 ? argv[1] : "abcd";  /* e on request */
  time_t tt = time(0); char ts[64]; strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S UTC", gmtime(&tt));
  printf("pt_update_probe %s, run at %s\n", w, ts);
  if (strchr(w, 'a')) part_a();
  if (strchr(w, 'b')) part_b();
  if (strchr(w, 'c')) part_c();
  if (strchr(w, 'd')) part_d();
  if (strchr(w, 'e')) part_e();
  return 0;
}
