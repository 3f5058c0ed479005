/* wire_tcp.h -- TCP header and options (RFC 9293 3.1, RFC 7323, RFC 6691, RFC 2018): parse with
 * every offset and option length checked, and emit. */
#ifndef PN_WIRE_TCP_H
#define PN_WIRE_TCP_H
#include "wire_eth.h"

#define PN_TCP_HLEN 20u
enum { PN_TH_FIN = 1, PN_TH_SYN = 2, PN_TH_RST = 4, PN_TH_PSH = 8, PN_TH_ACK = 16, PN_TH_URG = 32 };
#define PN_TCPOPT_EOL 0
#define PN_TCPOPT_NOP 1
#define PN_TCPOPT_MSS 2
#define PN_TCPOPT_WS 3
#define PN_TCPOPT_SACK_PERM 4
#define PN_TCPOPT_SACK 5
#define PN_TCPOPT_TS 8
#define PN_MAX_SACK 4   /* blocks one option holds (RFC 2018 3: 40 bytes of options) */

typedef struct pn_tcp_seg {
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    uint16_t wnd;
    const uint8_t *payload;
    uint32_t plen;
    /* options */
    uint8_t has_mss, has_ws, has_ts, has_sack_perm;
    uint16_t mss;
    uint8_t ws;
    uint32_t tsval, tsecr;
    uint8_t nsack;                       /* SACK blocks [left, right) (RFC 2018 3) */
    uint32_t sack[PN_MAX_SACK][2];
} pn_tcp_seg;

/* Options (RFC 9293 3.2): EOL ends, NOP is one byte, every other kind carries a length
 * that must be >= 2 and stay inside the header; a known kind with the wrong length is
 * ignored (RFC 7323 2.2/3.2 say so for WS/TS). A length byte that overruns -> malformed. */
static inline int pn_tcp_parse_opts(const uint8_t *o, uint32_t n, pn_tcp_seg *t)
{
    uint32_t i = 0;
    while (i < n) {
        uint8_t kind = o[i];
        if (kind == PN_TCPOPT_EOL)
            break;
        if (kind == PN_TCPOPT_NOP) {
            i++;
            continue;
        }
        if (i + 1 >= n)
            return -1;
        uint32_t ol = o[i + 1];
        if (ol < 2 || ol > n - i)
            return -1;
        const uint8_t *v = o + i + 2;
        if (kind == PN_TCPOPT_MSS && ol == 4) {
            t->has_mss = 1;
            t->mss = pn_get16(v);
        } else if (kind == PN_TCPOPT_WS && ol == 3) {
            t->has_ws = 1;
            t->ws = v[0] > 14 ? 14 : v[0];   /* RFC 7323 2.3: treat > 14 as 14 */
        } else if (kind == PN_TCPOPT_TS && ol == 10) {
            t->has_ts = 1;
            t->tsval = pn_get32(v);
            t->tsecr = pn_get32(v + 4);
        } else if (kind == PN_TCPOPT_SACK_PERM && ol == 2) {
            t->has_sack_perm = 1;
        } else if (kind == PN_TCPOPT_SACK && ol >= 10 && (ol - 2) % 8 == 0) {
            uint32_t nb = (ol - 2) / 8;
            t->nsack = (uint8_t)(nb > PN_MAX_SACK ? PN_MAX_SACK : nb);
            for (uint32_t b = 0; b < t->nsack; b++) {
                t->sack[b][0] = pn_get32(v + 8 * b);
                t->sack[b][1] = pn_get32(v + 8 * b + 4);
            }
        }
        i += ol;
    }
    return 0;
}

static inline int pn_tcp_parse(const uint8_t *p, uint32_t len, pn_tcp_seg *t)
{
    if (len < PN_TCP_HLEN)
        return -1;
    uint32_t doff = (uint32_t)(p[12] >> 4) * 4u;
    if (doff < PN_TCP_HLEN || doff > len)
        return -1;
    t->sport = pn_get16(p);
    t->dport = pn_get16(p + 2);
    if (t->sport == 0 || t->dport == 0)
        return -1;
    t->seq = pn_get32(p + 4);
    t->ack = pn_get32(p + 8);
    t->flags = p[13] & 0x3f;
    t->wnd = pn_get16(p + 14);
    t->payload = p + doff;
    t->plen = len - doff;
    t->has_mss = t->has_ws = t->has_ts = t->has_sack_perm = 0;
    t->nsack = 0;
    t->mss = 0;
    t->ws = 0;
    t->tsval = t->tsecr = 0;
    return pn_tcp_parse_opts(p + PN_TCP_HLEN, doff - PN_TCP_HLEN, t);
}

/* Header plus options; returns the header length (a multiple of 4). */
typedef struct pn_tcp_out {
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    uint16_t wnd;
    uint16_t mss;            /* 0 = no MSS option */
    uint8_t ws_on, ws;
    uint8_t ts_on;
    uint32_t tsval, tsecr;
    uint8_t sack_perm;       /* SYN: SACK-permitted (RFC 2018 2) */
    uint8_t nsack;           /* SACK blocks to send: at most 3 with timestamps, else 4 */
    uint32_t sack[PN_MAX_SACK][2];
} pn_tcp_out;

static inline uint32_t pn_tcp_hdr_len(const pn_tcp_out *o)
{
    return PN_TCP_HLEN + (o->mss ? 4u : 0u) + (o->ws_on ? 4u : 0u) + (o->ts_on ? 12u : 0u) +
           (o->sack_perm ? 4u : 0u) + (o->nsack ? 4u + 8u * o->nsack : 0u);
}

static inline uint32_t pn_tcp_emit(uint8_t *p, const pn_tcp_out *o)
{
    uint32_t hl = pn_tcp_hdr_len(o);
    pn_put16(p, o->sport);
    pn_put16(p + 2, o->dport);
    pn_put32(p + 4, o->seq);
    pn_put32(p + 8, o->ack);
    p[12] = (uint8_t)((hl / 4) << 4);
    p[13] = o->flags;
    pn_put16(p + 14, o->wnd);
    p[16] = p[17] = 0;   /* checksum */
    p[18] = p[19] = 0;   /* urgent pointer */
    uint8_t *q = p + PN_TCP_HLEN;
    if (o->mss) {
        q[0] = PN_TCPOPT_MSS; q[1] = 4; pn_put16(q + 2, o->mss); q += 4;
    }
    if (o->ws_on) {
        q[0] = PN_TCPOPT_NOP; q[1] = PN_TCPOPT_WS; q[2] = 3; q[3] = o->ws; q += 4;
    }
    if (o->ts_on) {   /* RFC 7323 appendix A layout: NOP NOP TS */
        q[0] = PN_TCPOPT_NOP; q[1] = PN_TCPOPT_NOP; q[2] = PN_TCPOPT_TS; q[3] = 10;
        pn_put32(q + 4, o->tsval); pn_put32(q + 8, o->tsecr); q += 12;
    }
    if (o->sack_perm) {
        q[0] = PN_TCPOPT_NOP; q[1] = PN_TCPOPT_NOP; q[2] = PN_TCPOPT_SACK_PERM; q[3] = 2;
        q += 4;
    }
    if (o->nsack) {   /* RFC 2018 3: NOP NOP SACK, then the blocks */
        q[0] = PN_TCPOPT_NOP; q[1] = PN_TCPOPT_NOP; q[2] = PN_TCPOPT_SACK;
        q[3] = (uint8_t)(2 + 8 * o->nsack);
        for (uint32_t b = 0; b < o->nsack; b++) {
            pn_put32(q + 4 + 8 * b, o->sack[b][0]);
            pn_put32(q + 8 + 8 * b, o->sack[b][1]);
        }
    }
    return hl;
}
#endif
