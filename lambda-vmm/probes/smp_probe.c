/* Probe: running SEVERAL vCPUs of ONE VM at once, each on its own host pthread. Guest code runs
 * at CPL3 in 64-bit mode (4-level paging, 0-2 MiB identity-mapped with one 2 MiB page that has the
 * U bit set, so the ring-0 exception stubs, GDT, IDT, TSSs and stacks are usable under PVM). Each
 * vCPU has its own TSS (own RSP0) and mailbox (r15); the TSS I/O-map base is 0 as in
 * pt_update_probe (PVM consults the I/O bitmap even at ring 0), so the bitmap overlaps the TSS's
 * own zero bytes 12-35 (RSP1, RSP2, reserved): ports 0x60-0x11f are allowed; used: 0x90, 0x92, 0xa0.
 * A vCPU is "ready" when it has exited with `out 0x90` at its command loop; commands are left in
 * the mailbox and run by the next KVM_RUN. A vCPU that does not come back in time is kicked
 * (kvm_run->immediate_exit = 1 + SIGUSR1 via pthread_kill, handler without SA_RESTART), and
 * alarm() ends the probe if a part hangs anyway.
 *
 *   a  parallel speedup: xorshift64 over registers (no memory traffic), 1 vCPU x 2N iterations vs
 *      2 vCPUs of the same VM x N each (started together with a barrier); the same loop (same
 *      instructions) as host code on 1 and 2 pthreads. Wall times, speedup = T(1 x 2N) / T(2 x N),
 *      medians of 5; N is calibrated so the 1-vCPU run takes ~350 ms (override: SMP_N=iterations).
 *   b  shared memory while a vCPU is inside KVM_RUN: vCPU B spins at CPL3 reading the qword at
 *      VA 0x200000 (4 KiB PTE -> GPA 0x300000, private anonymous host memory filled with 0x55)
 *      and exits when it changes, the new value in rax. The main thread then
 *        b1: madvise(MADV_DONTNEED) on the host page (expected: B reads 0 from a fresh zero page)
 *        b2: stores a new qword through its own mapping (coherence of shared memory)
 *      median of 20 trials: madvise duration, time until B saw the change (guest rdtsc; the guest
 *      TSC is the host TSC here, see tsc_probe), time until KVM_RUN returned on B's thread.
 *        b3: B spins WRITING a counter to the page; the host does mprotect(PROT_READ), waits
 *      300 us, mprotect(PROT_READ|PROT_WRITE), then polls (every ~10 us) until B writes again: do
 *      B's writes stop while the page is read-only (or keep landing through a stale writable
 *      mapping), what does KVM_RUN return meanwhile (EFAULT is retried by B's thread), how soon
 *      does B resume. Reference line: the same madvise/mprotect calls while B is out of KVM_RUN.
 *   c  kick latency: vCPU(s) spinning forever at CPL3 (incrementing a counter); another thread sets
 *      immediate_exit = 1 and sends SIGUSR1 to each vCPU thread; time until KVM_RUN returns
 *      (-1/EINTR), median of 50, with 1 vCPU and with 2 vCPUs of the same VM (both kicked).
 *   d  exit path under concurrency: `out` in a loop (20000 exits per vCPU), 1 vCPU alone vs
 *      2 vCPUs of one VM at once vs (reference) 2 vCPUs in 2 VMs at once: exits/s, us per exit.
 *
 * Build: gcc -O2 -pthread smp_probe.c -o smp_probe
 * Run:   ./smp_probe [a|b|c|d ...] [quick]   (no letters = all four, ~20 s; "quick" or SMP_QUICK=1
 *        shrinks N and the trial counts for a smoke test, < 1 s)
 * Threads are not pinned. On a 2-core host the main thread shares the cores with the vCPU threads
 * (b: B + main; c with 2 vCPUs: 3 threads), and any other load shows up directly in a, c and d.
 * Seen here (PVM host, 2026-12-04 13:02-13:03 UTC, otherwise idle, 3 runs; output/smp_run*.txt):
 *   a: two vCPUs of one VM run truly in parallel: speedup 1.98-1.99 (host threads 1.98-2.01);
 *      guest CPL3 code runs at host speed (1 vCPU x 2N / host: 1.002); ~50 exits per vCPU in
 *      180 ms (timer ticks).
 *   b1: MADV_DONTNEED on the host page while B is inside KVM_RUN: B reads 0 by itself 20/20 in
 *      every run, 46-50 us after the call began (host call 2.8-3.8 us); KVM drops the running
 *      vCPU's translation without anything from the VMM.
 *   b2: a host store is seen by B 20/20; median 25 us after it (min 0.4-0.7 us): not explained
 *      (shared cores between B, the main thread and their wakeups are the likely cause).
 *   b3: mprotect(RO) while B writes: B's writes stop 20/20 (no stale writable mapping), and
 *      meanwhile KVM_RUN returns -1/EFAULT with exit_reason 0 again and again (169-178 times in
 *      20 trials) until the page is writable; B writes again ~97-100 us after mprotect(RW).
 *   c: a kick (immediate_exit + signal) gets a spinning vCPU out of KVM_RUN in 11.5-12.4 us
 *      (median); two vCPUs of one VM both out in 35-39 us.
 *   d: exits do not serialize across the vCPUs of one VM: 2 vCPUs make 1.93-1.99x the exits
 *      per second of one (39.6-41.3 us per exit each).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

/* ---------------- guest code (copied into guest memory; never run by the host) -------------- */
/* r15 = this vCPU's mailbox: 0 op, 8 n, 16 addr, 24 val, 32 result, 40 iterations, 48 guest TSC
 * when the change was seen, 56 started flag, 64 spin counter (op 3), 72 stop flag (op 5). */
extern const uint8_t g_start[], g_end[];
__asm__(
    ".pushsection .rodata\n"
    ".code64\n"
    ".globl g_start, g_end\n"
    "g_start:\n"
    "0: outb %al, $0x90\n"
    "  movq (%r15), %rax\n  movq 8(%r15), %rcx\n  movq 16(%r15), %rsi\n"
    "  cmpq $1, %rax\n  je 1f\n"
    "  cmpq $2, %rax\n  je 2f\n"
    "  cmpq $3, %rax\n  je 3f\n"
    "  cmpq $4, %rax\n  je 4f\n"
    "  cmpq $5, %rax\n  je 5f\n"
    "  jmp 0b\n"
    /* 1: xorshift64 from val, n iterations, registers only; result -> 32 */
    "1: movq 24(%r15), %rax\n"
    "11: movq %rax, %rdx\n  shlq $13, %rdx\n  xorq %rdx, %rax\n"
    "  movq %rax, %rdx\n  shrq $7, %rdx\n  xorq %rdx, %rax\n"
    "  movq %rax, %rdx\n  shlq $17, %rdx\n  xorq %rdx, %rax\n"
    "  decq %rcx\n  jnz 11b\n"
    "  movq %rax, 32(%r15)\n  jmp 0b\n"
    /* 2: spin reading (addr) while it equals val; then TSC -> 48, new value -> 32 and rax, count -> 40 */
    "2: movq 24(%r15), %r8\n  xorl %ecx, %ecx\n  movq $1, 56(%r15)\n"
    "21: incq %rcx\n  movq (%rsi), %rbx\n  cmpq %rbx, %r8\n  je 21b\n"
    "  rdtsc\n  shlq $32, %rdx\n  orq %rdx, %rax\n  movq %rax, 48(%r15)\n"
    "  movq %rbx, 32(%r15)\n  movq %rcx, 40(%r15)\n  movq %rbx, %rax\n  jmp 0b\n"
    /* 3: spin forever, counting in memory */
    "3: movq $1, 56(%r15)\n"
    "31: incq 64(%r15)\n  jmp 31b\n"
    /* 4: n exits */
    "4: outb %al, $0x92\n  decq %rcx\n  jnz 4b\n  jmp 0b\n"
    /* 5: spin writing an incrementing counter to (addr) until the stop flag is set */
    "5: xorl %ecx, %ecx\n  movq $1, 56(%r15)\n"
    "51: incq %rcx\n  movq %rcx, (%rsi)\n  cmpq $0, 72(%r15)\n  je 51b\n"
    "  movq %rcx, 40(%r15)\n  jmp 0b\n"
    "g_end:\n"
    ".popsection\n");

/* the same loop as op 1, as host code */
static uint64_t host_xorshift(uint64_t x, uint64_t n) {
  __asm__ volatile("1: movq %0, %%rdx\n  shlq $13, %%rdx\n  xorq %%rdx, %0\n"
                   "  movq %0, %%rdx\n  shrq $7, %%rdx\n  xorq %%rdx, %0\n"
                   "  movq %0, %%rdx\n  shlq $17, %%rdx\n  xorq %%rdx, %0\n"
                   "  decq %1\n  jnz 1b\n"
                   : "+r"(x), "+r"(n) : : "rdx", "cc");
  return x;
}

/* ---------------- layout ---------------- */
#define MEMSZ  (4ULL << 20)
#define PML4   0x1000ULL
#define PDPT   0x2000ULL
#define PD     0x3000ULL
#define PT     0x4000ULL      /* 4 KiB PTEs for VA 0x200000.. */
#define MBOX   0x5000ULL      /* + id * 0x100 */
#define GDT    0x500ULL
#define IDT    0x800ULL       /* 32 gates */
#define TSS0   0xc00ULL       /* + id * 0x80 */
#define CODE   0x10000ULL
#define STUBS  0x20000ULL     /* per-vector stub: mov al,vec; out 0xa0,al; hlt */
#define X_VA   0x200000ULL
#define X_GPA  0x300000ULL
#define NV     2
#define GDT_ENTRIES (5 + 2 * NV)
#define PAT55  0x5555555555555555ULL

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
static double median(double *v, int n) { if (n <= 0) return __builtin_nan(""); qsort(v, n, sizeof *v, cmpd); return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2; }
static double vmin(double *v, int n) { if (n <= 0) return __builtin_nan(""); double m = 1e300; for (int i = 0; i < n; i++) if (v[i] < m) m = v[i]; return m; }
static double vmax(double *v, int n) { if (n <= 0) return __builtin_nan(""); double m = -1e300; for (int i = 0; i < n; i++) if (v[i] > m) m = v[i]; return m; }
/* poll *p every ~10 us (sleeping, so the vCPU threads keep the CPUs) until it differs from old or
 * secs pass; returns the last value read */
static uint64_t wait_change(volatile uint64_t *p, uint64_t old, double secs) {
  double t = now() + secs; uint64_t v; while ((v = *p) == old && now() < t) usleep(10); return v;
}

static int kvm = -1, runsz, quick;
static struct { struct kvm_cpuid2 c; struct kvm_cpuid_entry2 e[100]; } supported = {.c.nent = 100};
static struct kvm_segment ucs = {.base = 0, .limit = 0xffffffff, .selector = 0x23, .present = 1, .type = 11, .dpl = 3, .db = 0, .s = 1, .l = 1, .g = 1};
static struct kvm_segment uds = {.base = 0, .limit = 0xffffffff, .selector = 0x1b, .present = 1, .type = 3, .dpl = 3, .db = 1, .s = 1, .l = 0, .g = 1};

struct vm;
struct vcpu { int fd, stats, id; struct kvm_run *run; volatile uint64_t *mb; struct vm *vm; };
struct vm { int fd, n; uint8_t *mem; struct vcpu c[NV]; };

static uint64_t stat(struct vcpu *c, const char *name) {
  struct kvm_stats_header h; if (pread(c->stats, &h, sizeof h, 0) != sizeof h) return ~0ULL;
  int dsz = sizeof(struct kvm_stats_desc) + h.name_size; char *d = malloc(dsz * h.num_desc);
  if (pread(c->stats, d, dsz * h.num_desc, h.desc_offset) < 0) { free(d); return ~0ULL; }
  uint64_t val = ~0ULL;
  for (unsigned i = 0; i < h.num_desc; i++) {
    struct kvm_stats_desc *sd = (void *)(d + i * dsz);
    if (!strcmp(sd->name, name)) { if (pread(c->stats, &val, 8, h.data_offset + sd->offset) != 8) val = ~0ULL; break; }
  }
  free(d); return val;
}
static void set_idt_gate(uint8_t *m, int vec, uint64_t h) {
  uint64_t *idt = (uint64_t *)(m + IDT);
  idt[2 * vec] = (h & 0xffff) | (0x08ULL << 16) | (0x8eULL << 40) | (((h >> 16) & 0xffff) << 48);
  idt[2 * vec + 1] = h >> 32;
}
/* Run once on the calling thread; returns the io port, or -1 on any other exit. */
static int run_port(struct vcpu *c) {
  for (;;) {
    if (ioctl(c->fd, KVM_RUN, 0) < 0) { if (errno == EINTR) continue; perror("KVM_RUN"); return -1; }
    if (c->run->exit_reason == KVM_EXIT_IO) return c->run->io.port;
    fprintf(stderr, "vCPU%d: unexpected exit reason %d\n", c->id, c->run->exit_reason); return -1;
  }
}
/* one command on the calling thread (vCPU ready at its loop); returns the port it ended on */
static int cmd(struct vcpu *c, uint64_t op, uint64_t addr, uint64_t val) {
  c->mb[0] = op; c->mb[1] = 0; c->mb[2] = addr; c->mb[3] = val; return run_port(c);
}
static void vcpu_regs_init(struct vcpu *c) {
  struct kvm_regs g = {0}; g.rip = CODE; g.rflags = 2; g.rsp = 0x7000 - c->id * 0x400; g.r15 = MBOX + c->id * 0x100;
  ioctl(c->fd, KVM_SET_REGS, &g);
}
/* back to the command loop after a kick left the guest mid-command */
static void vcpu_reset(struct vcpu *c) {
  c->run->immediate_exit = 0; vcpu_regs_init(c);
  int p = run_port(c); if (p != 0x90) { fprintf(stderr, "vCPU%d: reset got port %x\n", c->id, p); exit(1); }
}
static void vcpu_add(struct vm *v, int id) {
  struct vcpu *c = &v->c[id]; c->id = id; c->vm = v;
  c->fd = ioctl(v->fd, KVM_CREATE_VCPU, id); if (c->fd < 0) { perror("KVM_CREATE_VCPU"); exit(1); }
  c->run = mmap(0, runsz, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
  if (c->run == MAP_FAILED) { perror("mmap kvm_run"); exit(1); }
  c->stats = ioctl(c->fd, KVM_GET_STATS_FD, 0);
  /* CPUID: supported set, with this vCPU's APIC ID (leaf 1 EBX[31:24], x2APIC ID in leaves 0xb/0x1f EDX) */
  struct { struct kvm_cpuid2 c; struct kvm_cpuid_entry2 e[100]; } cp; memcpy(&cp, &supported, sizeof cp);
  for (unsigned i = 0; i < cp.c.nent; i++) {
    struct kvm_cpuid_entry2 *e = &cp.e[i];
    if (e->function == 1) e->ebx = (e->ebx & 0x00ffffff) | ((uint32_t)id << 24);
    if (e->function == 0xb || e->function == 0x1f) e->edx = id;
  }
  if (ioctl(c->fd, KVM_SET_CPUID2, &cp) < 0) perror("KVM_SET_CPUID2");
  struct kvm_sregs s; ioctl(c->fd, KVM_GET_SREGS, &s);
  s.cr3 = PML4; s.cr4 = (1 << 5) | (1 << 9) | (1 << 10); s.cr0 = 0x80050033; s.efer = 0x501;
  s.cs = ucs; s.ds = s.es = s.fs = s.gs = s.ss = uds;
  s.gdt.base = GDT; s.gdt.limit = GDT_ENTRIES * 8 - 1; s.idt.base = IDT; s.idt.limit = 32 * 16 - 1;
  struct kvm_segment tr = {.base = TSS0 + id * 0x80, .limit = 103, .selector = (5 + 2 * id) * 8, .present = 1, .type = 11, .dpl = 0, .s = 0};
  s.tr = tr;
  if (ioctl(c->fd, KVM_SET_SREGS, &s) < 0) { perror("KVM_SET_SREGS"); exit(1); }
  c->mb = (volatile uint64_t *)(v->mem + MBOX + id * 0x100);
  memset((void *)c->mb, 0, 0x100);
  vcpu_regs_init(c);
  int p = run_port(c); if (p != 0x90) { fprintf(stderr, "vCPU%d: start got port %x\n", id, p); exit(1); }
}
static struct vm *vm_create(int n) {
  struct vm *v = calloc(1, sizeof *v); v->n = n;
  v->fd = ioctl(kvm, KVM_CREATE_VM, 0); if (v->fd < 0) { perror("KVM_CREATE_VM"); exit(1); }
  /* private anonymous: MADV_DONTNEED gives a fresh zero page on the next read (b1) */
  v->mem = mmap(0, MEMSZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (v->mem == MAP_FAILED) { perror("mmap"); exit(1); }
  madvise(v->mem, MEMSZ, MADV_NOHUGEPAGE);
  struct kvm_userspace_memory_region reg = {.slot = 0, .guest_phys_addr = 0, .memory_size = MEMSZ, .userspace_addr = (uintptr_t)v->mem};
  if (ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &reg) < 0) { perror("memslot"); exit(1); }
  uint8_t *m = v->mem;
  uint64_t *pml4 = (uint64_t *)(m + PML4), *pdpt = (uint64_t *)(m + PDPT), *pd = (uint64_t *)(m + PD), *pt = (uint64_t *)(m + PT);
  pml4[0] = PDPT | 7; pdpt[0] = PD | 7;
  pd[0] = 0 | 0x87;          /* 0-2 MiB, U=1: code, stubs, GDT/IDT/TSS, stacks, mailboxes */
  pd[1] = PT | 7;            /* 2-4 MiB through 4 KiB PTEs */
  pt[0] = X_GPA | 7;         /* X_VA -> X_GPA */
  uint64_t *gdt = (uint64_t *)(m + GDT);
  gdt[0] = 0; gdt[1] = 0x00af9b000000ffffULL; gdt[2] = 0x00cf93000000ffffULL; gdt[3] = 0x00cff3000000ffffULL; gdt[4] = 0x00affb000000ffffULL;
  for (int i = 0; i < NV; i++) {   /* one TSS per vCPU, own RSP0; I/O-map base 0 (see header) */
    uint64_t tss = TSS0 + i * 0x80, rsp0 = 0x9000 + i * 0x1000; memset(m + tss, 0, 104); memcpy(m + tss + 4, &rsp0, 8);
    gdt[5 + 2 * i] = 103 | ((tss & 0xffffff) << 16) | (0x89ULL << 40) | (((tss >> 24) & 0xff) << 56); gdt[6 + 2 * i] = tss >> 32;
  }
  for (int vec = 0; vec < 32; vec++) {
    uint8_t *h = m + STUBS + vec * 16; h[0] = 0xb0; h[1] = vec; h[2] = 0xe6; h[3] = 0xa0; h[4] = 0xf4;
    set_idt_gate(m, vec, STUBS + vec * 16);
  }
  memcpy(m + CODE, g_start, g_end - g_start);
  memset(m + X_GPA, 0x55, 4096);
  for (int i = 0; i < n; i++) vcpu_add(v, i);
  return v;
}
static void vm_destroy(struct vm *v) {
  for (int i = 0; i < v->n; i++) { close(v->c[i].stats); munmap(v->c[i].run, runsz); close(v->c[i].fd); }
  close(v->fd); munmap(v->mem, MEMSZ); free(v);
}

/* ---------------- vCPU threads ---------------- */
struct job {
  struct vcpu *c; uint64_t op, n, addr, val; pthread_barrier_t *bar; pthread_t th;
  double t0, t1; uint64_t tsc1, exits, res; int port, kicked, err, efaults, efault_reason, outs;
};
static void on_usr1(int s) { (void)s; }
static void on_alarm(int s) { (void)s; static const char m[] = "\nsmp_probe: TIMEOUT (alarm), giving up\n"; if (write(2, m, sizeof m - 1)) {} _exit(3); }

/* Runs the command in the mailbox until the guest is back at its loop (port 0x90); port 0x92 exits
 * are counted and resumed; EFAULT is counted and retried; EINTR (a kick) ends the job. */
static void *job_thread(void *arg) {
  struct job *j = arg; struct vcpu *c = j->c;
  c->mb[0] = j->op; c->mb[1] = j->n; c->mb[2] = j->addr; c->mb[3] = j->val;
  uint64_t e0 = stat(c, "exits");
  if (j->bar) pthread_barrier_wait(j->bar);
  j->t0 = now();
  for (;;) {
    int r = ioctl(c->fd, KVM_RUN, 0); int e = errno; double t = now(); uint64_t tsc = __rdtsc();
    if (r < 0) {
      if (e == EFAULT && j->efaults < 1000000) { if (!j->efaults++) j->efault_reason = c->run->exit_reason; continue; }
      j->t1 = t; j->tsc1 = tsc;
      if (e == EINTR) { c->run->immediate_exit = 0; j->kicked = 1; } else j->err = e;
      break;
    }
    if (c->run->exit_reason == KVM_EXIT_IO && c->run->io.port == 0x92) { j->outs++; continue; }
    j->t1 = t; j->tsc1 = tsc;
    j->port = c->run->exit_reason == KVM_EXIT_IO ? c->run->io.port : -(int)c->run->exit_reason;
    break;
  }
  j->exits = stat(c, "exits") - e0;
  return 0;
}
static void *host_thread(void *arg) {
  struct job *j = arg; if (j->bar) pthread_barrier_wait(j->bar);
  j->t0 = now(); j->res = host_xorshift(j->val, j->n); j->t1 = now(); return 0;
}
static void job_start(struct job *j) { if (pthread_create(&j->th, 0, job_thread, j)) { perror("pthread_create"); exit(1); } }
static void kick(struct job *j) { j->c->run->immediate_exit = 1; pthread_kill(j->th, SIGUSR1); }
/* join, kicking the vCPU if it has not finished after `secs`; returns 1 if it had to be kicked */
static int job_finish(struct job *j, double secs) {
  struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts);
  long ns = ts.tv_nsec + (long)((secs - (long)secs) * 1e9); ts.tv_sec += (long)secs + ns / 1000000000; ts.tv_nsec = ns % 1000000000;
  int k = 0;
  if (pthread_timedjoin_np(j->th, 0, &ts)) { kick(j); pthread_join(j->th, 0); k = 1; }
  j->c->run->immediate_exit = 0;
  return k;
}
static void job_report_bad(struct job *j, const char *what) {
  if (j->port == 0x90 && !j->err && !j->kicked) return;
  printf("  (%s: vCPU%d ended with port/exit %d%s err %s%s)\n", what, j->c->id, j->port,
         j->port == 0xa0 ? " = exception stub" : "", j->err ? strerror(j->err) : "-", j->kicked ? ", kicked" : "");
  if (j->port == 0xa0) { struct kvm_regs g; ioctl(j->c->fd, KVM_GET_REGS, &g); printf("  (vector %llu rip %llx)\n", g.rax & 0xff, g.rip); }
}
/* start k jobs together behind a barrier; wall time = last end - first start (seconds) */
static double run_group(struct job *js, int k, int host, double timeout) {
  pthread_barrier_t bar; pthread_barrier_init(&bar, 0, k);
  for (int i = 0; i < k; i++) {
    js[i].bar = &bar;
    if (pthread_create(&js[i].th, 0, host ? host_thread : job_thread, &js[i])) { perror("pthread_create"); exit(1); }
  }
  for (int i = 0; i < k; i++) { if (host) pthread_join(js[i].th, 0); else job_finish(&js[i], timeout); }
  pthread_barrier_destroy(&bar);
  double a = 1e300, b = 0;
  for (int i = 0; i < k; i++) { if (js[i].t0 < a) a = js[i].t0; if (js[i].t1 > b) b = js[i].t1; }
  return b - a;
}

/* ---------------- a: parallel speedup ---------------- */
static void part_a(void) {
  double ns_iter = 1e9;
  for (int k = 0; k < 3; k++) { double t0 = now(); volatile uint64_t r = host_xorshift(1, 2000000); (void)r; double d = (now() - t0) * 1e9 / 2000000; if (d < ns_iter) ns_iter = d; }
  uint64_t N = getenv("SMP_N") ? strtoull(getenv("SMP_N"), 0, 0) : (uint64_t)((quick ? 10e6 : 175e6) / ns_iter);
  const int R = quick ? 1 : 5; const uint64_t seed = 0x123456789abcdefULL;
  printf("== a: parallel speedup, xorshift64 loop over registers, N = %llu iterations (host loop %.2f ns/iter), median of %d\n", (unsigned long long)N, ns_iter, R);
  uint64_t want1 = host_xorshift(seed, 2 * N), wantN = host_xorshift(seed, N);
  struct vm *v = vm_create(2);
  double g1[5], g2[5], g2a[5], g2b[5], h1[5], h2[5], h2a[5], h2b[5], ex1[5], ex2a[5], ex2b[5]; int bad = 0;
  for (int r = 0; r < R; r++) {
    struct job j1 = {.c = &v->c[0], .op = 1, .n = 2 * N, .val = seed};
    g1[r] = run_group(&j1, 1, 0, 60) * 1e3; ex1[r] = j1.exits; job_report_bad(&j1, "a 1 vCPU");
    if (j1.port != 0x90 || v->c[0].mb[4] != want1) bad++;
    struct job j2[2] = {{.c = &v->c[0], .op = 1, .n = N, .val = seed}, {.c = &v->c[1], .op = 1, .n = N, .val = seed}};
    g2[r] = run_group(j2, 2, 0, 60) * 1e3; g2a[r] = (j2[0].t1 - j2[0].t0) * 1e3; g2b[r] = (j2[1].t1 - j2[1].t0) * 1e3;
    ex2a[r] = j2[0].exits; ex2b[r] = j2[1].exits;
    for (int i = 0; i < 2; i++) { job_report_bad(&j2[i], "a 2 vCPUs"); if (j2[i].port != 0x90 || v->c[i].mb[4] != wantN) bad++; }
    struct job k1 = {.n = 2 * N, .val = seed};
    h1[r] = run_group(&k1, 1, 1, 0) * 1e3; if (k1.res != want1) bad++;
    struct job k2[2] = {{.n = N, .val = seed}, {.n = N, .val = seed}};
    h2[r] = run_group(k2, 2, 1, 0) * 1e3; h2a[r] = (k2[0].t1 - k2[0].t0) * 1e3; h2b[r] = (k2[1].t1 - k2[1].t0) * 1e3;
    if (k2[0].res != wantN || k2[1].res != wantN) bad++;
  }
  double G1 = median(g1, R), G2 = median(g2, R), H1 = median(h1, R), H2 = median(h2, R);
  printf("  host,  1 thread  x 2N: %7.1f ms\n", H1);
  printf("  host,  2 threads x N : %7.1f ms wall (per thread %.1f / %.1f ms)  speedup %.2f\n", H2, median(h2a, R), median(h2b, R), H1 / H2);
  printf("  guest, 1 vCPU    x 2N: %7.1f ms (%.0f exits during the run; guest/host time %.3f)\n", G1, median(ex1, R), G1 / H1);
  printf("  guest, 2 vCPUs   x N : %7.1f ms wall (per vCPU %.1f / %.1f ms, exits %.0f / %.0f)  speedup %.2f\n", G2, median(g2a, R), median(g2b, R), median(ex2a, R), median(ex2b, R), G1 / G2);
  printf("  guest results %s\n", bad ? "MISMATCH with the host loop (see above)" : "equal to the host loop's");
  vm_destroy(v);
}

/* ---------------- b: shared memory while running ---------------- */
/* wait until the guest has set its started flag; 0 on timeout */
static int wait_started(struct vcpu *c, double secs) {
  double t = now() + secs; while (!c->mb[7]) { if (now() > t) return 0; usleep(50); } return 1;
}
static void part_b(void) {
  const int T = quick ? 3 : 20; const double TO = quick ? 0.5 : 1.0;
  printf("== b: vCPU B inside KVM_RUN spinning on a qword at VA 0x%llx (4 KiB PTE, private anonymous host page), %d trials each\n", X_VA, T);
  struct vm *v = vm_create(1); struct vcpu *c = &v->c[0];
  volatile uint64_t *x = (volatile uint64_t *)(v->mem + X_GPA);
  int khz = ioctl(c->fd, KVM_GET_TSC_KHZ, 0);
  for (int var = 0; var < 2; var++) {
    double tsys[64], tseen[64], tret[64], iters[64]; int nsys = 0, nseen = 0, nret = 0, exited = 0, stale = 0, valok = 0, raxok = 0, other = 0;
    uint64_t lastval = 0;
    for (int t = 0; t < T; t++) {
      memset((void *)x, 0x55, 4096); c->mb[7] = 0;
      uint64_t newval = 0x1234567800000000ULL + t;
      struct job j = {.c = c, .op = 2, .addr = X_VA, .val = PAT55}; job_start(&j);
      if (!wait_started(c, TO)) { job_finish(&j, 0); vcpu_reset(c); other++; continue; }
      usleep(2000);                                  /* B has been spinning on X for a while */
      uint64_t tsc0 = __rdtsc(); double t0 = now();
      if (var == 0) madvise((void *)x, 4096, MADV_DONTNEED); else *x = newval;
      double t1 = now();
      int k = job_finish(&j, TO);
      tsys[nsys++] = (t1 - t0) * 1e6;
      if (k) { stale++; vcpu_reset(c); continue; }
      if (j.port != 0x90 || j.err) { job_report_bad(&j, "b"); other++; vcpu_reset(c); continue; }
      exited++;
      uint64_t seen = c->mb[4], gtsc = c->mb[6]; lastval = seen;
      struct kvm_regs g; ioctl(c->fd, KVM_GET_REGS, &g);
      uint64_t expect = var == 0 ? 0 : newval;
      if (seen == expect) valok++;
      if (g.rax == expect) raxok++;
      iters[nret] = (double)c->mb[5];
      tret[nret++] = (j.t1 - t0) * 1e6;
      if (gtsc >= tsc0 && gtsc <= j.tsc1 && khz > 0) tseen[nseen++] = (double)(gtsc - tsc0) * 1e3 / khz;
    }
    const char *what = var == 0 ? "b1 MADV_DONTNEED of the host page" : "b2 host stores a new qword      ";
    printf("  %s: B exited by itself %d/%d (no exit within %.1f s: %d, other %d); value seen = %s in %d/%d (rax %d/%d, last 0x%llx)\n",
           what, exited, T, TO, stale, other, var == 0 ? "0" : "the new value", valok, T, raxok, T, (unsigned long long)lastval);
    printf("  %s: host call %.2f us; guest saw the change %.2f us after it began (rdtsc, median of %d; min %.2f max %.2f); KVM_RUN returned after %.1f us (min %.1f max %.1f); B read %.0f times first\n",
           what, median(tsys, nsys), median(tseen, nseen), nseen, vmin(tseen, nseen), vmax(tseen, nseen), median(tret, nret), vmin(tret, nret), vmax(tret, nret), median(iters, nret));
  }
  /* b3: mprotect while B writes */
  {
    const double W = 300;   /* us the page stays read-only */
    int stopped = 0, leaked = 0, resumed = 0, normal = 0, consistent = 0, kicked = 0, started = 0, efault_trials = 0, efaults = 0, reason = -1;
    double tmp[64], tmpw[64], tres[64], texits[64]; int nres = 0, live = 0;
    for (int t = 0; t < T; t++) {
      *x = 0; c->mb[7] = 0; c->mb[9] = 0;
      struct job j = {.c = c, .op = 5, .addr = X_VA}; job_start(&j);
      if (!wait_started(c, TO)) { job_finish(&j, 0); vcpu_reset(c); continue; }
      started++;
      usleep(2000);
      uint64_t v0 = *x; if (wait_change(x, v0, 0.01) != v0) live++;   /* B is writing right now */
      double t0 = now(); int r1 = mprotect((void *)x, 4096, PROT_READ); double t1 = now();
      uint64_t a = *x; usleep((useconds_t)W); uint64_t b = *x;
      double t2 = now(); int r2 = mprotect((void *)x, 4096, PROT_READ | PROT_WRITE); double t3 = now();
      uint64_t cc = wait_change(x, b, 0.1);                              /* until B writes again (<= 100 ms) */
      double t4 = now();
      c->mb[9] = 1;
      if (job_finish(&j, TO)) { kicked++; vcpu_reset(c); }
      if (r1 || r2) perror("mprotect");
      tmp[started - 1] = (t1 - t0) * 1e6; tmpw[started - 1] = (t3 - t2) * 1e6;
      if (b == a) stopped++; else leaked++;
      if (cc != b) { resumed++; tres[nres++] = (t4 - t2) * 1e6; }
      if (j.port == 0x90 && !j.err) { normal++; if (*x == c->mb[5]) consistent++; }
      if (j.efaults) { efault_trials++; efaults += j.efaults; reason = j.efault_reason; }
      texits[started - 1] = j.exits;
    }
    printf("  b3 mprotect RO for %.0f us then RW while B writes (B seen writing just before: %d/%d): B's writes stopped while RO %d/%d, kept landing (stale writable mapping) %d/%d;\n"
           "     B wrote again after RW %d/%d, %.1f us after the RW call began (median; max %.1f); KVM_RUN failed with EFAULT in %d trials (%d times in all, exit_reason %d; retried by B's thread);\n"
           "     B ended normally %d/%d (final value consistent %d), kicked %d; mprotect RO %.1f us, RW %.1f us, vCPU exits per trial %.0f (medians)\n",
           W, live, started, stopped, started, leaked, started, resumed, started, median(tres, nres), vmax(tres, nres), efault_trials, efaults, reason,
           normal, started, consistent, kicked, median(tmp, started), median(tmpw, started), median(texits, started));
  }
  /* reference: the same host calls while B is out of KVM_RUN (the page mapped: B has just read it) */
  {
    double rm[64], rro[64], rrw[64];
    for (int t = 0; t < T; t++) {
      memset((void *)x, 0x55, 4096);
      if (cmd(c, 2, X_VA, 0) != 0x90) { printf("  (reference: command failed)\n"); break; }   /* reads 0x55.., != 0: back at once */
      double t0 = now(); madvise((void *)x, 4096, MADV_DONTNEED); rm[t] = (now() - t0) * 1e6;
      memset((void *)x, 0x55, 4096);
      if (cmd(c, 2, X_VA, 0) != 0x90) { printf("  (reference: command failed)\n"); break; }
      t0 = now(); mprotect((void *)x, 4096, PROT_READ); double t1 = now(); mprotect((void *)x, 4096, PROT_READ | PROT_WRITE);
      rro[t] = (t1 - t0) * 1e6; rrw[t] = (now() - t1) * 1e6;
    }
    printf("  reference, same calls with B out of KVM_RUN (page mapped, just read by B): MADV_DONTNEED %.2f us, mprotect RO %.2f us, RW %.2f us (medians)\n",
           median(rm, T), median(rro, T), median(rrw, T));
  }
  vm_destroy(v);
}

/* ---------------- c: kick latency ---------------- */
static void part_c(void) {
  const int T = quick ? 5 : 50;
  printf("== c: kick a vCPU spinning at CPL3 (immediate_exit=1 + SIGUSR1 to its thread) -> KVM_RUN returns; %d trials\n", T);
  struct vm *v = vm_create(2);
  for (int nv = 1; nv <= 2; nv++) {
    double lat[2][64], both[64]; int eintr = 0, bad = 0, n = 0;
    for (int t = 0; t < T; t++) {
      struct job j[2]; uint64_t c0[2];
      for (int i = 0; i < nv; i++) { memset(&j[i], 0, sizeof j[i]); j[i].c = &v->c[i]; j[i].op = 3; c0[i] = v->c[i].mb[8]; job_start(&j[i]); }
      int ok = 1; double dl = now() + 1;   /* wait until every vCPU is back in guest mode (its counter moves) */
      for (int i = 0; i < nv; i++) while (v->c[i].mb[8] == c0[i]) { if (now() > dl) { ok = 0; break; } usleep(50); }
      usleep(1000);
      double t0 = now();
      for (int i = 0; i < nv; i++) kick(&j[i]);
      for (int i = 0; i < nv; i++) job_finish(&j[i], 1.0);
      if (!ok) { bad++; continue; }
      double mx = 0;
      for (int i = 0; i < nv; i++) { lat[i][n] = (j[i].t1 - t0) * 1e6; if (lat[i][n] > mx) mx = lat[i][n]; if (j[i].kicked) eintr++; else job_report_bad(&j[i], "c"); }
      both[n++] = mx;
    }
    if (nv == 1)
      printf("  1 vCPU : KVM_RUN returned %.1f us after the kick (median; min %.1f, max %.1f); EINTR %d/%d%s\n", median(lat[0], n), vmin(lat[0], n), vmax(lat[0], n), eintr, n, bad ? " (some trials did not start)" : "");
    else
      printf("  2 vCPUs: first kicked %.1f us, second %.1f us, both out %.1f us (medians; worst both-out %.1f); EINTR %d/%d%s\n", median(lat[0], n), median(lat[1], n), median(both, n), vmax(both, n), eintr, 2 * n, bad ? " (some trials did not start)" : "");
  }
  for (int i = 0; i < 2; i++) vcpu_reset(&v->c[i]);
  vm_destroy(v);
}

/* ---------------- d: exit throughput ---------------- */
static void part_d(void) {
  const int E = quick ? 1000 : 20000, R = quick ? 1 : 5;
  printf("== d: `out` exit loop, %d exits per vCPU, median of %d\n", E, R);
  struct vm *v = vm_create(2), *w = vm_create(1);
  double s1[5], s2[5], s3[5], u1[5], u2a[5], u2b[5], u3a[5], u3b[5]; int bad = 0;
  for (int r = 0; r < R; r++) {
    struct job j1 = {.c = &v->c[0], .op = 4, .n = E};
    double t = run_group(&j1, 1, 0, 60); s1[r] = j1.outs / t; u1[r] = (j1.t1 - j1.t0) * 1e6 / E; if (j1.outs != E || j1.port != 0x90) bad++;
    struct job j2[2] = {{.c = &v->c[0], .op = 4, .n = E}, {.c = &v->c[1], .op = 4, .n = E}};
    t = run_group(j2, 2, 0, 60); s2[r] = (j2[0].outs + j2[1].outs) / t;
    u2a[r] = (j2[0].t1 - j2[0].t0) * 1e6 / E; u2b[r] = (j2[1].t1 - j2[1].t0) * 1e6 / E;
    for (int i = 0; i < 2; i++) if (j2[i].outs != E || j2[i].port != 0x90) bad++;
    struct job j3[2] = {{.c = &v->c[0], .op = 4, .n = E}, {.c = &w->c[0], .op = 4, .n = E}};
    t = run_group(j3, 2, 0, 60); s3[r] = (j3[0].outs + j3[1].outs) / t;
    u3a[r] = (j3[0].t1 - j3[0].t0) * 1e6 / E; u3b[r] = (j3[1].t1 - j3[1].t0) * 1e6 / E;
    for (int i = 0; i < 2; i++) if (j3[i].outs != E || j3[i].port != 0x90) bad++;
  }
  double S1 = median(s1, R);
  printf("  1 vCPU alone          : %6.1f us per exit, %7.0f exits/s\n", median(u1, R), S1);
  printf("  2 vCPUs of one VM     : %6.1f / %6.1f us per exit, %7.0f exits/s in total (x%.2f of 1 vCPU)\n", median(u2a, R), median(u2b, R), median(s2, R), median(s2, R) / S1);
  printf("  2 vCPUs in 2 VMs (ref): %6.1f / %6.1f us per exit, %7.0f exits/s in total (x%.2f of 1 vCPU)\n", median(u3a, R), median(u3b, R), median(s3, R), median(s3, R) / S1);
  if (bad) printf("  (%d runs ended early or with the wrong count)\n", bad);
  vm_destroy(v); vm_destroy(w);
}

static void loadavg(const char *when) {
  char l[128] = "?"; FILE *f = fopen("/proc/loadavg", "r"); if (f) { if (!fgets(l, sizeof l, f)) strcpy(l, "?\n"); fclose(f); }
  printf("load average %s: %s", when, l);
}

int main(int argc, char **argv) {
  setvbuf(stdout, 0, _IONBF, 0);
  const char *w = "abcd";
  quick = getenv("SMP_QUICK") && atoi(getenv("SMP_QUICK"));
  for (int i = 1; i < argc; i++) { if (!strcmp(argv[i], "quick")) quick = 1; else w = argv[i]; }
  struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = on_usr1; sigemptyset(&sa.sa_mask); sa.sa_flags = 0; /* no SA_RESTART */
  sigaction(SIGUSR1, &sa, 0);
  sa.sa_handler = on_alarm; sigaction(SIGALRM, &sa, 0);
  kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) { perror("/dev/kvm"); return 1; }
  runsz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &supported) < 0) { perror("KVM_GET_SUPPORTED_CPUID"); return 1; }
  time_t tt = time(0); char ts[64]; strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S UTC", gmtime(&tt));
  printf("smp_probe %s%s, run at %s, %ld host CPUs online\n", w, quick ? " (quick)" : "", ts, sysconf(_SC_NPROCESSORS_ONLN));
  loadavg("before");
  const unsigned lim = quick ? 30 : 300;
  if (strchr(w, 'a')) { alarm(lim); part_a(); }
  if (strchr(w, 'b')) { alarm(lim); part_b(); }
  if (strchr(w, 'c')) { alarm(lim); part_c(); }
  if (strchr(w, 'd')) { alarm(lim); part_d(); }
  alarm(0);
  loadavg("after");
  return 0;
}
