/* wire_eth.h -- Ethernet II header: parse (length-checked) and emit. */
#ifndef PN_WIRE_ETH_H
#define PN_WIRE_ETH_H
#include <stdint.h>
#include <string.h>

#define PN_ETH_HLEN 14u
#define PN_ETH_MIN_FRAME 60u   /* the Ethernet minimum without FCS: shorter frames are padded */
#define PN_ETHERTYPE_IPV4 0x0800u
#define PN_ETHERTYPE_ARP 0x0806u

static inline uint16_t pn_get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t pn_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void pn_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void pn_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* A checked view: every field below lies inside the frame once parse returned 0. */
typedef struct pn_eth {
    const uint8_t *dst, *src;
    uint16_t type;
    const uint8_t *payload;
    uint32_t plen;
} pn_eth;

static inline int pn_eth_parse(const uint8_t *f, uint32_t len, pn_eth *e)
{
    if (f == NULL || len < PN_ETH_HLEN)
        return -1;
    e->dst = f;
    e->src = f + 6;
    e->type = pn_get16(f + 12);
    e->payload = f + PN_ETH_HLEN;
    e->plen = len - PN_ETH_HLEN;
    return 0;
}

static inline void pn_eth_emit(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    pn_put16(f + 12, type);
}

static inline int pn_mac_is_bcast(const uint8_t *m)
{
    return (m[0] & m[1] & m[2] & m[3] & m[4] & m[5]) == 0xff;
}
#endif
