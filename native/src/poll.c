/* poll.c -- one pn_poll: receive a burst from the link, demultiplex each frame (ARP,
 * ICMP, TCP), run due timers, transmit, and hand back the batch of events; the event
 * queue and the transmit helpers the TCP code builds frames with. */
#include <time.h>

#include "pn_internal.h"
#include "wire_arp.h"
#include "wire_ipv4.h"
#include "wire_tcp.h"

/* ------------------------------------------------------------------ events */
int pn_ev_push(pn_stack *s, pn_conn *c, uint32_t type)
{
    if (s->ev_tail - s->ev_head >= s->evq_cap)
        return -1;   /* cannot happen with the sizing in compute_layout */
    uint32_t pos = s->ev_tail++;
    pn_event *e = &s->evq[pos & (s->evq_cap - 1)];
    memset(e, 0, sizeof *e);
    e->type = type;
    e->conn_id = c->idx;
    e->remote_ip = c->remote_ip;
    e->remote_port = c->remote_port;
    e->local_port = c->local_port;
    s->evq_conn[pos & (s->evq_cap - 1)] = c->idx;
    c->qrefs++;
    return (int)(pos & (s->evq_cap - 1));
}

/* One DATA event per connection per poll: the queued one grows; a FIN converts it. */
void pn_ev_data(pn_stack *s, pn_conn *c)
{
    if (c->data_ev_live)
        return;
    int i = pn_ev_push(s, c, PN_EV_DATA);
    if (i >= 0) {
        c->data_ev_live = 1;
        c->data_ev_pos = (uint32_t)i;
    }
}

pn_conn *pn_conn_get(const pn_stack *s, uint32_t id)
{
    if (!s || id >= s->cfg.max_conn_cnt)
        return NULL;
    pn_conn *c = &s->conns[id];
    return c->in_use == 1 ? c : NULL;
}

/* ------------------------------------------------------------------ transmit helpers */
uint8_t *pn_tx_begin(pn_stack *s, const uint8_t dst_mac[6], uint32_t dst_ip, uint8_t proto,
                     uint32_t l4len, uint8_t **frame)
{
    uint32_t cap = 0;
    uint8_t *f = pn_link_txbuf(s->link, &cap);
    uint32_t total = PN_ETH_HLEN + PN_IP_HLEN + l4len;
    if (f == NULL || cap < total) {
        s->st.drop_no_buffer++;
        return NULL;
    }
    pn_eth_emit(f, dst_mac, s->mac, PN_ETHERTYPE_IPV4);
    uint8_t *ip = f + PN_ETH_HLEN;
    pn_ipv4_emit(ip, (uint16_t)(PN_IP_HLEN + l4len), s->ip_id++, proto, s->cfg.local_ip, dst_ip);
    uint16_t ck = pn_csum_fold(pn_csum_partial(ip, PN_IP_HLEN, 0));
    memcpy(ip + 10, &ck, 2);
    *frame = f;
    return ip + PN_IP_HLEN;
}

void pn_tx_end(pn_stack *s, uint8_t *frame, uint32_t l4len)
{
    if (pn_link_tx(s->link, s->now, frame, PN_ETH_HLEN + PN_IP_HLEN + l4len) == 0)
        s->st.frames_out++;
}

/* ------------------------------------------------------------------ receive */
static bool martian(uint32_t ip, uint32_t local)
{
    /* RFC 1122 3.2.1.3 / 4.2.3.10: no segments from 0/8, loopback, multicast, broadcast */
    return (ip >> 24) == 0 || (ip >> 24) == 127 || ip >= 0xe0000000u || ip == local;
}

static void rx_frame(pn_stack *s, const pn_rx_frame *f)
{
    pn_eth e;
    s->st.frames_in++;
    if (pn_eth_parse(f->data, f->len, &e) < 0) {
        s->st.drop_malformed++;
        return;
    }
    if (memcmp(e.dst, s->mac, 6) != 0 && !pn_mac_is_bcast(e.dst)) {
        s->st.drop_not_ours++;
        return;
    }
    if (e.src[0] & 1) {   /* a multicast/broadcast source address is never valid */
        s->st.drop_malformed++;
        return;
    }
    if (e.type == PN_ETHERTYPE_ARP) {
        pn_arp_rx(s, f->data, f->len);
        return;
    }
    if (e.type != PN_ETHERTYPE_IPV4) {
        s->st.drop_not_ours++;
        return;
    }
    pn_ipv4 ip;
    if (pn_ipv4_parse(e.payload, e.plen, &ip) < 0) {
        s->st.drop_malformed++;
        return;
    }
    if (ip.dst != s->cfg.local_ip || ip.is_fragment) {
        s->st.drop_not_ours++;
        return;
    }
    bool verified = (f->flags & PN_RX_CSUM_OK) || (s->link->caps & PN_LINK_RX_CSUM) ||
                    !s->cfg.verify_checksums;
    if (!verified && pn_csum_fold(pn_csum_partial(ip.hdr, ip.hlen, 0)) != 0) {
        s->st.drop_bad_csum++;
        return;
    }
    if (martian(ip.src, s->cfg.local_ip)) {
        s->st.drop_malformed++;
        return;
    }
    if (ip.proto == PN_IPPROTO_TCP) {
        if (!verified && !(f->flags & PN_RX_CSUM_PARTIAL)) {
            uint32_t sum = pn_csum_pseudo(ip.src, ip.dst, PN_IPPROTO_TCP, (uint16_t)ip.plen);
            if (pn_csum_fold(pn_csum_partial(ip.payload, ip.plen, sum)) != 0) {
                s->st.drop_bad_csum++;
                s->st.TcpInErrs++;
                return;
            }
        }
        pn_tcp_rx(s, e.src, ip.src, ip.payload, ip.plen);
    } else if (ip.proto == PN_IPPROTO_ICMP) {
        pn_icmp_rx(s, e.src, ip.hdr, ip.hlen + ip.plen, ip.src, ip.payload, ip.plen,
                         verified);
    } else {
        s->st.drop_not_ours++;
    }
}

/* ------------------------------------------------------------------ poll */
static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void release_slots(pn_stack *s)
{
    /* Slots freed in an earlier batch return to the free list once no queued event names
     * them; the scan is over the table only when something was freed. */
    for (uint32_t i = 0; i < s->cfg.max_conn_cnt; i++) {
        pn_conn *c = &s->conns[i];
        if (c->in_use == 2 && c->qrefs == 0) {
            c->in_use = 0;
            s->zombies--;
            c->next_free = s->conn_free;
            s->conn_free = i;
        }
    }
}

int pn_poll(pn_stack *s, uint64_t now, pn_event *events, int max)
{
    if (!s || (max > 0 && !events))
        return PN_EINVAL;
    if (now == 0)
        now = mono_ns();
    if (now > s->now)
        s->now = now;

    /* 1. the previous batch's bytes, less what pn_keep() kept */
    for (uint32_t i = 0; i < s->last_n; i++) {
        pn_shadow *sh = &s->last[i];
        pn_conn *c = &s->conns[sh->conn];
        if (c->in_use != 1)
            continue;
        pn_apply_remaining(s, c, sh->len, sh->fin ? 0 : sh->remaining);
    }
    s->last_n = 0;
    if (s->finq_n)
        pn_fin_deferred(s);
    if (s->zombies)
        release_slots(s);

    /* 2. a burst of frames */
    pn_rx_frame fr[PN_RX_BURST];
    int n = pn_link_rx(s->link, s->now, fr, PN_RX_BURST);
    if (n < 0)
        return PN_ELINK;
    for (int i = 0; i < n; i++)
        rx_frame(s, &fr[i]);
    if (n > 0)
        s->link->ops->rx_release(s->link, fr, n);
    pn_tcp_flush_acks(s);

    /* 3. timers */
    while (s->heap_n && s->heap[0]->when <= s->now) {
        pn_timer *t = s->heap[0];
        pn_timer_del(s, t);
        if (t->kind == PN_T_ARP)
            pn_arp_timer(s, &s->neigh[t->owner]);
        else
            pn_tcp_timer(s, &s->conns[t->owner], t);
    }
    pn_tw_expire(s);
    s->link->ops->tx_flush(s->link);

    /* 4. events */
    int k = 0;
    while (k < max && s->ev_head != s->ev_tail) {
        uint32_t slot = s->ev_head++ & (s->evq_cap - 1);
        pn_event *e = &s->evq[slot];
        pn_conn *c = &s->conns[s->evq_conn[slot]];
        c->qrefs--;
        if (e->type == 0)
            continue;   /* cancelled by pn_close */
        events[k] = *e;
        if (e->type == PN_EV_DATA || e->type == PN_EV_FIN) {
            c->data_ev_live = 0;
            events[k].data = c->rbuf;
            events[k].len = c->rlen;
            if (s->last_n < s->cfg.max_conn_cnt) {   /* one per connection: always room */
                pn_shadow *sh = &s->last[s->last_n++];
                sh->conn = c->idx;
                sh->len = c->rlen;
                sh->remaining = 0;
                sh->fin = e->type == PN_EV_FIN;
            }
        } else if (e->type == PN_EV_MORE_SENDABLE) {
            c->ms_ev_live = 0;
        }
        k++;
    }
    return k;
}

int pn_keep(pn_stack *s, uint32_t conn_id, uint32_t remaining)
{
    if (!s)
        return PN_EINVAL;
    for (uint32_t i = 0; i < s->last_n; i++) {   /* one per connection, a batch's worth */
        if (s->last[i].conn == conn_id) {
            s->last[i].remaining = remaining;
            return 0;
        }
    }
    return PN_EINVAL;
}
