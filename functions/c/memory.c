/*
 * memory: a one-shot stdio function in C that exercises the address space the way runtimes
 * do. The event names one check; the response says what it saw, and a check that must crash
 * logs the address it is about to touch ("touching 0x..." on stderr) first.
 *
 *   reserve     a 64 GiB PROT_NONE, MAP_NORESERVE reservation (Go, the JVM and V8 make these)
 *   commit      1 GiB read-write, 20 MiB of it written and read back
 *   oom         1 GiB read-write, written a MiB at a time until the function's memory runs out
 *   readonly    a page written, made read-only, read, then written: SIGSEGV
 *   unmapped    a page written, unmapped, then read: SIGSEGV
 *   noexec      a `ret` written to a read-write page, then called: SIGSEGV
 *   exec        the same page made executable first: the call returns
 *   dontneed    MADV_DONTNEED on written pages: they read as zero
 *   protnone    a page made PROT_NONE and back keeps its contents
 *   remap       mremap growing a written mapping (MREMAP_MAYMOVE) keeps its contents
 *   fixed       MAP_FIXED_NOREPLACE over a mapping: EEXIST; MAP_FIXED over it: replaced
 *   hint        a free address hint is honoured (Go asks for 0xc000000000)
 *   stack       6 MiB of recursion on the 8 MiB stack
 *   clock       100000 clock_gettime calls: monotonic, realtime near time(), vDSO present
 *   clock-1000  the same with 1000 calls
 *
 * Built with gcc -static (build.rs), so it runs the same in the micro-VM and as a process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024ul * 1024)
#define GIB (1024ul * MIB)
#define PAGE 4096ul

static void touching(const void *addr)
{
	fprintf(stderr, "touching %p\n", addr);
	fflush(stderr);
}

static void *map(size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		printf("mmap of %zu bytes failed: %s", len, strerror(errno));
		exit(1);
	}
	return p;
}

static int reserve(void)
{
	char *p = map(64 * GIB, PROT_NONE);
	printf("reserved 64 GiB");
	return munmap(p, 64 * GIB) != 0;
}

static int commit(void)
{
	unsigned char *p = map(1 * GIB, PROT_READ | PROT_WRITE);
	for (size_t i = 0; i < 20 * MIB; i++)
		p[i] = (unsigned char)(i * 7);
	for (size_t i = 0; i < 20 * MIB; i++)
		if (p[i] != (unsigned char)(i * 7)) {
			printf("byte %zu changed", i);
			return 1;
		}
	/* Untouched committed memory reads as zero. */
	if (p[512 * MIB] != 0) {
		printf("untouched memory is not zero");
		return 1;
	}
	printf("committed 1 GiB, wrote 20 MiB");
	return 0;
}

static int oom(void)
{
	unsigned char *p = map(1 * GIB, PROT_READ | PROT_WRITE);
	for (size_t mib = 0; mib < 1024; mib++) {
		memset(p + mib * MIB, 1, MIB);
		if (mib % 16 == 0)
			fprintf(stderr, "%zu MiB written\n", mib + 1);
	}
	printf("wrote 1 GiB");
	return 0;
}

static int readonly(void)
{
	volatile char *p = map(PAGE, PROT_READ | PROT_WRITE);
	p[0] = 42;
	if (mprotect((void *)p, PAGE, PROT_READ) != 0) {
		printf("mprotect: %s", strerror(errno));
		return 1;
	}
	if (p[0] != 42) {
		printf("contents lost");
		return 1;
	}
	touching((void *)p);
	p[0] = 43;
	printf("wrote a read-only page");
	return 0;
}

static int unmapped(void)
{
	volatile char *p = map(PAGE, PROT_READ | PROT_WRITE);
	p[0] = 42;
	munmap((void *)p, PAGE);
	touching((void *)p);
	printf("read %d from an unmapped page", p[0]);
	return 0;
}

static int call_code(int prot)
{
	unsigned char *p = map(PAGE, PROT_READ | PROT_WRITE);
	p[0] = 0xc3; /* ret */
	if (prot && mprotect(p, PAGE, PROT_READ | PROT_EXEC) != 0) {
		printf("mprotect: %s", strerror(errno));
		return 1;
	}
	touching(p);
	((void (*)(void))p)();
	printf("called code on %s page", prot ? "an executable" : "a non-executable");
	return 0;
}

static int dontneed(void)
{
	unsigned char *p = map(4 * MIB, PROT_READ | PROT_WRITE);
	memset(p, 0xab, 4 * MIB);
	if (madvise(p, 4 * MIB, MADV_DONTNEED) != 0) {
		printf("madvise: %s", strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < 4 * MIB; i += 511)
		if (p[i] != 0) {
			printf("byte %zu survived MADV_DONTNEED", i);
			return 1;
		}
	printf("dropped pages read zero");
	return 0;
}

static int protnone(void)
{
	char *p = map(2 * PAGE, PROT_READ | PROT_WRITE);
	strcpy(p, "kept");
	if (mprotect(p, 2 * PAGE, PROT_NONE) || mprotect(p, 2 * PAGE, PROT_READ | PROT_WRITE)) {
		printf("mprotect: %s", strerror(errno));
		return 1;
	}
	printf("%s", p);
	return 0;
}

static int remap(void)
{
	size_t old = 3 * MIB, grown = 64 * MIB;
	unsigned char *p = map(old, PROT_READ | PROT_WRITE);
	/* Something right after it, so it cannot grow in place: our own page, or (EEXIST) a
	 * mapping that is already there, which blocks it just as well. */
	void *blocker = mmap(p + old, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (blocker == MAP_FAILED && errno != EEXIST) {
		printf("blocker: %s", strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < old; i++)
		p[i] = (unsigned char)(i % 251);
	unsigned char *q = mremap(p, old, grown, MREMAP_MAYMOVE);
	if (q == MAP_FAILED) {
		printf("mremap: %s", strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < old; i++)
		if (q[i] != (unsigned char)(i % 251)) {
			printf("byte %zu changed", i);
			return 1;
		}
	q[grown - 1] = 1;
	printf("%s, contents kept", q != p ? "moved" : "grown in place past a blocker");
	return 0;
}

static int fixed(void)
{
	char *p = map(4 * PAGE, PROT_READ | PROT_WRITE);
	p[PAGE] = 1;
	void *q = mmap(p + PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	int noreplace = q == MAP_FAILED ? errno : 0;
	void *r = mmap(p + PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	printf("noreplace: %s, fixed: %s, contents: %d", noreplace == EEXIST ? "EEXIST" : "mapped",
	       r == p + PAGE ? "replaced" : "elsewhere", p[PAGE]);
	return 0;
}

static int hint(void)
{
	void *want = (void *)0xc000000000ul;
	void *p = mmap(want, 64 * MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("hint %s", p == want ? "honoured" : "ignored");
	return p == want ? 0 : 1;
}

static size_t recurse(size_t depth)
{
	volatile char frame[1024];
	frame[0] = (char)depth;
	if (depth == 0)
		return frame[0];
	return recurse(depth - 1) + frame[0];
}

static int stack(void)
{
	printf("recursed %zu", recurse(6 * 1024) > 0 ? (size_t)6 * 1024 : 0);
	return 0;
}

static int64_t ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int clocks_n(int reads)
{
	if (getauxval(AT_SYSINFO_EHDR) == 0)
		fprintf(stderr, "no vDSO\n");
	int64_t last = ns(CLOCK_MONOTONIC);
	for (int i = 0; i < reads; i++) {
		int64_t now = ns(CLOCK_MONOTONIC);
		if (now < last) {
			printf("monotonic went back by %lld ns", (long long)(last - now));
			return 1;
		}
		last = now;
	}
	int64_t real = ns(CLOCK_REALTIME);
	time_t t = time(NULL);
	if (real / 1000000000 - t > 1 || t - real / 1000000000 > 1) {
		printf("realtime %lld s, time() %lld s", (long long)(real / 1000000000), (long long)t);
		return 1;
	}
	struct timespec res;
	clock_getres(CLOCK_MONOTONIC, &res);
	printf("monotonic over %d reads", reads);
	return 0;
}

static int clocks(void)
{
	return clocks_n(100000);
}

static int clocks_1000(void)
{
	return clocks_n(1000);
}

int main(void)
{
	char check[64] = {0};
	ssize_t n = read(0, check, sizeof check - 1);
	while (n > 0 && (check[n - 1] == '\n' || check[n - 1] == '"'))
		check[--n] = 0;
	const char *name = check[0] == '"' ? check + 1 : check;
	static const struct {
		const char *name;
		int (*run)(void);
	} checks[] = {
		{"reserve", reserve},   {"commit", commit},     {"oom", oom},
		{"readonly", readonly}, {"unmapped", unmapped}, {"dontneed", dontneed},
		{"protnone", protnone}, {"remap", remap},       {"fixed", fixed},
		{"hint", hint},         {"stack", stack},       {"clock", clocks},
		{"clock-1000", clocks_1000},
	};
	if (strcmp(name, "noexec") == 0)
		return call_code(0);
	if (strcmp(name, "exec") == 0)
		return call_code(1);
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
		if (strcmp(name, checks[i].name) == 0)
			return checks[i].run();
	printf("unknown check \"%s\"", name);
	return 2;
}
