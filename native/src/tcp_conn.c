/* tcp_conn.c -- connection slots and the connection API: open (RFC 9293 3.5), FIN,
 * abort, user timers, the DATA `remaining` contract, RFC 6528 ISNs (sending: tcp_send.c). */
#include <stdio.h>

#include "pn_internal.h"
#include "wire_tcp.h"

/* RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), with M a
 * 4-microsecond clock and F SipHash-2-4 under a per-stack secret. */
uint32_t pn_isn(pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport)
{
    uint8_t b[12];
    memcpy(b, &s->cfg.local_ip, 4);
    memcpy(b + 4, &rip, 4);
    memcpy(b + 8, &lport, 2);
    memcpy(b + 10, &rport, 2);
    return (uint32_t)pn_siphash(s->isn_key, b, sizeof b) + (uint32_t)(s->now / 4000u) +
           s->isn_bias;
}

/* RFC 7323 7.1: the TSval offset, a keyed hash of the address pair (as Linux): the same
 * for every incarnation of a 4-tuple (TSval stays monotonic across TIME_WAIT reuse) and
 * unrelated to the ISN on the wire (TSval minus the offset would be our clock). */
uint32_t pn_ts_offset(const pn_stack *s, uint32_t rip)
{
    uint8_t b[12];
    memcpy(b, &s->cfg.local_ip, 4);
    memcpy(b + 4, &rip, 4);
    memcpy(b + 8, "TSof", 4);   /* a domain of its own: never equal to an ISN's input */
    return (uint32_t)pn_siphash(s->isn_key, b, sizeof b);
}

bool pn_oow_allowed(pn_stack *s, uint64_t *last, uint64_t *skipped)
{
    uint64_t gap = (uint64_t)s->cfg.oow_rate_limit_ms * 1000000u;
    if (*last && s->now - *last < gap) {
        (*skipped)++;
        return false;
    }
    *last = s->now ? s->now : 1;   /* 0 means "never replied" */
    return true;
}

pn_conn *pn_conn_alloc(pn_stack *s)
{
    if (s->conn_free == PN_NONE32)
        return NULL;
    pn_conn *c = &s->conns[s->conn_free];
    s->conn_free = c->next_free;
    s->conn_live++;
    return c;
}

void pn_conn_init(pn_stack *s, pn_conn *c, uint32_t rip, uint16_t rport, uint16_t lport)
{
    /* keep the arena pointers and timer heap state, clear the rest */
    uint32_t idx = c->idx;
    pn_sseg *segs = c->segs;
    uint8_t *sbuf = c->sbuf, *rbuf = c->rbuf;
    pn_timer *tu = c->t_user;
    memset(c, 0, sizeof *c);
    c->idx = idx;
    c->segs = segs;
    c->sbuf = sbuf;
    c->rbuf = rbuf;
    c->t_user = tu;
    c->in_use = 1;
    c->remote_ip = rip;
    c->remote_port = rport;
    c->local_port = lport;
    c->quick_acks = PN_QUICK_ACK_BYTES;
    c->t_rtx.heap_idx = c->t_delack.heap_idx = c->t_ka.heap_idx = PN_NONE32;
    c->t_rtx.owner = c->t_delack.owner = c->t_ka.owner = idx;
    c->t_rtx.kind = PN_T_RTX;
    c->t_delack.kind = PN_T_DELACK;
    c->t_ka.kind = PN_T_KEEPALIVE;
    for (uint32_t j = 0; j < s->cfg.user_timer_cnt; j++) {
        tu[j].heap_idx = PN_NONE32;
        tu[j].owner = idx;
        tu[j].kind = PN_T_USER;
        tu[j].sub = (uint16_t)j;
    }
    uint64_t rto = PN_INIT_RTO_US;
    if (rto < (uint64_t)s->cfg.min_rto_ms * 1000)
        rto = (uint64_t)s->cfg.min_rto_ms * 1000;
    if (rto > (uint64_t)s->cfg.max_rto_ms * 1000)
        rto = (uint64_t)s->cfg.max_rto_ms * 1000;
    c->rto_us = (uint32_t)rto;
    c->iss = pn_isn(s, rip, rport, lport);
    c->snd_una = c->snd_nxt = c->snd_max = c->iss;
    c->data_end = c->iss + 1;
    c->rcv_mss = 536;
    c->data_ev_pos = PN_NONE32;
    if (s->cfg.window_scale) {   /* RFC 7323 2.3: the shift that fits our buffer in 16 bits */
        uint8_t ws = 0;
        while (ws < 14 && (s->cfg.conn_recv_buf_size >> ws) > 65535)
            ws++;
        c->rcv_wscale = ws;
    }
    c->ts_offset = pn_ts_offset(s, rip);
}

void pn_conn_isn_at_least(pn_conn *c, uint32_t floor)
{
    if (seq_lt(c->iss, floor)) {
        c->iss = c->snd_una = c->snd_nxt = c->snd_max = floor;
        c->data_end = floor + 1;
    }
}

void pn_conn_free(pn_stack *s, pn_conn *c, uint32_t ev)
{
    if (c->in_use != 1)
        return;
    if (ev) {
        int i = pn_ev_push(s, c, ev);
        if (i >= 0)
            s->evq[i].reason = s->end_reason;
    }
    s->end_reason = PN_REASON_NONE;
    if (c->half_open) {
        c->half_open = 0;
        s->half_open--;
    }
    pn_timer_del(s, &c->t_rtx);
    pn_timer_del(s, &c->t_delack);
    pn_timer_del(s, &c->t_ka);
    for (uint32_t j = 0; j < s->cfg.user_timer_cnt; j++)
        pn_timer_del(s, &c->t_user[j]);
    if (c->in_ht) {
        pn_ht_del(s, c->remote_ip, c->remote_port, c->local_port);
        c->in_ht = 0;
        if (c->active && s->link->ops->flow_del) {
            pn_flow f = {s->cfg.local_ip, c->remote_ip, c->local_port, c->remote_port};
            s->link->ops->flow_del(s->link, &f);
        }
    }
    c->state = PN_TCP_CLOSED;
    c->in_use = 2;
    s->zombies++;
    s->conn_live--;
}

/* Every connection that completes the four-way close enters TIME_WAIT (efvitcp), then
 * its slot is freed with a CLOSED event. */
void pn_conn_to_time_wait(pn_stack *s, pn_conn *c)
{
    if (c->in_ht) {
        pn_ht_del(s, c->remote_ip, c->remote_port, c->local_port);
        c->in_ht = 0;
    }
    pn_tw_enter(s, c);
    pn_conn_free(s, c, PN_EV_CONNECTION_CLOSED);
}

/* The four-way close is complete. When the FIN event still waits for the DATA event
 * before it to be handled (tcp_in.c), so does CLOSED: the next pn_poll() delivers both. */
void pn_conn_closed(pn_stack *s, pn_conn *c)
{
    if (!c->fin_defer) {
        pn_conn_to_time_wait(s, c);
        return;
    }
    c->tw_defer = 1;
    c->state = PN_TCP_TIME_WAIT;
    pn_timer_del(s, &c->t_rtx);
    pn_timer_del(s, &c->t_delack);
    pn_timer_del(s, &c->t_ka);
}

/* At the start of a poll, after `remaining` was applied: FIN events held back behind a
 * DATA event now carry exactly what the application left (efvitcp: onData, then onFin
 * with the rest). */
void pn_fin_deferred(pn_stack *s)
{
    uint32_t keep = 0;
    for (uint32_t i = 0; i < s->finq_n; i++) {
        pn_conn *c = &s->conns[s->finq[i]];
        if (c->in_use != 1 || !c->fin_defer)
            continue;
        if (c->data_ev_live) {          /* that DATA event is still queued: wait more */
            s->finq[keep++] = c->idx;
            continue;
        }
        c->fin_defer = 0;
        int e = pn_ev_push(s, c, PN_EV_FIN);
        if (e >= 0) {
            c->data_ev_live = 1;
            c->data_ev_pos = (uint32_t)e;
        }
        if (c->tw_defer) {
            c->tw_defer = 0;
            pn_conn_to_time_wait(s, c);
        }
    }
    s->finq_n = keep;
}

static void start_syn(pn_stack *s, pn_conn *c)
{
    c->state = PN_TCP_SYN_SENT;
    pn_tcp_send_syn(s, c);
    pn_rtx_arm(s, c);
}

void pn_conn_arp_done(pn_stack *s, uint32_t ip, const uint8_t *mac)
{
    for (uint32_t i = 0; i < s->cfg.max_conn_cnt; i++) {
        pn_conn *c = &s->conns[i];
        if (c->in_use != 1 || c->nexthop != ip)
            continue;
        memcpy(c->dst_mac, mac, 6);
        if (c->state == PN_TCP_ARP_WAIT)
            start_syn(s, c);
    }
}

void pn_conn_arp_failed(pn_stack *s, uint32_t ip)
{
    for (uint32_t i = 0; i < s->cfg.max_conn_cnt; i++) {
        pn_conn *c = &s->conns[i];
        if (c->in_use == 1 && c->state == PN_TCP_ARP_WAIT && c->nexthop == ip) {
            s->st.TcpAttemptFails++;
            pn_conn_free(s, c, PN_EV_ARP_FAILED);
        }
    }
}

/* ------------------------------------------------------------------ open */
/* 1 when the replies to lport reach this stack's link (a shard's: see port_fits). */
static int port_fits(pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport)
{
    if (s->link->ops->port_fits == NULL)
        return 1;
    pn_flow f = {s->cfg.local_ip, rip, lport, rport};
    return s->link->ops->port_fits(s->link, &f);
}

/* A free ephemeral port (one whose replies reach us), PN_EPORT, or PN_ELINK. */
static int pick_port(pn_stack *s, uint32_t rip, uint16_t rport)
{
    for (uint32_t i = 0; i < 28232; i++) {   /* Linux's default range 32768..60999 */
        uint16_t p = (uint16_t)(32768 + s->eph_next);
        s->eph_next = (uint16_t)((s->eph_next + 1) % 28232);
        if (pn_is_listening(s, p) || pn_ht_find(s, rip, rport, p) != PN_NONE32)
            continue;
        int fits = port_fits(s, rip, rport, p);
        if (fits < 0)
            return PN_ELINK;
        if (fits)
            return p;
    }
    return PN_EPORT;
}

int pn_connect(pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport, uint32_t *conn_id)
{
    if (!s || rip == 0 || rport == 0 || rip >= 0xe0000000u || rip == s->cfg.local_ip)
        return PN_EINVAL;
    uint32_t nh = rip, isn_floor = 0;
    bool reuse = false;
    int fits;
    if ((rip & s->cfg.netmask) != (s->cfg.local_ip & s->cfg.netmask)) {
        if (s->cfg.gateway_ip == 0)
            return PN_ENOROUTE;
        nh = s->cfg.gateway_ip;
    }
    if (lport == 0) {
        int p = pick_port(s, rip, rport);
        if (p < 0)
            return p;
        lport = (uint16_t)p;
    } else if ((fits = port_fits(s, rip, rport, lport)) != 1) {
        if (fits == 0)
            snprintf(s->link->err, sizeof s->link->err, "local port %u: the replies would "
                     "reach another shard's queue; give local port 0 to get one that fits",
                     lport);
        return PN_ELINK;
    } else {
        uint32_t v = pn_ht_find(s, rip, rport, lport);
        if (v != PN_NONE32 && !(v & 0x80000000u))
            return PN_EPORT;
        /* our own TIME_WAIT on this tuple: reuse it, with an ISN above the old sequence
         * space (RFC 6191). The ISN clock (250k/s) falls behind a fast transfer, so the
         * floor is the old snd_nxt + 65537, as Linux's tcp_twsk_unique. */
        if (v != PN_NONE32) {
            isn_floor = s->tw[v & 0x7fffffffu].snd_nxt + 65537u;
            reuse = true;
            pn_tw_kill(s, v & 0x7fffffffu);
        }
    }
    pn_conn *c = pn_conn_alloc(s);
    if (!c)
        return PN_ENOCONN;
    pn_conn_init(s, c, rip, rport, lport);
    if (reuse)
        pn_conn_isn_at_least(c, isn_floor);
    c->active = 1;
    c->nexthop = nh;
    pn_flow f = {s->cfg.local_ip, rip, lport, rport};
    if (s->link->ops->flow_add && s->link->ops->flow_add(s->link, &f) < 0) {
        c->active = 0;
        pn_conn_free(s, c, 0);
        return PN_ELINK;
    }
    pn_ht_add(s, rip, rport, lport, c->idx);
    c->in_ht = 1;
    s->st.TcpActiveOpens++;
    int r = pn_arp_resolve(s, nh, c->dst_mac);
    if (r < 0) {
        pn_conn_free(s, c, 0);
        return PN_ENOMEM;
    }
    if (r > 0)
        start_syn(s, c);
    else
        c->state = PN_TCP_ARP_WAIT;
    s->link->ops->tx_flush(s->link);
    if (conn_id)
        *conn_id = c->idx;
    return PN_OK;
}

int pn_send_fin(pn_stack *s, uint32_t id)
{
    pn_conn *c = pn_conn_get(s, id);
    if (!c)
        return PN_EBADCONN;
    if (c->fin_queued)
        return PN_ESTATE;
    if (c->state == PN_TCP_ESTABLISHED)
        c->state = PN_TCP_FIN_WAIT_1;
    else if (c->state == PN_TCP_CLOSE_WAIT)
        c->state = PN_TCP_LAST_ACK;
    else
        return PN_ESTATE;
    c->fin_queued = 1;
    c->more_hold = 0;
    pn_tcp_output(s, c);
    s->link->ops->tx_flush(s->link);
    return PN_OK;
}

int pn_close(pn_stack *s, uint32_t id)
{
    pn_conn *c = pn_conn_get(s, id);
    if (!c)
        return PN_EBADCONN;
    switch (c->state) {   /* RFC 9293 3.10.5 ABORT: RST in synchronized states */
    case PN_TCP_SYN_RECEIVED: case PN_TCP_ESTABLISHED: case PN_TCP_FIN_WAIT_1:
    case PN_TCP_FIN_WAIT_2: case PN_TCP_CLOSE_WAIT: case PN_TCP_CLOSING: case PN_TCP_LAST_ACK:
        pn_tcp_send_ctl(s, c, PN_TH_RST | PN_TH_ACK);
        s->st.TcpOutRsts++;
        if (c->state == PN_TCP_ESTABLISHED || c->state == PN_TCP_CLOSE_WAIT)
            s->st.TcpEstabResets++;
        break;
    default:
        break;
    }
    /* no further events for it: cancel the queued ones */
    for (uint32_t p = s->ev_head; p != s->ev_tail; p++) {
        uint32_t slot = p & (s->evq_cap - 1);
        if (s->evq_conn[slot] == c->idx)
            s->evq[slot].type = 0;
    }
    c->data_ev_live = 0;
    c->ms_ev_live = 0;
    pn_conn_free(s, c, 0);
    s->link->ops->tx_flush(s->link);
    return PN_OK;
}

int pn_set_user_timer(pn_stack *s, uint32_t id, uint32_t tid, uint32_t ms)
{
    pn_conn *c = pn_conn_get(s, id);
    if (!c)
        return PN_EBADCONN;
    if (tid >= s->cfg.user_timer_cnt || ms > 65000)
        return PN_ETIMER;
    if (ms == 0)
        pn_timer_del(s, &c->t_user[tid]);
    else
        pn_timer_set(s, &c->t_user[tid], s->now + (uint64_t)ms * 1000000u);
    return PN_OK;
}

int pn_conn_info_get(const pn_stack *s, uint32_t id, pn_conn_info *o)
{
    const pn_conn *c = pn_conn_get(s, id);
    if (!c || !o)
        return PN_EBADCONN;
    memset(o, 0, sizeof *o);
    o->state = c->state;
    o->remote_ip = c->remote_ip;
    o->remote_port = c->remote_port;
    o->local_port = c->local_port;
    o->snd_una = c->snd_una;
    o->snd_nxt = c->snd_nxt;
    o->rcv_nxt = c->rcv_nxt;
    o->snd_wnd = c->snd_wnd;
    o->rcv_wnd = seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
    o->cwnd = c->cwnd;
    o->ssthresh = c->ssthresh;
    o->srtt_us = c->srtt_us;
    o->rttvar_us = c->rttvar_us;
    uint64_t rto = (uint64_t)c->rto_us << c->backoff;
    if (rto > (uint64_t)s->cfg.max_rto_ms * 1000)
        rto = (uint64_t)s->cfg.max_rto_ms * 1000;
    o->rto_ms = (uint32_t)(rto / 1000);
    o->mss = c->mss;
    o->retransmits = c->retransmits;
    o->irs = c->irs;
    o->options = (c->ts_ok ? PN_OPT_TIMESTAMPS : 0u) | (c->sack_ok ? PN_OPT_SACK : 0u) |
                 (c->ws_ok ? PN_OPT_WSCALE : 0u);
    return PN_OK;
}

/* ------------------------------------------------------------------ receive contract */
/* The caller left `remaining` of the `delivered` bytes unconsumed: keep exactly those at
 * the buffer start (memmove only when something must stay), then reopen the window. */
void pn_apply_remaining(pn_stack *s, pn_conn *c, uint32_t delivered, uint32_t remaining)
{
    if (delivered > c->rlen)
        delivered = c->rlen;
    if (remaining > delivered)
        remaining = delivered;
    uint32_t consumed = delivered - remaining;
    if (consumed == 0)
        return;
    uint32_t end = c->rlen;
    if (c->ooo_n)
        end = c->rlen + (c->ooo[c->ooo_n - 1].e - c->rcv_nxt);
    if (end > s->cfg.conn_recv_buf_size)
        end = s->cfg.conn_recv_buf_size;
    if (end > consumed)
        memmove(c->rbuf, c->rbuf + consumed, end - consumed);
    c->rlen -= consumed;
    /* RFC 1122 4.2.3.3: announce a reopened window once it moved by a useful amount, and
     * only when the advertised one had fallen to half the buffer or less. */
    uint32_t adv = seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
    if (adv <= s->cfg.conn_recv_buf_size / 2 && !c->fin_rcvd &&
        (c->state == PN_TCP_ESTABLISHED || c->state == PN_TCP_FIN_WAIT_1 ||
         c->state == PN_TCP_FIN_WAIT_2)) {
        uint32_t before = c->rcv_adv;
        pn_rcv_window(s, c, false);
        uint32_t free = s->cfg.conn_recv_buf_size - c->rlen;
        uint32_t thr = s->cfg.conn_recv_buf_size / 2 < c->rcv_mss ? s->cfg.conn_recv_buf_size / 2 : c->rcv_mss;
        if (seq_gt(c->rcv_nxt + free, before) && (c->rcv_nxt + free) - before >= thr)
            pn_tcp_send_ack(s, c);
    }
}
