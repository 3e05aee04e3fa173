/*
 * exec: a one-shot stdio function in C that replaces itself with execve, checking what a
 * program keeps and loses across it. The event names one check; the response is what the
 * program started by execve reports.
 *
 *   replace   opens one descriptor with O_CLOEXEC (3) and one without (4), installs a
 *             SIGUSR1 handler, ignores SIGUSR2, blocks SIGTERM, dirties MXCSR, then execs
 *             itself as `exec-c --after replace a "b c"` with MARK=kept added to the
 *             environment
 *   thread    the same, after starting a thread that spins on the CPU (on another vCPU when
 *             the environment has two) and one that waits in a futex
 *   from-thread a second thread execs while the first waits in pthread_join
 *   errors    execs that must fail, each errno reported, and the program goes on
 *   script    execs /var/task/again.sh, a #!/var/task/exec-c script: Linux's argv
 *
 * After the exec (`--after CHECK ...`) it prints `pid==tid`, the descriptors, the signal
 * actions and mask, MXCSR, its argv, MARK and /proc/self/exe, one per line.
 *
 * Built with gcc -static -pthread (build.rs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xmmintrin.h>

#include "event.h"

extern char **environ;

static void on_usr1(int signal) { (void)signal; }

static void *spin(void *arg) {
    (void)arg;
    for (volatile unsigned long i = 0;; i++) {
    }
    return NULL;
}

static void *wait_forever(void *arg) {
    (void)arg;
    pause();
    return NULL;
}

static char *self_argv[8];
static char **self_envp;

static void prepare(const char *check) {
    int cloexec = open("/var/task/exec-c", O_RDONLY | O_CLOEXEC);
    int kept = open("/var/task/exec-c", O_RDONLY);
    if (cloexec != 3 || kept != 4) {
        printf("descriptors %d %d\n", cloexec, kept);
        exit(1);
    }
    struct sigaction action = {0};
    action.sa_handler = on_usr1;
    sigaction(SIGUSR1, &action, NULL);
    signal(SIGUSR2, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    _mm_setcsr(0x7f80); /* round toward zero: a program after exec starts at 0x1f80 */

    static char *envp[256];
    size_t n = 0;
    for (char **e = environ; *e && n < 250; e++) envp[n++] = *e;
    envp[n++] = "MARK=kept";
    envp[n] = NULL;
    self_envp = envp;
    self_argv[0] = "exec-c";
    self_argv[1] = "--after";
    self_argv[2] = (char *)check;
    self_argv[3] = "a";
    self_argv[4] = "b c";
    self_argv[5] = NULL;
}

static void *exec_from_thread(void *arg) {
    (void)arg;
    execve("/var/task/exec-c", self_argv, self_envp);
    printf("execve from a thread failed: %s\n", strerror(errno));
    exit(1);
}

static void report(int argc, char **argv) {
    printf("pid==tid %d\n", getpid() == (pid_t)syscall(SYS_gettid));
    printf("fd3 %s\n", fcntl(3, F_GETFD) == -1 && errno == EBADF ? "closed" : "open");
    printf("fd4 %s\n", fcntl(4, F_GETFD) == 0 ? "open" : "closed");
    struct sigaction action;
    sigaction(SIGUSR1, NULL, &action);
    printf("usr1 %s\n", action.sa_handler == SIG_DFL ? "default" : "handled");
    sigaction(SIGUSR2, NULL, &action);
    printf("usr2 %s\n", action.sa_handler == SIG_IGN ? "ignored" : "not ignored");
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    printf("term %s\n", sigismember(&mask, SIGTERM) ? "blocked" : "unblocked");
    printf("mxcsr %#x\n", _mm_getcsr());
    printf("argc %d\n", argc);
    for (int i = 0; i < argc; i++) printf("argv[%d] %s\n", i, argv[i]);
    const char *mark = getenv("MARK");
    printf("MARK %s\n", mark ? mark : "(unset)");
    char exe[256] = {0};
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    printf("exe %s\n", len > 0 ? exe : "(none)");
}

static const char *name(int error) {
    switch (error) {
    case 0: return "0";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ENOEXEC: return "ENOEXEC";
    case E2BIG: return "E2BIG";
    case EFAULT: return "EFAULT";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    default: return strerror(error);
    }
}

static void try_exec(const char *what, const char *path, char **argv) {
    char *empty[] = {NULL};
    errno = 0;
    syscall(SYS_execve, path, argv ? argv : (char *[]){(char *)path, NULL}, empty);
    printf("%s %s\n", what, name(errno));
}

static void errors(void) {
    try_exec("missing", "/var/task/missing", NULL);
    try_exec("directory", "/var/task", NULL);
    try_exec("not-a-program", "/var/task/data.txt", NULL);
    int tmp = open("/tmp/copy", O_WRONLY | O_CREAT | O_TRUNC, 0755);
    close(tmp);
    try_exec("tmp-file", "/tmp/copy", NULL);
    try_exec("script-loop", "/var/task/loop.sh", NULL);
    try_exec("bad-path", (const char *)8, NULL);
    try_exec("bad-argv", "/var/task/exec-c", (char **)8);
    static char huge[200 * 1024];
    memset(huge, 'x', sizeof huge - 1);
    try_exec("huge-arg", "/var/task/exec-c", (char *[]){"exec-c", huge, NULL});
    static char long_path[5000];
    memset(long_path, 'a', sizeof long_path - 1);
    long_path[0] = '/';
    try_exec("long-path", long_path, NULL);
    printf("still running\n");
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "--after") == 0) {
        report(argc, argv);
        return 0;
    }
    if (argc >= 2) {
        /* Started by the #! script: report how. */
        report(argc, argv);
        return 0;
    }
    char buf[64];
    const char *check = read_check(buf, sizeof buf);
    if (strcmp(check, "errors") == 0) {
        errors();
        return 0;
    }
    if (strcmp(check, "script") == 0) {
        char *script_argv[] = {"again", "x", NULL};
        execve("/var/task/again.sh", script_argv, environ);
        printf("execve of the script failed: %s\n", strerror(errno));
        return 1;
    }
    prepare(check);
    pthread_t thread;
    if (strcmp(check, "thread") == 0) {
        pthread_create(&thread, NULL, spin, NULL);
        pthread_create(&thread, NULL, wait_forever, NULL);
    } else if (strcmp(check, "from-thread") == 0) {
        pthread_create(&thread, NULL, exec_from_thread, NULL);
        pthread_join(thread, NULL);
        printf("pthread_join returned\n");
        return 1;
    } else if (strcmp(check, "replace") != 0) {
        printf("unknown check %s\n", check);
        return 1;
    }
    execve("/var/task/exec-c", self_argv, self_envp);
    printf("execve failed: %s\n", strerror(errno));
    return 1;
}
