/* Probe: the TSC as seen by guest code at CPL3 under KVM (for a vDSO clock_gettime).
 *   1. rdtsc / rdtscp at CPL3: exits counted with the vCPU's binary stats (KVM_GET_STATS_FD,
 *      "exits" counts in-kernel exits too), cost per instruction over 1M in one KVM_RUN.
 *   2. CR4.TSD=1: does rdtsc at CPL3 then fault (#GP through the IDT)?
 *   3. rate: KVM_GET_TSC_KHZ vs guest TSC deltas over ~1 s of host CLOCK_MONOTONIC.
 *   4. guest TSC vs host TSC: bounds on (guest - host) from values read around each exit, the
 *      offset KVM reports (KVM_GET_DEVICE_ATTR KVM_VCPU_TSC_OFFSET), stability over 50 runs.
 *   5. vCPU idle for 2 s between KVM_RUN calls: does the TSC still track host time?
 *   6. two vCPUs (the second created 1.5 s after the first): offsets, and a concurrent
 *      ping-pong warp test (each vCPU checks its TSC is >= the value the other just wrote).
 *   7. host: cpu flags, clocksource, host rdtsc cost.
 * Build: gcc -O2 tsc_probe.c -o tsc_probe ; run: ./tsc_probe   (~10 s)
 * Seen here (PVM host, 2026-12-04 10:58-10:59 UTC, 3 runs; output/tsc_run*.txt):
 *   rdtsc/rdtscp run natively at CPL3: 1M of them in one KVM_RUN cause 4-8 exits in total (a
 *   plain spin loop of similar length: 3; these are timer ticks, not rdtsc); rdtsc 9.3-13.4 ns
 *   (24-35 TSC cycles), the same as host rdtsc in the same run (9.3-13.2 ns); rdtscp 17-21 ns.
 *   CR4.TSD=1 is accepted and read back but rdtsc does NOT fault. KVM_GET_TSC_KHZ = 2596106 =
 *   host TSC rate; the guest TSC IS the host TSC (KVM_VCPU_TSC_OFFSET reads 0 and guest reads
 *   fall inside the host bracket; setting the offset or IA32_TSC is accepted but ignored). Exact
 *   after 2 s idle; two vCPUs (created ~6 s apart) agree: offset 0 on both, 0 backward steps in
 *   2 x 200000 alternating lfence;rdtsc reads. rdtscp returns the HOST CPU number in ECX
 *   (TSC_AUX set by the VMM is ignored). Host: constant_tsc, nonstop_tsc, tsc_known_freq, tsc_adjust,
 *   rdpid; clocksource tsc (kvm-clock available).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

extern const uint8_t g_start[], g_end[];
/* r15 = this vCPU's mailbox: 0 op, 8 count, 16 first tsc, 24 last tsc, 32 tsc_aux, 40 warps,
 * 48 worst backward step, 56 vcpu id, 64 warp iterations left.  Shared at 0x6000: turn, 0x6008: last tsc written. */
__asm__(
    ".pushsection .rodata\n.code64\n.globl g_start, g_end\n"
    "g_start:\n"
    "0: outb %al, $0x90\n"
    "  movq (%r15), %rax\n  movq 8(%r15), %rcx\n"
    "  cmpq $1, %rax\n  je 1f\n  cmpq $2, %rax\n  je 2f\n  cmpq $3, %rax\n  je 3f\n  cmpq $5, %rax\n  je 5f\n  cmpq $4, %rax\n  je 4f\n"
    "  jmp 0b\n"
    "1: rdtsc\n  shlq $32, %rdx\n  orq %rdx, %rax\n  movq %rax, 16(%r15)\n  jmp 0b\n"
    "2: rdtsc\n  shlq $32, %rdx\n  orq %rdx, %rax\n  movq %rax, 16(%r15)\n"
    "21: rdtsc\n  decq %rcx\n  jnz 21b\n"
    "  shlq $32, %rdx\n  orq %rdx, %rax\n  movq %rax, 24(%r15)\n  jmp 0b\n"
    "3: movq %rcx, %r8\n  rdtscp\n  shlq $32, %rdx\n  orq %rdx, %rax\n  movq %rax, 16(%r15)\n"
    "31: rdtscp\n  decq %r8\n  jnz 31b\n"
    "  shlq $32, %rdx\n  orq %rdx, %rax\n  movq %rax, 24(%r15)\n  movq %rcx, 32(%r15)\n  jmp 0b\n"
    "4: decq %rcx\n  jnz 4b\n  jmp 0b\n"
    /* warp test */
    "5: movq 56(%r15), %r9\n  movq %r9, %r10\n  xorq $1, %r10\n"
    "51: cmpq %r9, 0x6000\n  je 52f\n  cmpq $0, 0x6010\n  jne 54f\n  pause\n  jmp 51b\n"
    "52: lfence\n  rdtsc\n  shlq $32, %rdx\n  orq %rdx, %rax\n  movq 0x6008, %rbx\n"
    "  cmpq %rbx, %rax\n  jae 53f\n"
    "  incq 40(%r15)\n  movq %rbx, %rdx\n  subq %rax, %rdx\n  cmpq 48(%r15), %rdx\n  jbe 53f\n  movq %rdx, 48(%r15)\n"
    "53: movq %rax, 0x6008\n  movq %r10, 0x6000\n  decq %rcx\n  jnz 51b\n"
    "54: movq %rcx, 64(%r15)\n  jmp 0b\n"
    "g_end:\n.popsection\n");

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
static double median(double *v, int n) { qsort(v, n, sizeof *v, cmpd); return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2; }

static int kvm, vmfd, runsz; static uint8_t *mem;
struct vcpu { int fd, stats; struct kvm_run *run; uint64_t *mb; int id; };
static struct kvm_segment ucs = {.base = 0, .limit = 0xffffffff, .selector = 0x23, .present = 1, .type = 11, .dpl = 3, .db = 0, .s = 1, .l = 1, .g = 1};
static struct kvm_segment uds = {.base = 0, .limit = 0xffffffff, .selector = 0x1b, .present = 1, .type = 3, .dpl = 3, .db = 1, .s = 1, .l = 0, .g = 1};

static uint64_t stat(struct vcpu *c, const char *name) {
  struct kvm_stats_header h; pread(c->stats, &h, sizeof h, 0);
  int dsz = sizeof(struct kvm_stats_desc) + h.name_size; char *d = malloc(dsz * h.num_desc);
  pread(c->stats, d, dsz * h.num_desc, h.desc_offset); uint64_t val = ~0ULL;
  for (unsigned i = 0; i < h.num_desc; i++) {
    struct kvm_stats_desc *s = (void *)(d + i * dsz);
    if (!strcmp(s->name, name)) { pread(c->stats, &val, 8, h.data_offset + s->offset); break; }
  }
  free(d); return val;
}
static struct vcpu *vcpu_create(int id) {
  struct vcpu *c = calloc(1, sizeof *c); c->id = id;
  c->fd = ioctl(vmfd, KVM_CREATE_VCPU, id); if (c->fd < 0) { perror("vcpu"); exit(1); }
  c->run = mmap(0, runsz, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
  c->stats = ioctl(c->fd, KVM_GET_STATS_FD, 0);
  struct { struct kvm_cpuid2 c; struct kvm_cpuid_entry2 e[100]; } cp = {.c.nent = 100};
  ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cp); ioctl(c->fd, KVM_SET_CPUID2, &cp);
  struct kvm_sregs s; ioctl(c->fd, KVM_GET_SREGS, &s);
  s.cr3 = 0x1000; s.cr4 = (1 << 5) | (1 << 9) | (1 << 10); s.cr0 = 0x80050033; s.efer = 0x501;
  s.cs = ucs; s.ds = s.es = s.fs = s.gs = s.ss = uds; s.gdt.base = 0x500; s.gdt.limit = 55; s.idt.base = 0x700; s.idt.limit = 32 * 16 - 1;
  struct kvm_segment tr = {.base = 0x600, .limit = 103, .selector = 0x28, .present = 1, .type = 11, .dpl = 0, .s = 0}; s.tr = tr;
  if (ioctl(c->fd, KVM_SET_SREGS, &s) < 0) { perror("sregs"); exit(1); }
  struct { struct kvm_msrs m; struct kvm_msr_entry e[1]; } msrs = {.m.nmsrs = 1, .e = {{.index = 0xc0000103, .data = 0x100 + id}}}; /* TSC_AUX */
  if (ioctl(c->fd, KVM_SET_MSRS, &msrs) != 1) printf("  (TSC_AUX not set)\n");
  c->mb = (uint64_t *)(mem + 0x5000 + id * 0x100); c->mb[7] = id;
  struct kvm_regs g = {0}; g.rip = 0x10000; g.rflags = 2; g.rsp = 0x8000 - id * 0x1000; g.r15 = 0x5000 + id * 0x100;
  ioctl(c->fd, KVM_SET_REGS, &g);
  return c;
}
static int run(struct vcpu *c) { /* returns io port */
  for (;;) {
    if (ioctl(c->fd, KVM_RUN, 0) < 0) { if (errno == EINTR) continue; perror("KVM_RUN"); exit(1); }
    if (c->run->exit_reason == KVM_EXIT_IO) return c->run->io.port;
    printf("exit reason %d\n", c->run->exit_reason); exit(1);
  }
}
static uint64_t cmd(struct vcpu *c, uint64_t op, uint64_t n) { c->mb[0] = op; c->mb[1] = n; int p = run(c); return p; }
static int64_t tsc_offset_attr(struct vcpu *c) {
  int64_t off = 0; struct kvm_device_attr a = {.group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET, .addr = (uintptr_t)&off};
  if (ioctl(c->fd, KVM_GET_DEVICE_ATTR, &a) < 0) return INT64_MIN;
  return off;
}
/* one guest TSC read bracketed by host rdtsc: returns guest value; lo/hi get host TSC before/after */
static uint64_t bracket(struct vcpu *c, uint64_t *lo, uint64_t *hi) {
  c->mb[0] = 1; *lo = __rdtsc(); run(c); *hi = __rdtsc(); return c->mb[2];
}
/* warp test: the guests stop early when the VMM sets the flag at 0x6010 (after 3 s) */
#define WARP_N 200000
static void *warp_thread(void *arg) { struct vcpu *c = arg; if (cmd(c, 5, WARP_N) != 0x90) printf("   warp: vCPU%d unexpected exit\n", c->id); return 0; }

int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  time_t tt = time(0); char ts[64]; strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S UTC", gmtime(&tt));
  printf("tsc_probe, run at %s\n", ts);
  /* host facts */
  { FILE *f = fopen("/proc/cpuinfo", "r"); char l[8192]; printf("host cpu flags:");
    while (fgets(l, sizeof l, f)) if (!strncmp(l, "flags", 5)) {
      const char *want[] = {" tsc ", " rdtscp ", " constant_tsc ", " nonstop_tsc ", " tsc_known_freq ", " tsc_adjust ", " tsc_deadline_timer ", " tsc_reliable ", " rdpid "};
      strcat(l, " "); for (unsigned i = 0; i < sizeof want / sizeof *want; i++) printf(" %s=%s", want[i] + 1, strstr(l, want[i]) ? "yes" : "no"); break; }
    fclose(f); printf("\n");
    f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r"); if (f && fgets(l, sizeof l, f)) printf("host clocksource: %s", l); if (f) fclose(f);
    f = fopen("/sys/devices/system/clocksource/clocksource0/available_clocksource", "r"); if (f && fgets(l, sizeof l, f)) printf("available: %s", l); if (f) fclose(f); }
  kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC); runsz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  printf("KVM_CAP_GET_TSC_KHZ=%d KVM_CAP_TSC_CONTROL=%d KVM_CAP_VM_TSC_CONTROL=%d\n", ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GET_TSC_KHZ),
         ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL), ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TSC_CONTROL));
  /* host TSC rate and rdtsc cost */
  double h0 = now(); uint64_t c0 = __rdtsc(); usleep(300000); double h1 = now(); uint64_t c1 = __rdtsc();
  double host_khz = (c1 - c0) / (h1 - h0) / 1e3;
  double tr[7]; for (int k = 0; k < 7; k++) { double t0 = now(); uint64_t x = 0; for (int i = 0; i < 1000000; i++) x += __rdtsc(); tr[k] = (now() - t0) * 1e3; if (!x) printf("."); }
  printf("host: TSC rate %.0f kHz (vs CLOCK_MONOTONIC over 0.3 s); host rdtsc %.2f ns each (median of 7 x 1M)\n", host_khz, median(tr, 7));

  vmfd = ioctl(kvm, KVM_CREATE_VM, 0);
  size_t msz = 4 << 20; mem = mmap(0, msz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  struct kvm_userspace_memory_region reg = {.slot = 0, .guest_phys_addr = 0, .memory_size = msz, .userspace_addr = (uintptr_t)mem};
  ioctl(vmfd, KVM_SET_USER_MEMORY_REGION, &reg);
  uint64_t *pml4 = (uint64_t *)(mem + 0x1000), *pdpt = (uint64_t *)(mem + 0x2000), *pd = (uint64_t *)(mem + 0x3000);
  pml4[0] = 0x2000 | 7; pdpt[0] = 0x3000 | 7; pd[0] = 0x87; pd[1] = 0x200000 | 0x87;
  uint64_t *gdt = (uint64_t *)(mem + 0x500);
  gdt[0] = 0; gdt[1] = 0x00af9b000000ffffULL; gdt[2] = 0x00cf93000000ffffULL; gdt[3] = 0x00cff3000000ffffULL; gdt[4] = 0x00affb000000ffffULL;
  uint64_t tss = 0x600; uint64_t rsp0 = 0x9000; memcpy(mem + tss + 4, &rsp0, 8);
  gdt[5] = 103 | ((tss & 0xffffff) << 16) | (0x89ULL << 40); gdt[6] = 0;
  uint64_t *idt = (uint64_t *)(mem + 0x700);
  for (int v = 0; v < 32; v++) { uint64_t h = 0x20000 + v * 16; uint8_t *hs = mem + h; hs[0] = 0xb0; hs[1] = v; hs[2] = 0xe6; hs[3] = 0x83; hs[4] = 0xf4;
    idt[2 * v] = (h & 0xffff) | (0x08ULL << 16) | (0x8eULL << 40) | (((h >> 16) & 0xffff) << 48); idt[2 * v + 1] = h >> 32; }
  memcpy(mem + 0x10000, g_start, g_end - g_start);
  double tcreate0 = now();
  struct vcpu *a = vcpu_create(0);
  int khz = ioctl(a->fd, KVM_GET_TSC_KHZ, 0);
  printf("vCPU0: KVM_GET_TSC_KHZ = %d kHz (host measured %.0f)\n", khz, host_khz);
  if (run(a) != 0x90) { printf("start failed\n"); return 1; }

  /* 1. cost and exits */
  printf("-- 1. rdtsc/rdtscp at CPL3, 1M in one KVM_RUN (median of 7)\n");
  for (int op = 2; op <= 3; op++) {
    double ns[7], cyc[7]; uint64_t ex = 0;
    for (int k = 0; k < 7; k++) {
      uint64_t e0 = stat(a, "exits"); double t0 = now(); cmd(a, op, 1000000); double t1 = now(); ex += stat(a, "exits") - e0;
      ns[k] = (t1 - t0) * 1e9 / 1e6; cyc[k] = (double)(a->mb[3] - a->mb[2]) / 1e6;
    }
    printf("  %-6s %.2f ns per instruction (VMM-timed, incl. 1 exit), %.1f guest TSC cycles per instruction, exits per 1M-loop: %.1f (stat \"exits\")%s\n",
           op == 2 ? "rdtsc" : "rdtscp", median(ns, 7), median(cyc, 7), ex / 7.0,
           op == 3 ? "" : "");
    if (op == 3) printf("         rdtscp TSC_AUX seen by the guest: 0x%llx (set 0x100 via KVM_SET_MSRS 0xc0000103)\n", (unsigned long long)a->mb[4]);
  }
  { uint64_t e0 = stat(a, "exits"); double t0 = now(); cmd(a, 4, 25000000); double t1 = now();
    printf("  reference: a plain spin loop (no rdtsc) of %.1f ms in one KVM_RUN: %llu exits\n", (t1 - t0) * 1e3, (unsigned long long)(stat(a, "exits") - e0)); }
  { uint64_t e0 = stat(a, "exits"); double t[200]; for (int i = 0; i < 200; i++) { double t0 = now(); cmd(a, 0, 0); t[i] = (now() - t0) * 1e6; }
    printf("  reference: empty command round trip %.1f us, %.2f exits each\n", median(t, 200), (stat(a, "exits") - e0) / 200.0); }

  /* 2. CR4.TSD */
  { struct vcpu *b = vcpu_create(3); run(b);
    struct kvm_sregs s; ioctl(b->fd, KVM_GET_SREGS, &s); s.cr4 |= 1 << 2; int r = ioctl(b->fd, KVM_SET_SREGS, &s);
    struct kvm_sregs s2; ioctl(b->fd, KVM_GET_SREGS, &s2);
    int p = cmd(b, 1, 0); struct kvm_regs g; ioctl(b->fd, KVM_GET_REGS, &g);
    printf("-- 2. CR4.TSD=1 (set_sregs %d, CR4 read back %llx): rdtsc at CPL3 -> %s", r, s2.cr4, p == 0x83 ? "exception, vector " : "no fault");
    if (p == 0x83) { uint64_t *f = (uint64_t *)(mem + g.rsp); printf("%llu (error code %llx, rip %llx)", g.rax & 0xff, (unsigned long long)f[0], (unsigned long long)f[1]); }
    printf("\n"); }

  /* 3. rate over ~1 s */
  { uint64_t lo0, hi0, lo1, hi1; uint64_t g0 = bracket(a, &lo0, &hi0); double t0 = now(); usleep(1000000);
    double t1 = now(); uint64_t g1 = bracket(a, &lo1, &hi1); (void)t0;
    /* host time of the guest reads: approximate with host TSC bracket midpoints converted via host rate */
    double dt_host = (double)(((lo1 + hi1) / 2) - ((lo0 + hi0) / 2)) / (host_khz * 1e3);
    printf("-- 3. guest TSC rate over %.3f s: %.0f kHz (guest delta / host-TSC-timed delta); KVM says %d kHz\n", t1 - t0 + 0.0, (g1 - g0) / dt_host / 1e3, khz);
    /* and against CLOCK_MONOTONIC directly, reading the clock right after each exit */
    a->mb[0] = 1; run(a); double m0 = now(); uint64_t x0 = a->mb[2]; usleep(1000000); a->mb[0] = 1; run(a); double m1 = now(); uint64_t x1 = a->mb[2];
    printf("   vs CLOCK_MONOTONIC read right after each exit: %.0f kHz (error from exit latency ~%.0f ppm)\n", (x1 - x0) / (m1 - m0) / 1e3, 50e-6 / (m1 - m0) * 1e6); }

  /* 4. offset bounds and stability */
  { int64_t lomax = INT64_MIN, himin = INT64_MAX; int64_t attr0 = tsc_offset_attr(a);
    double d[50];
    for (int i = 0; i < 50; i++) { uint64_t lo, hi; uint64_t g = bracket(a, &lo, &hi);
      int64_t o_lo = (int64_t)(g - hi), o_hi = (int64_t)(g - lo); if (o_lo > lomax) lomax = o_lo; if (o_hi < himin) himin = o_hi; d[i] = (double)(hi - lo); if (i % 10 == 9) usleep(20000); }
    printf("-- 4. guest-host offset bounds from 50 bracketed reads over ~0.1 s: [%lld, %lld] (width %lld cycles = %.1f us; median bracket %.0f cycles)\n",
           (long long)lomax, (long long)himin, (long long)(himin - lomax), (himin - lomax) / host_khz * 1e3, median(d, 50));
    printf("   KVM_VCPU_TSC_OFFSET attribute: %lld %s\n", (long long)attr0, attr0 >= lomax && attr0 <= himin ? "(inside the bounds: guest TSC = host TSC + this offset)" : "(outside the bounds)");
    /* 5. idle */
    uint64_t lo, hi; uint64_t g0 = bracket(a, &lo, &hi); double t0 = now(); sleep(2); uint64_t lo2, hi2; uint64_t g1 = bracket(a, &lo2, &hi2); double t1 = now();
    printf("-- 5. vCPU idle %.3f s between KVM_RUNs: guest TSC advanced %.6f s at %d kHz; host TSC advanced %.6f s; offset bounds after [%lld, %lld] (attr %lld)\n",
           t1 - t0, (g1 - g0) / (khz * 1e3), khz, ((lo2 + hi2) / 2.0 - (lo + hi) / 2.0) / (host_khz * 1e3), (long long)(g1 - hi2), (long long)(g1 - lo2), (long long)tsc_offset_attr(a)); }

  /* 4b. can the VMM move the guest TSC? */
  { uint64_t lo, hi; int64_t want = -(int64_t)__rdtsc();
    struct kvm_device_attr at = {.group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET, .addr = (uintptr_t)&want};
    int r = ioctl(a->fd, KVM_SET_DEVICE_ATTR, &at); uint64_t g = bracket(a, &lo, &hi);
    printf("-- 4b. KVM_SET_DEVICE_ATTR TSC_OFFSET=%lld -> %d; attr reads %lld; guest then reads %llu (host %llu..%llu)\n", (long long)want, r,
           (long long)tsc_offset_attr(a), (unsigned long long)g, (unsigned long long)lo, (unsigned long long)hi);
    struct { struct kvm_msrs m; struct kvm_msr_entry e[1]; } msrs = {.m.nmsrs = 1, .e = {{.index = 0x10, .data = 1000}}};
    r = ioctl(a->fd, KVM_SET_MSRS, &msrs); g = bracket(a, &lo, &hi);
    struct { struct kvm_msrs m; struct kvm_msr_entry e[1]; } rd = {.m.nmsrs = 1, .e = {{.index = 0x10}}}; ioctl(a->fd, KVM_GET_MSRS, &rd);
    printf("       KVM_SET_MSRS IA32_TSC=1000 -> %d; guest then reads %llu (host %llu..%llu); KVM_GET_MSRS IA32_TSC says %llu; attr %lld\n", r,
           (unsigned long long)g, (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)rd.e[0].data, (long long)tsc_offset_attr(a));
    want = 0; ioctl(a->fd, KVM_SET_DEVICE_ATTR, &at); }

  /* 6. second vCPU created 1.5 s later */
  usleep(1500000);
  struct vcpu *b = vcpu_create(1); double tcreate1 = now(); run(b);
  { uint64_t lo, hi; uint64_t ga = bracket(a, &lo, &hi); int64_t oa = (int64_t)(ga - hi); uint64_t gb = bracket(b, &lo, &hi); int64_t ob = (int64_t)(gb - hi);
    printf("-- 6. vCPU1 created %.2f s after vCPU0: KVM_VCPU_TSC_OFFSET vCPU0 %lld, vCPU1 %lld (diff %lld); offset lower bounds from reads %lld / %lld\n",
           tcreate1 - tcreate0, (long long)tsc_offset_attr(a), (long long)tsc_offset_attr(b), (long long)(tsc_offset_attr(b) - tsc_offset_attr(a)), (long long)oa, (long long)ob);
    memset(mem + 0x6000, 0, 24); a->mb[5] = a->mb[6] = b->mb[5] = b->mb[6] = 0;
    pthread_t t1, t2; double t0 = now(); volatile uint64_t *stop = (uint64_t *)(mem + 0x6010); int timedout = 0;
    pthread_create(&t1, 0, warp_thread, a); pthread_create(&t2, 0, warp_thread, b);
    while (pthread_tryjoin_np(t1, 0)) { usleep(10000); if (now() - t0 > 3 && !*stop) { *stop = 1; timedout = 1; } }
    pthread_join(t2, 0);
    printf("   warp test: 2 x %llu of %d alternating reads (lfence;rdtsc) in %.2f s%s: backward steps vCPU0 %llu, vCPU1 %llu (worst %llu / %llu cycles)\n", (unsigned long long)(WARP_N - a->mb[8]), WARP_N, now() - t0, timedout ? " (stopped after 3 s, partial)" : "",
           (unsigned long long)a->mb[5], (unsigned long long)b->mb[5], (unsigned long long)a->mb[6], (unsigned long long)b->mb[6]); }
  return 0;
}
