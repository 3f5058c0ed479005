/* tcp_open.c -- opening a connection (RFC 9293 3.10.7.2, 3.10.7.3): a SYN to a listener
 * (with SYN cookies, RFC 4987 3.6, and the per-source limit), a cookie's ACK, a SYN-SENT
 * connection's answer; the options a SYN negotiates and the step to ESTABLISHED. */
#include "pn_internal.h"
#include "wire_tcp.h"

/* RFC 9293 3.10.7.1: a RST for a segment that names no connection. */
void pn_tcp_reply_rst(pn_stack *s, const uint8_t *mac, uint32_t ip, const pn_tcp_seg *t)
{
    if (t->flags & PN_TH_RST)
        return;
    if (t->flags & PN_TH_ACK) {
        pn_tcp_send_rst_reply(s, mac, ip, t->sport, t->dport, t->ack, 0, PN_TH_RST);
    } else {
        uint32_t len = t->plen + ((t->flags & PN_TH_SYN) ? 1 : 0) + ((t->flags & PN_TH_FIN) ? 1 : 0);
        pn_tcp_send_rst_reply(s, mac, ip, t->sport, t->dport, 0, t->seq + len,
                              PN_TH_RST | PN_TH_ACK);
    }
}

/* Negotiated options from a SYN: MSS (RFC 9293 3.7.1, default 536; RFC 6691: our
 * segments leave room for the timestamp option), window scale, timestamps and SACK only
 * when both sides offered them (RFC 7323 2.2, 3.2; RFC 2018 2). */
static void syn_options(pn_stack *s, pn_conn *c, const pn_tcp_seg *t)
{
    uint32_t pm = t->has_mss ? t->mss : 536;
    c->ws_ok = s->cfg.window_scale && t->has_ws;
    c->snd_wscale = c->ws_ok ? t->ws : 0;
    if (!c->ws_ok)
        c->rcv_wscale = 0;
    c->ts_ok = s->cfg.timestamps && t->has_ts;
    c->sack_ok = s->cfg.sack && t->has_sack_perm;   /* RFC 2018 2 */
    uint32_t mss = s->mss_cap < pm ? s->mss_cap : pm;
    if (c->ts_ok)
        mss = mss > 12 ? mss - 12 : 0;
    if (mss < 64)
        mss = 64;   /* as Linux's tcp_min_snd_mss: a tiny MSS is a resource attack */
    c->mss = mss;
    if (c->ts_ok) {
        c->ts_recent = t->tsval;
        c->ts_recent_ns = s->now;
    }
}

void pn_tcp_established(pn_stack *s, pn_conn *c, const pn_tcp_seg *t)
{
    c->state = PN_TCP_ESTABLISHED;
    if (c->half_open) {
        c->half_open = 0;
        s->half_open--;
    }
    c->snd_una = t->ack;
    if (seq_lt(c->snd_nxt, c->snd_una))
        c->snd_nxt = c->snd_una;
    c->snd_wl1 = t->seq;
    c->snd_wl2 = t->ack;
    if (c->rtt_timing && seq_ge(t->ack, c->rtt_seq)) {
        pn_rtt_sample(s, c, (s->now - c->rtt_ts) / 1000);
        c->rtt_timing = 0;
    }
    /* RFC 6298 5.7: the SYN (or SYN-ACK) timed out and no RTT was measured since (Karn):
     * data transmission starts with a 3 s RTO, not the 1 s the handshake began with. */
    if (c->retries && !c->rtt_valid && c->rto_us < PN_SYN_LOST_RTO_US) {
        uint64_t cap = (uint64_t)s->cfg.max_rto_ms * 1000;
        c->rto_us = (uint32_t)(cap < PN_SYN_LOST_RTO_US ? cap : PN_SYN_LOST_RTO_US);
    }
    c->retries = 0;
    c->backoff = 0;
    pn_timer_del(s, &c->t_rtx);
    pn_cc_init(s, c);
    c->ka_rx_ns = s->now;
    if (s->cfg.keepalive_idle_ms)
        pn_timer_set(s, &c->t_ka, s->now + (uint64_t)s->cfg.keepalive_idle_ms * 1000000u);
    pn_ev_push(s, c, PN_EV_CONNECTION_ESTABLISHED);
}

/* ------------------------------------------------------------------ LISTEN */
/* Optional per-source limit on a listener: connections (half-open and established) from
 * one remote address to one listening port. */
static bool source_full(pn_stack *s, uint32_t ip, uint16_t port)
{
    uint32_t lim = s->cfg.max_conns_per_source, n = 0;
    if (lim == 0)
        return false;
    for (uint32_t i = 0; i < s->cfg.max_conn_cnt && n < lim; i++) {
        const pn_conn *c = &s->conns[i];
        if (c->in_use == 1 && !c->active && c->remote_ip == ip && c->local_port == port)
            n++;
    }
    if (n < lim)
        return false;
    s->st.PnPerSourceDrops++;
    s->st.TcpExtListenDrops++;
    return true;
}

/* The final ACK of a SYN-cookie handshake (RFC 4987 3.6): rebuild the connection from
 * the cookie in SEG.ACK - 1 (and the options in TSecr), then hand the ACK to the
 * SYN-RECEIVED processing, which asks allow_new_connection. False: not a valid cookie. */
static bool cookie_ack(pn_stack *s, const uint8_t *mac, uint32_t ip, const pn_tcp_seg *t)
{
    /* only while we have been sending cookies (as Linux's tcp_synq_no_recent_overflow):
     * otherwise a forged ACK gets nothing to guess against */
    /* (cookie_ns is the send time | 1: it may be one ns ahead of s->now in the same poll) */
    if (s->cookie_ns == 0 || (s->now > s->cookie_ns && s->now - s->cookie_ns > PN_COOKIE_VALID_NS))
        return false;
    uint32_t cookie = t->ack - 1, peer_isn = t->seq - 1;
    uint16_t pmss = pn_cookie_check(s, ip, t->sport, t->dport, peer_isn, cookie);
    int ws = 15;
    bool ts = false;
    if (pmss && s->cfg.timestamps && t->has_ts) {
        ws = pn_cookie_ts_decode(pn_ts_now(s, pn_ts_offset(s, ip)), t->tsecr);
        if (ws < 0)
            pmss = 0;
        ts = true;
    }
    if (!pmss) {
        s->st.TcpExtSyncookiesFailed++;
        return false;
    }
    s->st.TcpExtSyncookiesRecv++;
    if (source_full(s, ip, t->dport))
        return true;                   /* dropped: the peer retransmits, the cookie lasts */
    pn_conn *c = pn_conn_alloc(s);
    if (!c) {   /* the table filled since the cookie went out: tell the peer (as Linux's
                   tcp_abort_on_overflow), or it would wait on a connection we never had */
        s->st.TcpExtListenOverflows++;
        s->st.TcpExtListenDrops++;
        return false;
    }
    pn_conn_init(s, c, ip, t->sport, t->dport);
    c->iss = cookie;
    c->snd_una = cookie;
    c->snd_nxt = c->snd_max = cookie + 1;
    c->data_end = cookie + 1;
    memcpy(c->dst_mac, mac, 6);
    c->nexthop = ip;
    pn_tcp_seg syn;
    memset(&syn, 0, sizeof syn);
    syn.has_mss = 1;
    syn.mss = pmss;
    syn.has_ws = ts && ws != 15;
    syn.ws = (uint8_t)(ws == 15 ? 0 : ws);
    syn.has_ts = ts;
    syn.tsval = t->tsval;
    syn_options(s, c, &syn);
    c->irs = peer_isn;
    c->rcv_nxt = t->seq;
    uint32_t w = s->cfg.conn_recv_buf_size;
    c->rcv_adv = c->rcv_nxt + (w > 65535 ? 65535 : w);   /* what the SYN-ACK offered */
    c->last_ack_sent = c->rcv_nxt;
    c->snd_wl1 = peer_isn;
    c->state = PN_TCP_SYN_RECEIVED;
    pn_ht_add(s, ip, t->sport, t->dport, c->idx);
    c->in_ht = 1;
    s->st.TcpPassiveOpens++;
    pn_tcp_sync_rx(s, c, t);
    return true;
}

/* isn_floor: not NULL when the SYN reopens a 4-tuple from our TIME_WAIT (pn_tw_rx). */
void pn_tcp_listen_rx(pn_stack *s, const uint8_t *mac, uint32_t ip, const pn_tcp_seg *t,
                      const uint32_t *isn_floor)
{
    if (t->flags & PN_TH_RST)
        return;                       /* RFC 9293 3.10.7.2 first */
    if (t->flags & PN_TH_ACK) {      /* second: any ACK is bad here -- but a cookie's */
        if (!(t->flags & (PN_TH_SYN | PN_TH_FIN)) && s->cfg.syn_cookies &&
            cookie_ack(s, mac, ip, t))
            return;
        pn_tcp_reply_rst(s, mac, ip, t);
        return;
    }
    if (!(t->flags & PN_TH_SYN) || (t->flags & PN_TH_FIN))
        return;
    if (source_full(s, ip, t->dport))
        return;
    /* half-open connections never take the table: at most syn_backlog of them, and
     * beyond that SYN cookies (RFC 4987 3.6) or a drop.
     * allow_new_connection is asked when the handshake completes (sync_rx). */
    if (s->conn_free == PN_NONE32) {   /* as Linux's full accept queue: no cookie either */
        s->st.TcpExtListenOverflows++;   /* dropped: the peer's SYN retry may find room */
        s->st.TcpExtListenDrops++;
        return;
    }
    bool full = s->half_open >= s->syn_backlog;
    if (s->cfg.syn_cookies == PN_SYN_COOKIES_ALWAYS ||
        (full && s->cfg.syn_cookies == PN_SYN_COOKIES_WHEN_FULL)) {
        if (full)
            s->st.TcpExtTCPReqQFullDoCookies++;
        uint32_t cookie = pn_cookie_make(s, ip, t->sport, t->dport, t->seq,
                                         t->has_mss ? t->mss : 536);
        pn_tcp_send_cookie_synack(s, mac, ip, t->dport, t->sport, cookie, t->seq + 1, t);
        s->cookie_ns = s->now | 1;
        return;
    }
    if (full) {
        s->st.TcpExtTCPReqQFullDrop++;
        s->st.TcpExtListenDrops++;
        return;
    }
    pn_conn *c = pn_conn_alloc(s);
    pn_conn_init(s, c, ip, t->sport, t->dport);
    if (isn_floor)
        pn_conn_isn_at_least(c, *isn_floor);
    memcpy(c->dst_mac, mac, 6);
    c->nexthop = ip;
    syn_options(s, c, t);
    c->irs = t->seq;
    c->rcv_nxt = t->seq + 1;
    c->rcv_adv = c->rcv_nxt;
    c->snd_wnd = t->wnd;             /* RFC 7323 2.2: a SYN's window is never scaled */
    c->max_snd_wnd = c->snd_wnd;
    c->snd_wl1 = t->seq;
    c->state = PN_TCP_SYN_RECEIVED;
    c->half_open = 1;
    s->half_open++;
    pn_ht_add(s, ip, t->sport, t->dport, c->idx);
    c->in_ht = 1;
    s->st.TcpPassiveOpens++;
    pn_tcp_send_syn(s, c);
    pn_rtx_arm(s, c);
}

/* ------------------------------------------------------------------ SYN-SENT */
void pn_tcp_syn_sent_rx(pn_stack *s, pn_conn *c, const uint8_t *mac, const pn_tcp_seg *t)
{
    bool ack_ok = false;
    if (t->flags & PN_TH_ACK) {       /* acceptable iff SND.UNA < SEG.ACK <= SND.NXT */
        if (seq_le(t->ack, c->iss) || seq_gt(t->ack, c->snd_max)) {
            if (!(t->flags & PN_TH_RST))
                pn_tcp_send_rst_reply(s, mac, c->remote_ip, c->remote_port, c->local_port,
                                      t->ack, 0, PN_TH_RST);
            return;
        }
        ack_ok = true;
    }
    if (t->flags & PN_TH_RST) {       /* RFC 5961 3.2: only with an acceptable ACK */
        if (ack_ok) {
            s->st.TcpAttemptFails++;
            s->end_reason = PN_REASON_RESET;
            pn_conn_free(s, c, PN_EV_CONNECTION_REFUSED);
        }
        return;
    }
    if (!(t->flags & PN_TH_SYN))
        return;
    syn_options(s, c, t);
    c->irs = t->seq;
    c->rcv_nxt = t->seq + 1;
    c->rcv_adv = c->rcv_nxt;
    c->snd_wnd = t->wnd;
    c->max_snd_wnd = c->snd_wnd;
    if (ack_ok) {
        pn_tcp_established(s, c, t);
        pn_tcp_send_ack(s, c);
    } else {                          /* simultaneous open (RFC 9293 3.5, figure 8) */
        c->state = PN_TCP_SYN_RECEIVED;
        c->retries = 0;
        pn_tcp_send_syn(s, c);
        pn_rtx_arm(s, c);
    }
}
