/*
 * fork: a one-shot stdio function in C that starts child processes the ways programs do and
 * reports what the parent sees. The event names one check; the response is the same on
 * every backend.
 *
 *   fork      a forked child changes a global and exits 7: the parent's global is unchanged,
 *             waitpid reports 7, and the child saw its own pid and the parent's as ppid
 *   spawn     posix_spawn (vfork + execve in glibc) runs this program
 *             ($LAMBDA_TASK_ROOT/fork-c) as `--child hello`, whose output goes through a pipe
 *             the parent reads after waitpid
 *   killed    a child writes through a null pointer: waitpid reports SIGSEGV
 *   sigchld   a SIGCHLD handler runs when the child ends; with SIGCHLD ignored, the child
 *             is reaped at once and waitpid answers ECHILD
 *   nested    a child forks a grandchild; each waits for its own child
 *   errors    waitpid with no child answers ECHILD; a child whose descriptor table and
 *             memory are its own: closing the pipe's write end in the child leaves the
 *             parent's open
 *   threads   a thread spins while the main thread forks: the child has one thread
 *   child-threads a child starts a thread that spins, then exits 4 (its spinning thread
 *             on another vCPU when the environment has two): the parent reaps it
 *   capture   a child writes 200,000 bytes into a pipe and exits; the parent reads them all
 *             after waitpid (more than a pipe holds while both run: a waiting parent's
 *             pipes hold more)
 *
 * Built with gcc -static -pthread (build.rs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "event.h"

extern char **environ;

static int global = 1;
static volatile sig_atomic_t sigchld_seen;

static void on_sigchld(int signal) {
    (void)signal;
    sigchld_seen = 1;
}

static void describe(const char *what, int status) {
    if (WIFEXITED(status))
        printf("%s exited %d\n", what, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s killed by %s\n", what, strsignal(WTERMSIG(status)));
    else
        printf("%s status %#x\n", what, status);
}

static void check_fork(void) {
    int report[2];
    pipe(report);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        global = 42;
        char line[64];
        int len = snprintf(line, sizeof line, "%d %d", getpid() != parent, getppid() == parent);
        write(report[1], line, len);
        _exit(7);
    }
    close(report[1]);
    int status = 0;
    pid_t reaped = waitpid(child, &status, 0);
    char seen[64] = {0};
    read(report[0], seen, sizeof seen - 1);
    printf("reaped the child %s\n", reaped == child ? "yes" : "no");
    describe("child", status);
    printf("global %d\n", global);
    printf("child saw new-pid parent-as-ppid: %s\n", seen);
}

static void check_spawn(void) {
    int out[2];
    pipe(out);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    char *argv[] = {"fork-c", "--child", "hello", NULL};
    const char *root = getenv("LAMBDA_TASK_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/fork-c", root ? root : "/var/task");
    pid_t child;
    int error = posix_spawn(&child, path, &actions, NULL, argv, environ);
    close(out[1]);
    if (error) {
        printf("posix_spawn: %s\n", strerror(error));
        return;
    }
    int status = 0;
    waitpid(child, &status, 0);
    char seen[64] = {0};
    ssize_t len = read(out[0], seen, sizeof seen - 1);
    printf("spawned child wrote: %s", len > 0 ? seen : "(nothing)\n");
    describe("spawned child", status);
    printf("then EOF: %s\n", read(out[0], seen, 1) == 0 ? "yes" : "no");
}

static void check_killed(void) {
    pid_t child = fork();
    if (child == 0) {
        *(volatile int *)0 = 1;
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    describe("child", status);
}

static void check_sigchld(void) {
    signal(SIGCHLD, on_sigchld);
    pid_t child = fork();
    if (child == 0) _exit(0);
    int status = 0;
    waitpid(child, &status, 0);
    printf("SIGCHLD handler ran: %s\n", sigchld_seen ? "yes" : "no");
    signal(SIGCHLD, SIG_IGN);
    child = fork();
    if (child == 0) _exit(3);
    errno = 0;
    pid_t reaped = waitpid(child, &status, 0);
    printf("with SIGCHLD ignored: %s\n", reaped == -1 && errno == ECHILD ? "ECHILD" : "reaped");
}

static void check_nested(void) {
    pid_t child = fork();
    if (child == 0) {
        pid_t grandchild = fork();
        if (grandchild == 0) _exit(5);
        int status = 0;
        waitpid(grandchild, &status, 0);
        _exit(WEXITSTATUS(status) + 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    describe("child of a child that exited 5", status);
}

static void check_errors(void) {
    errno = 0;
    printf("waitpid with no child: %s\n", waitpid(-1, NULL, 0) == -1 && errno == ECHILD ? "ECHILD" : "?");
    int fds[2];
    pipe(fds);
    pid_t child = fork();
    if (child == 0) {
        close(fds[1]);
        close(fds[0]);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    printf("parent's write end still open: %s\n", write(fds[1], "x", 1) == 1 ? "yes" : "no");
    char byte = 0;
    printf("and reads back: %s\n", read(fds[0], &byte, 1) == 1 && byte == 'x' ? "yes" : "no");
    /* Processes nest at most 16 deep (the running one and its waiting parents). The
     * children inherit stdout's buffer: empty it first. */
    fflush(stdout);
    int depth = 1;
    for (;;) {
        pid_t next = fork();
        if (next == -1) {
            printf("fork at depth %d: %s\n", depth, errno == EAGAIN ? "EAGAIN" : strerror(errno));
            fflush(stdout);
            _exit(0);
        }
        if (next != 0) {
            int status = 0;
            waitpid(next, &status, 0);
            if (depth > 1) _exit(0);
            break;
        }
        depth++;
    }
}

static void *spin(void *arg) {
    (void)arg;
    for (volatile unsigned long i = 0;; i++) {
    }
    return NULL;
}

static void check_threads(void) {
    pthread_t thread;
    pthread_create(&thread, NULL, spin, NULL);
    pid_t child = fork();
    if (child == 0) {
        /* Only this thread was copied: ending it ends the child. */
        pthread_exit(NULL);
    }
    int status = 0;
    waitpid(child, &status, 0);
    describe("child whose one thread exited", status);
}

static void check_child_threads(void) {
    pid_t child = fork();
    if (child == 0) {
        pthread_t thread;
        pthread_create(&thread, NULL, spin, NULL);
        /* Give the spinning thread time to be running (on another vCPU if there is one). */
        for (volatile unsigned long i = 0; i < 20000000; i++) {
        }
        _exit(4);
    }
    int status = 0;
    waitpid(child, &status, 0);
    describe("child with a spinning thread", status);
}

static void check_capture(void) {
    int fds[2];
    pipe(fds);
    pid_t child = fork();
    if (child == 0) {
        static char block[10000];
        memset(block, 'y', sizeof block);
        for (int i = 0; i < 20; i++) {
            if (write(fds[1], block, sizeof block) != (ssize_t)sizeof block) _exit(1);
        }
        _exit(0);
    }
    close(fds[1]);
    int status = 0;
    waitpid(child, &status, 0);
    describe("writer", status);
    long total = 0;
    char buffer[65536];
    ssize_t n;
    while ((n = read(fds[0], buffer, sizeof buffer)) > 0) total += n;
    printf("captured %ld bytes\n", total);
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "--child") == 0) {
        printf("%s from pid>1: %s\n", argv[2], getpid() > 1 ? "yes" : "no");
        return 0;
    }
    char buf[64];
    const char *check = read_check(buf, sizeof buf);
    if (strcmp(check, "fork") == 0) check_fork();
    else if (strcmp(check, "spawn") == 0) check_spawn();
    else if (strcmp(check, "killed") == 0) check_killed();
    else if (strcmp(check, "sigchld") == 0) check_sigchld();
    else if (strcmp(check, "nested") == 0) check_nested();
    else if (strcmp(check, "errors") == 0) check_errors();
    else if (strcmp(check, "threads") == 0) check_threads();
    else if (strcmp(check, "capture") == 0) check_capture();
    else if (strcmp(check, "child-threads") == 0) check_child_threads();
    else printf("unknown check %s\n", check);
    return 0;
}
