/* Probe: what a KVM memory slot costs by its size, and whether a VM's memory can be
 * registered in pieces as the guest comes to use it.
 *
 *   a) N VMs, each with one vCPU and one slot of S MiB (anonymous, MAP_NORESERVE, nothing
 *      touched): the time of KVM_SET_USER_MEMORY_REGION and the fall of MemAvailable and
 *      the rise of VmallocUsed per VM.
 *   b) the same N VMs with the S MiB registered in pieces: P MiB first, then pieces that
 *      double what is registered, until all S is: the time of each piece's ioctl.
 *   c) a guest (real mode, one vCPU) writes to a guest-physical address no slot covers:
 *      KVM_EXIT_MMIO at that address. The slot is then added and the vCPU run again from
 *      the same instruction: the write lands in the new slot's host memory.
 *
 * Build: gcc -O2 slot_growth_probe.c -o probe
 * Run:   ./probe a 1000 128   ./probe b 1000 128 8   ./probe c   (as root, /dev/kvm) */
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

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static long meminfo(const char *field) {
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long v = 0;
	size_t n = strlen(field);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			v = atol(line + n + 1);
			break;
		}
	fclose(f);
	return v;
}

static int set_slot(int vm, int slot, uint64_t gpa, uint64_t size, void *host) {
	struct kvm_userspace_memory_region r = {
		.slot = slot, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (uint64_t)host};
	return ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r);
}

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void many(int n, uint64_t mib, uint64_t first_mib) {
	struct rlimit rl = {65536, 65536};
	setrlimit(RLIMIT_NOFILE, &rl);
	int kvm = open("/dev/kvm", O_RDWR);
	double *took = calloc(n * 64, sizeof *took);
	int samples = 0, pieces_total = 0;
	long avail0 = meminfo("MemAvailable"), vmalloc0 = meminfo("VmallocUsed");
	double t0 = now();
	for (int i = 0; i < n; i++) {
		int vm = ioctl(kvm, KVM_CREATE_VM, 0);
		if (vm < 0) { perror("KVM_CREATE_VM"); exit(1); }
		uint64_t size = mib << 20;
		char *mem = mmap(0, size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		uint64_t done = 0, piece = first_mib ? first_mib << 20 : size;
		int slot = 0;
		while (done < size) {
			if (piece > size - done) piece = size - done;
			double s = now();
			if (set_slot(vm, slot++, done, piece, mem + done)) { perror("slot"); exit(1); }
			took[samples++] = now() - s;
			done += piece;
			piece = done; /* the next piece doubles what is registered */
		}
		pieces_total += slot;
		if (ioctl(vm, KVM_CREATE_VCPU, 0) < 0) { perror("KVM_CREATE_VCPU"); exit(1); }
	}
	double t1 = now();
	long avail1 = meminfo("MemAvailable"), vmalloc1 = meminfo("VmallocUsed");
	qsort(took, samples, sizeof *took, cmp);
	printf("%d VMs of %lu MiB, %s: %.2f pieces each; all in %.0f ms (%.3f ms a VM)\n", n,
	       (unsigned long)mib, first_mib ? "in doubling pieces" : "one slot",
	       (double)pieces_total / n, (t1 - t0) * 1e3, (t1 - t0) * 1e3 / n);
	printf("  KVM_SET_USER_MEMORY_REGION: median %.1f us, p90 %.1f us, sum per VM %.1f us\n",
	       took[samples / 2] * 1e6, took[samples * 9 / 10] * 1e6,
	       ({ double s = 0; for (int i = 0; i < samples; i++) s += took[i]; s; }) * 1e6 / n);
	printf("  per VM: MemAvailable fell %.1f KiB, VmallocUsed rose %.1f KiB\n",
	       (double)(avail0 - avail1) / n, (double)(vmalloc1 - vmalloc0) / n);
}

static void late_slot(void) {
	int kvm = open("/dev/kvm", O_RDWR);
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	char *low = mmap(0, 0x8000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *high = mmap(0, 0x8000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* at 0x1000: mov byte [0x9000], 0x42 ; hlt */
	const unsigned char code[] = {0xc6, 0x06, 0x00, 0x90, 0x42, 0xf4};
	memcpy(low + 0x1000, code, sizeof code);
	if (set_slot(vm, 0, 0, 0x8000, low)) { perror("slot 0"); exit(1); }
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(0, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	struct kvm_sregs sregs;
	ioctl(vcpu, KVM_GET_SREGS, &sregs);
	sregs.cs.base = 0; sregs.cs.selector = 0;
	sregs.ds.base = 0; sregs.ds.selector = 0;
	ioctl(vcpu, KVM_SET_SREGS, &sregs);
	struct kvm_regs regs = {.rip = 0x1000, .rflags = 2};
	ioctl(vcpu, KVM_SET_REGS, &regs);
	ioctl(vcpu, KVM_RUN, 0);
	printf("c) no slot at 0x9000: exit %u", run->exit_reason);
	if (run->exit_reason == KVM_EXIT_MMIO)
		printf(" (KVM_EXIT_MMIO at 0x%llx, write %u, len %u)", run->mmio.phys_addr,
		       run->mmio.is_write, run->mmio.len);
	printf("\n");
	if (set_slot(vm, 1, 0x8000, 0x8000, high)) { perror("slot 1"); exit(1); }
	ioctl(vcpu, KVM_SET_REGS, &regs);
	ioctl(vcpu, KVM_RUN, 0);
	printf("   slot added, run again from 0x1000: exit %u (%s), byte in the new slot 0x%x\n",
	       run->exit_reason, run->exit_reason == KVM_EXIT_HLT ? "HLT" : "not HLT",
	       (unsigned char)high[0x1000]);
}

int main(int argc, char **argv) {
	if (argc >= 4 && argv[1][0] == 'a') many(atoi(argv[2]), atol(argv[3]), 0);
	else if (argc >= 5 && argv[1][0] == 'b') many(atoi(argv[2]), atol(argv[3]), atol(argv[4]));
	else if (argc >= 2 && argv[1][0] == 'c') late_slot();
	else fprintf(stderr, "usage: probe a N MIB | b N MIB FIRST_MIB | c\n");
	return 0;
}
