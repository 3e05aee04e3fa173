/*
 * The guest's vDSO: clock_gettime, gettimeofday, time, clock_getres and getcpu answered
 * inside the guest, without a VM exit.
 *
 * The VMM maps this image read-only and executable into every guest, with one read-only
 * data page (the vvar page, `struct vvar` below) directly below it, and passes its address in
 * the auxiliary vector (AT_SYSINFO_EHDR). Time comes from the TSC, which runs natively at
 * CPL3, converted with parameters the VMM refreshes in the vvar page while the vCPU is
 * stopped (see `src/vdso/clock.rs`). Anything the page cannot answer falls back to the real
 * syscall, which the VMM answers from the same clocks.
 *
 * Built by `build.rs` with gcc as a position-independent shared object without relocations
 * (checked when the image is loaded); the exported symbols carry the version LINUX_2.6, as
 * Linux's own vDSO does, so glibc and Go find them.
 */

typedef unsigned int u32;
typedef unsigned long u64;
typedef long i64;

/* Must match `Vvar` in src/vdso/vvar.rs. */
struct vvar {
	/* Odd while the VMM is writing; readers retry until they see the same even value. */
	volatile u32 seq;
	/* Bit 0: the clock parameters below are valid (otherwise: use the syscall). */
	volatile u32 flags;
	/* TSC value at which the two base times were taken. */
	volatile u64 tsc_base;
	/* Nanoseconds per TSC tick, as a 32.32 fixed-point number. */
	volatile u64 mult;
	/* CLOCK_MONOTONIC and CLOCK_REALTIME at tsc_base, in nanoseconds. */
	volatile u64 monotonic_ns;
	volatile u64 realtime_ns;
	/* What getcpu reports. */
	volatile u32 cpu;
	volatile u32 node;
};

#define VVAR_CLOCK_VALID 1u

#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#define CLOCK_MONOTONIC_RAW 4
#define CLOCK_REALTIME_COARSE 5
#define CLOCK_MONOTONIC_COARSE 6
#define CLOCK_BOOTTIME 7
#define CLOCK_TAI 11

#define SYS_gettimeofday 96
#define SYS_time 201
#define SYS_clock_gettime 228
#define SYS_clock_getres 229
#define SYS_getcpu 309

#define NSEC_PER_SEC 1000000000ul

struct kernel_timespec {
	i64 tv_sec;
	i64 tv_nsec;
};

struct kernel_timeval {
	i64 tv_sec;
	i64 tv_usec;
};

struct kernel_timezone {
	int tz_minuteswest;
	int tz_dsttime;
};

/*
 * The vvar page lies one page below the image's own ELF header, which the linker names
 * `__ehdr_start`; the address is taken RIP-relative, so the image needs no relocation.
 */
static inline const struct vvar *vvar(void)
{
	const struct vvar *page;
	__asm__("lea __ehdr_start-4096(%%rip), %0" : "=r"(page));
	return page;
}

static inline long syscall2(long number, long a, long b)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(number), "D"(a), "S"(b)
			 : "rcx", "r11", "memory");
	return ret;
}

static inline long syscall3(long number, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(number), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

static inline u64 rdtsc_ordered(void)
{
	u32 lo, hi;
	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return ((u64)hi << 32) | lo;
}

/*
 * Nanoseconds on one of the two base clocks, or 0 when the page holds no valid parameters.
 * The seqlock makes a reading consistent even if the VMM updates the page while another
 * vCPU reads it.
 */
static u64 clock_ns(int realtime)
{
	const struct vvar *v = vvar();
	u32 seq;
	u64 ns;
	do {
		seq = v->seq;
		__asm__ volatile("" ::: "memory");
		if (seq & 1)
			continue;
		if (!(v->flags & VVAR_CLOCK_VALID))
			return 0;
		u64 now = rdtsc_ordered();
		u64 base = v->tsc_base;
		u64 delta = now > base ? now - base : 0;
		u64 elapsed = (u64)(((unsigned __int128)delta * v->mult) >> 32);
		ns = (realtime ? v->realtime_ns : v->monotonic_ns) + elapsed;
		__asm__ volatile("" ::: "memory");
	} while ((seq & 1) || seq != v->seq);
	return ns;
}

/* 1 for realtime clocks, 0 for monotonic ones, -1 for clocks the page does not serve. */
static int clock_kind(long clock)
{
	switch (clock) {
	case CLOCK_REALTIME:
	case CLOCK_REALTIME_COARSE:
	case CLOCK_TAI:
		return 1;
	case CLOCK_MONOTONIC:
	case CLOCK_MONOTONIC_RAW:
	case CLOCK_MONOTONIC_COARSE:
	case CLOCK_BOOTTIME:
		return 0;
	default:
		return -1;
	}
}

long __vdso_clock_gettime(long clock, struct kernel_timespec *ts)
{
	int kind = clock_kind(clock);
	u64 ns = kind < 0 ? 0 : clock_ns(kind);
	if (ns == 0)
		return syscall2(SYS_clock_gettime, clock, (long)ts);
	ts->tv_sec = (i64)(ns / NSEC_PER_SEC);
	ts->tv_nsec = (i64)(ns % NSEC_PER_SEC);
	return 0;
}

long __vdso_gettimeofday(struct kernel_timeval *tv, struct kernel_timezone *tz)
{
	u64 ns = clock_ns(1);
	if (ns == 0)
		return syscall2(SYS_gettimeofday, (long)tv, (long)tz);
	if (tv) {
		tv->tv_sec = (i64)(ns / NSEC_PER_SEC);
		tv->tv_usec = (i64)(ns % NSEC_PER_SEC / 1000);
	}
	if (tz) {
		tz->tz_minuteswest = 0;
		tz->tz_dsttime = 0;
	}
	return 0;
}

long __vdso_time(long *t)
{
	u64 ns = clock_ns(1);
	if (ns == 0)
		return syscall2(SYS_time, (long)t, 0);
	long seconds = (long)(ns / NSEC_PER_SEC);
	if (t)
		*t = seconds;
	return seconds;
}

long __vdso_clock_getres(long clock, struct kernel_timespec *res)
{
	if (clock_kind(clock) < 0 || !(vvar()->flags & VVAR_CLOCK_VALID))
		return syscall2(SYS_clock_getres, clock, (long)res);
	if (res) {
		res->tv_sec = 0;
		res->tv_nsec = 1;
	}
	return 0;
}

long __vdso_getcpu(u32 *cpu, u32 *node, void *unused)
{
	(void)unused;
	const struct vvar *v = vvar();
	if (cpu)
		*cpu = v->cpu;
	if (node)
		*node = v->node;
	return 0;
}

long clock_gettime(long, struct kernel_timespec *)
	__attribute__((weak, alias("__vdso_clock_gettime")));
long gettimeofday(struct kernel_timeval *, struct kernel_timezone *)
	__attribute__((weak, alias("__vdso_gettimeofday")));
long time(long *) __attribute__((weak, alias("__vdso_time")));
long clock_getres(long, struct kernel_timespec *)
	__attribute__((weak, alias("__vdso_clock_getres")));
long getcpu(u32 *, u32 *, void *) __attribute__((weak, alias("__vdso_getcpu")));
