/*
 * An open-loop HTTP/1.1 load generator that keeps its schedule: request i is due at start + i / rate, and its
 * latency is counted from that due time to the last byte of its answer, so a late send counts against the answer
 * (no coordinated omission). One thread, epoll with a nanosecond timeout to the next due time (timer slack 1 ns), keep-alive
 * connections opened as needed; a few microseconds of CPU per request, so it does not compete with the server it
 * measures for the cores it shares with it.
 *
 *   loadgen HOST PORT RATE SECONDS REQUESTS OUT [TIMEOUT_S] [MAX_CONNECTIONS]
 *
 * REQUESTS holds whole requests, each as a 4-byte little-endian length and its bytes, used in turn. OUT gets one
 * line per request: "due_ns sent_ns latency_ns status" (due and sent from the start; status 0 when no answer came:
 * timeout, refused or closed connection, an answer that could not be parsed). A summary goes to standard error.
 * Built by bench/serving.py with the system's C compiler.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { IDLE, CONNECTING, BUSY, CLOSED };

typedef struct {
    int fd, state, want_out; /* want_out: EPOLLOUT is asked for */
    long req;           /* the request in flight, or -1 */
    size_t sent;        /* bytes of it written so far */
    char *buf;
    size_t len, cap;
} conn_t;

typedef struct { int64_t due, sent, latency; int status; } result_t;

static struct sockaddr_storage addr;
static socklen_t addrlen;
static int ep;
static char **reqs;
static size_t *reqlen;
static long nreqs;
static result_t *results;
static conn_t *conns;
static int nconns, maxconns;
static int *idle, nidle;
static long *pending, phead, ptail; /* FIFO of requests due with no connection free */
static long answered, failed;
static int64_t t0;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void finish(long req, int status) {
    if (results[req].status != -1) return;
    results[req].status = status;
    results[req].latency = now_ns() - t0 - results[req].due;
    if (status > 0) answered++; else failed++;
}

static void conn_close(conn_t *c) {
    if (c->state == IDLE) /* the server closed a kept-alive connection: it is free no more */
        for (int k = 0; k < nidle; k++)
            if (idle[k] == (int)(c - conns)) {
                idle[k] = idle[--nidle];
                break;
            }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    if (c->req >= 0) finish(c->req, 0);
    c->req = -1;
    c->state = CLOSED;
    c->len = 0;
}

static int conn_write(conn_t *c) {
    const char *data = reqs[c->req % nreqs];
    size_t total = reqlen[c->req % nreqs];
    while (c->sent < total) {
        ssize_t n = write(c->fd, data + c->sent, total - c->sent);
        if (n < 0) {
            if (errno == EAGAIN) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)(c - conns)};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->want_out = 1;
                return 0;
            }
            conn_close(c);
            return -1;
        }
        c->sent += (size_t)n;
    }
    return 0;
}

static void conn_send(conn_t *c, long req) {
    c->req = req;
    c->sent = 0;
    c->state = BUSY;
    c->len = 0;
    results[req].sent = now_ns() - t0;
    conn_write(c);
}

static int conn_open(void) {
    int i;
    for (i = 0; i < nconns; i++) if (conns[i].state == CLOSED) break;
    if (i == nconns) {
        if (nconns == maxconns) return -1;
        nconns++;
    }
    conn_t *c = &conns[i];
    c->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->req = -1;
    c->len = 0;
    c->state = CONNECTING;
    c->want_out = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    if (connect(c->fd, (struct sockaddr *)&addr, addrlen) < 0 && errno != EINPROGRESS) {
        conn_close(c);
        return -2;
    }
    return i;
}

/* A request is due: on a free connection now, else on a new one once it connects, else when one frees. */
static void dispatch(long req) {
    if (nidle > 0) {
        conn_send(&conns[idle[--nidle]], req);
        return;
    }
    pending[ptail++] = req;
    if (conn_open() == -2) { /* refused at once: the request fails, as vegeta counts it */
        ptail--;
        finish(req, 0);
    }
}

static void conn_idle(int i) {
    conn_t *c = &conns[i];
    c->state = IDLE;
    c->req = -1;
    c->len = 0;
    if (c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = 0;
    }
    if (phead < ptail) conn_send(c, pending[phead++]);
    else idle[nidle++] = i;
}

/* The answer's status when the buffer holds all of it, 0 when more is to come, -1 when it cannot be parsed. */
static int parse(conn_t *c, int *close_after) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL) return 0;
    if (c->len < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0) return -1;
    int status = atoi(c->buf + 9);
    size_t head = (size_t)(end - c->buf) + 4;
    long length = -1;
    int chunked = 0;
    *close_after = 0;
    for (char *line = memmem(c->buf, head, "\r\n", 2); line && line + 2 < c->buf + head;
         line = memmem(line + 2, (size_t)(c->buf + head - line - 2), "\r\n", 2)) {
        char *h = line + 2;
        if (strncasecmp(h, "content-length:", 15) == 0) length = atol(h + 15);
        else if (strncasecmp(h, "connection:", 11) == 0) {
            char *v = h + 11;
            while (*v == ' ') v++;
            if (strncasecmp(v, "close", 5) == 0) *close_after = 1;
        } else if (strncasecmp(h, "transfer-encoding:", 18) == 0) {
            if (memmem(h, (size_t)(c->buf + head - h), "chunked", 7) != NULL) chunked = 1;
        }
    }
    if (chunked) { /* chunks: a hex size line, the data and CRLF; the last of size 0, then the trailer's CRLF */
        size_t pos = head;
        for (;;) {
            char *eol = memmem(c->buf + pos, c->len - pos, "\r\n", 2);
            if (eol == NULL) return 0;
            char *after;
            long size = strtol(c->buf + pos, &after, 16);
            if (after == c->buf + pos || size < 0) return -1;
            pos = (size_t)(eol - c->buf) + 2;
            if (size == 0) {
                char *end = memmem(c->buf + pos - 2, c->len - pos + 2, "\r\n\r\n", 4);
                if (end == NULL) return 0;
                if ((size_t)(end - c->buf) + 4 != c->len) return -1;
                return status > 0 ? status : -1;
            }
            if (c->len < pos + (size_t)size + 2) return 0;
            pos += (size_t)size + 2;
        }
    }
    if (length < 0) return -1;
    if (c->len < head + (size_t)length) return 0;
    if (c->len > head + (size_t)length) return -1; /* bytes nobody asked for */
    return status > 0 ? status : -1;
}

static void on_event(int i, uint32_t events) {
    conn_t *c = &conns[i];
    if (c->state == CLOSED) return;
    if (c->state == CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
            conn_close(c);
            if (phead < ptail) finish(pending[phead++], 0);
            return;
        }
        conn_idle(i);
        return;
    }
    if ((events & EPOLLOUT) && c->state == BUSY && c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = 0;
        if (conn_write(c) < 0) return;
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
    for (;;) {
        if (c->cap - c->len < 4096) {
            c->cap *= 2;
            c->buf = realloc(c->buf, c->cap);
            if (c->buf == NULL) die("realloc");
        }
        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->len += (size_t)n;
        if (c->state != BUSY) { /* an answer nobody asked for */
            conn_close(c);
            return;
        }
        int close_after = 0, status = parse(c, &close_after);
        if (status == 0) continue;
        finish(c->req, status > 0 ? status : 0);
        c->req = -1;
        if (status < 0 || close_after) conn_close(c);
        else conn_idle(i);
        return;
    }
}

static void load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) die(path);
    long cap = 1024;
    reqs = malloc(sizeof *reqs * cap);
    reqlen = malloc(sizeof *reqlen * cap);
    uint8_t n4[4];
    while (fread(n4, 1, 4, f) == 4) {
        size_t n = n4[0] | (size_t)n4[1] << 8 | (size_t)n4[2] << 16 | (size_t)n4[3] << 24;
        if (nreqs == cap) {
            cap *= 2;
            reqs = realloc(reqs, sizeof *reqs * cap);
            reqlen = realloc(reqlen, sizeof *reqlen * cap);
        }
        reqs[nreqs] = malloc(n);
        if (fread(reqs[nreqs], 1, n, f) != n) {
            fprintf(stderr, "%s: truncated request %ld\n", path, nreqs);
            exit(2);
        }
        reqlen[nreqs++] = n;
    }
    fclose(f);
    if (nreqs == 0) {
        fprintf(stderr, "%s: no requests\n", path);
        exit(2);
    }
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s HOST PORT RATE SECONDS REQUESTS OUT [TIMEOUT_S] [MAX_CONNECTIONS]\n", argv[0]);
        return 2;
    }
    double rate = atof(argv[3]), seconds = atof(argv[4]);
    double timeout_s = argc > 7 ? atof(argv[7]) : 5.0;
    maxconns = argc > 8 ? atoi(argv[8]) : 2000;
    if (rate <= 0 || seconds <= 0 || maxconns <= 0) {
        fprintf(stderr, "RATE, SECONDS and MAX_CONNECTIONS must be positive\n");
        return 2;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *found;
    int rc = getaddrinfo(argv[1], argv[2], &hints, &found);
    if (rc != 0) {
        fprintf(stderr, "%s:%s: %s\n", argv[1], argv[2], gai_strerror(rc));
        return 2;
    }
    memcpy(&addr, found->ai_addr, found->ai_addrlen);
    addrlen = found->ai_addrlen;
    freeaddrinfo(found);
    load(argv[5]);
    long total = (long)(rate * seconds + 0.5);
    int64_t step = (int64_t)(1e9 / rate), timeout = (int64_t)(timeout_s * 1e9);
    results = malloc(sizeof *results * total);
    pending = malloc(sizeof *pending * total);
    conns = calloc((size_t)maxconns, sizeof *conns);
    idle = malloc(sizeof *idle * maxconns);
    if (!results || !pending || !conns || !idle) die("malloc");
    for (int i = 0; i < maxconns; i++) {
        conns[i].fd = -1;
        conns[i].state = CLOSED;
        conns[i].cap = 16384;
        conns[i].buf = malloc(conns[i].cap);
    }
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");

    t0 = now_ns();
    long next = 0;
    int64_t last_sweep = 0;
    struct epoll_event events[256];
    while (answered + failed < total) {
        int64_t now = now_ns() - t0;
        while (next < total && next * step <= now) {
            results[next] = (result_t){.due = next * step, .sent = -1, .latency = -1, .status = -1};
            dispatch(next++);
        }
        if (now - last_sweep > 10000000) { /* every 10 ms: requests past their timeout fail */
            last_sweep = now;
            for (int i = 0; i < nconns; i++)
                if (conns[i].state == BUSY && now - results[conns[i].req].due > timeout) conn_close(&conns[i]);
            while (phead < ptail && now - results[pending[phead]].due > timeout) finish(pending[phead++], 0);
        }
        int64_t wait = next < total ? next * step - (now_ns() - t0) : 10000000;
        if (wait < 0) wait = 0;
        struct timespec ts = {.tv_sec = wait / 1000000000LL, .tv_nsec = wait % 1000000000LL};
        int n = epoll_pwait2(ep, events, 256, &ts, NULL);
        if (n < 0 && errno != EINTR) die("epoll_pwait2");
        for (int k = 0; k < n; k++) {
            on_event((int)events[k].data.u32, events[k].events);
        }
    }
    double elapsed = (double)(now_ns() - t0) / 1e9;
    FILE *out = fopen(argv[6], "w");
    if (out == NULL) die(argv[6]);
    for (long i = 0; i < total; i++)
        fprintf(out, "%lld %lld %lld %d\n", (long long)results[i].due, (long long)results[i].sent,
                (long long)results[i].latency, results[i].status);
    fclose(out);
    fprintf(stderr, "%ld requests in %.2f s: %ld answered, %ld failed, %d connections\n", total, elapsed, answered,
            failed, nconns);
    return 0;
}
