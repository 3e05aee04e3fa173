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
 *   heap        the break moved up and down 60 times, every page's data checked
 *   shuffle     20000 random map/unmap/protect/move/drop/store calls over an arena, every
 *               page checked against a model of what it should hold and allow
 *
 * Built with gcc -static (build.rs), so it runs the same in the micro-VM and as a process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
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

/* shuffle: random mmap(MAP_FIXED, MAP_FIXED_NOREPLACE)/munmap/mprotect/mremap/madvise calls
 * and stores over an arena of ARENA_PAGES pages, checked against a model of what each page
 * should hold and allow after every call: a translation kept past a change that removed it, a
 * page not zeroed when it should be, or an errno Linux would not give shows as a mismatch.
 * Pages the model says are inaccessible are never touched (that would end the program). The
 * generator is seeded, so both backends make the same calls. */
#define ARENA_PAGES 2048
#define NONE_ 0
#define R_ 1
#define RW_ 2
#define ABSENT 3
static unsigned char page_state[ARENA_PAGES], page_value[ARENA_PAGES];
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* xorshift64: the next number from `state`. */
static uint64_t next_from(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

static uint64_t next_random(void)
{
	return next_from(&rng_state);
}

static int prot_of(int state)
{
	return state == RW_ ? PROT_READ | PROT_WRITE : state == R_ ? PROT_READ : PROT_NONE;
}

/* A mismatch, as the response and on stderr (the log), since the program then fails. */
static void report(const char *format, ...)
{
	va_list args;
	va_start(args, format);
	vfprintf(stderr, format, args);
	va_end(args);
	va_start(args, format);
	vprintf(format, args);
	va_end(args);
}

/* The three places of a page a check reads and a store writes. */
static const size_t spots[] = {0, PAGE / 2, PAGE - 8};

static int check_page(unsigned char *arena, size_t page, long op)
{
	if (page_state[page] != R_ && page_state[page] != RW_)
		return 0;
	for (size_t i = 0; i < 3; i++) {
		unsigned char got = arena[page * PAGE + spots[i]];
		if (got != page_value[page]) {
			report("operation %ld: page %zu holds %u at offset %zu, expected %u", op, page, got,
			       spots[i], page_value[page]);
			return 1;
		}
	}
	return 0;
}

static int all_mapped(size_t first, size_t count)
{
	for (size_t p = first; p < first + count; p++)
		if (page_state[p] == ABSENT)
			return 0;
	return 1;
}

static int shuffle(void)
{
	const long operations = 20000;
	unsigned char *arena = map(ARENA_PAGES * PAGE, PROT_NONE);
	memset(page_state, NONE_, sizeof page_state);
	memset(page_value, 0, sizeof page_value);
	long calls = 0;
	for (long op = 0; op < operations; op++) {
		size_t first = next_random() % ARENA_PAGES;
		size_t count = 1 + next_random() % 32;
		if (first + count > ARENA_PAGES)
			count = ARENA_PAGES - first;
		unsigned char *at = arena + first * PAGE;
		size_t len = count * PAGE;
		int state = (int)(next_random() % 3);
		switch (next_random() % 8) {
		case 0: { /* a fresh mapping over whatever is there */
			void *p = mmap(at, len, prot_of(state), MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			if (p != at) {
				report("operation %ld: MAP_FIXED gave %p, not %p", op, p, (void *)at);
				return 1;
			}
			memset(page_state + first, state, count);
			memset(page_value + first, 0, count);
			break;
		}
		case 1: { /* MAP_FIXED_NOREPLACE: EEXIST unless the range is free */
			int free_range = 1;
			for (size_t p = first; p < first + count; p++)
				free_range &= page_state[p] == ABSENT;
			void *p = mmap(at, len, prot_of(state),
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
			if (free_range ? p != at : !(p == MAP_FAILED && errno == EEXIST)) {
				report("operation %ld: MAP_FIXED_NOREPLACE over %s range gave %p (%s)", op,
				       free_range ? "a free" : "a mapped", p, strerror(errno));
				return 1;
			}
			if (free_range) {
				memset(page_state + first, state, count);
				memset(page_value + first, 0, count);
			}
			break;
		}
		case 2: /* unmap */
			if (munmap(at, len) != 0) {
				report("operation %ld: munmap: %s", op, strerror(errno));
				return 1;
			}
			memset(page_state + first, ABSENT, count);
			break;
		case 3: /* protect a mapped range */
			if (!all_mapped(first, count))
				break;
			if (mprotect(at, len, prot_of(state)) != 0) {
				report("operation %ld: mprotect: %s", op, strerror(errno));
				return 1;
			}
			memset(page_state + first, state, count);
			break;
		case 4: /* drop the pages of a mapped range: they read as zero */
			if (!all_mapped(first, count))
				break;
			if (madvise(at, len, MADV_DONTNEED) != 0) {
				report("operation %ld: madvise: %s", op, strerror(errno));
				return 1;
			}
			memset(page_value + first, 0, count);
			break;
		case 5: { /* move one page elsewhere in the arena */
			size_t to = next_random() % ARENA_PAGES;
			if (page_state[first] == ABSENT || to == first)
				break;
			void *p = mremap(at, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, arena + to * PAGE);
			if (p != arena + to * PAGE) {
				report("operation %ld: mremap gave %p (%s)", op, p, strerror(errno));
				return 1;
			}
			page_state[to] = page_state[first];
			page_value[to] = page_value[first];
			page_state[first] = ABSENT;
			break;
		}
		default: /* store into the writable pages of the range */
			for (size_t p = first; p < first + count; p++) {
				if (page_state[p] != RW_)
					continue;
				unsigned char value = (unsigned char)(1 + next_random() % 255);
				for (size_t i = 0; i < 3; i++)
					arena[p * PAGE + spots[i]] = value;
				page_value[p] = value;
			}
			break;
		}
		calls++;
		/* Read back the range just changed, and now and then the whole arena. */
		for (size_t p = first; p < first + count; p++)
			if (check_page(arena, p, op))
				return 1;
		if (op % 1000 == 999)
			for (size_t p = 0; p < ARENA_PAGES; p++)
				if (check_page(arena, p, op))
					return 1;
	}
	printf("shuffle: %ld operations, every page as expected", calls);
	return 0;
}

/* heap: the break moved up and down by up to 16 MiB 60 times, every page of the heap marked
 * with its address and the round after each move and checked at the next: pages kept keep
 * their data, pages given back and taken again read zero, and no page shows another's data
 * (as one did when a 2 MiB chunk given back by one part of the heap came back as another
 * part's large page). */
static int heap(void)
{
	const unsigned long most = 16 * MIB;
	unsigned char *start = sbrk(0);
	unsigned long size = 0;
	uint64_t seed = 0x2545f4914f6cdd1dull;
	for (unsigned round = 1; round <= 60; round++) {
		unsigned long target = next_from(&seed) % most;
		if (brk(start + target) != 0) {
			report("brk: %s", strerror(errno));
			return 1;
		}
		unsigned long kept = (target < size ? target : size) / PAGE * PAGE;
		for (unsigned long off = (unsigned long)(-(uintptr_t)start % PAGE); off < target; off += PAGE) {
			uint64_t *word = (uint64_t *)(start + off);
			uint64_t want = off + PAGE <= kept ? ((uintptr_t)word << 8 | (round - 1)) : 0;
			if (off + PAGE <= kept || off >= size) {
				if (*word != want) {
					report("round %u: the page at %p holds %#lx, expected %#lx", round,
					       (void *)word, (unsigned long)*word, (unsigned long)want);
					return 1;
				}
			}
			*word = (uintptr_t)word << 8 | round;
		}
		size = target;
	}
	printf("heap: 60 moves, every page as expected");
	return 0;
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
		{"clock-1000", clocks_1000}, {"shuffle", shuffle},
		{"heap", heap},
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
