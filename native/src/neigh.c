/* neigh.c -- neighbours: the ARP table (RFC 826), requests with retries and a timeout
 * (PN_EV_ARP_FAILED), replies for our address, gratuitous/changed mappings, and ICMP
 * echo replies (RFC 792, RFC 1122 3.2.2.6) when the stack owns its address. */
#include "pn_internal.h"
#include "wire_arp.h"
#include "wire_ipv4.h"

enum { N_FREE = 0, N_INCOMPLETE, N_REACHABLE, N_STATIC };

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t zero6[6] = {0};

static pn_neigh *find(pn_stack *s, uint32_t ip)
{
    for (uint32_t i = 0; i < PN_NEIGH_CNT; i++)
        if (s->neigh[i].state != N_FREE && s->neigh[i].ip == ip)
            return &s->neigh[i];
    return NULL;
}

/* A free entry, else the least recently used resolved one (never static/incomplete). */
static pn_neigh *slot(pn_stack *s)
{
    pn_neigh *lru = NULL;
    for (uint32_t i = 0; i < PN_NEIGH_CNT; i++) {
        pn_neigh *n = &s->neigh[i];
        if (n->state == N_FREE)
            return n;
        if (n->state == N_REACHABLE && (!lru || n->used < lru->used))
            lru = n;
    }
    return lru;
}

static void send_arp(pn_stack *s, uint16_t op, const uint8_t *dmac, const uint8_t *tha, uint32_t tpa)
{
    uint32_t cap = 0;
    uint8_t *f = pn_link_txbuf(s->link, &cap);
    if (!f || cap < PN_ETH_MIN_FRAME) {   /* the padded frame, not only the ARP */
        s->st.drop_no_buffer++;
        return;
    }
    pn_eth_emit(f, dmac, s->mac, PN_ETHERTYPE_ARP);
    pn_arp_emit(f + PN_ETH_HLEN, op, s->mac, s->cfg.local_ip, tha, tpa);
    uint32_t len = PN_ETH_HLEN + PN_ARP_LEN;
    memset(f + len, 0, PN_ETH_MIN_FRAME - len);
    if (pn_link_tx(s->link, s->now, f, PN_ETH_MIN_FRAME) == 0)
        s->st.frames_out++;
    if (op == PN_ARP_REQUEST)
        s->st.ArpRequestsOut++;
    else
        s->st.ArpRepliesOut++;
}

int pn_arp_add_static(pn_stack *s, uint32_t ip, const uint8_t mac[6])
{
    pn_neigh *n = find(s, ip);
    bool was_incomplete = n && n->state == N_INCOMPLETE;
    if (!n)
        n = slot(s);
    if (!n)
        return PN_ENOMEM;
    pn_timer_del(s, &n->t);
    n->ip = ip;
    memcpy(n->mac, mac, 6);
    n->state = N_STATIC;
    if (was_incomplete)
        pn_conn_arp_done(s, ip, mac);
    return PN_OK;
}

/* The link's answer (a shard's: the kernel's neighbour table), when it has one. */
static bool link_knows(pn_stack *s, uint32_t ip, uint8_t mac[6])
{
    return s->link->ops->neigh_lookup != NULL && s->link->ops->neigh_lookup(s->link, ip, mac) == 1;
}

static void learned(pn_stack *s, pn_neigh *n, const uint8_t mac[6])
{
    memcpy(n->mac, mac, 6);
    n->state = N_REACHABLE;
    n->used = s->now;
    pn_timer_del(s, &n->t);
    pn_conn_arp_done(s, n->ip, mac);
}

int pn_arp_resolve(pn_stack *s, uint32_t ip, uint8_t mac[6])
{
    pn_neigh *n = find(s, ip);
    if (n) {
        n->used = s->now;
        if (n->state == N_INCOMPLETE)
            return 0;
        memcpy(mac, n->mac, 6);
        return 1;
    }
    n = slot(s);
    if (!n)
        return -1;
    n->ip = ip;
    n->state = N_INCOMPLETE;
    n->tries = 1;
    n->used = s->now;
    memset(n->mac, 0, 6);
    if (link_knows(s, ip, n->mac)) {
        n->state = N_REACHABLE;
        memcpy(mac, n->mac, 6);
        return 1;
    }
    send_arp(s, PN_ARP_REQUEST, bcast, zero6, ip);
    pn_timer_set(s, &n->t, s->now + (uint64_t)s->cfg.arp_timeout_ms * 1000000u);
    return 0;
}

void pn_arp_timer(pn_stack *s, pn_neigh *n)
{
    if (n->state != N_INCOMPLETE)
        return;
    uint8_t mac[6];
    if (link_knows(s, n->ip, mac)) {
        learned(s, n, mac);
        return;
    }
    if (n->tries > s->cfg.arp_retries) {
        uint32_t ip = n->ip;
        n->state = N_FREE;
        pn_conn_arp_failed(s, ip);
        return;
    }
    n->tries++;
    send_arp(s, PN_ARP_REQUEST, bcast, zero6, n->ip);
    pn_timer_set(s, &n->t, s->now + (uint64_t)s->cfg.arp_timeout_ms * 1000000u);
}

/* RFC 826 "Packet Reception": merge the sender into an existing entry, add it when the
 * request is for us, answer requests for our address. */
void pn_arp_rx(pn_stack *s, const uint8_t *frame, uint32_t len)
{
    pn_arp a;
    if (len < PN_ETH_HLEN || pn_arp_parse(frame + PN_ETH_HLEN, len - PN_ETH_HLEN, &a) < 0) {
        s->st.drop_malformed++;
        return;
    }
    s->st.ArpIn++;
    bool valid_sender = a.spa != 0 && !(a.sha[0] & 1) && memcmp(a.sha, zero6, 6) != 0 &&
                        a.spa != s->cfg.local_ip && a.spa < 0xe0000000u;
    bool for_us = a.tpa == s->cfg.local_ip;
    if (valid_sender) {
        pn_neigh *n = find(s, a.spa);
        if (n && n->state != N_STATIC) {
            if (n->state == N_INCOMPLETE || memcmp(n->mac, a.sha, 6) != 0) {
                learned(s, n, a.sha);
            } else {
                n->used = s->now;
                pn_timer_del(s, &n->t);
            }
        } else if (!n && for_us) {
            n = slot(s);
            if (n) {
                pn_timer_del(s, &n->t);
                n->ip = a.spa;
                memcpy(n->mac, a.sha, 6);
                n->state = N_REACHABLE;
                n->used = s->now;
            }
        }
    }
    if (for_us && a.op == PN_ARP_REQUEST && valid_sender && (s->link->caps & PN_LINK_OWN_IP))
        send_arp(s, PN_ARP_REPLY, a.sha, a.sha, a.spa);
}

void pn_icmp_rx(pn_stack *s, const uint8_t *eth_src, const uint8_t *ip, uint32_t iplen,
                      uint32_t src_ip, const uint8_t *l4, uint32_t l4len, bool csum_ok)
{
    (void)ip;
    (void)iplen;
    if (!(s->link->caps & PN_LINK_OWN_IP) || l4len < 8 || l4[0] != 8 || l4[1] != 0) {
        s->st.drop_not_ours++;
        return;
    }
    if (!csum_ok && pn_csum_fold(pn_csum_partial(l4, l4len, 0)) != 0) {
        s->st.drop_bad_csum++;
        return;
    }
    if (l4len > (uint32_t)s->cfg.mtu - PN_IP_HLEN)
        return;
    uint8_t *frame;
    uint8_t *p = pn_tx_begin(s, eth_src, src_ip, PN_IPPROTO_ICMP, l4len, &frame);
    if (!p)
        return;
    memcpy(p, l4, l4len);
    p[0] = 0;   /* echo reply, same identifier/sequence/data */
    p[2] = p[3] = 0;
    uint16_t ck = pn_csum_fold(pn_csum_partial(p, l4len, 0));
    memcpy(p + 2, &ck, 2);
    pn_tx_end(s, frame, l4len);
    s->st.IcmpEchoReplies++;
}
