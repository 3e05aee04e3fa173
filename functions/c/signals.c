/*
 * signals: a one-shot stdio function in C that exercises signal delivery the way runtimes
 * rely on it. The event names one check; the response is the same on every backend.
 *
 *   segv       a SIGSEGV handler on an alternate stack catches a write through a null
 *              pointer (si_addr, si_code SEGV_MAPERR) and jumps back with siglongjmp
 *   fpe        a SIGFPE handler catches an integer division by zero
 *   raise      raise(SIGUSR1) runs its handler before raise returns; the handler sees
 *              SIGUSR1 blocked while it runs
 *   mask       a blocked SIGUSR1 stays pending (sigpending) and runs when unblocked
 *   thread     pthread_kill wakes a thread waiting in sigsuspend() (EINTR) and its handler
 *              runs on that thread (the signal is blocked until sigsuspend unblocks it, so it
 *              cannot come too early)
 *   sigwait    a thread waits in sigtimedwait for a blocked signal another thread sends
 *   restart    a read blocked on a pipe is restarted after an SA_RESTART handler, and
 *              interrupted (EINTR) without SA_RESTART. The signal is sent 20 ms after the
 *              reader started: only a scheduler that runs the reader into its read by then
 *              (one CPU, as in the micro-VM) makes the answer certain
 *   fpu        a handler that uses the FPU runs in the middle of a floating-point loop
 *              (another thread keeps signalling) and the loop's result is unchanged; the
 *              loop is run again until a signal has come during it
 *   abort      abort() runs the SIGABRT handler, then the program dies of SIGABRT
 *   context    a handler changes the interrupted context (skips a faulting ud2 by moving
 *              the saved rip) and rt_sigreturn resumes there
 *   bad-return rt_sigreturn with the stack pointer at bytes that are no signal frame: the
 *              program dies of SIGSEGV (Linux's answer to a frame it cannot use)
 *   no-restorer a handler installed with the raw syscall and no SA_RESTORER, then raised:
 *              there is no way back from it, so the program dies of SIGSEGV
 *   sigpipe    writes to a pipe whose read end is closed: with SIGPIPE ignored, EPIPE; with a
 *              handler, EPIPE and the handler ran; a send with MSG_NOSIGNAL on a socket pair
 *              whose peer is closed, EPIPE and no signal
 *   sigpipe-default the same write with SIGPIPE's default action: the program dies of SIGPIPE
 *
 * Built with gcc -static -pthread (build.rs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <time.h>
#include <unistd.h>

#include "event.h"

static void fail(const char *what) {
    fprintf(stderr, "signals: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void on(int signal, void (*handler)(int, siginfo_t *, void *), int flags) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = handler;
    action.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&action.sa_mask);
    if (sigaction(signal, &action, NULL)) fail("sigaction");
}

static sigjmp_buf back;
static volatile void *fault_addr;
static volatile int fault_code, fault_signal, on_altstack;
static char altstack[64 * 1024];

static void catch_fault(int signal, siginfo_t *info, void *context) {
    (void)context;
    fault_signal = signal;
    fault_code = info->si_code;
    fault_addr = info->si_addr;
    char here;
    on_altstack = &here >= altstack && &here < altstack + sizeof altstack;
    siglongjmp(back, 1);
}

static void check_segv(void) {
    stack_t stack = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    if (sigaltstack(&stack, NULL)) fail("sigaltstack");
    on(SIGSEGV, catch_fault, SA_ONSTACK);
    if (!sigsetjmp(back, 1)) {
        *(volatile int *)0 = 1;
        printf("{\"caught\":false}");
        return;
    }
    printf("{\"caught\":%d,\"addr\":\"%p\",\"code\":%d,\"on_altstack\":%s}", fault_signal,
           (void *)fault_addr, fault_code, on_altstack ? "true" : "false");
}

static void check_fpe(void) {
    on(SIGFPE, catch_fault, 0);
    volatile int zero = 0;
    if (!sigsetjmp(back, 1)) {
        volatile int result = 7 / zero;
        printf("{\"caught\":false,\"result\":%d}", result);
        return;
    }
    printf("{\"caught\":%d,\"code\":%d}", fault_signal, fault_code);
}

static volatile int handled, blocked_inside;
static volatile long handler_tid;

static void count(int signal, siginfo_t *info, void *context) {
    (void)info;
    (void)context;
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    blocked_inside = sigismember(&now, signal);
    handler_tid = syscall(SYS_gettid);
    handled++;
}

static void check_raise(void) {
    on(SIGUSR1, count, 0);
    raise(SIGUSR1);
    int after = handled;
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("{\"handled\":%d,\"blocked_inside\":%s,\"blocked_after\":%s}", after,
           blocked_inside ? "true" : "false", sigismember(&now, SIGUSR1) ? "true" : "false");
}

static void check_mask(void) {
    on(SIGUSR1, count, 0);
    sigset_t usr1, pending;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    raise(SIGUSR1);
    int while_blocked = handled;
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    printf("{\"while_blocked\":%d,\"pending\":%s,\"after_unblock\":%d}", while_blocked,
           was_pending ? "true" : "false", handled);
}

static volatile long waiter_tid;
static volatile int suspend_result, suspend_errno;
static atomic_int waiting;

static void *suspender(void *arg) {
    (void)arg;
    waiter_tid = syscall(SYS_gettid);
    atomic_store(&waiting, 1);
    sigset_t none;
    sigemptyset(&none);
    suspend_result = sigsuspend(&none);
    suspend_errno = errno;
    return NULL;
}

static void check_thread(void) {
    on(SIGUSR2, count, 0);
    /* Blocked here, so in the new thread too until its sigsuspend. */
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, NULL);
    pthread_t thread;
    pthread_create(&thread, NULL, suspender, NULL);
    while (!atomic_load(&waiting)) sched_yield();
    pthread_kill(thread, SIGUSR2);
    pthread_join(thread, NULL);
    printf("{\"handled\":%d,\"on_that_thread\":%s,\"sigsuspend\":%d,\"eintr\":%s}", handled,
           handler_tid == waiter_tid ? "true" : "false", suspend_result,
           suspend_errno == EINTR ? "true" : "false");
}

static void *send_usr1(void *arg) {
    pthread_kill(*(pthread_t *)arg, SIGUSR1);
    return NULL;
}

static void check_sigwait(void) {
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    pthread_t self = pthread_self(), sender;
    pthread_create(&sender, NULL, send_usr1, &self);
    siginfo_t info;
    struct timespec limit = {10, 0};
    int got = sigtimedwait(&usr1, &info, &limit);
    pthread_join(sender, NULL);
    struct timespec short_limit = {0, 1000000};
    int none = sigtimedwait(&usr1, &info, &short_limit);
    printf("{\"got\":%d,\"signo\":%d,\"then\":%d,\"eagain\":%s}", got, info.si_signo, none,
           errno == EAGAIN ? "true" : "false");
}

static int pipe_ends[2];
static volatile ssize_t read_result;
static volatile int read_errno;

static void *reader(void *arg) {
    (void)arg;
    char byte;
    atomic_store(&waiting, 1);
    read_result = read(pipe_ends[0], &byte, 1);
    read_errno = errno;
    return NULL;
}

static void nothing(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)info;
    (void)context;
    handled++;
}

static int read_through(int flags) {
    on(SIGUSR1, nothing, flags);
    if (pipe(pipe_ends)) fail("pipe");
    atomic_store(&waiting, 0);
    pthread_t thread;
    pthread_create(&thread, NULL, reader, NULL);
    while (!atomic_load(&waiting)) sched_yield();
    struct timespec nap = {0, 20000000};
    nanosleep(&nap, NULL);
    pthread_kill(thread, SIGUSR1);
    nanosleep(&nap, NULL);
    if (write(pipe_ends[1], "x", 1) != 1) fail("write");
    pthread_join(thread, NULL);
    close(pipe_ends[0]);
    close(pipe_ends[1]);
    return read_result == 1 ? 1 : (read_errno == EINTR ? -EINTR : -read_errno);
}

static void check_restart(void) {
    int restarted = read_through(SA_RESTART);
    int interrupted = read_through(0);
    printf("{\"sa_restart\":%d,\"plain\":\"%s\",\"handled\":%d}", restarted,
           interrupted == -EINTR ? "EINTR" : "other", handled);
}

static volatile double handler_noise;

static void fp_handler(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)info;
    (void)context;
    double x = 3.0;
    for (int i = 0; i < 1000; i++) x = x * 1.5 - 2.0 / (x + 1.0);
    handler_noise = x;
    handled++;
}

static double fp_work(void) {
    volatile double sum = 0.25;
    for (long i = 1; i <= 20000000; i++) sum = sum * 1.0000001 + 1.0 / (double)i;
    return sum;
}

static atomic_int fp_done;

static void *keep_signalling(void *arg) {
    pthread_t target = *(pthread_t *)arg;
    while (!atomic_load(&fp_done)) {
        pthread_kill(target, SIGUSR1);
        struct timespec nap = {0, 2000000};
        nanosleep(&nap, NULL);
    }
    return NULL;
}

static void check_fpu(void) {
    double alone = fp_work();
    on(SIGUSR1, fp_handler, SA_RESTART);
    pthread_t self = pthread_self(), signaller;
    pthread_create(&signaller, NULL, keep_signalling, &self);
    int same = 1, during = 0;
    for (int run = 0; run < 100 && !during; run++) {
        int before = handled;
        double interrupted = fp_work();
        same &= memcmp(&alone, &interrupted, sizeof alone) == 0;
        during = handled > before;
    }
    atomic_store(&fp_done, 1);
    pthread_join(signaller, NULL);
    printf("{\"same\":%s,\"signalled_during\":%s}", same ? "true" : "false",
           during ? "true" : "false");
}

static void on_abort(int signal, siginfo_t *info, void *context) {
    (void)info;
    (void)context;
    fprintf(stderr, "signals: handler for signal %d ran\n", signal);
}

static void check_abort(void) {
    on(SIGABRT, on_abort, 0);
    abort();
}

static void skip_ud2(int signal, siginfo_t *info, void *context) {
    (void)info;
    ucontext_t *uc = context;
    fault_signal = signal;
    uc->uc_mcontext.gregs[REG_RIP] += 2;
}

static void check_context(void) {
    on(SIGILL, skip_ud2, 0);
    __asm__ volatile("ud2");
    printf("{\"skipped\":%d}", fault_signal);
}

static void check_bad_return(void) {
    static uint64_t junk[1024];
    memset(junk, 0xa5, sizeof junk);
    __asm__ volatile("mov %0, %%rsp\n\tmov $15, %%eax\n\tsyscall" : : "r"(junk + 512) : "memory");
    printf("{\"survived\":true}");
}

static void check_no_restorer(void) {
    uint64_t action[4] = {(uint64_t)(uintptr_t)nothing, SA_SIGINFO, 0, 0};
    if (syscall(SYS_rt_sigaction, SIGUSR1, action, NULL, 8)) fail("rt_sigaction");
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1);
    printf("{\"survived\":true}");
}

static int broken_pipe(void) {
    int ends[2];
    if (pipe(ends)) {
        perror("pipe");
        exit(1);
    }
    close(ends[0]);
    return ends[1];
}

static void check_sigpipe(void) {
    int fd = broken_pipe();
    signal(SIGPIPE, SIG_IGN);
    long ignored = write(fd, "x", 1);
    int ignored_errno = errno;
    on(SIGPIPE, count, 0);
    long caught = write(fd, "x", 1);
    int caught_errno = errno;
    int after_write = handled;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair)) {
        perror("socketpair");
        exit(1);
    }
    close(pair[1]);
    long sent = send(pair[0], "x", 1, MSG_NOSIGNAL);
    int sent_errno = errno;
    printf("{\"ignored\":[%ld,%s],\"caught\":[%ld,%s,%d],\"nosignal\":[%ld,%s,%d]}", ignored,
           ignored_errno == EPIPE ? "\"EPIPE\"" : "\"other\"", caught,
           caught_errno == EPIPE ? "\"EPIPE\"" : "\"other\"", after_write, sent,
           sent_errno == EPIPE ? "\"EPIPE\"" : "\"other\"", handled);
}

static void check_sigpipe_default(void) {
    int fd = broken_pipe();
    write(fd, "x", 1);
    fprintf(stderr, "signals: still alive after a write to a broken pipe\n");
}

int main(void) {
    char event[256];
    char *check = read_check(event, sizeof event);
    if (!strcmp(check, "segv")) check_segv();
    else if (!strcmp(check, "fpe")) check_fpe();
    else if (!strcmp(check, "raise")) check_raise();
    else if (!strcmp(check, "mask")) check_mask();
    else if (!strcmp(check, "thread")) check_thread();
    else if (!strcmp(check, "sigwait")) check_sigwait();
    else if (!strcmp(check, "restart")) check_restart();
    else if (!strcmp(check, "fpu")) check_fpu();
    else if (!strcmp(check, "abort")) check_abort();
    else if (!strcmp(check, "context")) check_context();
    else if (!strcmp(check, "bad-return")) check_bad_return();
    else if (!strcmp(check, "no-restorer")) check_no_restorer();
    else if (!strcmp(check, "sigpipe")) check_sigpipe();
    else if (!strcmp(check, "sigpipe-default")) check_sigpipe_default();
    else {
        fprintf(stderr, "signals: unknown check %s\n", check);
        return 2;
    }
    return 0;
}
