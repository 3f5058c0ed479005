/* td_pingpong.c -- the TCPDirect API called from C, no Python: one process holds a server
 * stack and a client stack, connects them and times COUNT round trips of SIZE bytes
 * (client sends, server echoes), polling both stacks in turn as pollnet's one-thread
 * tcpdirect pair does. benchmarks/tcpdirect_overhead.py puts it beside the same loop
 * through pollnet, on the look-alike or the real library (then in TCPDirect's emulator).
 *
 * td_pingpong LIBRARY SERVER_IF SERVER_IP CLIENT_IF CLIENT_IP PORT COUNT SIZE
 * prints one line: "rtt_ns p50=N p99=N mean=N count=N"
 * Built against the look-alike's header (the API's declarations), the library dlopen'd. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zf/zf.h"

#define FN(name) static __typeof__(name) *p_##name
FN(zf_init); FN(zf_attr_alloc); FN(zf_attr_set_str); FN(zf_stack_alloc);
FN(zf_reactor_perform); FN(zftl_listen); FN(zftl_accept); FN(zft_alloc); FN(zft_addr_bind);
FN(zft_connect); FN(zft_state); FN(zft_zc_recv); FN(zft_zc_recv_done); FN(zft_send_single);

static void die(const char *what, long rc)
{
    fprintf(stderr, "td_pingpong: %s failed: %ld\n", what, rc);
    exit(1);
}

static struct sockaddr_in addr(const char *ip, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
        die("inet_pton", 0);
    return a;
}

static struct zf_stack *stack_on(const char *ifname, struct zf_attr **attr)
{
    struct zf_stack *st;
    int rc = p_zf_attr_alloc(attr);
    if (rc < 0)
        die("zf_attr_alloc", rc);
    p_zf_attr_set_str(*attr, "interface", ifname);
    if ((rc = p_zf_stack_alloc(*attr, &st)) < 0)
        die("zf_stack_alloc", rc);
    return st;
}

/* One packet's bytes from `z`, if any, given back at once; returns their count. */
static size_t take(struct zft *z, struct zft_msg *msg)
{
    msg->iovcnt = 1;
    p_zft_zc_recv(z, msg, 0);
    if (msg->iovcnt == 0)
        return 0;
    size_t n = msg->iov[0].iov_len;
    p_zft_zc_recv_done(z, msg);
    return n;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: td_pingpong LIBRARY SERVER_IF SERVER_IP CLIENT_IF CLIENT_IP "
                        "PORT COUNT SIZE\n");
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        fprintf(stderr, "td_pingpong: %s\n", dlerror());
        return 1;
    }
#define LOAD(name) if (!(p_##name = (__typeof__(name) *)dlsym(h, #name))) die("dlsym " #name, 0)
    LOAD(zf_init); LOAD(zf_attr_alloc); LOAD(zf_attr_set_str); LOAD(zf_stack_alloc);
    LOAD(zf_reactor_perform); LOAD(zftl_listen); LOAD(zftl_accept); LOAD(zft_alloc);
    LOAD(zft_addr_bind); LOAD(zft_connect); LOAD(zft_state); LOAD(zft_zc_recv);
    LOAD(zft_zc_recv_done); LOAD(zft_send_single);
    int port = atoi(argv[6]), count = atoi(argv[7]), size = atoi(argv[8]);
    if (count <= 0 || size <= 0 || size > 1400)
        die("COUNT > 0 and 0 < SIZE <= 1400", 0);
    long rc = p_zf_init();
    if (rc < 0)
        die("zf_init", rc);
    struct zf_attr *sattr, *cattr;
    struct zf_stack *ss = stack_on(argv[2], &sattr), *cs = stack_on(argv[4], &cattr);
    struct sockaddr_in sa = addr(argv[3], port), ca = addr(argv[5], 0);
    struct zftl *tl;
    if ((rc = p_zftl_listen(ss, (struct sockaddr *)&sa, sizeof sa, sattr, &tl)) < 0)
        die("zftl_listen", rc);
    struct zft_handle *hd;
    struct zft *cz, *sz = NULL;
    if ((rc = p_zft_alloc(cs, cattr, &hd)) < 0)
        die("zft_alloc", rc);
    if ((rc = p_zft_addr_bind(hd, (struct sockaddr *)&ca, sizeof ca, 0)) < 0)
        die("zft_addr_bind", rc);
    if ((rc = p_zft_connect(hd, (struct sockaddr *)&sa, sizeof sa, &cz)) < 0)
        die("zft_connect", rc);
    for (uint64_t end = now_ns() + 5000000000u; !sz || p_zft_state(cz) != 1;) {
        p_zf_reactor_perform(cs);
        p_zf_reactor_perform(ss);
        if (!sz && p_zftl_accept(tl, &sz) < 0)
            sz = NULL;
        if (now_ns() > end)
            die("connecting (5 s)", 0);
    }
    struct { struct zft_msg m; struct iovec iov[1]; } sm, cm;
    char buf[1400];
    memset(buf, 'x', sizeof buf);
    uint64_t *rtt = calloc((size_t)count, sizeof *rtt);
    int cnews = 1, snews = 1;
    for (int i = 0; i < count; i++) {
        uint64_t t0 = now_ns();
        while (p_zft_send_single(cz, buf, (size_t)size, 0) != size)
            p_zf_reactor_perform(cs);
        /* As pollnet polls: a zocket is read only after its reactor reported something
         * (zf_reactor_perform has false positives, never misses), until it is empty. */
        size_t back = 0;
        while (back < (size_t)size) {
            cnews |= p_zf_reactor_perform(cs) > 0;
            snews |= p_zf_reactor_perform(ss) > 0;
            size_t n = snews ? take(sz, &sm.m) : 0;
            snews = n != 0;
            while (n && p_zft_send_single(sz, buf, n, 0) != (ssize_t)n)
                p_zf_reactor_perform(ss);
            n = cnews ? take(cz, &cm.m) : 0;
            cnews = n != 0;
            back += n;
        }
        rtt[i] = now_ns() - t0;
    }
    uint64_t sum = 0;
    for (int i = 0; i < count; i++)
        sum += rtt[i];
    qsort(rtt, (size_t)count, sizeof *rtt, cmp);
    printf("rtt_ns p50=%llu p99=%llu mean=%llu count=%d\n",
           (unsigned long long)rtt[count / 2], (unsigned long long)rtt[count * 99 / 100],
           (unsigned long long)(sum / (uint64_t)count), count);
    return 0;   /* (the process exit frees the stacks) */
}
