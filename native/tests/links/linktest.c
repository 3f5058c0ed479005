/*
 * linktest.c -- the real links against the Linux kernel, inside private namespaces.
 *
 * Run inside namespace A (`ip netns exec A linktest ...`, see run.sh); the kernel of
 * namespace B is the peer, reached through a veth pair. Sockets "in B" are made by
 * switching this thread into B with setns() (a socket stays in the namespace it was made
 * in), so one process drives both sides and every step is in order.
 *
 *   linktest --ns-b B --if IF --ip-a A_IP --ip-b B_IP --own OWN_IP [--only NAME]
 *
 * A_IP is the kernel's address on IF in A, B_IP the peer's, OWN_IP a free address in the
 * same subnet that the stack owns (own_ip mode). Prints one line a test and a summary
 * "N passed, N failed, N skipped"; exits 1 if any failed.
 *
 * About 1,300 lines: one program, so that one process in one namespace pair drives both
 * sides of every test; the tests share its setup and each reads on its own.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pncore.h"

static const char *ns_b, *ifname, *only;
static uint32_t ip_a, ip_b, own;
static int n_pass, n_fail, n_skip;
static char why[1024];

#define FAILF(...) do { snprintf(why, sizeof why, __VA_ARGS__); return -1; } while (0)
#define SKIPF(...) do { snprintf(why, sizeof why, __VA_ARGS__); return 1; } while (0)
#define CHECK(c, ...) do { if (!(c)) FAILF(__VA_ARGS__); } while (0)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ frames */

static uint32_t sum16(const void *p, size_t n, uint32_t s)
{
    const uint8_t *b = p;
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(b[i] << 8 | b[i + 1]);
    if (n & 1)
        s += (uint32_t)b[n - 1] << 8;
    return s;
}

static uint16_t fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static uint32_t build_arp(uint8_t *f, const uint8_t *mac, uint16_t oper, const uint8_t *tha,
                          uint32_t spa, uint32_t tpa, const uint8_t *dst)
{
    memset(f, 0, 60);
    memcpy(f, dst, 6);
    memcpy(f + 6, mac, 6);
    put16(f + 12, 0x0806);
    uint8_t *a = f + 14;
    put16(a, 1);
    put16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, oper);
    memcpy(a + 8, mac, 6);
    put32(a + 14, spa);
    memcpy(a + 18, tha, 6);
    put32(a + 24, tpa);
    return 60;
}

/* IPv4 header at f+14 for a payload of len bytes; returns the IP header pointer. */
static uint8_t *build_ip(uint8_t *f, const uint8_t *src_mac, const uint8_t *dst_mac,
                         uint8_t proto, uint32_t src, uint32_t dst, uint32_t len, uint16_t id)
{
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, src_mac, 6);
    put16(f + 12, 0x0800);
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, (uint16_t)(20 + len));
    put16(ip + 4, id);
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = proto;
    put16(ip + 10, 0);
    put32(ip + 12, src);
    put32(ip + 16, dst);
    put16(ip + 10, fold(sum16(ip, 20, 0)));
    return ip;
}

static uint32_t build_echo(uint8_t *f, const uint8_t *mac, const uint8_t *dmac, uint32_t src,
                           uint32_t dst, uint16_t ident, uint16_t seq)
{
    uint8_t *ip = build_ip(f, mac, dmac, 1, src, dst, 64, seq);
    uint8_t *ic = ip + 20;
    ic[0] = 8;
    ic[1] = 0;
    put16(ic + 2, 0);
    put16(ic + 4, ident);
    put16(ic + 6, seq);
    for (int i = 8; i < 64; i++)
        ic[i] = (uint8_t)i;
    put16(ic + 2, fold(sum16(ic, 64, 0)));
    return 14 + 20 + 64;
}

static uint32_t build_udp(uint8_t *f, const uint8_t *mac, const uint8_t *dmac, uint32_t src,
                          uint32_t dst, uint16_t sport, uint16_t dport, uint32_t paylen,
                          uint32_t seq)
{
    uint8_t *ip = build_ip(f, mac, dmac, 17, src, dst, 8 + paylen, (uint16_t)seq);
    uint8_t *u = ip + 20;
    put16(u, sport);
    put16(u + 2, dport);
    put16(u + 4, (uint16_t)(8 + paylen));
    put16(u + 6, 0);
    for (uint32_t i = 0; i < paylen; i++)
        u[8 + i] = (uint8_t)(seq + i);
    if (paylen >= 4)
        put32(u + 8, seq);
    uint32_t s = sum16(ip + 12, 8, 0) + 17 + 8 + paylen;
    uint16_t c = fold(sum16(u, 8 + paylen, s));
    put16(u + 6, c ? c : 0xffff);
    return 14 + 20 + 8 + paylen;
}

/* 0 when the IPv4 header checksum and (for ICMP/UDP/TCP) the L4 checksum are right. */
static int check_ip_csums(const uint8_t *f, uint32_t len, uint32_t flags)
{
    if (len < 34 || get16(f + 12) != 0x0800)
        return -1;
    const uint8_t *ip = f + 14;
    uint32_t ihl = (uint32_t)(ip[0] & 15) * 4;
    uint32_t tot = get16(ip + 2);
    if (ihl < 20 || tot < ihl || 14 + tot > len)
        return -1;
    if (fold(sum16(ip, ihl, 0)) != 0)
        return -2;
    const uint8_t *l4 = ip + ihl;
    uint32_t l4len = tot - ihl;
    if (ip[9] == 1)
        return fold(sum16(l4, l4len, 0)) == 0 ? 0 : -3;
    if (flags & PN_RX_CSUM_PARTIAL)
        return 0;  /* the pseudo-header sum only: trusted by contract */
    if (ip[9] == 6 || ip[9] == 17) {
        uint32_t s = sum16(ip + 12, 8, 0) + ip[9] + l4len;
        return fold(sum16(l4, l4len, s)) == 0 ? 0 : -3;
    }
    return 0;
}

/* ------------------------------------------------------------------ helpers */

typedef struct {
    const char *kind;      /* "af_packet" | "af_xdp" */
    uint8_t mode;
    uint8_t shared;        /* shared-address mode: the link uses A's kernel address */
} linkspec;

static pn_link *open_link(const linkspec *ls, uint8_t own_ip, uint32_t local_ip, char *err,
                          size_t errlen)
{
    pn_real_link_params p;
    memset(&p, 0, sizeof p);
    p.ifname = ifname;
    p.queue = 0;
    p.mode = ls->mode;
    p.own_ip = own_ip;
    p.local_ip = local_ip;
    if (strcmp(ls->kind, "af_packet") == 0)
        return pn_af_packet_link_create(&p, err, errlen);
    return pn_af_xdp_link_create(&p, err, errlen);
}

static void link_close(pn_link *l)
{
    if (l != NULL)
        l->ops->destroy(l);
}

static int send_frame(pn_link *l, const uint8_t *frame, uint32_t len)
{
    uint32_t cap = 0;
    uint8_t *b = l->ops->tx_buf(l, &cap);
    if (b == NULL)
        return PN_EAGAIN;
    if (cap < len)
        return PN_EINVAL;
    memcpy(b, frame, len);
    int rc = l->ops->tx_send(l, b, len);
    l->ops->tx_flush(l);
    return rc;
}

typedef int (*match_fn)(const pn_rx_frame *f, void *ctx);

/* Polls until match() returns 1 for a frame (0 = keep going) or timeout; answers ARP
 * requests for `own` on the way when answer_arp. Copies the match into out. */
static int wait_frame(pn_link *l, uint64_t timeout_ms, match_fn match, void *ctx,
                      uint8_t *out, uint32_t *out_len, uint32_t *out_flags, int answer_arp,
                      uint32_t *seen)
{
    uint64_t deadline = now_ns() + timeout_ms * 1000000u;
    pn_rx_frame fr[32];
    int found = 0;
    while (!found && now_ns() < deadline) {
        int n = l->ops->rx_burst(l, 0, fr, 32);
        if (n < 0)
            return n;
        if (n == 0) {
            l->ops->tx_flush(l);
            usleep(50);
            continue;
        }
        for (int i = 0; i < n; i++) {
            if (seen)
                (*seen)++;
            const uint8_t *d = fr[i].data;
            if (answer_arp && fr[i].len >= 42 && get16(d + 12) == 0x0806 &&
                get16(d + 20) == 1 && get32(d + 38) == own) {
                uint8_t rep[60];
                uint32_t rl = build_arp(rep, l->mac, 2, d + 22, own, get32(d + 28), d + 6);
                send_frame(l, rep, rl);
            }
            if (!found && match(&fr[i], ctx) == 1) {
                found = 1;
                if (out) {
                    memcpy(out, d, fr[i].len);
                    *out_len = fr[i].len;
                }
                if (out_flags)
                    *out_flags = fr[i].flags;
            }
        }
        l->ops->rx_release(l, fr, n);
    }
    return found;
}

static int is_arp_reply_from(const pn_rx_frame *f, void *ctx)
{
    uint32_t who = *(uint32_t *)ctx;
    const uint8_t *d = f->data;
    return f->len >= 42 && get16(d + 12) == 0x0806 && get16(d + 20) == 2 &&
           get32(d + 28) == who;
}

static int arp_resolve(pn_link *l, uint32_t spa, uint32_t target, uint8_t mac[6])
{
    uint8_t f[60], got[2048];
    uint32_t len = 0;
    static const uint8_t zero[6] = {0};
    for (int tries = 0; tries < 3; tries++) {
        uint32_t fl = build_arp(f, l->mac, 1, zero, spa, target, bcast);
        if (send_frame(l, f, fl) < 0)
            return -1;
        if (wait_frame(l, 500, is_arp_reply_from, &target, got, &len, NULL, 1, NULL) == 1) {
            memcpy(mac, got + 22, 6);
            return 0;
        }
    }
    return -1;
}

struct echo_match { uint32_t from; uint16_t ident, seq; };

static int is_echo_reply(const pn_rx_frame *f, void *ctx)
{
    struct echo_match *m = ctx;
    const uint8_t *d = f->data;
    if (f->len < 14 + 20 + 8 || get16(d + 12) != 0x0800 || d[23] != 1)
        return 0;
    const uint8_t *ic = d + 14 + (d[14] & 15) * 4;
    return get32(d + 26) == m->from && ic[0] == 0 && get16(ic + 4) == m->ident &&
           get16(ic + 6) == m->seq;
}

/* Switch this thread into namespace B (or back to A) to make sockets there. */
static int in_ns(const char *name)
{
    static int fd_a = -1;
    if (fd_a < 0)
        fd_a = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int fd;
    if (name == NULL) {
        fd = dup(fd_a);
    } else {
        char path[256];
        snprintf(path, sizeof path, "/var/run/netns/%s", name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0)
        return -1;
    int rc = setns(fd, CLONE_NEWNET);
    close(fd);
    return rc;
}

static int socket_in_b(int domain, int type, int proto)
{
    if (in_ns(ns_b) < 0)
        return -1;
    int fd = socket(domain, type, proto);
    int e = errno;
    in_ns(NULL);
    errno = e;
    return fd;
}

static struct sockaddr_in sin_of(uint32_t ip, uint16_t port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(ip);
    sa.sin_port = htons(port);
    return sa;
}

/* The kernel in B pings `dst` with a raw ICMP socket; 1 when the reply comes. */
static int kernel_ping_from_b(uint32_t dst, uint16_t seq)
{
    int fd = socket_in_b(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    if (fd < 0)
        return -1;
    uint8_t pkt[64];
    memset(pkt, 0xab, sizeof pkt);
    pkt[0] = 8;
    pkt[1] = 0;
    put16(pkt + 2, 0);
    put16(pkt + 4, 0x4242);
    put16(pkt + 6, seq);
    put16(pkt + 2, fold(sum16(pkt, sizeof pkt, 0)));
    struct sockaddr_in sa = sin_of(dst, 0);
    int ok = 0;
    if (sendto(fd, pkt, sizeof pkt, 0, (struct sockaddr *)&sa, sizeof sa) == sizeof pkt) {
        uint64_t deadline = now_ns() + 1000000000u;
        uint8_t buf[256];
        while (!ok && now_ns() < deadline) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            if (poll(&pfd, 1, 100) <= 0)
                continue;
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n >= 28 && buf[20] == 0 && get16(buf + 24) == 0x4242 && get16(buf + 26) == seq)
                ok = 1;
        }
    }
    close(fd);
    return ok;
}

/* ------------------------------------------------------------------ tests */

static const linkspec L_PACKET = {"af_packet", 0, 0};
static const linkspec L_XDP_NATIVE = {"af_xdp", PN_XDP_MODE_NATIVE, 0};
static const linkspec L_XDP_GENERIC = {"af_xdp", PN_XDP_MODE_GENERIC, 0};
static const linkspec L_XDP_SHARED = {"af_xdp", PN_XDP_MODE_AUTO, 1};

static int t_arp(const linkspec *ls)
{
    char err[256];
    pn_link *l = ls->shared ? open_link(ls, 0, 0, err, sizeof err)
                            : open_link(ls, 1, own, err, sizeof err);
    CHECK(l, "create: %s", err);
    uint8_t mac[6];
    int rc = arp_resolve(l, ls->shared ? ip_a : own, ip_b, mac);
    if (rc == 0 && ls->shared) {
        /* The kernel sharing the address still resolves and reaches B. */
        (void)!system("ip neigh flush all");
        if (in_ns(ns_b) == 0) {
            (void)!system("ip neigh flush all");
            in_ns(NULL);
        }
        int ok = kernel_ping_from_b(ip_a, 9);
        link_close(l);
        CHECK(ok == 1, "the kernel's ping failed while the link was open");
        return 0;
    }
    link_close(l);
    CHECK(rc == 0, "no ARP reply from the kernel peer");
    return 0;
}

static int t_icmp(const linkspec *ls)
{
    char err[256];
    pn_link *l = open_link(ls, 1, own, err, sizeof err);
    CHECK(l, "create: %s", err);
    uint8_t mac[6], f[2048], got[2048];
    if (arp_resolve(l, own, ip_b, mac) < 0) {
        link_close(l);
        FAILF("no ARP reply");
    }
    int replies = 0, bad = 0;
    for (uint16_t seq = 1; seq <= 5; seq++) {
        uint32_t fl = build_echo(f, l->mac, mac, own, ip_b, 0x7077, seq);
        if (send_frame(l, f, fl) < 0)
            break;
        struct echo_match m = {ip_b, 0x7077, seq};
        uint32_t len = 0, flags = 0;
        if (wait_frame(l, 1000, is_echo_reply, &m, got, &len, &flags, 1, NULL) == 1) {
            replies++;
            if (check_ip_csums(got, len, flags) != 0)
                bad++;
        }
    }
    link_close(l);
    CHECK(replies == 5, "%d of 5 echo replies", replies);
    CHECK(bad == 0, "%d replies with a bad checksum", bad);
    return 0;
}

struct tcp_match { uint16_t dport; };

static int is_tcp_to(const pn_rx_frame *f, void *ctx)
{
    struct tcp_match *m = ctx;
    const uint8_t *d = f->data;
    if (f->len < 14 + 20 + 20 || get16(d + 12) != 0x0800 || d[23] != 6)
        return 0;
    const uint8_t *t = d + 14 + (d[14] & 15) * 4;
    return get16(t + 2) == m->dport;
}

static int never(const pn_rx_frame *f, void *ctx)
{
    (void)f;
    (void)ctx;
    return 0;
}

/* Shared-address mode: the flow's frames reach the link and never the kernel (af_xdp: only
 * they reach the socket; af_packet: its tc filter hides them from the kernel); the kernel's
 * ping and its other ports keep working; the flow's port is held against the kernel. */
static int t_steer(const linkspec *ls)
{
    char err[256];
    int is_xdp = strcmp(ls->kind, "af_xdp") == 0;
    pn_link *l = open_link(ls, 0, 0, err, sizeof err);
    CHECK(l, "create: %s", err);
    const uint16_t port = 7777, other = 7778;
    pn_flow fl = {.local_ip = ip_a, .remote_ip = 0, .local_port = port, .remote_port = 0};
    int rc = l->ops->flow_add(l, &fl);
    int result = -1;
    int fd = -1, fd2 = -1;
    if (rc < 0) {
        snprintf(why, sizeof why, "flow_add: %s", l->err);
        goto out;
    }
    /* The port is held: the kernel in A cannot bind it. */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = sin_of(ip_a, port);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno != EADDRINUSE) {
        snprintf(why, sizeof why, "the kernel could bind the flow's port");
        goto out;
    }
    close(fd);
    fd = -1;

    /* The kernel in B pings A's kernel address through the XDP program: it passes. */
    uint32_t seen = 0;
    wait_frame(l, 50, never, NULL, NULL, NULL, NULL, 0, &seen);
    seen = 0;
    for (uint16_t s = 1; s <= 3; s++) {
        if (kernel_ping_from_b(ip_a, s) != 1) {
            snprintf(why, sizeof why, "the kernel's ping %u through the XDP program failed", s);
            goto out;
        }
    }
    wait_frame(l, 50, never, NULL, NULL, NULL, NULL, 0, &seen);
    if (is_xdp && seen != 0) {
        snprintf(why, sizeof why, "%u non-flow frames reached the socket", seen);
        goto out;
    }

    /* A connect from B to a flow port: the SYN reaches the socket, not the kernel. */
    fd = socket_in_b(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sa = sin_of(ip_a, port);
    connect(fd, (struct sockaddr *)&sa, sizeof sa);
    struct tcp_match tm = {port};
    uint8_t got[2048];
    uint32_t len = 0, flags = 0;
    if (wait_frame(l, 1000, is_tcp_to, &tm, got, &len, &flags, 0, NULL) != 1) {
        snprintf(why, sizeof why, "the SYN to the flow port never reached the socket");
        goto out;
    }
    const uint8_t *tcp = got + 14 + (got[14] & 15) * 4;
    if ((tcp[13] & 0x02) == 0) {
        snprintf(why, sizeof why, "the first frame of the flow is not a SYN");
        goto out;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    if (poll(&pfd, 1, 200) != 0) {
        int e = 0;
        socklen_t el = sizeof e;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
        snprintf(why, sizeof why, "the kernel answered the flow's SYN (%s)", strerror(e));
        goto out;
    }

    /* A connect to a port that is no flow: the kernel in A refuses it, the socket sees
     * nothing of it. */
    fd2 = socket_in_b(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sa = sin_of(ip_a, other);
    connect(fd2, (struct sockaddr *)&sa, sizeof sa);
    pfd.fd = fd2;
    if (poll(&pfd, 1, 1000) != 1) {
        snprintf(why, sizeof why, "no answer from the kernel for a non-flow port");
        goto out;
    }
    int e = 0;
    socklen_t el = sizeof e;
    getsockopt(fd2, SOL_SOCKET, SO_ERROR, &e, &el);
    if (e != ECONNREFUSED) {
        snprintf(why, sizeof why, "non-flow connect: %s, expected ECONNREFUSED", strerror(e));
        goto out;
    }
    tm.dport = other;
    if (is_xdp && wait_frame(l, 100, is_tcp_to, &tm, NULL, NULL, NULL, 0, NULL) != 0) {
        snprintf(why, sizeof why, "a non-flow TCP frame reached the socket");
        goto out;
    }

    pn_real_link_stats st;
    pn_real_link_stats_get(l, &st);
    if ((is_xdp ? st.xdp_to_flow < 1 || st.xdp_pass < 4 : st.tc_hidden < 1) ||
        st.ports_reserved != 1) {
        snprintf(why, sizeof why, "counters: to_flow %llu pass %llu tc_hidden %llu ports %u",
                 (unsigned long long)st.xdp_to_flow, (unsigned long long)st.xdp_pass,
                 (unsigned long long)st.tc_hidden, st.ports_reserved);
        goto out;
    }

    /* flow_del gives the port back to the kernel. */
    l->ops->flow_del(l, &fl);
    fd2 >= 0 ? close(fd2) : 0;
    fd2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sa = sin_of(ip_a, port);
    if (bind(fd2, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(why, sizeof why, "the port is still held after flow_del: %s", strerror(errno));
        goto out;
    }
    result = 0;
out:
    if (fd >= 0)
        close(fd);
    if (fd2 >= 0)
        close(fd2);
    link_close(l);
    return result;
}

/* Bursts of UDP frames to a kernel socket in B: every one arrives (the TX ring, the kick
 * and, for copy-mode af_xdp, the 32-frames-a-kick limit). Prints the rate. */
static int t_tx_burst(const linkspec *ls)
{
    char err[256];
    pn_link *l = open_link(ls, 1, own, err, sizeof err);
    CHECK(l, "create: %s", err);
    uint8_t mac[6];
    if (arp_resolve(l, own, ip_b, mac) < 0) {
        link_close(l);
        FAILF("no ARP reply");
    }
    int fd = socket_in_b(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int big = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    struct sockaddr_in sa = sin_of(ip_b, 9999);
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    const uint32_t total = 20000, burst = 200;
    uint32_t sent = 0, got = 0, full = 0;
    uint8_t buf[2048];
    uint64_t t0 = now_ns();
    while (sent < total) {
        uint32_t k = 0;
        for (; k < burst && sent < total; k++) {
            uint32_t cap = 0;
            uint8_t *b = l->ops->tx_buf(l, &cap);
            if (b == NULL) {
                full++;
                break;
            }
            uint32_t len = build_udp(b, l->mac, mac, own, ip_b, 9998, 9999, 1000, sent);
            l->ops->tx_send(l, b, len);
            sent++;
        }
        l->ops->tx_flush(l);
        while (recv(fd, buf, sizeof buf, 0) > 0)
            got++;
        if (k == 0)
            usleep(20);
    }
    uint64_t deadline = now_ns() + 1000000000u;
    while (got < total && now_ns() < deadline) {
        l->ops->tx_flush(l);
        if (recv(fd, buf, sizeof buf, 0) > 0)
            got++;
        else
            usleep(100);
    }
    uint64_t dt = now_ns() - t0;
    close(fd);
    pn_real_link_stats st;
    pn_real_link_stats_get(l, &st);
    link_close(l);
    printf("#   %s tx: %u frames of 1042 B in %.1f ms: %.0f frames/s (%u ring-full waits)\n",
           ls->kind, total, dt / 1e6, total / (dt / 1e9), full);
    CHECK(got == total, "%u of %u frames reached the kernel socket", got, total);
    CHECK(st.tx_frames >= total, "tx_frames %llu", (unsigned long long)st.tx_frames);
    return 0;
}

/* More frames than the TX ring holds, never calling tx_flush: tx_buf kicks the ring
 * itself when it wraps, so nothing stalls and every frame arrives. */
static int t_tx_no_flush(const linkspec *ls)
{
    char err[256];
    pn_real_link_params p;
    memset(&p, 0, sizeof p);
    p.ifname = ifname;
    p.mode = ls->mode;
    p.own_ip = 1;
    p.local_ip = own;
    p.ring_frames = 64;
    pn_link *l = strcmp(ls->kind, "af_packet") == 0 ? pn_af_packet_link_create(&p, err, sizeof err)
                                                    : pn_af_xdp_link_create(&p, err, sizeof err);
    CHECK(l, "create: %s", err);
    uint8_t mac[6];
    if (arp_resolve(l, own, ip_b, mac) < 0) {
        link_close(l);
        FAILF("no ARP reply");
    }
    int fd = socket_in_b(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    struct sockaddr_in sa = sin_of(ip_b, 9997);
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    uint32_t sent = 0, nulls = 0;
    uint8_t buf[2048];
    uint64_t deadline = now_ns() + 2000000000u;
    while (sent < 1000 && now_ns() < deadline) {
        uint32_t cap = 0;
        uint8_t *b = l->ops->tx_buf(l, &cap);
        if (b == NULL) {  /* the kernel has not finished with them yet: try again */
            nulls++;
            continue;
        }
        uint32_t len = build_udp(b, l->mac, mac, own, ip_b, 9996, 9997, 200, sent);
        l->ops->tx_send(l, b, len);
        sent++;
    }
    l->ops->tx_flush(l);
    uint32_t got = 0;
    deadline = now_ns() + 1000000000u;
    while (got < sent && now_ns() < deadline) {
        if (recv(fd, buf, sizeof buf, 0) > 0)
            got++;
        else
            usleep(100);
    }
    close(fd);
    link_close(l);
    CHECK(sent == 1000, "only %u frames could be queued in 2 s (%u NULLs)", sent, nulls);
    CHECK(got == 1000, "%u of 1000 arrived", got);
    return 0;
}

/* The kernel in B sends UDP to OWN: each datagram comes out of the link whole, with
 * PN_RX_CSUM_PARTIAL when the kernel left the checksum to offload (af_packet). */
static int t_rx_udp(const linkspec *ls)
{
    char err[256];
    pn_link *l = open_link(ls, 1, own, err, sizeof err);
    CHECK(l, "create: %s", err);
    int fd = socket_in_b(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = sin_of(own, 5555);
    uint8_t payload[1200];
    memset(payload, 0x5a, sizeof payload);
    /* B resolves OWN with ARP: answered by wait_frame below. */
    int sent = 0, got = 0, bad = 0;
    uint32_t partial = 0;
    uint64_t deadline = now_ns() + 3000000000u;
    pn_rx_frame fr[32];
    while (got < 100 && now_ns() < deadline) {
        if (sent < 100 && sent - got < 8) {
            if (sendto(fd, payload, sizeof payload, MSG_DONTWAIT, (struct sockaddr *)&sa,
                       sizeof sa) == (ssize_t)sizeof payload)
                sent++;
        }
        int n = l->ops->rx_burst(l, 0, fr, 32);
        for (int i = 0; i < n; i++) {
            const uint8_t *d = fr[i].data;
            if (fr[i].len >= 42 && get16(d + 12) == 0x0806 && get16(d + 20) == 1 &&
                get32(d + 38) == own) {
                uint8_t rep[60];
                uint32_t rl = build_arp(rep, l->mac, 2, d + 22, own, get32(d + 28), d + 6);
                send_frame(l, rep, rl);
            } else if (fr[i].len >= 42 && get16(d + 12) == 0x0800 && d[23] == 17 &&
                       get16(d + 36) == 5555) {
                got++;
                if (fr[i].flags & PN_RX_CSUM_PARTIAL)
                    partial++;
                if (fr[i].len != 14 + 20 + 8 + sizeof payload ||
                    check_ip_csums(d, fr[i].len, fr[i].flags) != 0)
                    bad++;
            }
        }
        if (n > 0)
            l->ops->rx_release(l, fr, n);
        else
            usleep(50);
    }
    close(fd);
    link_close(l);
    printf("#   %s rx: %d datagrams, %u flagged PN_RX_CSUM_PARTIAL\n", ls->kind, got, partial);
    CHECK(got == 100, "%d of 100 datagrams", got);
    CHECK(bad == 0, "%d bad datagrams", bad);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The same through a classic clsact filter (kernels without tcx); it leaves nothing. */
static int t_steer_classic(const linkspec *ls)
{
    setenv("PN_TEST_TC_CLASSIC", "1", 1);
    int rc = t_steer(ls);
    unsetenv("PN_TEST_TC_CLASSIC");
    if (rc != 0)
        return rc;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "tc qdisc show dev %s | grep -q clsact", ifname);
    CHECK(system(cmd) != 0, "the clsact qdisc outlived the link");
    return 0;
}

/* Busy-polled ICMP echo round trips to the kernel in B: the raw floor of each link
 * (informational: prints percentiles; passes when every reply comes). */
static int t_rtt(const linkspec *ls)
{
    enum { N = 2000 };
    char err[256];
    pn_link *l = open_link(ls, 1, own, err, sizeof err);
    CHECK(l, "create: %s", err);
    uint8_t mac[6], f[256];
    if (arp_resolve(l, own, ip_b, mac) < 0) {
        link_close(l);
        FAILF("no ARP reply");
    }
    static uint64_t rtt[N];
    int got = 0;
    pn_rx_frame fr[32];
    for (int i = 0; i < N; i++) {
        uint16_t seq = (uint16_t)(i + 1);
        uint32_t len = build_echo(f, l->mac, mac, own, ip_b, 0x5151, seq);
        uint64_t t0 = now_ns();
        if (send_frame(l, f, len) < 0)
            break;
        struct echo_match m = {ip_b, 0x5151, seq};
        uint64_t deadline = t0 + 100000000u;
        int done = 0;
        while (!done && now_ns() < deadline) {
            int n = l->ops->rx_burst(l, 0, fr, 32);
            for (int k = 0; k < n; k++)
                if (is_echo_reply(&fr[k], &m)) {
                    rtt[got++] = now_ns() - t0;
                    done = 1;
                }
            if (n > 0)
                l->ops->rx_release(l, fr, n);
        }
    }
    link_close(l);
    CHECK(got >= N * 99 / 100, "%d of %d echo replies", got, N);
    qsort(rtt, (size_t)got, sizeof rtt[0], cmp_u64);
    printf("#   %s%s ICMP echo RTT to the kernel over %d: p50 %.1f us, p99 %.1f us, "
           "max %.1f us\n", ls->kind, ls->mode == PN_XDP_MODE_GENERIC ? " (generic)" : "",
           got, rtt[got / 2] / 1e3, rtt[got * 99 / 100] / 1e3, rtt[got - 1] / 1e3);
    return 0;
}

static int t_errors(const linkspec *ls)
{
    char err[256];
    pn_real_link_params p;
    memset(&p, 0, sizeof p);
    p.ifname = "pn-no-such-if";
    pn_link *l = strcmp(ls->kind, "af_packet") == 0 ? pn_af_packet_link_create(&p, err, sizeof err)
                                                    : pn_af_xdp_link_create(&p, err, sizeof err);
    CHECK(l == NULL, "a link on a missing interface");
    CHECK(strstr(err, "pn-no-such-if") && strstr(err, "ip link"), "message: %s", err);
    int is_xdp = strcmp(ls->kind, "af_xdp") == 0;
#define OPEN_P() (is_xdp ? pn_af_xdp_link_create(&p, err, sizeof err) \
                         : pn_af_packet_link_create(&p, err, sizeof err))
    char cmd[160];
    /* A down interface. */
    p.ifname = ifname;
    snprintf(cmd, sizeof cmd, "ip link set dev %s down", ifname);
    CHECK(system(cmd) == 0, "%s", cmd);
    l = OPEN_P();
    snprintf(cmd, sizeof cmd, "ip link set dev %s up", ifname);
    (void)!system(cmd);
    if (l)
        link_close(l);
    CHECK(l == NULL && strstr(err, "is down") && strstr(err, "up)"), "down: %s", err);
    /* A jumbo MTU: frame_size 0 picks frames that carry it (and the link says its MTU);
     * a frame size chosen too small, or an MTU no af_xdp frame carries, is refused,
     * naming the MTU and what would do. */
    snprintf(cmd, sizeof cmd, "ip link set dev %s mtu 3000", ifname);
    CHECK(system(cmd) == 0, "%s", cmd);
    l = OPEN_P();
    CHECK(l != NULL && l->mtu == 3000, "jumbo MTU, frame size chosen: %s", l ? "" : err);
    if (l)
        link_close(l);
    p.frame_size = 2048;
    l = OPEN_P();
    p.frame_size = 0;
    if (l)
        link_close(l);
    CHECK(l == NULL && strstr(err, "MTU 3000") && strstr(err, "frame_size 2048"),
          "jumbo MTU, frame size 2048: %s", err);
    if (is_xdp) {
        snprintf(cmd, sizeof cmd, "ip link set dev %s mtu 9000", ifname);
        CHECK(system(cmd) == 0, "%s", cmd);
        l = OPEN_P();
        if (l)
            link_close(l);
        CHECK(l == NULL && strstr(err, "MTU 9000") && strstr(err, "3826 or less") &&
              strstr(err, "af_packet"), "MTU 9000: %s", err);
    }
    snprintf(cmd, sizeof cmd, "ip link set dev %s mtu 1500", ifname);
    (void)!system(cmd);
    /* A bad frame size. */
    p.frame_size = 3000;
    l = OPEN_P();
    p.frame_size = 0;
    if (l)
        link_close(l);
    CHECK(l == NULL && strstr(err, "frame_size 3000"), "frame_size: %s", err);
#undef OPEN_P
    /* Let the kernel settle the veth after the MTU change and the down/up. */
    usleep(300000);
    if (is_xdp) {
        /* A queue the interface does not have. */
        p.queue = 7;
        l = pn_af_xdp_link_create(&p, err, sizeof err);
        p.queue = 0;
        if (l)
            link_close(l);
        CHECK(l == NULL && strstr(err, "queue 7") && strstr(err, "ethtool -l"), "queue: %s",
              err);
        p.ifname = ifname;
        p.mode = PN_XDP_MODE_ZEROCOPY;
        l = pn_af_xdp_link_create(&p, err, sizeof err);
        CHECK(l == NULL, "zero-copy on veth");
        CHECK(strstr(err, "zero-copy") != NULL, "message: %s", err);
        /* A second link on the same queue is refused, naming the queue. */
        p.mode = PN_XDP_MODE_NATIVE;
        pn_link *a = pn_af_xdp_link_create(&p, err, sizeof err);
        CHECK(a != NULL, "create: %s", err);
        l = pn_af_xdp_link_create(&p, err, sizeof err);
        link_close(a);
        CHECK(l == NULL, "two af_xdp links on one queue");
        CHECK(strstr(err, "already has an AF_XDP socket") != NULL, "message: %s", err);
        /* Someone else's XDP program is never replaced: creation fails, naming it. */
        char cmd[512];
        snprintf(cmd, sizeof cmd, "ip link set dev %s xdpgeneric obj %s sec xdp", ifname,
                 PN_XDP_OBJ_PATH);
        CHECK(system(cmd) == 0, "%s failed", cmd);
        l = pn_af_xdp_link_create(&p, err, sizeof err);
        /* A shard joins only a program it can hold attached: not one attached through
         * netlink (this copy of ours, attached by `ip`). */
        p.shards = 2;
        char err2[256];
        pn_link *s = pn_af_xdp_link_create(&p, err2, sizeof err2);
        p.shards = 0;
        snprintf(cmd, sizeof cmd, "ip link set dev %s xdpgeneric off", ifname);
        (void)!system(cmd);
        CHECK(l == NULL, "an af_xdp link replaced another XDP program");
        CHECK(strstr(err, "already has an XDP program") != NULL, "message: %s", err);
        if (s)
            link_close(s);
        CHECK(s == NULL && strstr(err2, "attached through netlink"), "shard: %s", err2);
        /* Destroy detached ours: a new one attaches at once. */
        a = pn_af_xdp_link_create(&p, err, sizeof err);
        CHECK(a != NULL, "attach after destroy: %s", err);
        pn_real_link_stats st;
        pn_real_link_stats_get(a, &st);
        link_close(a);
        CHECK(st.xdp_mode == PN_XDP_MODE_NATIVE, "mode %u", st.xdp_mode);
    }
    return 0;
}

/* A ring far smaller than a burst: the kernel drops what does not fit (counted), frames
 * released out of order go back to the kernel, and traffic flows again after. */
static int t_overflow(const linkspec *ls)
{
    char err[256];
    pn_real_link_params p;
    memset(&p, 0, sizeof p);
    p.ifname = ifname;
    p.mode = ls->mode;
    p.own_ip = 1;
    p.local_ip = own;
    p.ring_frames = 16;  /* af_xdp rounds up to 64 */
    pn_link *l = strcmp(ls->kind, "af_packet") == 0 ? pn_af_packet_link_create(&p, err, sizeof err)
                                                    : pn_af_xdp_link_create(&p, err, sizeof err);
    CHECK(l, "create: %s", err);
    uint8_t mac[6];
    if (arp_resolve(l, own, ip_b, mac) < 0) {
        link_close(l);
        FAILF("no ARP reply");
    }
    int fd = socket_in_b(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = sin_of(own, 4444);
    uint8_t payload[200];
    memset(payload, 7, sizeof payload);
    int result = -1;
    /* 1. Flood without reading. */
    for (int i = 0; i < 300; i++)
        sendto(fd, payload, sizeof payload, 0, (struct sockaddr *)&sa, sizeof sa);
    usleep(20000);
    /* 2. Take what the ring holds, give it back in reverse order, one by one. */
    pn_rx_frame fr[128];
    int n = l->ops->rx_burst(l, 0, fr, 128);
    for (int i = n - 1; i >= 0; i--)
        l->ops->rx_release(l, &fr[i], 1);
    pn_real_link_stats st;
    pn_real_link_stats_get(l, &st);
    /* Every datagram is either in the ring or counted as dropped (a stray ARP frame of
     * B's may add one). */
    if (n <= 0 || n > 64 || (uint64_t)n + st.rx_kernel_drops < 300 ||
        (uint64_t)n + st.rx_kernel_drops > 302) {
        snprintf(why, sizeof why, "burst of %d frames, %llu kernel drops", n,
                 (unsigned long long)st.rx_kernel_drops);
        goto out;
    }
    /* Drain whatever else came in. */
    for (int k = 0; k < 20; k++) {
        int m = l->ops->rx_burst(l, 0, fr, 128);
        if (m > 0)
            l->ops->rx_release(l, fr, m);
        usleep(1000);
    }
    /* 3. Paced traffic flows again, every datagram arriving. */
    int got = 0;
    for (int i = 0; i < 200; i++) {
        sendto(fd, payload, sizeof payload, 0, (struct sockaddr *)&sa, sizeof sa);
        uint64_t deadline = now_ns() + 200000000u;
        int seen = 0;
        while (!seen && now_ns() < deadline) {
            int m = l->ops->rx_burst(l, 0, fr, 8);
            for (int j = 0; j < m; j++)
                if (fr[j].len >= 42 && get16(fr[j].data + 36) == 4444)
                    seen = 1;
            if (m > 0)
                l->ops->rx_release(l, fr, m);
        }
        got += seen;
    }
    if (got != 200) {
        snprintf(why, sizeof why, "after the overflow %d of 200 datagrams arrived", got);
        goto out;
    }
    printf("#   %s: ring of %d took %d of 300, kernel dropped %llu; then 200 of 200\n",
           ls->kind, strcmp(ls->kind, "af_packet") == 0 ? 16 : 64, n,
           (unsigned long long)st.rx_kernel_drops);
    result = 0;
out:
    close(fd);
    link_close(l);
    return result;
}

/* Shared address, flow_add called from a thread in another namespace (one process may run
 * stacks in several): the port is still held in the link's namespace. */
static int t_ports_other_ns(const linkspec *ls)
{
    char err[256];
    pn_link *l = open_link(ls, 0, 0, err, sizeof err);
    CHECK(l, "create: %s", err);
    pn_flow fl = {.local_ip = ip_a, .remote_ip = 0, .local_port = 7799, .remote_port = 0};
    int result = -1, fd = -1;
    if (in_ns(ns_b) != 0) {
        snprintf(why, sizeof why, "setns into B failed");
        goto out;
    }
    int rc = l->ops->flow_add(l, &fl);
    in_ns(NULL);
    if (rc < 0) {
        snprintf(why, sizeof why, "flow_add from B: %s", l->err);
        goto out;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = sin_of(ip_a, 7799);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno != EADDRINUSE) {
        snprintf(why, sizeof why, "the port is not held in A");
        goto out;
    }
    in_ns(ns_b);
    l->ops->flow_del(l, &fl);
    in_ns(NULL);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(why, sizeof why, "still held after flow_del: %s", strerror(errno));
        goto out;
    }
    result = 0;
out:
    if (fd >= 0)
        close(fd);
    link_close(l);
    return result;
}

/* A multi-queue interface whose flows RSS could spread past our queue is refused, naming
 * the fix; with one queue it opens. (A private veth pair inside A, both ends here.) */
static int t_multiqueue(const linkspec *ls)
{
    char err[256];
    if (system("ip link add pnmq0 numrxqueues 4 numtxqueues 4 type veth peer name pnmq1 "
               "numrxqueues 4 numtxqueues 4 && ip link set pnmq0 up && ip link set pnmq1 up") != 0)
        SKIPF("cannot make a multi-queue veth here");
    pn_real_link_params p;
    memset(&p, 0, sizeof p);
    p.ifname = "pnmq0";
    p.mode = ls->mode;
    pn_link *l = pn_af_xdp_link_create(&p, err, sizeof err);
    int result = -1;
    if (l != NULL) {
        link_close(l);
        snprintf(why, sizeof why, "opened on a 4-queue veth");
        goto out;
    }
    if (!strstr(err, "4 RX queues") || !strstr(err, "ethtool -L pnmq0")) {
        snprintf(why, sizeof why, "message: %s", err);
        goto out;
    }
    if (system("ethtool -L pnmq0 rx 1 tx 1 && ethtool -L pnmq1 rx 1 tx 1") != 0) {
        result = 0;  /* the refusal was the point; this ethtool cannot shrink veth */
        goto out;
    }
    l = pn_af_xdp_link_create(&p, err, sizeof err);
    if (l == NULL) {
        snprintf(why, sizeof why, "with one queue: %s", err);
        goto out;
    }
    link_close(l);
    result = 0;
out:
    (void)!system("ip link del pnmq0");
    return result;
}

/* Below GRO (af_packet, generic XDP) merged frames would not fit: creation refuses an
 * interface with GRO on, naming the fix. */
static int t_gro_refused(const linkspec *ls)
{
    char err[256], cmd[128];
    snprintf(cmd, sizeof cmd, "ethtool -K %s gro on 2>/dev/null", ifname);
    if (system(cmd) != 0)
        SKIPF("cannot turn GRO on here (ethtool)");
    pn_link *l = open_link(ls, 1, own, err, sizeof err);
    snprintf(cmd, sizeof cmd, "ethtool -K %s gro off", ifname);
    (void)!system(cmd);
    if (l != NULL) {
        link_close(l);
        FAILF("a link below GRO opened with GRO on");
    }
    CHECK(strstr(err, "gro off") != NULL, "message: %s", err);
    l = open_link(ls, 1, own, err, sizeof err);
    CHECK(l != NULL, "with GRO off again: %s", err);
    link_close(l);
    return 0;
}

static int t_route(const linkspec *ls)
{
    (void)ls;
    char err[256];
    pn_route r;
    int rc = pn_route_lookup(ip_b, &r, err, sizeof err);
    CHECK(rc == 0, "lookup: %s", err);
    CHECK(strcmp(r.ifname, ifname) == 0, "ifname %s", r.ifname);
    CHECK(r.gateway == 0 && r.next_hop == ip_b, "next hop %08x gw %08x", r.next_hop, r.gateway);
    CHECK(r.src == ip_a && r.src_prefix_len == 24, "src %08x/%u", r.src, r.src_prefix_len);
    /* Off-subnet through a gateway (B) */
    uint32_t far = (ip_a & 0xffff0000u) ^ 0x00ff0000u;  /* another /16 */
    char cmd[256], fars[32];
    snprintf(fars, sizeof fars, "%u.%u.%u.%u", far >> 24, (far >> 16) & 255, (far >> 8) & 255,
             (far & 255));
    rc = pn_route_lookup(far | 9, &r, err, sizeof err);
    CHECK(rc == PN_ENOROUTE, "lookup without a route: %d", rc);
    CHECK(strstr(err, "ip route") != NULL, "message: %s", err);
    snprintf(cmd, sizeof cmd, "ip route add %s/24 via %u.%u.%u.%u", fars, ip_b >> 24,
             (ip_b >> 16) & 255, (ip_b >> 8) & 255, ip_b & 255);
    CHECK(system(cmd) == 0, "%s", cmd);
    rc = pn_route_lookup(far | 9, &r, err, sizeof err);
    snprintf(cmd, sizeof cmd, "ip route del %s/24", fars);
    (void)!system(cmd);
    CHECK(rc == 0, "lookup via gateway: %s", err);
    CHECK(r.gateway == ip_b && r.next_hop == ip_b, "gateway %08x", r.gateway);
    /* Neighbour: the kernel resolves B when asked; its MAC then shows. */
    (void)!system("ip neigh flush all");
    rc = pn_route_lookup(ip_b, &r, err, sizeof err);
    CHECK(rc == 0 && !r.has_mac, "neighbour known after a flush");
    rc = pn_route_neigh_probe(ip_b, r.ifindex, err, sizeof err);
    CHECK(rc == 0, "resolve: %s", err);
    uint64_t deadline = now_ns() + 2000000000u;
    while (now_ns() < deadline) {
        pn_route_lookup(ip_b, &r, err, sizeof err);
        if (r.has_mac)
            break;
        usleep(1000);
    }
    CHECK(r.has_mac, "the kernel never resolved the neighbour");
    return 0;
}

struct test {
    const char *name;
    int (*fn)(const linkspec *);
    const linkspec *ls;
};

static const struct test tests[] = {
    {"route_lookup", t_route, &L_PACKET},
    {"af_packet_errors", t_errors, &L_PACKET},
    {"af_packet_arp", t_arp, &L_PACKET},
    {"af_packet_gro_refused", t_gro_refused, &L_PACKET},
    {"af_xdp_generic_gro_refused", t_gro_refused, &L_XDP_GENERIC},
    {"af_packet_icmp", t_icmp, &L_PACKET},
    {"af_packet_rx_udp", t_rx_udp, &L_PACKET},
    {"af_packet_tx_burst", t_tx_burst, &L_PACKET},
    {"af_packet_ring_overflow", t_overflow, &L_PACKET},
    {"af_packet_tx_without_flush", t_tx_no_flush, &L_PACKET},
    {"af_packet_shared_steer", t_steer, &L_PACKET},
    {"af_packet_shared_steer_classic_tc", t_steer_classic, &L_PACKET},
    {"af_packet_shared_ports_other_ns", t_ports_other_ns, &L_PACKET},
    {"af_xdp_errors", t_errors, &L_XDP_NATIVE},
    {"af_xdp_multiqueue_refused", t_multiqueue, &L_XDP_NATIVE},
    {"af_xdp_native_arp", t_arp, &L_XDP_NATIVE},
    {"af_xdp_generic_arp", t_arp, &L_XDP_GENERIC},
    {"af_xdp_native_icmp", t_icmp, &L_XDP_NATIVE},
    {"af_xdp_generic_icmp", t_icmp, &L_XDP_GENERIC},
    {"af_xdp_native_rx_udp", t_rx_udp, &L_XDP_NATIVE},
    {"af_xdp_generic_rx_udp", t_rx_udp, &L_XDP_GENERIC},
    {"af_xdp_shared_arp", t_arp, &L_XDP_SHARED},
    {"af_xdp_shared_ports_other_ns", t_ports_other_ns, &L_XDP_SHARED},
    {"af_xdp_native_steer", t_steer, &L_XDP_NATIVE},
    {"af_xdp_generic_steer", t_steer, &L_XDP_GENERIC},
    {"af_xdp_native_tx_burst", t_tx_burst, &L_XDP_NATIVE},
    {"af_xdp_generic_tx_burst", t_tx_burst, &L_XDP_GENERIC},
    {"af_xdp_native_ring_overflow", t_overflow, &L_XDP_NATIVE},
    {"af_xdp_native_tx_without_flush", t_tx_no_flush, &L_XDP_NATIVE},
    {"af_xdp_generic_tx_without_flush", t_tx_no_flush, &L_XDP_GENERIC},
    {"af_xdp_generic_ring_overflow", t_overflow, &L_XDP_GENERIC},
    {"af_packet_rtt", t_rtt, &L_PACKET},
    {"af_xdp_native_rtt", t_rtt, &L_XDP_NATIVE},
    {"af_xdp_generic_rtt", t_rtt, &L_XDP_GENERIC},
};

static uint32_t parse_ip(const char *s)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1) {
        fprintf(stderr, "linktest: bad address %s\n", s);
        exit(2);
    }
    return ntohl(a.s_addr);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"ns-b", required_argument, 0, 'n'}, {"if", required_argument, 0, 'i'},
        {"ip-a", required_argument, 0, 'a'}, {"ip-b", required_argument, 0, 'b'},
        {"own", required_argument, 0, 'o'},  {"only", required_argument, 0, 'x'},
        {"list", no_argument, 0, 'l'},       {"hold", required_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int hold = -1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': ns_b = optarg; break;
        case 'i': ifname = optarg; break;
        case 'a': ip_a = parse_ip(optarg); break;
        case 'b': ip_b = parse_ip(optarg); break;
        case 'o': own = parse_ip(optarg); break;
        case 'x': only = optarg; break;
        case 'h': hold = atoi(optarg); break;
        case 'l':
            for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
                printf("%s\n", tests[i].name);
            return 0;
        default: return 2;
        }
    }
    if (hold >= 0 && ifname) {
        /* --hold S --if IF: open an af_xdp link, say "ready", sleep S seconds (a test kills
         * this process to show the XDP program leaves with it). */
        char err[256];
        pn_real_link_params p;
        memset(&p, 0, sizeof p);
        p.ifname = ifname;
        pn_link *l = pn_af_xdp_link_create(&p, err, sizeof err);
        if (!l) {
            fprintf(stderr, "linktest: %s\n", err);
            return 1;
        }
        printf("ready\n");
        fflush(stdout);
        sleep((unsigned)hold);
        link_close(l);
        return 0;
    }
    if (!ns_b || !ifname || !ip_a || !ip_b || !own) {
        fprintf(stderr, "usage: linktest --ns-b NS --if IF --ip-a IP --ip-b IP --own IP "
                        "[--only NAME[,NAME...]]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        const struct test *t = &tests[i];
        if (only) {
            char pat[256];
            snprintf(pat, sizeof pat, ",%s,", only);
            char name[128];
            snprintf(name, sizeof name, ",%s,", t->name);
            if (!strstr(pat, name))
                continue;
        }
        why[0] = '\0';
        uint64_t t0 = now_ns();
        int rc;
#ifndef PN_HAVE_AF_XDP
        /* Built without libxdp/libbpf/clang: af_xdp is a stub, and so is the tc filter
         * that af_packet's shared-address mode needs. */
        if (strcmp(t->ls->kind, "af_xdp") == 0 || t->fn == t_steer || t->fn == t_steer_classic ||
            t->fn == t_ports_other_ns) {
            snprintf(why, sizeof why, "this build has no libxdp/libbpf (native/build_links.py)");
            rc = 1;
        } else
#endif
            rc = t->fn(t->ls);
        double ms = (now_ns() - t0) / 1e6;
        if (rc == 0) {
            n_pass++;
            printf("ok   %s (%.0f ms)\n", t->name, ms);
        } else if (rc > 0) {
            n_skip++;
            printf("skip %s: %s\n", t->name, why);
        } else {
            n_fail++;
            printf("FAIL %s: %s\n", t->name, why);
        }
    }
    printf("linktest: %d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    return n_fail ? 1 : 0;
}
