/* fuzz_common.h -- a stack on a fake link with a scripted peer, and a decoder that turns
 * arbitrary bytes into frames (raw, structured-valid, mutated) and API calls. Shared by
 * the libFuzzer target (fuzz_frames.c) and the deterministic test (test_malformed.c). */
#ifndef PN_FUZZ_COMMON_H
#define PN_FUZZ_COMMON_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pncore.h"

#define FZ_MAXF 8
#define FZ_FRAME 2048

typedef struct fz_link {
    pn_link link;
    uint8_t rx[FZ_MAXF][FZ_FRAME];
    uint32_t rxlen[FZ_MAXF];
    uint32_t rxflags[FZ_MAXF];
    int nrx;
    uint8_t tx[FZ_FRAME];
    uint8_t last_tcp[FZ_FRAME];   /* the last TCP frame the stack sent */
    uint32_t last_tcp_len;
    uint64_t txcount;
    int bad_tx;                   /* a frame longer than the buffer: a bug */
} fz_link;

static int fz_rx_burst(pn_link *l, uint64_t now, pn_rx_frame *f, int max)
{
    (void)now;
    fz_link *z = (fz_link *)l;
    int n = 0;
    for (; n < z->nrx && n < max; n++) {
        f[n].data = z->rx[n];
        f[n].len = z->rxlen[n];
        f[n].flags = z->rxflags[n];
        f[n].handle = (uint64_t)n;
        f[n].hw_ts_ns = 0;
    }
    z->nrx = 0;
    return n;
}
static void fz_rx_release(pn_link *l, const pn_rx_frame *f, int n) { (void)l; (void)f; (void)n; }
static uint8_t *fz_tx_buf(pn_link *l, uint32_t *cap)
{
    *cap = 1514;
    return ((fz_link *)l)->tx;
}
static int fz_tx_send(pn_link *l, uint8_t *buf, uint32_t len)
{
    fz_link *z = (fz_link *)l;
    if (buf != z->tx || len > 1514 || len < 14)
        z->bad_tx = 1;
    z->txcount++;
    if (len >= 54 && len <= FZ_FRAME && buf[12] == 8 && buf[23] == 6) {
        memcpy(z->last_tcp, buf, len);
        z->last_tcp_len = len;
    }
    return 0;
}
static void fz_flush(pn_link *l) { (void)l; }
static int fz_flow(pn_link *l, const pn_flow *f) { (void)l; (void)f; return 0; }
static void fz_destroy(pn_link *l) { (void)l; }
static const pn_link_ops fz_ops = {
    .name = "fuzz", .rx_burst = fz_rx_burst, .rx_release = fz_rx_release, .tx_buf = fz_tx_buf,
    .tx_send = fz_tx_send, .tx_flush = fz_flush, .flow_add = fz_flow, .flow_del = fz_flow,
    .destroy = fz_destroy,
};

static const uint8_t FZ_MAC_US[6] = {2, 0, 0, 0, 0, 2}, FZ_MAC_PEER[6] = {2, 0, 0, 0, 0, 1};
#define FZ_IP_US 0x0a000002u
#define FZ_IP_PEER 0x0a000001u
#define FZ_PEER_PORT 1234

typedef struct fz {
    fz_link l;
    pn_stack *s;
    uint64_t now;
    uint32_t conn;           /* the established connection (passive) */
    uint32_t peer_seq, peer_ack;
    int established;
    pn_event ev[32];
    uint64_t events;
} fz;

static uint16_t fz_fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}
static uint32_t fz_sum(const uint8_t *p, uint32_t n, uint32_t s)
{
    for (uint32_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        s += (uint32_t)p[n - 1] << 8;
    return s;
}
static uint32_t fz_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void fz_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Recompute the IPv4 and TCP/ICMP checksums as far as the (possibly absurd) header
 * fields stay inside the frame: mutated frames then reach the parsers behind them. */
static void fz_fix_csums(uint8_t *f, uint32_t len)
{
    if (len < 34 || f[12] != 8 || f[13] != 0)
        return;
    uint8_t *ip = f + 14;
    uint32_t hl = (uint32_t)(ip[0] & 15) * 4, tot = (uint32_t)(ip[2] << 8 | ip[3]);
    if (hl < 20 || 14 + hl > len)
        return;
    ip[10] = ip[11] = 0;
    uint16_t c = fz_fold(fz_sum(ip, hl, 0));
    ip[10] = (uint8_t)(c >> 8);
    ip[11] = (uint8_t)c;
    if (tot < hl || 14 + tot > len)
        return;
    uint8_t *l4 = ip + hl;
    uint32_t n = tot - hl;
    if (ip[9] == 6 && n >= 18) {
        uint8_t ph[12];
        memcpy(ph, ip + 12, 8);
        ph[8] = 0; ph[9] = 6; ph[10] = (uint8_t)(n >> 8); ph[11] = (uint8_t)n;
        l4[16] = l4[17] = 0;
        c = fz_fold(fz_sum(l4, n, fz_sum(ph, 12, 0)));
        l4[16] = (uint8_t)(c >> 8);
        l4[17] = (uint8_t)c;
    } else if (ip[9] == 1 && n >= 4) {
        l4[2] = l4[3] = 0;
        c = fz_fold(fz_sum(l4, n, 0));
        l4[2] = (uint8_t)(c >> 8);
        l4[3] = (uint8_t)c;
    }
}

/* A TCP frame from the peer to us with correct checksums. */
static uint32_t fz_tcp(uint8_t *f, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                       uint8_t flags, uint16_t wnd, const uint8_t *opt, uint32_t optlen,
                       const uint8_t *pl, uint32_t plen)
{
    optlen &= ~3u;
    if (optlen > 40)
        optlen = 40;
    if (plen > 1400)
        plen = 1400;
    uint32_t thl = 20 + optlen, tot = 20 + thl + plen;
    memcpy(f, FZ_MAC_US, 6);
    memcpy(f + 6, FZ_MAC_PEER, 6);
    f[12] = 8; f[13] = 0;
    uint8_t *ip = f + 14;
    memset(ip, 0, 20);
    ip[0] = 0x45; ip[2] = (uint8_t)(tot >> 8); ip[3] = (uint8_t)tot; ip[6] = 0x40; ip[8] = 64; ip[9] = 6;
    fz_put32(ip + 12, FZ_IP_PEER);
    fz_put32(ip + 16, FZ_IP_US);
    uint8_t *t = ip + 20;
    t[0] = (uint8_t)(sport >> 8); t[1] = (uint8_t)sport; t[2] = (uint8_t)(dport >> 8); t[3] = (uint8_t)dport;
    fz_put32(t + 4, seq);
    fz_put32(t + 8, ack);
    t[12] = (uint8_t)((thl / 4) << 4);
    t[13] = flags;
    t[14] = (uint8_t)(wnd >> 8); t[15] = (uint8_t)wnd;
    t[16] = t[17] = t[18] = t[19] = 0;
    if (optlen)
        memcpy(t + 20, opt, optlen);
    if (plen)
        memcpy(t + thl, pl, plen);
    fz_fix_csums(f, 14 + tot);
    return 14 + tot;
}

static void fz_inject(fz *z, const uint8_t *f, uint32_t len, uint32_t flags)
{
    if (z->l.nrx >= FZ_MAXF || len > FZ_FRAME)
        return;
    memcpy(z->l.rx[z->l.nrx], f, len);
    z->l.rxlen[z->l.nrx] = len;
    z->l.rxflags[z->l.nrx] = flags;
    z->l.nrx++;
}

static void fz_poll(fz *z, const uint8_t *rem, size_t remn)
{
    int k = pn_poll(z->s, z->now, z->ev, 32);
    for (int i = 0; i < k; i++) {
        z->events++;
        if (z->ev[i].type == PN_EV_DATA || z->ev[i].type == PN_EV_FIN)
            pn_keep(z->s, z->ev[i].conn_id, remn ? rem[i % remn] * 37u : 0);   /* any, even absurd */
        if (z->ev[i].conn_id == z->conn &&
            (z->ev[i].type == PN_EV_CONNECTION_RESET || z->ev[i].type == PN_EV_CONNECTION_CLOSED ||
             z->ev[i].type == PN_EV_CONNECTION_TIMEOUT))
            z->established = 0;
    }
}

/* A stack listening on 80 with one established passive connection (window scale and
 * timestamps on) and one active open in SYN_SENT. */
static int fz_setup(fz *z, uint8_t cc)
{
    memset(z, 0, sizeof *z);
    z->l.link.ops = &fz_ops;
    memcpy(z->l.link.mac, FZ_MAC_US, 6);
    z->l.link.mtu = 1500;
    z->l.link.caps = PN_LINK_OWN_IP;
    z->l.link.pcap_fd = -1;
    pn_config c;
    pn_config_default(&c);
    c.local_ip = FZ_IP_US;
    c.max_conn_cnt = 4;
    c.conn_send_buf_cnt = 8;
    c.conn_recv_buf_size = 4096;
    c.max_time_wait_conn_cnt = 2;
    c.window_scale = 1;
    c.timestamps = 1;
    c.user_timer_cnt = 2;
    c.congestion_control = cc % 3;
    /* the hostile-peer knobs: cookies when the half-open pool (2) is full or never, tight
     * out-of-order bounds, a zero-window limit, a per-source limit */
    c.syn_cookies = (uint8_t)((cc / 3) % 2);
    c.max_ooo_segs = 2 + (uint32_t)(cc / 6) % 3;
    c.max_ooo_bytes = 2048;
    c.zero_window_timeout_ms = (cc & 0x40) ? 500 : 0;
    c.max_conns_per_source = (cc & 0x80) ? 2 : 0;
    c.sack = (cc >> 5) & 1;   /* SACK blocks a peer forges meet the scoreboard */
    c.ack_every = (cc & 0x10) ? 8 : 2;   /* stretch ACKs, and their quick-ACK bytes */
    c.isn_secret[0] = 1;
    c.isn_secret[1] = 2;
    char err[160];
    if (pn_stack_create(&z->s, &c, &z->l.link, err, sizeof err) < 0)
        return -1;
    z->now = 1000000000ull;
    fz_poll(z, NULL, 0);
    pn_listen(z->s, 80);
    uint8_t f[FZ_FRAME];
    uint8_t opt[20] = {2, 4, 0x05, 0xb4, 1, 3, 3, 7, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0};
    z->peer_seq = 1000;
    fz_inject(z, f, fz_tcp(f, FZ_PEER_PORT, 80, z->peer_seq, 0, 0x02, 65535, opt, 20, NULL, 0), 0);
    z->now += 1000;
    fz_poll(z, NULL, 0);
    if (z->l.last_tcp_len < 54)
        return -1;
    uint32_t iss = fz_get32(z->l.last_tcp + 38);
    z->peer_seq++;
    z->peer_ack = iss + 1;
    uint8_t ts[12] = {1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 0};
    fz_inject(z, f, fz_tcp(f, FZ_PEER_PORT, 80, z->peer_seq, z->peer_ack, 0x10, 1000, ts, 12, NULL, 0), 0);
    z->now += 1000;
    z->conn = UINT32_MAX;
    int k = pn_poll(z->s, z->now, z->ev, 32);
    for (int i = 0; i < k; i++)
        if (z->ev[i].type == PN_EV_CONNECTION_ESTABLISHED)
            z->conn = z->ev[i].conn_id;
    if (z->conn == UINT32_MAX)
        return -1;
    z->established = 1;
    static const uint8_t out[3000] = {7};
    pn_send(z->s, z->conn, out, (uint32_t)(cc & 1 ? 3000 : 100), 0);   /* data in flight */
    uint32_t id;
    pn_stack_add_neighbour(z->s, FZ_IP_PEER, FZ_MAC_PEER);
    pn_connect(z->s, FZ_IP_PEER, 5555, 40000, &id);
    return 0;
}

static void fz_teardown(fz *z)
{
    pn_stack_destroy(z->s);
    z->s = NULL;
}

/* Consume one record from the input; returns bytes used (>= 1). */
static size_t fz_record(fz *z, const uint8_t *d, size_t n)
{
    uint8_t f[FZ_FRAME];
    uint8_t kind = d[0];
    size_t used = 1;
    const uint8_t *p = d + 1;
    size_t left = n - 1;
#define TAKE(k) ((left >= (k)) ? (used += (k), left -= (k), p += (k), p - (k)) : NULL)
    switch (kind & 7) {
    case 0: {   /* raw bytes, any length, maybe marked CSUM_OK / PARTIAL */
        const uint8_t *l = TAKE(1);
        if (!l)
            break;
        uint32_t len = l[0] & 0x7f;   /* short: a raw frame must not eat the whole input */
        if (len > left)
            len = (uint32_t)left;
        const uint8_t *b = TAKE(len);
        memcpy(f, b, len);
        if (len >= 6 && (kind & 8))
            memcpy(f, FZ_MAC_US, 6);
        fz_inject(z, f, len, (kind >> 4) & 3);
        break;
    }
    case 1:
    case 2: {   /* a segment for the established (or a nearby) tuple, valid checksums */
        const uint8_t *h = TAKE(12);
        if (!h)
            break;
        int16_t ds = (int16_t)(h[0] << 8 | h[1]), da = (int16_t)(h[2] << 8 | h[3]);
        uint8_t fl = h[4];
        uint16_t wnd = (uint16_t)(h[5] << 8 | h[6]);
        uint32_t optlen = (h[7] % 11) * 4, plen = h[8] * 6u;
        uint16_t sport = (h[9] & 1) ? (uint16_t)(FZ_PEER_PORT + (h[9] >> 5)) : FZ_PEER_PORT;
        uint16_t dport = (h[9] & 2) ? 5555 : 80;
        if (h[9] & 4) {    /* as from 5555 to our active open's port */
            sport = 5555;
            dport = 40000;
        }
        if ((h[4] & 0xc0) != 0xc0)
            fl &= 0x3d;   /* SYN only now and then: most segments should get past it */
        const uint8_t *o = NULL;
        uint8_t tso[12] = {1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 0};
        if (h[7] & 0x80) {   /* a well-formed timestamp option around the peer's clock */
            fz_put32(tso + 4, 2u + (uint32_t)(int32_t)(int8_t)h[11]);
            fz_put32(tso + 8, (uint32_t)h[10] << 8);
            o = tso;
            optlen = 12;
        } else {
            o = TAKE(optlen);
            if (!o)
                optlen = 0;
        }
        uint8_t pl[1400];
        for (uint32_t i = 0; i < plen && i < sizeof pl; i++)
            pl[i] = (uint8_t)(h[10] + i * h[11]);
        uint32_t seq = z->peer_seq + (uint32_t)(int32_t)ds * ((kind & 0x80) ? 4096u : 1u);
        uint32_t ack = z->peer_ack + (uint32_t)(int32_t)da;
        uint32_t len = fz_tcp(f, sport, dport, seq, ack, fl, wnd, o, optlen, pl, plen);
        if ((kind & 7) == 2) {   /* then mutate a few bytes, checksums fixed or not */
            const uint8_t *m = TAKE(6);
            if (m) {
                for (int i = 0; i < 3; i++)
                    f[m[2 * i] % len] ^= m[2 * i + 1];
                if (kind & 8)
                    fz_fix_csums(f, len);
            }
        }
        if (fl & 0x08 && (kind & 0x40) && plen && seq == z->peer_seq)
            z->peer_seq += plen;   /* an in-order push: keep the peer in step */
        fz_inject(z, f, len, (kind & 0x10) ? PN_RX_CSUM_PARTIAL : 0);
        break;
    }
    case 3: {   /* ARP */
        const uint8_t *a = TAKE(8);
        if (!a)
            break;
        memset(f, 0, 60);
        memcpy(f, (a[0] & 1) ? (const uint8_t[6]){255, 255, 255, 255, 255, 255} : FZ_MAC_US, 6);
        memcpy(f + 6, FZ_MAC_PEER, 6);
        f[12] = 8; f[13] = 6;
        f[14] = 0; f[15] = 1; f[16] = 8; f[17] = 0; f[18] = 6; f[19] = 4;
        f[20] = 0; f[21] = (uint8_t)(1 + (a[1] & 1));
        memcpy(f + 22, a + 2, 6);
        fz_put32(f + 28, (a[0] & 2) ? FZ_IP_PEER : 0x0a000000u + a[7]);
        fz_put32(f + 38, (a[0] & 4) ? FZ_IP_US : 0x0a000000u + a[6]);
        if (a[0] & 8)
            f[16 + (a[1] % 6)] ^= a[3];
        fz_inject(z, f, 42 + (a[0] >> 4), 0);
        break;
    }
    case 4: {   /* ICMP */
        const uint8_t *a = TAKE(4);
        if (!a)
            break;
        uint32_t pl = a[3] % 200, tot = 20 + 8 + pl;
        memset(f, 0, 14 + tot);
        memcpy(f, FZ_MAC_US, 6);
        memcpy(f + 6, FZ_MAC_PEER, 6);
        f[12] = 8;
        uint8_t *ip = f + 14;
        ip[0] = 0x45; ip[2] = (uint8_t)(tot >> 8); ip[3] = (uint8_t)tot; ip[8] = 64; ip[9] = 1;
        fz_put32(ip + 12, FZ_IP_PEER);
        fz_put32(ip + 16, FZ_IP_US);
        ip[20] = a[0] & 8 ? 8 : a[0];
        ip[21] = a[1] & 1 ? a[1] : 0;
        fz_fix_csums(f, 14 + tot);
        if (a[2] & 1)
            ip[22] ^= 1;
        fz_inject(z, f, 14 + tot, 0);
        break;
    }
    case 5: {   /* time passes */
        const uint8_t *a = TAKE(2);
        if (!a)
            break;
        uint64_t ms = (uint64_t)(a[0] << 8 | a[1]);
        z->now += (a[0] & 0x80) ? ms * 1000000ull * 10 : ms * 1000ull;
        break;
    }
    default: {  /* API calls in whatever state the connection is */
        const uint8_t *a = TAKE(3);
        if (!a)
            break;
        uint32_t id = a[1] % 5;
        static const uint8_t junk[3000] = {1};
        switch (a[0] % 10) {
        case 0: pn_send(z->s, id, junk, a[2] * 11u, a[1] & 1); break;
        case 1: { pn_iovec v[2] = {{junk, a[2]}, {junk, 1000}}; pn_sendv(z->s, id, v, 2, 0); break; }
        case 2: pn_send_fin(z->s, id); break;
        case 3: if (a[2] == 0x5a) pn_close(z->s, id); break;
        case 4: pn_set_user_timer(z->s, id, a[2] % 3, a[2] * 300u); break;
        case 5: { uint32_t c; pn_connect(z->s, 0x0a000000u + a[2], (uint16_t)(a[1] + 1), 0, &c); break; }
        case 6: (void)pn_sendable(z->s, id); (void)pn_immediately_sendable(z->s, id); break;
        case 7: { pn_conn_info ci; pn_conn_info_get(z->s, id, &ci); break; }
        case 8: if (a[2] & 1) pn_listen(z->s, a[2]); else pn_unlisten(z->s, a[2]); break;
        default: { pn_stats st; pn_stack_stats(z->s, &st); (void)pn_stack_next_timer(z->s); break; }
        }
        break;
    }
    }
#undef TAKE
    if (z->l.nrx >= FZ_MAXF || (kind & 0x20)) {
        z->now += 1000;
        fz_poll(z, d, used);
    }
    return used;
}

static void fz_run(fz *z, const uint8_t *d, size_t n)
{
    while (n > 0) {
        size_t u = fz_record(z, d, n);
        d += u;
        n -= u;
    }
    z->now += 1000;
    fz_poll(z, NULL, 0);
}
#endif
