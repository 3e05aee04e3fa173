/*
 * hello: a one-shot stdio function in C. build.rs compiles this one file three ways:
 *   hello-c        gcc -static -no-pie  a fixed-address ET_EXEC, the classic static binary
 *   hello-c-pie    gcc -static-pie      self-relocating, like Rust's crt-static output
 *   hello-dynamic  gcc                  needs ld.so and libc.so: the engine must refuse it
 *
 * Reads the event from stdin (at most MAX_INPUT bytes; the rest is ignored), prints
 * "Hello from C, <input>!" on stdout and logs "hello-c: N bytes" on stderr. A trailing
 * newline is dropped from the greeting so `echo Ada | hello-c` reads naturally.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Lambda's synchronous payload limit. */
#define MAX_INPUT (6 * 1024 * 1024)

int main(void)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        perror("hello-c: malloc");
        return 1;
    }
    for (;;) {
        if (len == cap) {
            if (cap == MAX_INPUT)
                break;
            cap = cap * 2 > MAX_INPUT ? MAX_INPUT : cap * 2;
            char *bigger = realloc(buf, cap);
            if (!bigger) {
                perror("hello-c: realloc");
                return 1;
            }
            buf = bigger;
        }
        ssize_t n = read(0, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("hello-c: read");
            return 1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    fprintf(stderr, "hello-c: %zu bytes\n", len);

    size_t shown = len;
    if (shown > 0 && buf[shown - 1] == '\n')
        shown--;
    if (shown > 0 && buf[shown - 1] == '\r')
        shown--;
    printf("Hello from C, %.*s!", (int)shown, buf);
    free(buf);
    return fflush(stdout) == 0 ? 0 : 1;
}
