/* Probe: what the 1st..6th vCPU of one VM costs to create and set up, what its first KVM_RUN
 * costs, and what vCPUs that exist but are not running cost (host memory, threads, CPU).
 *   1. 30 VMs x 6 vCPUs: median time of KVM_CREATE_VCPU, mmap(kvm_run), KVM_SET_CPUID2,
 *      KVM_SET_SREGS, KVM_SET_MSRS (STAR/LSTAR/SFMASK), KVM_SET_REGS, first KVM_RUN (guest: `out`),
 *      second KVM_RUN, for vCPU index 0..5.
 *   2. re-initialising an existing vCPU for reuse (SET_SREGS + SET_REGS + SET_MSRS + one run).
 *   3. 20 VMs x 6 vCPUs (each run once) held idle for 2 s: process RSS, threads, kernel memory
 *      (MemAvailable, Slab, KernelStack, PageTables from /proc/meminfo), CPU time used while idle,
 *      kernel threads named kvm* before/after; teardown time per VM.
 *   3b. the memory deltas again in 9 small rounds of 12 vCPUs (medians).
 * Build: gcc -O2 vcpu_cost_probe.c -o vcpu_cost_probe ; run: ./vcpu_cost_probe   (~4 s)
 * Seen here (PVM host, 2026-12-04 10:59 UTC, 3 runs; output/vcpu_cost_run*.txt):
 *   vCPUs 1-5 each: KVM_CREATE_VCPU 32-36 us, mmap 2-3 us, KVM_SET_CPUID2 60-64 us (the most
 *   expensive step), SET_SREGS 11-12 us, SET_MSRS 5-6 us, SET_REGS 5 us, first KVM_RUN 71-77 us
 *   vs 39-41 us afterwards: ~186-202 us per vCPU until it has run once. vCPU 0 costs more:
 *   KVM_CREATE_VCPU 186-195 us (39-40 us in runs at 10:49-10:55), first KVM_RUN 105-114 us.
 *   Re-initialising a used vCPU: ~21-22 us. Idle vCPUs (out of KVM_RUN) use no CPU; Slab
 *   +59-67 kB each once set up, +10-19 kB after the first run (other page allocations at first
 *   run: 0-400 kB per vCPU, not reproducible on this shared machine); one "kvm-nx-lpage-re" thread
 *   per VM appears in the process at the first KVM_RUN. Teardown 0.25 ms (1 vCPU) / 0.55-0.59 ms
 *   (6 vCPUs) per VM.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
static double median(double *v, int n) { qsort(v, n, sizeof *v, cmpd); return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2; }
static long meminfo(const char *key) {
  FILE *f = fopen("/proc/meminfo", "r"); char l[256]; long v = -1; size_t k = strlen(key);
  while (fgets(l, sizeof l, f)) if (!strncmp(l, key, k) && l[k] == ':') { v = atol(l + k + 1); break; }
  fclose(f); return v;
}
static long status(const char *key) {
  FILE *f = fopen("/proc/self/status", "r"); char l[256]; long v = -1; size_t k = strlen(key);
  while (fgets(l, sizeof l, f)) if (!strncmp(l, key, k) && l[k] == ':') { v = atol(l + k + 1); break; }
  fclose(f); return v;
}
static int kvm_kthreads(void) { /* kernel threads whose name starts with kvm */
  DIR *d = opendir("/proc"); struct dirent *e; int n = 0; char p[300], c[64];
  while ((e = readdir(d))) { if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    snprintf(p, sizeof p, "/proc/%s/comm", e->d_name); FILE *f = fopen(p, "r"); if (!f) continue;
    if (fgets(c, sizeof c, f) && !strncmp(c, "kvm", 3)) n++;
    fclose(f); }
  closedir(d); return n;
}
static void thread_names(char *out, size_t n) { /* distinct comm values of this process's threads, with counts */
  DIR *d = opendir("/proc/self/task"); struct dirent *e; char names[64][32]; int cnt[64], k = 0; char p[300], c[32];
  while ((e = readdir(d))) { if (e->d_name[0] == '.') continue; snprintf(p, sizeof p, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(p, "r"); if (!f) continue; if (fgets(c, sizeof c, f)) { c[strcspn(c, "\n")] = 0; int j;
      for (j = 0; j < k; j++) if (!strcmp(names[j], c)) { cnt[j]++; break; }
      if (j == k && k < 64) { strcpy(names[k], c); cnt[k++] = 1; } }
    fclose(f); }
  closedir(d); out[0] = 0; for (int j = 0; j < k; j++) { char b[64]; snprintf(b, sizeof b, "%s%s x%d", j ? ", " : "", names[j], cnt[j]); strncat(out, b, n - strlen(out) - 1); }
}
static double cputime(void) { struct rusage r; getrusage(RUSAGE_SELF, &r); return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) * 1e-6; }

static int kvm, runsz;
static struct { struct kvm_cpuid2 c; struct kvm_cpuid_entry2 e[100]; } cpuid = {.c.nent = 100};
static struct kvm_segment ucs = {.base = 0, .limit = 0xffffffff, .selector = 0x23, .present = 1, .type = 11, .dpl = 3, .db = 0, .s = 1, .l = 1, .g = 1};
static struct kvm_segment uds = {.base = 0, .limit = 0xffffffff, .selector = 0x1b, .present = 1, .type = 3, .dpl = 3, .db = 1, .s = 1, .l = 0, .g = 1};
#define NV 6
enum { S_CREATE, S_MMAP, S_CPUID, S_SREGS, S_MSRS, S_REGS, S_RUN1, S_RUN2, NS };
static const char *sname[NS] = {"KVM_CREATE_VCPU", "mmap kvm_run", "KVM_SET_CPUID2", "KVM_SET_SREGS", "KVM_SET_MSRS(3)", "KVM_SET_REGS", "1st KVM_RUN", "2nd KVM_RUN"};

struct vm { int fd; uint8_t *mem; size_t msz; int vcpu[NV]; struct kvm_run *run[NV]; };
static struct vm *vm_new(void) {
  struct vm *v = calloc(1, sizeof *v); v->fd = ioctl(kvm, KVM_CREATE_VM, 0);
  v->msz = 128 << 20; v->mem = mmap(0, v->msz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  struct kvm_userspace_memory_region reg = {.slot = 0, .guest_phys_addr = 0, .memory_size = v->msz, .userspace_addr = (uintptr_t)v->mem};
  ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &reg);
  uint64_t *pml4 = (uint64_t *)(v->mem + 0x1000), *pdpt = (uint64_t *)(v->mem + 0x2000), *pd = (uint64_t *)(v->mem + 0x3000);
  pml4[0] = 0x2000 | 7; pdpt[0] = 0x3000 | 7; pd[0] = 0x87;
  uint64_t *gdt = (uint64_t *)(v->mem + 0x500);
  gdt[0] = 0; gdt[1] = 0x00af9b000000ffffULL; gdt[2] = 0x00cf93000000ffffULL; gdt[3] = 0x00cff3000000ffffULL; gdt[4] = 0x00affb000000ffffULL;
  uint8_t code[] = {0xe6, 0x90, 0xeb, 0xfc}; memcpy(v->mem + 0x10000, code, sizeof code); /* l: out 0x90,al ; jmp l */
  return v;
}
static void vm_free(struct vm *v) {
  for (int i = 0; i < NV; i++) if (v->vcpu[i] > 0) { munmap(v->run[i], runsz); close(v->vcpu[i]); }
  close(v->fd); munmap(v->mem, v->msz); free(v);
}
static int do_run(struct vm *v, int i) {
  if (ioctl(v->vcpu[i], KVM_RUN, 0) < 0) { perror("run"); exit(1); }
  if (v->run[i]->exit_reason != KVM_EXIT_IO) { printf("exit %d\n", v->run[i]->exit_reason); exit(1); }
  return 0;
}
static void setup_regs(struct vm *v, int i, double *t) {
  double t0 = now();
  struct kvm_sregs s; ioctl(v->vcpu[i], KVM_GET_SREGS, &s);
  s.cr3 = 0x1000; s.cr4 = (1 << 5) | (1 << 9) | (1 << 10); s.cr0 = 0x80050033; s.efer = 0x501;
  s.cs = ucs; s.ds = s.es = s.fs = s.gs = s.ss = uds; s.gdt.base = 0x500; s.gdt.limit = 39;
  if (ioctl(v->vcpu[i], KVM_SET_SREGS, &s) < 0) { perror("sregs"); exit(1); }
  double t1 = now();
  struct { struct kvm_msrs m; struct kvm_msr_entry e[3]; } msrs = {.m.nmsrs = 3, .e = {{.index = 0xC0000081, .data = (0x10ULL << 48) | (0x08ULL << 32)}, {.index = 0xC0000082, .data = 0x20000}, {.index = 0xC0000084, .data = 0x200}}};
  if (ioctl(v->vcpu[i], KVM_SET_MSRS, &msrs) != 3) printf("set_msrs short\n");
  double t2 = now();
  struct kvm_regs g = {0}; g.rip = 0x10000; g.rflags = 2; g.rsp = 0x8000; ioctl(v->vcpu[i], KVM_SET_REGS, &g);
  double t3 = now();
  if (t) { t[S_SREGS] = (t1 - t0) * 1e6; t[S_MSRS] = (t2 - t1) * 1e6; t[S_REGS] = (t3 - t2) * 1e6; }
}
static void add_vcpu(struct vm *v, int i, double *t) {
  double t0 = now(); v->vcpu[i] = ioctl(v->fd, KVM_CREATE_VCPU, i); if (v->vcpu[i] < 0) { perror("KVM_CREATE_VCPU"); exit(1); }
  double t1 = now(); v->run[i] = mmap(0, runsz, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu[i], 0);
  double t2 = now(); ioctl(v->vcpu[i], KVM_SET_CPUID2, &cpuid);
  double t3 = now(); setup_regs(v, i, t);
  double t4 = now(); do_run(v, i); double t5 = now(); do_run(v, i); double t6 = now();
  if (t) { t[S_CREATE] = (t1 - t0) * 1e6; t[S_MMAP] = (t2 - t1) * 1e6; t[S_CPUID] = (t3 - t2) * 1e6; t[S_RUN1] = (t5 - t4) * 1e6; t[S_RUN2] = (t6 - t5) * 1e6; }
}

int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  time_t tt = time(0); char ts[64]; strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S UTC", gmtime(&tt));
  printf("vcpu_cost_probe, run at %s\n", ts);
  struct rlimit rl = {4096, 4096}; setrlimit(RLIMIT_NOFILE, &rl);
  kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC); runsz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cpuid);
  printf("KVM_GET_VCPU_MMAP_SIZE %d bytes; KVM_CAP_NR_VCPUS %d, KVM_CAP_MAX_VCPUS %d\n", runsz, ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS), ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS));

  /* 1 */
  const int NVM = 30; static double t[NV][NS][30]; double tvm[30];
  for (int k = 0; k < NVM; k++) {
    double t0 = now(); struct vm *v = vm_new(); tvm[k] = (now() - t0) * 1e6;
    for (int i = 0; i < NV; i++) { double tt_[NS]; add_vcpu(v, i, tt_); for (int s = 0; s < NS; s++) t[i][s][k] = tt_[s]; }
    vm_free(v);
  }
  printf("-- 1. per-step time in us, median of %d VMs (VM create + 128 MiB memslot: %.0f us)\n%-18s", NVM, median(tvm, NVM), "vCPU index");
  for (int i = 0; i < NV; i++) printf(" %8d", i);
  printf("\n");
  for (int s = 0; s < NS; s++) { printf("%-18s", sname[s]); for (int i = 0; i < NV; i++) printf(" %8.1f", median(t[i][s], NVM)); printf("\n"); }
  printf("%-18s", "sum, ready+ran");
  for (int i = 0; i < NV; i++) { double sum = 0; for (int s = 0; s < S_RUN2; s++) sum += median(t[i][s], NVM); printf(" %8.1f", sum); }
  printf("\n");

  /* 2: reuse */
  { struct vm *v = vm_new(); add_vcpu(v, 0, 0); double r[200], rr[200];
    for (int k = 0; k < 200; k++) { double t0 = now(); setup_regs(v, 0, 0); double t1 = now(); do_run(v, 0); rr[k] = (now() - t1) * 1e6; r[k] = (t1 - t0) * 1e6; }
    printf("-- 2. re-initialising a used vCPU (GET+SET_SREGS, SET_MSRS, SET_REGS): %.1f us, then KVM_RUN to the first exit %.1f us (median of 200)\n", median(r, 200), median(rr, 200));
    vm_free(v); }

  /* 3: idle cost */
  { const int K = 20; struct vm *vs[20]; char names[512];
    const char *keys[] = {"MemAvailable", "MemFree", "Slab", "SUnreclaim", "KernelStack", "PageTables", "VmallocUsed", "Percpu"}; enum { NK = 8 };
    long m[4][NK], rss[4], th[4]; int kt[4];
#define SNAP(j) do { for (int q = 0; q < NK; q++) m[j][q] = meminfo(keys[q]); rss[j] = status("VmRSS"); th[j] = status("Threads"); kt[j] = kvm_kthreads(); } while (0)
    SNAP(0);
    for (int k = 0; k < K; k++) vs[k] = vm_new();
    SNAP(1);
    for (int k = 0; k < K; k++) for (int i = 0; i < NV; i++) { /* create + set up, no run */
      struct vm *v = vs[k]; v->vcpu[i] = ioctl(v->fd, KVM_CREATE_VCPU, i); if (v->vcpu[i] < 0) { perror("vcpu"); exit(1); }
      v->run[i] = mmap(0, runsz, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu[i], 0); ioctl(v->vcpu[i], KVM_SET_CPUID2, &cpuid); setup_regs(v, i, 0); }
    SNAP(2);
    for (int k = 0; k < K; k++) for (int i = 0; i < NV; i++) { do_run(vs[k], i); do_run(vs[k], i); }
    SNAP(3); thread_names(names, sizeof names);
    printf("-- 3. host memory and threads (kB deltas from /proc/meminfo and /proc/self/status; other work on the machine adds noise)\n");
    const char *stage[4] = {"", "+20 VMs (128 MiB slot each, no vCPU)", "+120 vCPUs created + set up, never run", "after one KVM_RUN on each vCPU"};
    for (int j = 1; j < 4; j++) { printf("   %-40s", stage[j]); for (int q = 0; q < NK; q++) printf(" %s %+ld", keys[q], m[j][q] - m[j - 1][q]);
      printf(" VmRSS %+ld threads %ld->%ld kvm-kthreads %d->%d\n", rss[j] - rss[j - 1], th[j - 1], th[j], kt[j - 1], kt[j]); }
    printf("   per vCPU: creation+setup: Slab %+.1f kB, MemAvailable %+.1f kB; first run: Slab %+.1f kB, MemAvailable %+.1f kB, VmallocUsed %+.1f kB\n",
           (double)(m[2][2] - m[1][2]) / (K * NV), (double)(m[2][0] - m[1][0]) / (K * NV), (double)(m[3][2] - m[2][2]) / (K * NV), (double)(m[3][0] - m[2][0]) / (K * NV), (double)(m[3][6] - m[2][6]) / (K * NV));
    printf("   threads of this process after the first runs: %s\n", names);
    double c0 = cputime(), w0 = now(); long a0 = meminfo("MemAvailable"); sleep(2); double c1 = cputime(), w1 = now();
    printf("   idle %.2f s with all vCPUs out of KVM_RUN: process CPU time %.4f s (incl. helper threads); MemAvailable %+ld kB meanwhile\n", w1 - w0, c1 - c0, meminfo("MemAvailable") - a0);
    double t0 = now(); for (int k = 0; k < K; k++) vm_free(vs[k]); double t1 = now();
    struct vm *one[20]; for (int k = 0; k < K; k++) { one[k] = vm_new(); add_vcpu(one[k], 0, 0); }
    double t2 = now(); for (int k = 0; k < K; k++) vm_free(one[k]); double t3 = now();
    printf("   teardown: %.0f us per VM with %d vCPUs (each run), %.0f us per VM with 1 vCPU\n", (t1 - t0) * 1e6 / K, NV, (t3 - t2) * 1e6 / K); }

  /* 3b: the same memory deltas in 9 small rounds (2 VMs x 6 vCPUs each), medians: less exposed to other work */
  { enum { R = 9 }; double ds[R], dr[R], ss[R], sr[R]; struct vm *keep[2 * R];
    for (int r = 0; r < R; r++) {
      struct vm *a = vm_new(), *b = vm_new(); keep[2 * r] = a; keep[2 * r + 1] = b;
      long f0 = meminfo("MemFree"), s0 = meminfo("Slab");
      for (int k = 0; k < 2; k++) { struct vm *v = k ? b : a; for (int i = 0; i < NV; i++) {
        v->vcpu[i] = ioctl(v->fd, KVM_CREATE_VCPU, i); v->run[i] = mmap(0, runsz, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu[i], 0);
        ioctl(v->vcpu[i], KVM_SET_CPUID2, &cpuid); setup_regs(v, i, 0); } }
      long f1 = meminfo("MemFree"), s1 = meminfo("Slab");
      for (int k = 0; k < 2; k++) for (int i = 0; i < NV; i++) { do_run(k ? b : a, i); do_run(k ? b : a, i); }
      long f2 = meminfo("MemFree"), s2 = meminfo("Slab");
      ds[r] = (f0 - f1) / 12.0; dr[r] = (f1 - f2) / 12.0; ss[r] = (s1 - s0) / 12.0; sr[r] = (s2 - s1) / 12.0;
    }
    printf("-- 3b. per vCPU, median of %d rounds of 12 vCPUs: created+set up: MemFree -%.0f kB (Slab +%.0f kB); first KVM_RUN: MemFree -%.0f kB (Slab +%.0f kB)\n",
           R, median(ds, R), median(ss, R), median(dr, R), median(sr, R));
    for (int r = 0; r < 2 * R; r++) vm_free(keep[r]); }
  return 0;
}
