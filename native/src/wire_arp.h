/* wire_arp.h -- ARP for IPv4 over Ethernet (RFC 826): parse (length-checked) and emit. */
#ifndef PN_WIRE_ARP_H
#define PN_WIRE_ARP_H
#include "wire_eth.h"

#define PN_ARP_LEN 28u
#define PN_ARP_REQUEST 1u
#define PN_ARP_REPLY 2u

typedef struct pn_arp {
    uint16_t op;
    const uint8_t *sha, *tha;
    uint32_t spa, tpa;
} pn_arp;

/* Only Ethernet/IPv4 ARP (htype 1, ptype 0x0800, hlen 6, plen 4) is accepted. */
static inline int pn_arp_parse(const uint8_t *p, uint32_t len, pn_arp *a)
{
    if (len < PN_ARP_LEN || pn_get16(p) != 1 || pn_get16(p + 2) != PN_ETHERTYPE_IPV4 ||
        p[4] != 6 || p[5] != 4)
        return -1;
    a->op = pn_get16(p + 6);
    if (a->op != PN_ARP_REQUEST && a->op != PN_ARP_REPLY)
        return -1;
    a->sha = p + 8;
    a->spa = pn_get32(p + 14);
    a->tha = p + 18;
    a->tpa = pn_get32(p + 24);
    return 0;
}

static inline void pn_arp_emit(uint8_t *p, uint16_t op, const uint8_t sha[6], uint32_t spa,
                               const uint8_t tha[6], uint32_t tpa)
{
    pn_put16(p, 1);
    pn_put16(p + 2, PN_ETHERTYPE_IPV4);
    p[4] = 6;
    p[5] = 4;
    pn_put16(p + 6, op);
    memcpy(p + 8, sha, 6);
    pn_put32(p + 14, spa);
    memcpy(p + 18, tha, 6);
    pn_put32(p + 24, tpa);
}
#endif
