/*
 * The event of the one-shot test programs (threads.c, signals.c): the name of one check on
 * stdin, with trailing whitespace and one pair of JSON quotes around it ("spin") ignored.
 */
#ifndef FUNCTIONS_EVENT_H
#define FUNCTIONS_EVENT_H

#include <stdio.h>
#include <string.h>

/* Reads the event into `buf` (at most `size - 1` bytes); returns the check's name in it. */
static char *read_check(char *buf, size_t size) {
    memset(buf, 0, size);
    size_t len = fread(buf, 1, size - 1, stdin);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ')) buf[--len] = 0;
    char *check = buf;
    if (len >= 2 && check[0] == '"' && check[len - 1] == '"') {
        check[len - 1] = 0;
        check++;
    }
    return check;
}

#endif
