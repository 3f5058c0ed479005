/* tcp_out.c -- building and sending segments: SYN/SYN-ACK with options (RFC 9293 3.7.1,
 * RFC 7323), data from the send buffers with the sender's SWS avoidance (RFC 1122
 * 4.2.3.4), the receive window with the receiver's SWS avoidance (RFC 1122 4.2.3.3),
 * ACKs, RSTs (RFC 9293 3.10.7.1). */
#include "pn_internal.h"
#include "wire_ipv4.h"
#include "wire_tcp.h"

/* RFC 7323 5.4: a 1 ms timestamp clock plus a per-connection offset. */
uint32_t pn_ts_now(const pn_stack *s, uint32_t offset)
{
    return (uint32_t)(s->now / 1000000u) + offset;
}

static uint32_t thr_sws(const pn_stack *s, const pn_conn *c)
{
    uint32_t half = s->cfg.conn_recv_buf_size / 2;
    return c->rcv_mss < half ? c->rcv_mss : half;
}

/* The 16-bit window field. The right edge (rcv_nxt + window) never moves left, and moves
 * right only by at least min(buffer/2, MSS) (RFC 1122 4.2.3.3). */
uint32_t pn_rcv_window(pn_stack *s, pn_conn *c, bool update)
{
    uint32_t free = s->cfg.conn_recv_buf_size - c->rlen;
    uint32_t maxw = 65535u << c->rcv_wscale;
    if (free > maxw)
        free = maxw;
    uint32_t right = c->rcv_nxt + free;
    uint32_t adv = c->rcv_adv;
    if (seq_gt(right, c->rcv_adv) && right - c->rcv_adv >= thr_sws(s, c))
        adv = right;
    uint32_t wnd = seq_gt(adv, c->rcv_nxt) ? adv - c->rcv_nxt : 0;
    uint32_t field = wnd >> c->rcv_wscale;
    if (field > 65535)
        field = 65535;
    if (update) {
        uint32_t edge = c->rcv_nxt + (field << c->rcv_wscale);
        if (seq_gt(edge, c->rcv_adv))
            c->rcv_adv = edge;
    }
    return field;
}

typedef struct tx_args {
    uint32_t seq;
    uint8_t flags;
    const uint8_t *payload;
    uint32_t n;
} tx_args;

static int emit(pn_stack *s, pn_conn *c, const tx_args *a)
{
    pn_tcp_out o;
    memset(&o, 0, sizeof o);
    o.sport = c->local_port;
    o.dport = c->remote_port;
    o.seq = a->seq;
    o.flags = a->flags;
    o.ack = (a->flags & PN_TH_ACK) ? c->rcv_nxt : 0;
    if (a->flags & PN_TH_SYN) {
        bool passive = (a->flags & PN_TH_ACK) != 0;
        o.mss = (uint16_t)(s->cfg.mtu - 40);     /* what we can receive (RFC 6691) */
        o.ws_on = passive ? c->ws_ok : s->cfg.window_scale;
        o.ws = c->rcv_wscale;
        o.ts_on = passive ? c->ts_ok : s->cfg.timestamps;
        o.sack_perm = passive ? c->sack_ok : s->cfg.sack;
        uint32_t w = s->cfg.conn_recv_buf_size;   /* RFC 7323 2.2: never scaled in a SYN */
        o.wnd = (uint16_t)(w > 65535 ? 65535 : w);
        if (passive)
            c->rcv_adv = c->rcv_nxt + o.wnd;
    } else {
        o.wnd = (uint16_t)pn_rcv_window(s, c, true);
        o.ts_on = c->ts_ok;
        if (c->sack_ok && c->ooo_n && a->n == 0 && !(a->flags & PN_TH_RST))
            pn_sack_blocks(c, &o);   /* on ACKs without data: a data segment keeps its MSS */
    }
    if (a->flags & PN_TH_RST)
        o.wnd = 0;
    if (o.ts_on) {
        o.tsval = pn_ts_now(s, c->ts_offset);
        o.tsecr = (a->flags & PN_TH_ACK) ? c->ts_recent : 0;
    }
    uint32_t hl = pn_tcp_hdr_len(&o), l4 = hl + a->n;
    uint8_t *frame;
    uint8_t *p = pn_tx_begin(s, c->dst_mac, c->remote_ip, PN_IPPROTO_TCP, l4, &frame);
    if (!p)
        return -1;
    pn_tcp_emit(p, &o);
    uint32_t sum = pn_csum_pseudo(s->cfg.local_ip, c->remote_ip, PN_IPPROTO_TCP, (uint16_t)l4);
    sum = pn_csum_partial(p, hl, sum);
    if (a->n)
        sum = pn_csum_copy(p + hl, a->payload, a->n, sum);
    uint16_t ck = pn_csum_fold(sum);
    memcpy(p + 16, &ck, 2);
    pn_tx_end(s, frame, l4);
    s->st.TcpOutSegs++;
    if (a->flags & PN_TH_ACK) {   /* every segment carries the ACK: nothing left to delay */
        c->last_ack_sent = c->rcv_nxt;
        c->delack_bytes = 0;
        pn_timer_del(s, &c->t_delack);
    }
    return 0;
}

int pn_tcp_send_syn(pn_stack *s, pn_conn *c)
{
    tx_args a = {c->iss, PN_TH_SYN, NULL, 0};
    if (c->state == PN_TCP_SYN_RECEIVED)
        a.flags |= PN_TH_ACK;
    if (c->retries == 0) {   /* Karn: only an unretransmitted SYN is timed */
        c->rtt_timing = 1;
        c->rtt_seq = c->iss + 1;
        c->rtt_ts = s->now;
    } else {
        c->rtt_timing = 0;
    }
    int r = emit(s, c, &a);
    c->snd_nxt = c->iss + 1;
    if (seq_gt(c->snd_nxt, c->snd_max))
        c->snd_max = c->snd_nxt;
    return r;
}

/* The sequence number of a segment without data (as Linux's tcp_acceptable_seq). Control
 * segments carry the highest sequence sent (RFC 9293's SND.NXT): our snd_nxt is only the
 * transmit pointer and goes back after a timeout, and an ACK with an old sequence number
 * would be unacceptable to the peer. But never beyond the window the peer offers,
 * SND.UNA + SND.WND, when it shrank below what we sent: a receiver checks SEG.SEQ against
 * its window (RFC 9293 3.10.7.4), and Linux at a zero window drops such an ACK without
 * reading its ACK field -- both sides would retransmit until one times out. A right edge
 * short of snd_max by less than one unit of the peer's window scale is rounding. */
uint32_t pn_tcp_ack_seq(const pn_conn *c)
{
    if (c->state == PN_TCP_SYN_SENT || c->state == PN_TCP_SYN_RECEIVED)
        return c->snd_max;   /* our SYN is not acknowledged: no window applies to it yet */
    uint32_t edge = c->snd_una + c->snd_wnd;
    if (seq_ge(edge, c->snd_max) || c->snd_max - edge < (1u << c->snd_wscale))
        return c->snd_max;
    return seq_lt(edge, c->snd_una) ? c->snd_una : edge;
}

int pn_tcp_send_ctl(pn_stack *s, pn_conn *c, uint8_t flags)
{
    tx_args a = {pn_tcp_ack_seq(c), flags, NULL, 0};
    return emit(s, c, &a);
}

void pn_tcp_send_ack(pn_stack *s, pn_conn *c)
{
    tx_args a = {pn_tcp_ack_seq(c), PN_TH_ACK, NULL, 0};
    if (emit(s, c, &a) == 0)
        return;
    /* The TX ring is full: the ACK goes at the next poll's flush (pn_tcp_flush_acks),
     * not when the peer's retransmission timer fires. */
    s->st.PnAckRetries++;
    c->ack_lost = 1;
    if (!c->ack_pending) {
        c->ack_pending = 1;
        s->ackq[s->ackq_n++] = c->idx;
    }
}

static inline const uint8_t *seg_data(const pn_stack *s, const pn_conn *c, const pn_sseg *g)
{
    return c->sbuf + (size_t)(g - c->segs) * s->sbuf_size;
}

/* Send n bytes starting at seq (inside buffer k), with FIN when it ends the stream. */
static int send_range(pn_stack *s, pn_conn *c, uint32_t k, uint32_t seq, uint32_t n, bool fin)
{
    const pn_sseg *g = pn_seg_at(s, c, k);
    uint32_t off = seq - g->seq;
    tx_args a = {seq, PN_TH_ACK, seg_data(s, c, g) + off, n};
    if (off + n == g->len && k == c->sb_cnt - 1)
        a.flags |= PN_TH_PSH;
    if (fin)
        a.flags |= PN_TH_FIN;
    if (seq_lt(seq, c->snd_max)) {
        s->st.TcpRetransSegs++;
        c->retransmits++;
        if (c->rtt_timing && seq_lt(seq, c->rtt_seq))
            c->rtt_timing = 0;   /* Karn's rule (RFC 6298 3) */
    } else if (!c->rtt_timing && !c->ts_ok) {
        c->rtt_timing = 1;
        c->rtt_seq = seq + n;
        c->rtt_ts = s->now;
    }
    int r = emit(s, c, &a);
    if (r == 0)
        pn_seg_at(s, c, k)->xmit_us = (uint32_t)(s->now / 1000u);
    uint32_t end = seq + n + (fin ? 1 : 0);
    if (r == 0 && seq_gt(end, c->snd_max))
        c->snd_max = end;   /* a resend of a segment first sent in part goes further */
    return r;
}

static bool sending_state(const pn_conn *c)
{
    switch (c->state) {
    case PN_TCP_ESTABLISHED: case PN_TCP_CLOSE_WAIT: case PN_TCP_FIN_WAIT_1:
    case PN_TCP_CLOSING: case PN_TCP_LAST_ACK:
        return true;
    default:
        return false;
    }
}

/* Send what the window allows. No Nagle (RFC 1122 4.2.3.4 lets an application turn it
 * off; efvitcp has none): `more` is the application's way to coalesce. */
static void output(pn_stack *s, pn_conn *c, bool force)
{
    if (!sending_state(c))
        return;
    uint32_t wnd = c->snd_wnd;
    /* RFC 3042 limited transmit: the first two duplicate ACKs each let one new segment
     * past cwnd, so that a small window still draws the third */
    uint32_t lt = c->in_recovery ? 0u : c->dupacks < 2 ? c->dupacks : 2u;
    uint64_t cw = (uint64_t)c->cwnd + (uint64_t)lt * c->mss;
    if (s->cfg.congestion_control != PN_CC_NONE && cw < wnd)
        wnd = (uint32_t)cw;
    bool window_blocked = false, tx_full = false;
    /* SACK recovery: new data within PRR's budget (RFC 6675 NextSeg rule 2, RFC 6937) */
    bool by_prr = c->in_recovery && c->sack_ok && s->cfg.congestion_control != PN_CC_NONE;
    uint32_t k = c->sb_nxt_off;
    for (;;) {
        uint32_t limit = c->snd_una + (by_prr ? c->snd_wnd : wnd);
        if (by_prr && seq_lt(c->snd_nxt + c->prr_budget, limit))
            limit = c->snd_nxt + c->prr_budget;
        if (seq_lt(c->snd_nxt, c->data_end)) {
            while (k < c->sb_cnt) {
                const pn_sseg *g = pn_seg_at(s, c, k);
                if (seq_gt(g->seq + g->len, c->snd_nxt))
                    break;
                k++;
            }
            if (k >= c->sb_cnt)
                break;
            const pn_sseg *g = pn_seg_at(s, c, k);
            if (seq_lt(c->snd_nxt, g->seq)) {
                if (k > 0) {
                    k = 0;   /* hint overshot after a go-back: rescan */
                    continue;
                }
                /* snd_nxt below the oldest byte held: an invariant is broken (a bug).
                 * Rescanning would find the same segment for ever: repair, and count. */
                PN_DEBUG_ASSERT(!"snd_nxt below the send buffer's head");
                s->st.PnInvariantRepairs++;
                c->snd_nxt = g->seq;
                continue;
            }
            if ((g->flags & PN_SSEG_SACKED) && seq_lt(c->snd_nxt, c->snd_max)) {
                c->snd_nxt = g->seq + g->len;   /* going back after a timeout: the peer */
                continue;                      /* has this one (RFC 6675 5.1) */
            }
            uint32_t avail = g->seq + g->len - c->snd_nxt;
            bool last = k == c->sb_cnt - 1;
            if (last && c->more_hold && g->len < c->mss && seq_ge(g->seq, c->snd_max))
                break;   /* `more`: hold the trailing partial segment */
            uint32_t usable = seq_gt(limit, c->snd_nxt) ? limit - c->snd_nxt : 0;
            uint32_t n = avail < usable ? avail : usable;
            if (n == 0 || (n < avail && !force && n < c->max_snd_wnd / 2)) {
                window_blocked = true;   /* RFC 1122 4.2.3.4: no tiny window-limited segments */
                break;
            }
            force = false;
            bool fin = c->fin_queued && c->snd_nxt + n == c->data_end;
            if (send_range(s, c, k, c->snd_nxt, n, fin) < 0) {
                tx_full = true;
                break;
            }
            c->snd_nxt += n + (fin ? 1 : 0);
            if (seq_gt(c->snd_nxt, c->snd_max))
                c->snd_max = c->snd_nxt;
            if (by_prr) {
                c->prr_budget -= n < c->prr_budget ? n : c->prr_budget;
                c->prr_out += n;
            }
        } else if (c->fin_queued && c->snd_nxt == c->data_end) {
            /* FIN takes a sequence number but no window */
            tx_args a = {c->data_end, PN_TH_ACK | PN_TH_FIN, NULL, 0};
            if (seq_lt(c->data_end, c->snd_max)) {
                s->st.TcpRetransSegs++;
                c->retransmits++;
            }
            if (emit(s, c, &a) < 0) {
                tx_full = true;
                break;
            }
            c->snd_nxt = c->data_end + 1;
            if (seq_gt(c->snd_nxt, c->snd_max))
                c->snd_max = c->snd_nxt;
            break;
        } else {
            break;
        }
    }
    c->sb_nxt_off = k < c->sb_cnt ? k : c->sb_cnt;
    if (c->snd_una != c->snd_max) {
        if (c->persist) {
            c->persist = 0;
            pn_timer_del(s, &c->t_rtx);
        }
        if (c->t_rtx.heap_idx == PN_NONE32)
            pn_rtx_arm(s, c);
    } else if (tx_full && c->t_rtx.heap_idx == PN_NONE32) {
        /* the link's ring was full: try again shortly (tcp_timer.c sends, no backoff) */
        pn_timer_set(s, &c->t_rtx, s->now + 1000000u);
    } else if (window_blocked && c->t_rtx.heap_idx == PN_NONE32) {
        /* RFC 9293 3.8.6.1: nothing in flight and the window is closed: probe it */
        c->persist = 1;
        if (!c->zw_since)
            c->zw_since = s->now | 1;   /* cleared by a window update (tcp_in.c) */
        pn_rtx_arm(s, c);
    }
}

void pn_tcp_output(pn_stack *s, pn_conn *c) { output(s, c, false); }
void pn_tcp_output_force(pn_stack *s, pn_conn *c) { output(s, c, true); }

/* RFC 9293 3.8.6.1: a zero-window probe carries one new byte; snd_nxt does not move
 * (an ACK covering it is accepted in tcp_in.c). */
int pn_tcp_send_probe(pn_stack *s, pn_conn *c)
{
    if (!seq_lt(c->snd_nxt, c->data_end)) {
        pn_tcp_send_ack(s, c);
        return 0;
    }
    for (uint32_t k = 0; k < c->sb_cnt; k++) {
        const pn_sseg *g = pn_seg_at(s, c, k);
        if (seq_le(g->seq, c->snd_nxt) && seq_gt(g->seq + g->len, c->snd_nxt)) {
            tx_args a = {c->snd_nxt, PN_TH_ACK, seg_data(s, c, g) + (c->snd_nxt - g->seq), 1};
            return emit(s, c, &a);
        }
    }
    return -1;
}

/* A keepalive probe (RFC 1122 4.2.3.6, as Linux's tcp_xmit_probe_skb): an ACK with
 * seq = snd_una - 1 and no data, below the peer's window, so it must answer with an ACK. */
int pn_tcp_send_keepalive(pn_stack *s, pn_conn *c)
{
    tx_args a = {c->snd_una - 1, PN_TH_ACK, NULL, 0};
    return emit(s, c, &a);
}

int pn_tcp_retransmit_seg(pn_stack *s, pn_conn *c, uint32_t k)
{
    const pn_sseg *g = pn_seg_at(s, c, k);
    return send_range(s, c, k, g->seq, g->len, false);
}

/* Resend the first unacknowledged segment (fast retransmit, RFC 5681 3.2; a partial ACK,
 * RFC 6582 3.2; the RTO, RFC 6298 5.4), window or not. advance: after an RTO, snd_nxt
 * restarts from snd_una (go-back-N) and moves past what was resent. */
int pn_tcp_retransmit_head(pn_stack *s, pn_conn *c, bool advance)
{
    if (c->snd_una == c->snd_max)
        return 0;
    int r = 0;
    uint32_t end = c->snd_una;
    if (seq_lt(c->snd_una, c->data_end) && c->sb_cnt) {
        const pn_sseg *g = pn_seg_at(s, c, 0);
        uint32_t off = c->snd_una - g->seq;
        if (off >= g->len)
            return 0;
        uint32_t n = g->len - off;
        bool fin = c->fin_queued && c->snd_una + n == c->data_end && seq_gt(c->snd_max, c->data_end);
        r = send_range(s, c, 0, c->snd_una, n, fin);
        end = c->snd_una + n + (fin ? 1 : 0);
    } else if (c->fin_queued && c->snd_una == c->data_end) {
        tx_args a = {c->data_end, PN_TH_ACK | PN_TH_FIN, NULL, 0};
        s->st.TcpRetransSegs++;
        c->retransmits++;
        r = emit(s, c, &a);
        end = c->data_end + 1;
    }
    if (advance && r == 0) {
        c->snd_nxt = end;
        c->sb_nxt_off = 0;
    } else if (r == 0 && seq_gt(end, c->snd_nxt)) {
        c->snd_nxt = end;
    }
    return r;
}

void pn_tcp_send_raw(pn_stack *s, const uint8_t *dst_mac, uint32_t dst_ip, uint16_t lport,
                     uint16_t rport, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t wnd,
                     int ts, uint32_t tsval, uint32_t tsecr)
{
    pn_tcp_out o;
    memset(&o, 0, sizeof o);
    o.sport = lport;
    o.dport = rport;
    o.seq = seq;
    o.ack = ack;
    o.flags = flags;
    o.wnd = wnd;
    o.ts_on = ts ? 1 : 0;
    o.tsval = tsval;
    o.tsecr = tsecr;
    uint32_t l4 = pn_tcp_hdr_len(&o);
    uint8_t *frame;
    uint8_t *p = pn_tx_begin(s, dst_mac, dst_ip, PN_IPPROTO_TCP, l4, &frame);
    if (!p)
        return;
    pn_tcp_emit(p, &o);
    uint32_t sum = pn_csum_pseudo(s->cfg.local_ip, dst_ip, PN_IPPROTO_TCP, (uint16_t)l4);
    uint16_t ck = pn_csum_fold(pn_csum_partial(p, l4, sum));
    memcpy(p + 16, &ck, 2);
    pn_tx_end(s, frame, l4);
    s->st.TcpOutSegs++;
    if (flags & PN_TH_RST)
        s->st.TcpOutRsts++;
}

void pn_tcp_send_rst_reply(pn_stack *s, const uint8_t *dst_mac, uint32_t dst_ip, uint16_t dport,
                           uint16_t sport, uint32_t seq, uint32_t ack, uint8_t flags)
{
    pn_tcp_send_raw(s, dst_mac, dst_ip, sport, dport, seq, ack, flags, 0, 0, 0, 0);
}

/* A SYN-ACK for a SYN cookie (tcp_cookie.c, RFC 4987 3.6): no connection state. Options
 * as a SYN-ACK of ours would carry; window scale only when the cookie can keep it (in the
 * timestamp); the window is unscaled (RFC 7323 2.2). */
void pn_tcp_send_cookie_synack(pn_stack *s, const uint8_t *dst_mac, uint32_t dst_ip,
                               uint16_t lport, uint16_t rport, uint32_t cookie, uint32_t ack,
                               const pn_tcp_seg *syn)
{
    pn_tcp_out o;
    memset(&o, 0, sizeof o);
    o.sport = lport;
    o.dport = rport;
    o.seq = cookie;
    o.ack = ack;
    o.flags = PN_TH_SYN | PN_TH_ACK;
    uint32_t w = s->cfg.conn_recv_buf_size;
    o.wnd = (uint16_t)(w > 65535 ? 65535 : w);
    o.mss = (uint16_t)(s->cfg.mtu - 40);
    if (s->cfg.timestamps && syn->has_ts) {
        uint8_t ws = 0;
        bool ws_ok = s->cfg.window_scale && syn->has_ws;
        while (ws_ok && ws < 14 && (s->cfg.conn_recv_buf_size >> ws) > 65535)
            ws++;
        o.ws_on = ws_ok;
        o.ws = ws;
        o.ts_on = 1;
        /* the TSval offset the connection will have (tcp_conn.c) */
        uint32_t off = pn_ts_offset(s, dst_ip);
        o.tsval = pn_cookie_tsval(pn_ts_now(s, off), ws_ok, syn->ws);
        o.tsecr = syn->tsval;
    }
    uint32_t l4 = pn_tcp_hdr_len(&o);
    uint8_t *frame;
    uint8_t *p = pn_tx_begin(s, dst_mac, dst_ip, PN_IPPROTO_TCP, l4, &frame);
    if (!p)
        return;
    pn_tcp_emit(p, &o);
    uint32_t sum = pn_csum_pseudo(s->cfg.local_ip, dst_ip, PN_IPPROTO_TCP, (uint16_t)l4);
    uint16_t ck = pn_csum_fold(pn_csum_partial(p, l4, sum));
    memcpy(p + 16, &ck, 2);
    pn_tx_end(s, frame, l4);
    s->st.TcpOutSegs++;
    s->st.TcpExtSyncookiesSent++;
}
