/* connload -- kernel TCP clients for benchmarks/shards.py, in C so the clients are not
 * what limits the figures (a Python client tops out near 5,000 connections a second).
 *
 *   connload IP PORT conn|bulk SECONDS PARALLEL
 *
 * conn: PARALLEL connections at a time, each connecting, sending 64 B, reading them
 * back and closing with a reset (SO_LINGER 0: no TIME_WAIT, or the client's ports would
 * run out within a second), then replaced. bulk: PARALLEL connections, each writing 64 KB chunks
 * (at most 256 KB ahead of what came back) and reading the echo. Prints one JSON line:
 * completed connections a second, MB/s echoed, and failures (each one named by errno
 * in "first_error"). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { PING = 64, CHUNK = 65536, AHEAD = 262144, MAX_PAR = 4096 };

typedef struct {
    int fd;
    long long sent, got;
    int writing;
} conn;

static struct sockaddr_in to;
static int ep, bulk;
static conn conns[MAX_PAR];
static long long done, failed, moved;
static int first_error;
static char buf[CHUNK];

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void watch(conn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, op, c->fd, &ev);
}

static void start(conn *c)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || (connect(c->fd, (struct sockaddr *)&to, sizeof to) < 0 &&
                      errno != EINPROGRESS)) {
        perror("connload: socket/connect");
        exit(1);
    }
    c->writing = 1;
    watch(c, EPOLL_CTL_ADD, EPOLLOUT | (bulk ? EPOLLIN : 0));
}

static void fail(conn *c, int e)
{
    if (first_error == 0)
        first_error = e;
    failed++;
    close(c->fd);
    start(c);
}

static void step(conn *c, uint32_t events)
{
    if (events & (EPOLLERR | EPOLLHUP)) {
        int e = 0;
        socklen_t len = sizeof e;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len);
        fail(c, e ? e : ECONNRESET);
        return;
    }
    if (events & EPOLLIN) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n <= 0 && !(n < 0 && errno == EAGAIN)) {
            fail(c, n == 0 ? ECONNRESET : errno);
            return;
        }
        if (n > 0) {
            c->got += n;
            moved += bulk ? n : 0;
        }
        if (!bulk && c->got >= PING) {
            struct linger abort_close = {.l_onoff = 1, .l_linger = 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close);
            done++;
            close(c->fd);
            start(c);
            return;
        }
    }
    if (events & EPOLLOUT) {
        if (!bulk) {
            if (send(c->fd, buf, PING, MSG_NOSIGNAL) != PING) {
                fail(c, errno);
                return;
            }
            watch(c, EPOLL_CTL_MOD, EPOLLIN);
        } else if (c->sent - c->got < AHEAD) {
            ssize_t n = send(c->fd, buf, CHUNK, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN) {
                fail(c, errno);
                return;
            }
            c->sent += n > 0 ? n : 0;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: connload IP PORT conn|bulk SECONDS PARALLEL\n");
        return 2;
    }
    to.sin_family = AF_INET;
    to.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
        fprintf(stderr, "connload: %s is not an IPv4 address\n", argv[1]);
        return 2;
    }
    bulk = strcmp(argv[3], "bulk") == 0;
    double secs = atof(argv[4]);
    int par = atoi(argv[5]);
    if (par < 1 || par > MAX_PAR || secs <= 0) {
        fprintf(stderr, "connload: PARALLEL is 1..%d, SECONDS > 0\n", MAX_PAR);
        return 2;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < par; i++)
        start(&conns[i]);
    struct epoll_event evs[256];
    double end = now_s() + secs;
    while (now_s() < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++)
            step(evs[i].data.ptr, evs[i].events);
    }
    printf("{\"conns_per_s\": %.1f, \"mb_per_s\": %.2f, \"failed\": %lld, "
           "\"first_error\": \"%s\"}\n", (double)done / secs, (double)moved / secs / 1e6, failed,
           first_error ? strerror(first_error) : "");
    return 0;
}
