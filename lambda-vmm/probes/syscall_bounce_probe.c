/* Probe: can a guest `syscall` be answered inside the guest, at ring 3, without a VM exit, and
 * what does that cost on this (PVM) host?  The guest runs at CPL3 and loops on `syscall`.
 * LSTAR points at a CPL0 stub that builds an `iretq` frame on a kernel stack and returns to a
 * CPL3 handler (here `jmp rcx`, back to the caller); rflags come back from r11 through the
 * frame. So each call is: ring 3 -> emulated ring 0 (eight instructions) -> ring 3, no exit.
 * Compared in the same run, in fresh VMs:
 *   mode 0: that in-guest bounce                         (one exit at the end)
 *   mode 1: `out 0x80, al` from CPL3, the VMM's rewritten syscall site (one exit per call)
 *   mode 2: `syscall` to a stub `out 0x80, al`, the VMM returning through rip=rcx and
 *           KVM_SET_SREGS (the unrewritten path, one exit per call)
 *   mode 3: the floor of any trip through ring 0: a stub of two instructions (`mov rsp`,
 *           `iretq`) over a frame written ahead; it loses the caller's stack pointer, so it
 *           only prices the trip
 * Build: gcc -O2 syscall_bounce_probe.c -o syscall_bounce_probe ; run: ./syscall_bounce_probe [N]
 * Seen here (PVM host, 2026-12-06 13:46-13:47 UTC, 3 runs of 3 rounds, 20,000 calls each;
 * output/syscall_bounce_run*.txt), per call:
 *   answered in the guest through ring 0   27.2-28.5 us
 *   the floor (two ring-0 instructions)     27.3-28.6 us
 *   `out` from ring 3, one exit             36.6-38.4 us
 *   `syscall` to a ring-0 `out`, one exit   69.3-72.7 us
 * So the trip through ring 0 costs three quarters of an exit, and it is the trip (PVM's switch
 * into and out of the guest's supervisor mode), not the instructions: eight cost what two do.
 * A syscall answered in the guest is cheap only if it never enters ring 0.
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

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void check(long r, const char *what) { if (r < 0) { perror(what); exit(1); } }

#define MEM (16ULL << 20)
#define USER_CODE 0x10000
#define STUB 0x20000
#define HANDLER 0x30000
#define SCRATCH 0x7ff0
#define KSTACK 0x9000

static double one_case(int kvm, int mode, int n) {
  int vm = ioctl(kvm, KVM_CREATE_VM, 0); check(vm, "KVM_CREATE_VM");
  uint8_t *mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  struct kvm_userspace_memory_region region = {.slot = 0, .guest_phys_addr = 0, .memory_size = MEM, .userspace_addr = (uint64_t)mem};
  check(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION");
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0); check(vcpu, "KVM_CREATE_VCPU");
  int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  struct kvm_run *run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  struct { struct kvm_cpuid2 c; struct kvm_cpuid_entry2 e[100]; } cp = {.c.nent = 100};
  check(ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cp), "KVM_GET_SUPPORTED_CPUID");
  check(ioctl(vcpu, KVM_SET_CPUID2, &cp), "KVM_SET_CPUID2");
  /* Identity map of the first 16 MiB, 2 MiB pages, user bit set (PVM runs ring 0 with user permissions). */
  uint64_t *pml4 = (uint64_t *)(mem + 0x1000), *pdpt = (uint64_t *)(mem + 0x2000), *pd = (uint64_t *)(mem + 0x3000);
  pml4[0] = 0x2000 | 7; pdpt[0] = 0x3000 | 7;
  for (int i = 0; i < 8; i++) pd[i] = ((uint64_t)i << 21) | 0xe7; /* P RW U A D PS */
  uint64_t *gdt = (uint64_t *)(mem + 0x500);
  gdt[0] = 0; gdt[1] = 0x00af9b000000ffffULL; gdt[2] = 0x00cf93000000ffffULL; gdt[3] = 0x00cff3000000ffffULL; gdt[4] = 0x00affb000000ffffULL;
  struct kvm_sregs s; check(ioctl(vcpu, KVM_GET_SREGS, &s), "KVM_GET_SREGS");
  s.cr3 = 0x1000; s.cr4 = (1 << 5) | (1 << 9) | (1 << 10); s.cr0 = 0x80050033; s.efer = 0x501;
  struct kvm_segment cs = {.base = 0, .limit = 0xffffffff, .selector = 0x23, .present = 1, .type = 11, .dpl = 3, .db = 0, .s = 1, .l = 1, .g = 1};
  struct kvm_segment ds = {.base = 0, .limit = 0xffffffff, .selector = 0x1b, .present = 1, .type = 3, .dpl = 3, .db = 1, .s = 1, .l = 0, .g = 1};
  s.cs = cs; s.ds = s.es = s.fs = s.gs = s.ss = ds; s.gdt.base = 0x500; s.gdt.limit = 39;
  check(ioctl(vcpu, KVM_SET_SREGS, &s), "KVM_SET_SREGS");
  /* STAR: kernel CS 0x08 / SS 0x10; LSTAR: the stub; SFMASK: IF|TF|DF|AC. */
  struct { struct kvm_msrs m; struct kvm_msr_entry e[3]; } msrs = {.m.nmsrs = 3, .e = {
      {.index = 0xC0000081, .data = (0x10ULL << 48) | (0x08ULL << 32)}, {.index = 0xC0000082, .data = STUB}, {.index = 0xC0000084, .data = 0x47700}}};
  if (ioctl(vcpu, KVM_SET_MSRS, &msrs) != 3) { fprintf(stderr, "KVM_SET_MSRS\n"); exit(1); }
  /* The stub. mode 0: mov [SCRATCH],rsp; mov rsp,KSTACK; push 0x1b; push [SCRATCH]; push r11;
   * push 0x23; push HANDLER; iretq.  mode 2: out 0x80,al. */
  static const uint8_t bounce[] = {0x48, 0x89, 0x24, 0x25, 0xf0, 0x7f, 0x00, 0x00, 0x48, 0xc7, 0xc4, 0x00, 0x90, 0x00, 0x00,
                                   0x6a, 0x1b, 0xff, 0x34, 0x25, 0xf0, 0x7f, 0x00, 0x00, 0x41, 0x53, 0x6a, 0x23,
                                   0x68, 0x00, 0x00, 0x03, 0x00, 0x48, 0xcf};
  static const uint8_t out_stub[] = {0xe6, 0x80};
  /* mode 3, the floor of a trip through ring 0: mov rsp,FRAME; iretq, with a frame written
   * ahead (it does not keep the caller's stack pointer, so it is not a usable design). */
  static const uint8_t floor_stub[] = {0x48, 0xc7, 0xc4, 0xd8, 0x8f, 0x00, 0x00, 0x48, 0xcf};
  if (mode == 0) memcpy(mem + STUB, bounce, sizeof bounce);
  else if (mode == 3) {
    memcpy(mem + STUB, floor_stub, sizeof floor_stub);
    uint64_t frame[5] = {HANDLER, 0x23, 2, 0x8000, 0x1b};
    memcpy(mem + KSTACK - 40, frame, sizeof frame);
  } else memcpy(mem + STUB, out_stub, sizeof out_stub);
  /* The ring-3 handler: jmp rcx. */
  mem[HANDLER] = 0xff; mem[HANDLER + 1] = 0xe1;
  /* User code: mov ebx,n; l: mov eax,1; syscall | out 0x80,al; dec ebx; jnz l; out 0x81,al; jmp $ */
  uint8_t code[64]; int p = 0;
  code[p++] = 0xbb; memcpy(code + p, &n, 4); p += 4; int loop = p;
  code[p++] = 0xb8; code[p++] = 1; code[p++] = 0; code[p++] = 0; code[p++] = 0;
  if (mode == 1) { code[p++] = 0xe6; code[p++] = 0x80; } else { code[p++] = 0x0f; code[p++] = 0x05; }
  code[p++] = 0xff; code[p++] = 0xcb; code[p++] = 0x75; code[p] = (uint8_t)(loop - (p + 1)); p++;
  code[p++] = 0xe6; code[p++] = 0x81; code[p++] = 0xeb; code[p++] = 0xfe;
  memcpy(mem + USER_CODE, code, p);
  struct kvm_regs g = {.rip = USER_CODE, .rflags = 2, .rsp = 0x8000};
  check(ioctl(vcpu, KVM_SET_REGS, &g), "KVM_SET_REGS");
  int calls = 0;
  double t = now();
  for (;;) {
    check(ioctl(vcpu, KVM_RUN, 0), "KVM_RUN");
    if (run->exit_reason != KVM_EXIT_IO) {
      struct kvm_regs r; ioctl(vcpu, KVM_GET_REGS, &r);
      fprintf(stderr, "mode %d: exit %d at rip %llx\n", mode, run->exit_reason, (unsigned long long)r.rip); exit(1);
    }
    if (run->io.port == 0x81) break;
    calls++;
    if (mode == 2) {
      struct kvm_regs r; check(ioctl(vcpu, KVM_GET_REGS, &r), "KVM_GET_REGS");
      r.rip = r.rcx; r.rflags = r.r11;
      check(ioctl(vcpu, KVM_SET_REGS, &r), "KVM_SET_REGS");
      struct kvm_sregs ss; check(ioctl(vcpu, KVM_GET_SREGS, &ss), "KVM_GET_SREGS");
      ss.cs = cs; ss.ss = ds;
      check(ioctl(vcpu, KVM_SET_SREGS, &ss), "KVM_SET_SREGS");
    }
  }
  double per = (now() - t) * 1e6 / n;
  struct kvm_regs r; check(ioctl(vcpu, KVM_GET_REGS, &r), "KVM_GET_REGS");
  if (r.rbx != 0 || ((mode == 0 || mode == 3) && calls != 0) || ((mode == 1 || mode == 2) && calls != n)) { fprintf(stderr, "mode %d: rbx %llu, %d exits\n", mode, (unsigned long long)r.rbx, calls); exit(1); }
  munmap(run, size); close(vcpu); close(vm); munmap(mem, MEM);
  return per;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20000;
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC); check(kvm, "/dev/kvm");
  const char *names[] = {"syscall answered in the guest (ring 0 -> iretq -> ring 3)", "out 0x80 from ring 3, one exit each        ",
                         "syscall -> stub out 0x80, VMM returns (SREGS)             ",
                         "floor: syscall -> mov rsp; iretq -> ring 3 (no exit)       "};
  for (int round = 0; round < 3; round++)
    for (int mode = 0; mode < 4; mode++) printf("round %d  %s: %7.2f us a call (%d calls)\n", round, names[mode], one_case(kvm, mode, n), n);
  return 0;
}
