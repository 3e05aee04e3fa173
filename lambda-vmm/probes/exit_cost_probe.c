/* Probe: does an exit from ring 3 cost more when the guest has touched more memory?
 * A CPL3 guest (4-level paging, identity-mapped) first reads one byte of each of N pages,
 * then loops on `out 0x10, al`; the host times 20,000 KVM_RUN round trips after the touches.
 * Each case runs in a fresh VM, with the touched stretch mapped by 4 KiB pages or by 2 MiB
 * pages, over host memory that is fresh (the host faults too) or populated beforehand. The
 * time of the touches, per page, is printed too. If the PVM host did work per shadow page on every entry or exit (a resync, a flush
 * of the whole shadow), the round trip would grow with N; if it does not, an exit costs the
 * same whatever the program has touched, and only the number of exits matters.
 * Build: gcc -O2 exit_cost_probe.c -o exit_cost_probe ; run: ./exit_cost_probe  (~10 s);
 * ACCESSED=1 ./exit_cost_probe sets the Accessed bit in the 4 KiB entries, as the VMM does.
 * Seen here (PVM host, 2026-12-06 12:19 UTC, otherwise idle, 3 runs; output/exit_cost_run*.txt):
 *   the round trip is 16-23 us in every case, 0 or 16,384 pages read, 4 KiB or 2 MiB guest
 *   pages: it does not grow with what the guest touched (the two levels come and go with the
 *   host, not with the case). A first read costs 6.4-10 us a page through 4 KiB entries without
 *   the Accessed bit, host memory fresh or populated; 1.5-2.0 us a page under 2 MiB guest pages
 *   over populated host memory, and the same through 4 KiB entries with the Accessed bit
 *   (output/exit_cost_accessed_run1.txt): KVM then maps eight neighbours per fault.
 */
#define _GNU_SOURCE
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

#define MEM (256ULL << 20)
#define TOUCHED_BASE (32ULL << 20)
#define N_RUNS 20000
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
static double samples[N_RUNS];
static void check(long r, const char *what) { if (r < 0) { perror(what); exit(1); } }

/* test rcx,rcx; jz out; loop: mov al,[rbx]; add rbx,0x1000; dec rcx; jnz loop; out: out 0x10,al; jmp out */
static const uint8_t code[] = {0x48, 0x85, 0xc9, 0x74, 0x0e, 0x8a, 0x03, 0x48, 0x81, 0xc3, 0x00, 0x10, 0x00,
                               0x00, 0x48, 0xff, 0xc9, 0x75, 0xf2, 0xe6, 0x10, 0xeb, 0xfc};

/* The Accessed bit in the 4 KiB entries (ACCESSED=1 in the environment), as the VMM sets it. */
static uint64_t accessed;

static void one_case(int kvm, long touched, int huge, int populated) {
  int vm = ioctl(kvm, KVM_CREATE_VM, 0); check(vm, "KVM_CREATE_VM");
  uint8_t *mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) { perror("mmap"); exit(1); }
  madvise(mem, MEM, MADV_NOHUGEPAGE);
  if (populated && touched) check(madvise(mem + TOUCHED_BASE, touched << 12, MADV_POPULATE_WRITE), "MADV_POPULATE_WRITE");
  struct kvm_userspace_memory_region region = {.slot = 0, .guest_phys_addr = 0, .memory_size = MEM, .userspace_addr = (uint64_t)mem};
  check(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION");
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0); check(vcpu, "KVM_CREATE_VCPU");
  struct kvm_run *run = mmap(NULL, ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  struct { struct kvm_cpuid2 c; struct kvm_cpuid_entry2 e[100]; } cp = {.c.nent = 100};
  check(ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cp), "KVM_GET_SUPPORTED_CPUID");
  check(ioctl(vcpu, KVM_SET_CPUID2, &cp), "KVM_SET_CPUID2");
  /* Tables at 1 MiB: PML4, PDPT, PD (128 entries = 256 MiB), then 128 page tables. */
  uint64_t *pml4 = (uint64_t *)(mem + 0x100000), *pdpt = (uint64_t *)(mem + 0x101000), *pd = (uint64_t *)(mem + 0x102000);
  pml4[0] = 0x101000 | 7; pdpt[0] = 0x102000 | 7;
  for (int i = 0; i < 128; i++) {
    uint64_t base = (uint64_t)i << 21;
    if (huge && base >= TOUCHED_BASE) { pd[i] = base | 0x87; continue; }
    uint64_t pt = 0x103000 + (uint64_t)i * 0x1000;
    pd[i] = pt | 7;
    uint64_t *e = (uint64_t *)(mem + pt);
    for (int j = 0; j < 512; j++) e[j] = (base + ((uint64_t)j << 12)) | 7 | accessed;
  }
  uint64_t *gdt = (uint64_t *)(mem + 0x500);
  gdt[0] = 0; gdt[1] = 0x00af9b000000ffffULL; gdt[2] = 0x00cf93000000ffffULL; gdt[3] = 0x00cff3000000ffffULL; gdt[4] = 0x00affb000000ffffULL;
  memcpy(mem + 0x10000, code, sizeof code);
  struct kvm_sregs s; check(ioctl(vcpu, KVM_GET_SREGS, &s), "KVM_GET_SREGS");
  s.cr3 = 0x100000; s.cr4 = (1 << 5) | (1 << 9) | (1 << 10); s.cr0 = 0x80050033; s.efer = 0x501;
  struct kvm_segment cs = {.base = 0, .limit = 0xffffffff, .selector = 0x23, .present = 1, .type = 11, .dpl = 3, .db = 0, .s = 1, .l = 1, .g = 1};
  struct kvm_segment ds = {.base = 0, .limit = 0xffffffff, .selector = 0x1b, .present = 1, .type = 3, .dpl = 3, .db = 1, .s = 1, .l = 0, .g = 1};
  s.cs = cs; s.ds = s.es = s.fs = s.gs = s.ss = ds; s.gdt.base = 0x500; s.gdt.limit = 39;
  check(ioctl(vcpu, KVM_SET_SREGS, &s), "KVM_SET_SREGS");
  struct kvm_regs g = {.rip = 0x10000, .rflags = 2, .rsp = 0x8000, .rcx = (uint64_t)touched, .rbx = TOUCHED_BASE};
  check(ioctl(vcpu, KVM_SET_REGS, &g), "KVM_SET_REGS");
  double t = now();
  check(ioctl(vcpu, KVM_RUN, 0), "KVM_RUN");
  double first = now() - t;
  if (run->exit_reason != KVM_EXIT_IO) { fprintf(stderr, "exit %d\n", run->exit_reason); exit(1); }
  for (int i = 0; i < 200; i++) check(ioctl(vcpu, KVM_RUN, 0), "KVM_RUN");
  for (int i = 0; i < N_RUNS; i++) {
    t = now(); check(ioctl(vcpu, KVM_RUN, 0), "KVM_RUN"); samples[i] = now() - t;
    if (run->exit_reason != KVM_EXIT_IO) { fprintf(stderr, "exit %d\n", run->exit_reason); exit(1); }
  }
  qsort(samples, N_RUNS, sizeof samples[0], cmpd);
  printf("%6ld pages read (%s guest pages, host memory %s): %6.2f us a page; then an exit round trip: median %6.2f us, p90 %6.2f us\n",
         touched, huge ? "2 MiB" : "4 KiB", populated ? "populated" : "fresh    ", touched ? first * 1e6 / touched : 0.0,
         samples[N_RUNS / 2] * 1e6, samples[N_RUNS * 9 / 10] * 1e6);
  fflush(stdout);
  munmap(run, ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0));
  close(vcpu); close(vm); munmap(mem, MEM);
}

int main(void) {
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC); check(kvm, "/dev/kvm");
  accessed = getenv("ACCESSED") ? 0x20 : 0;
  long cases[] = {0, 256, 4096, 16384};
  for (int populated = 0; populated < 2; populated++)
    for (int huge = 0; huge < 2; huge++)
      for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) one_case(kvm, cases[i], huge, populated);
  return 0;
}
