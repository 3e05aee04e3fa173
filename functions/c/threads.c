/*
 * threads: a one-shot stdio function in C that exercises POSIX threads the way runtimes use
 * them. The event names one check; the response says what it saw, the same on every backend
 * and however the threads are scheduled.
 *
 *   pthreads   8 threads each sum their share of 1..4000000 under a mutex, signal a condition
 *              variable, and are joined: {"sum":...,"joined":...}
 *   spin       two threads hand a token back and forth 20 times by spinning on an atomic word,
 *              with no syscall in the loops: only preemption lets them go on with one CPU
 *   fpu        two threads run long floating-point loops at once (SSE and x87), each compared
 *              with the same loop run alone: a thread switch must keep each one's FPU state
 *   sleepers   a timed wait on a condition variable nobody signals times out; then 4 threads
 *              sleep 40, 30, 20 and 10 ms while the first thread waits for all of them
 *   limit      threads that wait on a condition variable are made until pthread_create
 *              fails; prints how many were made and the error, then lets them go and joins them
 *   crash      a second thread writes through a null pointer: the program dies of SIGSEGV
 *   exit       the first thread calls pthread_exit; the second writes the response later and
 *              the program ends when it does (exit status 0)
 *   tids       gettid in 3 threads: all distinct, and the first thread's is getpid()
 *   socketpair two threads exchange 100 messages over a Unix socket pair, one side waiting in
 *              poll(): {"exchanged":100}
 *   robust     a thread locks a robust mutex and exits holding it: the next lock returns
 *              EOWNERDEAD, and the mutex is usable again once marked consistent
 *   create N   N threads made and joined one after another (each does nothing): what a
 *              thread's creation costs (benches/threads.rs)
 *   pingpong N two threads hand a turn back and forth N times through semaphores (futex
 *              waits and wakes): what a switch between threads costs
 *   parallel N two threads each run N million rounds of a CPU-bound loop with no syscall and
 *              are joined: {"cpus":...,"sums":[...]}, cpus being what sched_getaffinity
 *              reports; twice as fast with two CPUs as with one (benches/threads.rs)
 *
 * Built with gcc -static -pthread (build.rs), so it runs the same in the micro-VM and as a
 * process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "event.h"

static void fail(const char *what, int error) {
    fprintf(stderr, "threads: %s: %s\n", what, strerror(error));
    exit(1);
}

static void start(pthread_t *thread, void *(*body)(void *), void *arg) {
    int error = pthread_create(thread, NULL, body, arg);
    if (error) fail("pthread_create", error);
}

static void *join(pthread_t thread) {
    void *result;
    int error = pthread_join(thread, &result);
    if (error) fail("pthread_join", error);
    return result;
}

/* pthreads */
#define WORKERS 8
#define UP_TO 4000000L
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static long total;
static int finished;

static void *add_share(void *arg) {
    long index = (long)arg, share = UP_TO / WORKERS, sum = 0;
    for (long i = index * share + 1; i <= (index + 1) * share; i++) sum += i;
    pthread_mutex_lock(&lock);
    total += sum;
    finished++;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    return (void *)(index + 1);
}

static void check_pthreads(void) {
    pthread_t threads[WORKERS];
    for (long i = 0; i < WORKERS; i++) start(&threads[i], add_share, (void *)i);
    pthread_mutex_lock(&lock);
    while (finished < WORKERS) pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
    long joined = 0;
    for (int i = 0; i < WORKERS; i++) joined += (long)join(threads[i]);
    printf("{\"sum\":%ld,\"joined\":%ld}", total, joined);
}

/* spin */
#define ROUNDS 20
static atomic_int token;

static void *spin_partner(void *arg) {
    (void)arg;
    for (int round = 0; round < ROUNDS; round++) {
        while (atomic_load(&token) != 2 * round + 1) {
        }
        atomic_store(&token, 2 * round + 2);
    }
    return NULL;
}

static void check_spin(void) {
    pthread_t partner;
    start(&partner, spin_partner, NULL);
    for (int round = 0; round < ROUNDS; round++) {
        while (atomic_load(&token) != 2 * round) {
        }
        atomic_store(&token, 2 * round + 1);
    }
    while (atomic_load(&token) != 2 * ROUNDS) {
    }
    join(partner);
    printf("{\"handed\":%d}", atomic_load(&token));
}

/* fpu */
struct fp_work {
    double seed;
    double sse;
    long double x87;
};

static void fp_loop(struct fp_work *work) {
    /* volatile: the compiler may not fold the loop away or reorder it. */
    volatile double sse = work->seed;
    volatile long double x87 = work->seed;
    for (long i = 1; i <= 10000000; i++) {
        sse = sse * 1.0000001 + 1.0 / (double)i;
        x87 = x87 * 0.9999999L + 1.0L / (long double)i;
    }
    work->sse = sse;
    work->x87 = x87;
}

static void *fp_thread(void *arg) {
    fp_loop(arg);
    return NULL;
}

static void check_fpu(void) {
    struct fp_work alone[2] = {{.seed = 1.5}, {.seed = -7.25}};
    struct fp_work together[2] = {{.seed = 1.5}, {.seed = -7.25}};
    fp_loop(&alone[0]);
    fp_loop(&alone[1]);
    pthread_t other;
    start(&other, fp_thread, &together[1]);
    fp_loop(&together[0]);
    join(other);
    int same = 1;
    for (int i = 0; i < 2; i++) {
        same &= memcmp(&alone[i].sse, &together[i].sse, sizeof(double)) == 0;
        same &= alone[i].x87 == together[i].x87;
    }
    printf("{\"same\":%s,\"sse\":%.6f}", same ? "true" : "false", together[0].sse);
}

/* sleepers */
static int woke[4];
static int woken;

static void *sleeper(void *arg) {
    long ms = (long)arg;
    struct timespec nap = {0, ms * 1000000L};
    while (nanosleep(&nap, &nap) != 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&lock);
    woke[woken++] = (int)ms;
    pthread_cond_signal(&changed);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static int by_value(const void *a, const void *b) {
    return *(const int *)a - *(const int *)b;
}

static void check_sleepers(void) {
    pthread_t threads[4];
    long naps[4] = {40, 30, 20, 10};
    /* A timed wait nobody signals: it must time out. */
    pthread_mutex_lock(&lock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    int timed_out = pthread_cond_timedwait(&changed, &lock, &until) == ETIMEDOUT;
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < 4; i++) start(&threads[i], sleeper, (void *)naps[i]);
    pthread_mutex_lock(&lock);
    while (woken < 4) pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < 4; i++) join(threads[i]);
    /* The order they woke in depends on the host's load: sorted, it does not. */
    qsort(woke, 4, sizeof woke[0], by_value);
    printf("{\"woke\":[%d,%d,%d,%d],\"timed_out\":%s}", woke[0], woke[1], woke[2], woke[3],
           timed_out ? "true" : "false");
}

/* limit */
#define MOST 5000
static int released;

static void *wait_for_release(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!released) pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void check_limit(void) {
    static pthread_t threads[MOST];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int made = 0, error = 0;
    while (made < MOST) {
        error = pthread_create(&threads[made], &attr, wait_for_release, NULL);
        if (error) break;
        made++;
    }
    pthread_mutex_lock(&lock);
    released = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < made; i++) join(threads[i]);
    printf("{\"made\":%d,\"error\":\"%s\"}", made, error == EAGAIN ? "EAGAIN" : strerror(error));
}

/* crash */
static void *crash(void *arg) {
    volatile int *nowhere = arg;
    *nowhere = 1;
    return NULL;
}

static void check_crash(void) {
    pthread_t thread;
    start(&thread, crash, NULL);
    join(thread);
    printf("{\"survived\":true}");
}

/* exit */
static void *finish_later(void *arg) {
    (void)arg;
    struct timespec nap = {0, 10000000};
    nanosleep(&nap, NULL);
    printf("{\"written_by\":\"second thread\"}");
    fflush(stdout);
    return NULL;
}

static void check_exit(void) {
    pthread_t thread;
    start(&thread, finish_later, NULL);
    pthread_exit(NULL);
}

/* tids */
static void *report_tid(void *arg) {
    *(long *)arg = syscall(SYS_gettid);
    return NULL;
}

static void check_tids(void) {
    long tids[3] = {syscall(SYS_gettid), 0, 0};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) start(&threads[i], report_tid, &tids[i + 1]);
    for (int i = 0; i < 2; i++) join(threads[i]);
    int distinct = tids[0] != tids[1] && tids[1] != tids[2] && tids[0] != tids[2];
    printf("{\"distinct\":%s,\"first_is_pid\":%s}", distinct ? "true" : "false",
           tids[0] == getpid() ? "true" : "false");
}

/* socketpair */
static int pair[2];

static void *echo_back(void *arg) {
    (void)arg;
    char byte;
    for (int i = 0; i < 100; i++) {
        if (read(pair[1], &byte, 1) != 1) break;
        byte++;
        if (write(pair[1], &byte, 1) != 1) break;
    }
    return NULL;
}

static void check_socketpair(void) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair)) fail("socketpair", errno);
    pthread_t thread;
    start(&thread, echo_back, NULL);
    int exchanged = 0;
    for (int i = 0; i < 100; i++) {
        char byte = (char)i;
        if (write(pair[0], &byte, 1) != 1) break;
        struct pollfd readable = {.fd = pair[0], .events = POLLIN};
        if (poll(&readable, 1, 10000) != 1) break;
        if (read(pair[0], &byte, 1) != 1 || byte != (char)(i + 1)) break;
        exchanged++;
    }
    join(thread);
    printf("{\"exchanged\":%d}", exchanged);
}

/* robust */
static pthread_mutex_t robust_lock;

static void *lock_and_leave(void *arg) {
    (void)arg;
    pthread_mutex_lock(&robust_lock);
    return NULL; /* exits holding it */
}

static void check_robust(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust_lock, &attr);
    pthread_t thread;
    start(&thread, lock_and_leave, NULL);
    join(thread);
    int first = pthread_mutex_lock(&robust_lock);
    if (first == EOWNERDEAD) pthread_mutex_consistent(&robust_lock);
    pthread_mutex_unlock(&robust_lock);
    int second = pthread_mutex_lock(&robust_lock);
    pthread_mutex_unlock(&robust_lock);
    printf("{\"first\":\"%s\",\"second\":%d}", first == EOWNERDEAD ? "EOWNERDEAD" : strerror(first), second);
}

/* create N */
static void *nothing(void *arg) {
    return arg;
}

static void check_create(long count) {
    for (long i = 0; i < count; i++) {
        pthread_t thread;
        start(&thread, nothing, NULL);
        join(thread);
    }
    printf("{\"created\":%ld}", count);
}

/* pingpong N */
static sem_t ping, pong;
static long rounds;

static void *ponger(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        sem_wait(&ping);
        sem_post(&pong);
    }
    return NULL;
}

static void check_pingpong(long count) {
    rounds = count;
    sem_init(&ping, 0, 0);
    sem_init(&pong, 0, 0);
    pthread_t thread;
    start(&thread, ponger, NULL);
    for (long i = 0; i < count; i++) {
        sem_post(&ping);
        sem_wait(&pong);
    }
    join(thread);
    printf("{\"rounds\":%ld}", count);
}

struct share {
    long rounds;
    uint64_t sum;
};

static void *crunch(void *arg) {
    struct share *share = arg;
    uint64_t x = 0x9e3779b97f4a7c15ULL + (uint64_t)share->rounds;
    for (long i = 0; i < share->rounds * 1000000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    share->sum = x;
    return NULL;
}

static void check_parallel(long millions) {
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    if (sched_getaffinity(0, sizeof cpus, &cpus)) fail("sched_getaffinity", errno);
    struct share shares[2] = {{millions, 0}, {millions + 1, 0}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) start(&threads[i], crunch, &shares[i]);
    for (int i = 0; i < 2; i++) join(threads[i]);
    printf("{\"cpus\":%d,\"sums\":[%llu,%llu]}", CPU_COUNT(&cpus),
           (unsigned long long)shares[0].sum, (unsigned long long)shares[1].sum);
}

int main(void) {
    char event[256];
    char *check = read_check(event, sizeof event);
    if (!strcmp(check, "pthreads")) check_pthreads();
    else if (!strcmp(check, "spin")) check_spin();
    else if (!strcmp(check, "fpu")) check_fpu();
    else if (!strcmp(check, "sleepers")) check_sleepers();
    else if (!strcmp(check, "limit")) check_limit();
    else if (!strcmp(check, "crash")) check_crash();
    else if (!strcmp(check, "exit")) check_exit();
    else if (!strcmp(check, "tids")) check_tids();
    else if (!strcmp(check, "socketpair")) check_socketpair();
    else if (!strcmp(check, "robust")) check_robust();
    else if (!strncmp(check, "create ", 7)) check_create(atol(check + 7));
    else if (!strncmp(check, "pingpong ", 9)) check_pingpong(atol(check + 9));
    else if (!strncmp(check, "parallel ", 9)) check_parallel(atol(check + 9));
    else {
        fprintf(stderr, "threads: unknown check %s\n", check);
        return 2;
    }
    return 0;
}
