/*
 * dynamic: a one-shot function linked the way a plain `gcc` links, against glibc's shared
 * libc and libm, that also loads a library at run time. build.rs builds it as `dynamic-c`;
 * it runs only with a base image that holds the dynamic linker and glibc.
 *
 * Reads a number from stdin and prints
 *   {"cos":<cos(x) from libm, linked>,"sqrt":<sqrt(x) from dlopen("libm.so.6")>,"pid":<getpid()>}
 * Any failure prints the reason on stderr and exits 1.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
    char input[64] = {0};
    size_t len = fread(input, 1, sizeof input - 1, stdin);
    input[len] = '\0';
    double x = strtod(input, NULL);

    void *libm = dlopen("libm.so.6", RTLD_NOW);
    if (!libm) {
        fprintf(stderr, "dynamic: dlopen: %s\n", dlerror());
        return 1;
    }
    double (*root)(double) = (double (*)(double))dlsym(libm, "sqrt");
    if (!root) {
        fprintf(stderr, "dynamic: dlsym: %s\n", dlerror());
        return 1;
    }
    fprintf(stderr, "dynamic: x = %g\n", x);
    printf("{\"cos\":%.6f,\"sqrt\":%.6f,\"pid\":%d}", cos(x), root(x), (int)getpid());
    dlclose(libm);
    return 0;
}
