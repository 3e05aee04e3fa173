/* Probe: restoring guest memory from a snapshot, for snapshots after Init (issue 12). A
 * "snapshot" is a 256 MiB memfd whose first 32 MiB were written (a working set, as Init leaves
 * one). Each restore makes a new VM (memory slot, one vCPU in 32-bit protected mode, flat, no
 * paging) over guest memory made one of four ways:
 *   copy       fresh anonymous memory and a memcpy of the working set (eager, private)
 *   cow        MAP_PRIVATE of the memfd: untouched pages stay shared, a write copies one page
 *   cow+read   the same, then MADV_POPULATE_READ of the working set (host page tables filled)
 *   cow+write  the same, then MADV_POPULATE_WRITE (every page copied up front, in the kernel)
 *   pooled     a VM made ahead (slot over blank anonymous memory, vCPU made): the restore maps
 *              the memfd MAP_PRIVATE|MAP_FIXED over the slot's host range (KVM follows through
 *              its mmu notifier) and sets the vCPU's registers
 * and the guest then reads one word from every page of the first 4 MiB (1,024 pages), or
 * writes one, exiting with `out` when done. Timed: making the memory, making the VM up to its
 * first instruction (KVM_CREATE_VM, the slot, KVM_CREATE_VCPU, sregs, regs), the guest's pass.
 * Then isolation: a write by one restored VM is seen neither by another nor in the snapshot.
 * Build: gcc -O2 restore_probe.c -o restore_probe ; run: ./restore_probe   (~3 s)
 * Seen here (PVM host, 2026-12-04 18:39 UTC, 3 runs; output/restore_run*.txt), medians:
 *   pooled: the restore itself 21-25 us (the MAP_FIXED mmap) + 6 us (registers); the guest's
 *   pass 2.5-2.7 us per page read, 4.4-4.6 us per page written (the copy-on-write).
 *   copy: 14.4-15.2 ms to copy 32 MiB into fresh memory (~1.8 us per 4 KiB page), then 2.3-2.4
 *   us per page touched. cow: 3 us to map, 2.5-2.6 us per page read, 4.4-4.7 written.
 *   cow+read: 2.5 ms to populate 32 MiB, and writes then cost more (6.2-6.3 us per page: the
 *   shared page is mapped read-only, then copied). cow+write: 12 ms, then 2.3-2.4 us per page.
 *   Making a VM to its first instruction: 0.47-0.66 ms. Isolation held in every run: a
 *   restored VM's writes reach neither another restored VM nor the snapshot.
 *   The guest runs without paging here: each first touch is one KVM fault mapping one 4 KiB
 *   page. Under the VMM's own page tables (shadow paging) a first touch costs 16-20 us
 *   (pt_update_probe), so what a restored program touches decides its restore time.
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

#define MEM (256UL << 20)
#define WORKING (32UL << 20)
#define CODE 0x1000UL
#define TOUCH_BASE (1UL << 20)
#define PAGES 1024
#define RUNS 30

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
static void check(long r, const char *what) { if (r < 0) { perror(what); exit(1); } }
static int kvm, run_size;

/* 32-bit: edx = 0 read, else write; esi = first address; ecx = pages. */
static const uint8_t guest_code[] = {
    0x85, 0xd2,                         /* 0x00 test edx, edx */
    0x74, 0x0d,                         /* 0x02 jz rd (0x11) */
    0x89, 0x0e,                         /* 0x04 wr: mov [esi], ecx */
    0x81, 0xc6, 0x00, 0x10, 0x00, 0x00, /* 0x06 add esi, 0x1000 */
    0x49,                               /* 0x0c dec ecx */
    0x75, 0xf5,                         /* 0x0d jnz wr */
    0xeb, 0x0b,                         /* 0x0f jmp done (0x1c) */
    0x8b, 0x06,                         /* 0x11 rd: mov eax, [esi] */
    0x81, 0xc6, 0x00, 0x10, 0x00, 0x00, /* 0x13 add esi, 0x1000 */
    0x49,                               /* 0x19 dec ecx */
    0x75, 0xf5,                         /* 0x1a jnz rd */
    0xe6, 0x10,                         /* 0x1c done: out 0x10, al */
    0xf4,                               /* 0x1e hlt */
};

struct vm { int vm, vcpu; struct kvm_run *run; };

static struct vm make_vm(uint8_t *mem, int write) {
  struct vm v;
  v.vm = ioctl(kvm, KVM_CREATE_VM, 0); check(v.vm, "KVM_CREATE_VM");
  struct kvm_userspace_memory_region region = {.slot = 0, .guest_phys_addr = 0, .memory_size = MEM, .userspace_addr = (uint64_t)mem};
  check(ioctl(v.vm, KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION");
  v.vcpu = ioctl(v.vm, KVM_CREATE_VCPU, 0); check(v.vcpu, "KVM_CREATE_VCPU");
  v.run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v.vcpu, 0);
  if (v.run == MAP_FAILED) { perror("mmap kvm_run"); exit(1); }
  struct kvm_sregs s; check(ioctl(v.vcpu, KVM_GET_SREGS, &s), "KVM_GET_SREGS");
  struct kvm_segment code = {.base = 0, .limit = 0xffffffff, .selector = 8, .type = 11, .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1};
  struct kvm_segment data = code; data.selector = 0x10; data.type = 3;
  s.cs = code; s.ds = s.es = s.fs = s.gs = s.ss = data;
  s.cr0 |= 1; /* PE, no paging */
  check(ioctl(v.vcpu, KVM_SET_SREGS, &s), "KVM_SET_SREGS");
  struct kvm_regs r = {.rip = CODE, .rflags = 2, .rsi = TOUCH_BASE, .rcx = PAGES, .rdx = (uint64_t)write};
  check(ioctl(v.vcpu, KVM_SET_REGS, &r), "KVM_SET_REGS");
  return v;
}

static void run_vm(struct vm *v) {
  check(ioctl(v->vcpu, KVM_RUN, 0), "KVM_RUN");
  if (v->run->exit_reason != KVM_EXIT_IO) { fprintf(stderr, "unexpected exit %d\n", v->run->exit_reason); exit(1); }
}

static void set_regs(struct vm *v, int write) {
  struct kvm_regs r = {.rip = CODE, .rflags = 2, .rsi = TOUCH_BASE, .rcx = PAGES, .rdx = (uint64_t)write};
  check(ioctl(v->vcpu, KVM_SET_REGS, &r), "KVM_SET_REGS");
}

static void drop_vm(struct vm *v) { munmap(v->run, run_size); close(v->vcpu); close(v->vm); }

static int snapshot;

/* One line of the table: the medians of the memory, VM and pass times of RUNS restores. */
static void report(const char *memory, int write, double *m, double *v, double *p) {
  qsort(m, RUNS, sizeof *m, cmpd); qsort(v, RUNS, sizeof *v, cmpd); qsort(p, RUNS, sizeof *p, cmpd);
  printf("%-10s %-6s %12.1f %12.1f %12.1f %14.2f\n", memory, write ? "write" : "read",
         m[RUNS / 2] * 1e6, v[RUNS / 2] * 1e6, p[RUNS / 2] * 1e6, p[RUNS / 2] * 1e6 / PAGES);
}

static uint8_t *make_memory(int how) {
  if (how == 0) {
    uint8_t *mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) { perror("mmap anon"); exit(1); }
    uint8_t *src = mmap(NULL, WORKING, PROT_READ, MAP_SHARED, snapshot, 0);
    memcpy(mem, src, WORKING);
    munmap(src, WORKING);
    return mem;
  }
  uint8_t *mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, snapshot, 0);
  if (mem == MAP_FAILED) { perror("mmap memfd"); exit(1); }
  if (how == 2) check(madvise(mem, WORKING, MADV_POPULATE_READ), "MADV_POPULATE_READ");
  if (how == 3) check(madvise(mem, WORKING, MADV_POPULATE_WRITE), "MADV_POPULATE_WRITE");
  return mem;
}

int main(void) {
  kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC); check(kvm, "/dev/kvm");
  run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0); check(run_size, "KVM_GET_VCPU_MMAP_SIZE");
  snapshot = memfd_create("snapshot", MFD_CLOEXEC); check(snapshot, "memfd_create");
  check(ftruncate(snapshot, MEM), "ftruncate");
  uint8_t *init = mmap(NULL, WORKING, PROT_READ | PROT_WRITE, MAP_SHARED, snapshot, 0);
  for (size_t i = 0; i < WORKING; i += 4096) memset(init + i, 0x5a, 64);
  memcpy(init + CODE, guest_code, sizeof guest_code);
  munmap(init, WORKING);

  const char *names[] = {"copy", "cow", "cow+read", "cow+write"};
  printf("%-10s %-6s %12s %12s %12s %14s\n", "memory", "guest", "memory us", "vm us", "pass us", "per page us");
  for (int write = 0; write < 2; write++) {
    double m[RUNS], v[RUNS], p[RUNS];
    for (int i = 0; i < RUNS; i++) {
      uint8_t *mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (mem == MAP_FAILED) { perror("mmap"); exit(1); }
      struct vm vm = make_vm(mem, write);
      double t0 = now();
      if (mmap(mem, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, snapshot, 0) != mem) { perror("mmap fixed"); exit(1); }
      double t1 = now();
      set_regs(&vm, write);
      double t2 = now();
      run_vm(&vm);
      double t3 = now();
      m[i] = t1 - t0; v[i] = t2 - t1; p[i] = t3 - t2;
      drop_vm(&vm);
      munmap(mem, MEM);
    }
    report("pooled", write, m, v, p);
  }
  for (int how = 0; how < 4; how++) {
    for (int write = 0; write < 2; write++) {
      double m[RUNS], v[RUNS], p[RUNS];
      for (int i = 0; i < RUNS; i++) {
        double t0 = now();
        uint8_t *mem = make_memory(how);
        double t1 = now();
        struct vm vm = make_vm(mem, write);
        double t2 = now();
        run_vm(&vm);
        double t3 = now();
        m[i] = t1 - t0; v[i] = t2 - t1; p[i] = t3 - t2;
        drop_vm(&vm);
        munmap(mem, MEM);
      }
      report(names[how], write, m, v, p);
    }
  }

  /* Isolation: A writes every page of the 4 MiB; B (restored from the same snapshot) and the
   * snapshot itself must still hold 0x5a5a5a5a there. */
  uint8_t *a_mem = make_memory(1), *b_mem = make_memory(1);
  struct vm a = make_vm(a_mem, 1), b = make_vm(b_mem, 0);
  run_vm(&a); run_vm(&b);
  uint8_t *snap = mmap(NULL, WORKING, PROT_READ, MAP_SHARED, snapshot, 0);
  int a_wrote = 0, b_clean = 0, snap_clean = 0;
  for (int i = 0; i < PAGES; i++) {
    size_t at = TOUCH_BASE + (size_t)i * 4096;
    uint32_t x, y, z; memcpy(&x, a_mem + at, 4); memcpy(&y, b_mem + at, 4); memcpy(&z, snap + at, 4);
    a_wrote += x == (uint32_t)(PAGES - i); b_clean += y == 0x5a5a5a5a; snap_clean += z == 0x5a5a5a5a;
  }
  printf("isolation: A wrote %d/%d pages; B still sees the snapshot in %d/%d; the snapshot in %d/%d\n",
         a_wrote, PAGES, b_clean, PAGES, snap_clean, PAGES);
  return 0;
}
