/*
 * bench_raw.c -- the links' raw-frame capacity, no TCP: a sender that fills one link's
 * transmit ring with UDP frames as fast as it takes them, and a sink that counts what
 * another link receives. `pollnet bench`'s raw:<link> rows run them in two processes
 * across the veth, so every throughput figure has its physical limit beside it.
 *
 * The sender copies each frame whole from a template (as the stack copies each segment's
 * payload once), numbers it, and flushes once a batch, as pn_poll flushes once a poll.
 */
#include <string.h>
#include <time.h>

#include "pn_bench.h"
#include "pn_internal.h"
#include "wire_ipv4.h"

#define RAW_BATCH 32
#define RAW_HDR (PN_ETH_HLEN + PN_IP_HLEN + 8u)   /* Ethernet + IPv4 + UDP */
#define RAW_MAX_FRAME 16384u
#define UDP_PROTO 17u

static inline uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* An Ethernet/IPv4/UDP frame of `len` bytes, IP checksum set, UDP checksum 0 (RFC 768:
 * none), payload zero but for the sequence number the sender writes at RAW_HDR. */
static void build_template(uint8_t *f, uint32_t len, const pn_link *l,
                           const pn_bench_raw_params *p)
{
    memset(f, 0, len);
    pn_eth_emit(f, p->dst_mac, l->mac, PN_ETHERTYPE_IPV4);
    uint8_t *ip = f + PN_ETH_HLEN;
    pn_ipv4_emit(ip, (uint16_t)(len - PN_ETH_HLEN), 0, UDP_PROTO, p->src_ip, p->dst_ip);
    pn_put16(ip + 10, (uint16_t)~pn_csum_fold(pn_csum_partial(ip, PN_IP_HLEN, 0)));
    uint8_t *udp = ip + PN_IP_HLEN;
    pn_put16(udp, p->port);
    pn_put16(udp + 2, p->port);
    pn_put16(udp + 4, (uint16_t)(len - PN_ETH_HLEN - PN_IP_HLEN));
}

int pn_bench_raw_send(pn_link *l, const pn_bench_raw_params *p, pn_bench_raw_result *out)
{
    uint8_t tmpl[RAW_MAX_FRAME];
    memset(out, 0, sizeof *out);
    uint32_t len = p->frame_len;
    if (len < RAW_HDR + 8 || len > RAW_MAX_FRAME || len > (uint32_t)l->mtu + PN_ETH_HLEN)
        return out->error = PN_EINVAL;
    out->frame_len = len;
    build_template(tmpl, len, l, p);
    uint64_t seq = p->first_seq;
    uint64_t start = mono_ns(), now = start, end = start + p->duration_ns;
    while (now < end) {
        for (int i = 0; i < RAW_BATCH; i++) {
            uint32_t cap = 0;
            uint8_t *buf = l->ops->tx_buf(l, &cap);
            if (buf == NULL) {
                out->tx_ring_full++;
                break;
            }
            if (cap < len)
                return out->error = PN_EINVAL;
            memcpy(buf, tmpl, len);
            memcpy(buf + RAW_HDR, &seq, sizeof seq);
            if (l->ops->tx_send(l, buf, len) < 0)
                return out->error = PN_ELINK;
            seq++;
            out->frames++;
            out->bytes += len;
        }
        l->ops->tx_flush(l);
        now = mono_ns();
    }
    out->first_ns = start;
    out->last_ns = now;
    return 0;
}

/* One of ours: IPv4 UDP to p->port, whole. */
static bool ours(const pn_rx_frame *f, uint16_t port)
{
    if (f->len < RAW_HDR + 8 || pn_get16(f->data + 12) != PN_ETHERTYPE_IPV4)
        return false;
    const uint8_t *ip = f->data + PN_ETH_HLEN;
    return ip[0] == 0x45 && ip[9] == UDP_PROTO && pn_get16(ip + PN_IP_HLEN + 2) == port &&
           pn_get16(ip + 2) == f->len - PN_ETH_HLEN;
}

int pn_bench_raw_sink(pn_link *l, uint16_t port, uint64_t max_ns, pn_bench_raw_sink_result *out)
{
    pn_rx_frame frames[RAW_BATCH];
    uint64_t until = mono_ns() + max_ns;
    for (;;) {
        int n = l->ops->rx_burst(l, 0, frames, RAW_BATCH);
        if (n < 0)
            return out->error = PN_ELINK;
        uint64_t now = mono_ns();
        for (int i = 0; i < n; i++) {
            if (!ours(&frames[i], port))
                continue;
            uint64_t seq;
            memcpy(&seq, frames[i].data + RAW_HDR, sizeof seq);
            /* one class per frame size, in the order the sizes first arrive */
            int c = 0;
            while (c < PN_BENCH_RAW_SIZES && out->size[c].frame_len != 0 &&
                   out->size[c].frame_len != frames[i].len)
                c++;
            if (c == PN_BENCH_RAW_SIZES) {
                out->other_frames++;
                continue;
            }
            pn_bench_raw_result *r = &out->size[c];
            if (r->frames == 0) {
                r->frame_len = frames[i].len;
                r->first_ns = now;
                r->first_seq = seq;
            }
            r->frames++;
            r->bytes += frames[i].len;
            r->last_ns = now;
            r->last_seq = seq;
        }
        if (n > 0)
            l->ops->rx_release(l, frames, n);
        if (now >= until)
            return 0;
    }
}
