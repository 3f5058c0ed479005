/* wire_ipv4.h -- IPv4 header (RFC 791): parse (every length checked) and emit. */
#ifndef PN_WIRE_IPV4_H
#define PN_WIRE_IPV4_H
#include "wire_eth.h"

#define PN_IP_HLEN 20u
#define PN_IPPROTO_ICMP 1u
#define PN_IPPROTO_TCP 6u

typedef struct pn_ipv4 {
    const uint8_t *hdr;
    uint32_t hlen;           /* header bytes including options */
    uint32_t src, dst;       /* host order */
    uint8_t proto, ttl;
    uint8_t is_fragment;
    const uint8_t *payload;
    uint32_t plen;           /* from total length, Ethernet padding excluded */
} pn_ipv4;

/* RFC 791 3.1 / RFC 1122 3.2.1: version 4, IHL >= 5, IHL*4 <= total length <= frame. */
static inline int pn_ipv4_parse(const uint8_t *p, uint32_t len, pn_ipv4 *ip)
{
    if (len < PN_IP_HLEN || (p[0] >> 4) != 4)
        return -1;
    uint32_t hl = (uint32_t)(p[0] & 15u) * 4u;
    uint32_t tot = pn_get16(p + 2);
    if (hl < PN_IP_HLEN || tot < hl || tot > len)
        return -1;
    uint16_t frag = pn_get16(p + 6);
    ip->hdr = p;
    ip->hlen = hl;
    ip->is_fragment = (frag & 0x2000u) || (frag & 0x1fffu);   /* MF or offset */
    ip->ttl = p[8];
    ip->proto = p[9];
    ip->src = pn_get32(p + 12);
    ip->dst = pn_get32(p + 16);
    ip->payload = p + hl;
    ip->plen = tot - hl;
    return 0;
}

/* Writes a 20-byte header with DF set (RFC 1191: we never fragment); checksum left 0. */
static inline void pn_ipv4_emit(uint8_t *p, uint16_t total_len, uint16_t id, uint8_t proto,
                                uint32_t src, uint32_t dst)
{
    p[0] = 0x45;
    p[1] = 0;
    pn_put16(p + 2, total_len);
    pn_put16(p + 4, id);
    pn_put16(p + 6, 0x4000);
    p[8] = 64;
    p[9] = proto;
    p[10] = p[11] = 0;
    pn_put32(p + 12, src);
    pn_put32(p + 16, dst);
}
#endif
