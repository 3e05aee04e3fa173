/*
 * runtime-c: a Lambda custom runtime in C on plain POSIX sockets (socket, connect, write,
 * read), echoing each event body back as its response, forever.
 *
 * It shows the Runtime API needs nothing beyond libc: one keep-alive HTTP/1.1 connection to
 * AWS_LAMBDA_RUNTIME_API, GET .../invocation/next, POST .../invocation/{id}/response. The
 * host must be a numeric IPv4 address or "localhost": getaddrinfo in a static glibc program
 * needs NSS shared libraries at run time. Responses must carry Content-Length (no chunked
 * encoding), which the Runtime API always does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define API "/2018-06-01/runtime"
#define MAX_LINE 8192
#define MAX_BODY (32 * 1024 * 1024)

static const char *api;   /* host:port */
static int conn = -1;     /* the keep-alive connection, or -1 */
static char rbuf[65536];  /* read buffer: fewer read() calls, fewer VM exits */
static size_t rpos, rlen;

struct response {
    int status;
    int close;            /* the server said Connection: close */
    char request_id[256];
    size_t length;
    char *body;
};

static int connect_api(void)
{
    char host[256];
    const char *colon = strrchr(api, ':');
    if (!colon || (size_t)(colon - api) >= sizeof host) {
        fprintf(stderr, "runtime-c: bad AWS_LAMBDA_RUNTIME_API %s\n", api);
        return -1;
    }
    memcpy(host, api, (size_t)(colon - api));
    host[colon - api] = '\0';
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");

    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)) };
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "runtime-c: %s is not a numeric IPv4 address\n", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("runtime-c: connect");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    conn = fd;
    rpos = rlen = 0;
    return 0;
}

static void drop_connection(void)
{
    if (conn >= 0)
        close(conn);
    conn = -1;
}

static int write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(conn, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads into rbuf when it is empty; -1 on error or EOF. */
static int fill(void)
{
    if (rpos < rlen)
        return 0;
    ssize_t n;
    do
        n = read(conn, rbuf, sizeof rbuf);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -1;
    rpos = 0;
    rlen = (size_t)n;
    return 0;
}

/* One line without its CRLF, NUL-terminated; -1 on error, EOF or an over-long line. */
static int read_line(char *line)
{
    size_t n = 0;
    for (;;) {
        if (fill() < 0)
            return -1;
        char c = rbuf[rpos++];
        if (c == '\n')
            break;
        if (n + 1 >= MAX_LINE)
            return -1;
        line[n++] = c;
    }
    if (n > 0 && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    return 0;
}

static int read_exact(char *dst, size_t n)
{
    while (n > 0) {
        if (fill() < 0)
            return -1;
        size_t take = rlen - rpos < n ? rlen - rpos : n;
        memcpy(dst, rbuf + rpos, take);
        rpos += take;
        dst += take;
        n -= take;
    }
    return 0;
}

/* Sends one request (in a single write) and reads the response; -1 on any failure. */
static int request(const char *method, const char *path, const char *body, size_t body_len,
                   struct response *resp)
{
    static char line[MAX_LINE];
    memset(resp, 0, sizeof *resp);
    if (conn < 0 && connect_api() < 0)
        return -1;

    char head[1024];
    int head_len = snprintf(head, sizeof head,
                            "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\n\r\n",
                            method, path, api, body_len);
    if (head_len < 0 || (size_t)head_len >= sizeof head)
        return -1;
    char *msg = malloc((size_t)head_len + body_len);
    if (!msg)
        return -1;
    memcpy(msg, head, (size_t)head_len);
    if (body_len)
        memcpy(msg + head_len, body, body_len);
    int sent = write_all(msg, (size_t)head_len + body_len);
    free(msg);
    if (sent < 0 || read_line(line) < 0 || sscanf(line, "HTTP/%*s %d", &resp->status) != 1)
        goto fail;
    for (;;) {
        if (read_line(line) < 0)
            goto fail;
        if (line[0] == '\0')
            break;
        char *value = strchr(line, ':');
        if (!value)
            goto fail;
        *value++ = '\0';
        value += strspn(value, " \t");
        if (strcasecmp(line, "Content-Length") == 0)
            resp->length = strtoul(value, NULL, 10);
        else if (strcasecmp(line, "Lambda-Runtime-Aws-Request-Id") == 0)
            snprintf(resp->request_id, sizeof resp->request_id, "%s", value);
        else if (strcasecmp(line, "Connection") == 0 && strcasecmp(value, "close") == 0)
            resp->close = 1;
    }
    if (resp->length > MAX_BODY)
        goto fail;
    resp->body = malloc(resp->length + 1);
    if (!resp->body || read_exact(resp->body, resp->length) < 0)
        goto fail;
    if (resp->close)
        drop_connection();
    return 0;
fail:
    free(resp->body);
    resp->body = NULL;
    drop_connection();
    return -1;
}

int main(void)
{
    api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api) {
        fprintf(stderr, "runtime-c: AWS_LAMBDA_RUNTIME_API is not set\n");
        return 1;
    }
    for (;;) {
        struct response event, ack;
        /* A second try covers a keep-alive connection dropped while we were idle. */
        if (request("GET", API "/invocation/next", NULL, 0, &event) < 0 &&
            request("GET", API "/invocation/next", NULL, 0, &event) < 0) {
            fprintf(stderr, "runtime-c: GET next failed\n");
            return 1;
        }
        if (event.status != 200 || event.request_id[0] == '\0') {
            fprintf(stderr, "runtime-c: bad event (status %d)\n", event.status);
            return 1;
        }
        char path[512];
        snprintf(path, sizeof path, API "/invocation/%s/response", event.request_id);
        if (request("POST", path, event.body, event.length, &ack) < 0)
            fprintf(stderr, "runtime-c: POST %s failed\n", path);
        else if (ack.status < 200 || ack.status >= 300)
            fprintf(stderr, "runtime-c: POST %s answered %d\n", path, ack.status);
        free(ack.body);
        free(event.body);
    }
}
