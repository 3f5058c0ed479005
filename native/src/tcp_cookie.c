/* tcp_cookie.c -- SYN cookies (RFC 4987 3.6): when the half-open pool is full, the
 * listener answers a SYN without keeping state; the connection is rebuilt from the final
 * ACK, whose acknowledgment number carries our ISN (the cookie) back.
 *
 * Our scheme (the layout is Linux's; the hash is ours):
 *   ISN = t << 24 | ((H(key, local, remote, ports, peer ISN, t) + mss_index) mod 2^24)
 * t is a 64-second counter (8 bits); a cookie is valid for the minute it was made and the
 * next (age <= 1, at most 128 s). H is SipHash-2-4 under the stack's ISN key. mss_index
 * (3 bits) names the largest MSS in the table below not above the peer's; a hash mismatch
 * gives an index outside 0..7 with probability 1 - 8 / 2^24.
 * When both sides offer timestamps (RFC 7323), the other options travel in the low
 * 6 bits of our TSval, which the peer echoes in TSecr (as Linux): bits 0-3 the peer's
 * window scale (15 = none), bit 4 "the peer offered timestamps" (always 1 there). Without
 * timestamps the cookie SYN-ACK offers no window scale (nowhere to keep the peer's shift),
 * as Linux does. SACK and ECN: we have neither. */
#include "pn_internal.h"
#include "wire_tcp.h"

#define COOKIE_BITS 24
#define COOKIE_MASK ((1u << COOKIE_BITS) - 1)
#define COOKIE_PERIOD_NS (64ull * 1000000000ull)
#define TS_OPT_BITS 6
#define TS_OPT_MASK ((1u << TS_OPT_BITS) - 1)

/* MSS values a cookie can name (RFC 4987 3.6: a few common ones). */
static const uint16_t mss_table[8] = {536, 1024, 1200, 1300, 1360, 1400, 1440, 1460};

static uint32_t cookie_hash(const pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport,
                            uint32_t peer_isn, uint32_t t)
{
    uint8_t b[20];
    memcpy(b, &s->cfg.local_ip, 4);
    memcpy(b + 4, &rip, 4);
    memcpy(b + 8, &lport, 2);
    memcpy(b + 10, &rport, 2);
    memcpy(b + 12, &peer_isn, 4);
    memcpy(b + 16, &t, 4);
    return (uint32_t)pn_siphash(s->isn_key, b, sizeof b);
}

static uint32_t cookie_clock(const pn_stack *s) { return (uint32_t)(s->now / COOKIE_PERIOD_NS); }

uint32_t pn_cookie_make(const pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport,
                        uint32_t peer_isn, uint16_t peer_mss)
{
    uint32_t idx = 0;
    for (uint32_t i = 0; i < 8; i++)
        if (mss_table[i] <= peer_mss)
            idx = i;
    uint32_t t = cookie_clock(s);
    uint32_t h = cookie_hash(s, rip, rport, lport, peer_isn, t);
    return (t & 0xffu) << COOKIE_BITS | ((h + idx) & COOKIE_MASK);
}

/* The peer's MSS the cookie names, or 0 when it is not one of ours (forged or too old). */
uint16_t pn_cookie_check(const pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport,
                         uint32_t peer_isn, uint32_t cookie)
{
    uint32_t now = cookie_clock(s);
    uint32_t age = (now - (cookie >> COOKIE_BITS)) & 0xffu;
    if (age > 1)
        return 0;
    uint32_t t = now - age;
    uint32_t h = cookie_hash(s, rip, rport, lport, peer_isn, t);
    uint32_t idx = ((cookie & COOKIE_MASK) - h) & COOKIE_MASK;
    return idx < 8 ? mss_table[idx] : 0;
}

/* The TSval of a cookie SYN-ACK: our clock with the options in its low bits (never
 * ahead of the clock, so RTT samples from TSecr stay sane, at most 63 ms long). */
uint32_t pn_cookie_tsval(uint32_t ts_now, bool peer_ws, uint8_t ws)
{
    uint32_t opts = (peer_ws ? (ws > 14 ? 14u : ws) : 15u) | 1u << 4;
    uint32_t v = (ts_now & ~TS_OPT_MASK) | opts;
    if (seq_gt(v, ts_now))
        v -= 1u << TS_OPT_BITS;
    return v;
}

/* From the TSecr of the final ACK: -1 when it is not a cookie TSval we could have sent
 * in the last two cookie periods, else the peer's window scale (15 = none). */
int pn_cookie_ts_decode(uint32_t ts_now, uint32_t tsecr)
{
    uint32_t age = ts_now - tsecr;
    if ((int32_t)age < 0 || age > 2 * 64000u || !(tsecr & (1u << 4)))
        return -1;
    return (int)(tsecr & 15u);
}
