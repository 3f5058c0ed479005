/* tcp_in.c -- segment arrival (RFC 9293 3.10.7) in the synchronized states, with PAWS
 * (RFC 7323 5), challenge ACKs (RFC 5961), ACK processing with fast retransmit / NewReno
 * recovery (RFC 5681, RFC 6582), the choice of ACK now or delayed (RFC 1122 4.2.3.2,
 * RFC 5681 4.2) and FIN handling; the text itself goes to tcp_rcv.h. pn_tcp_rx
 * demultiplexes to them or to tcp_open.c (LISTEN, SYN-SENT). */
#include "pn_internal.h"
#include "tcp_rcv.h"
#include "wire_tcp.h"

#define PAWS_IDLE_NS (24ull * 24 * 3600 * 1000000000ull)   /* RFC 7323 5.5: 24 days */

/* ------------------------------------------------------------------ ACK processing */
static void new_ack(pn_stack *s, pn_conn *c, const pn_tcp_seg *t)
{
    uint32_t ack = t->ack, acked = ack - c->snd_una;
    /* RTT: RFC 7323 4.1 from TSecr of an ACK that advances snd_una, else the one timed
     * segment (RFC 6298 3, Karn's rule applied when retransmitting) */
    if (c->ts_ok && t->has_ts && t->tsecr) {
        uint32_t ms = pn_ts_now(s, c->ts_offset) - t->tsecr;
        if ((int32_t)ms >= 0 && ms < 600000u)
            pn_rtt_sample(s, c, (uint64_t)ms * 1000u);
    } else if (c->rtt_timing && seq_ge(ack, c->rtt_seq)) {
        pn_rtt_sample(s, c, (s->now - c->rtt_ts) / 1000u);
        c->rtt_timing = 0;
    }
    uint32_t upto = seq_lt(ack, c->data_end) ? ack : c->data_end;
    uint32_t freed = 0;
    c->delivered_now += acked;
    while (c->sb_cnt) {
        const pn_sseg *g = pn_seg_at(s, c, 0);
        if (!seq_le(g->seq + g->len, upto))
            break;
        if (c->sack_ok) {
            pn_rack_delivered(c, g);
            if (g->flags & PN_SSEG_SACKED)   /* delivered when it was SACKed */
                c->delivered_now -= c->delivered_now >= g->len ? g->len : c->delivered_now;
        }
        c->sb_head = (c->sb_head + 1) % s->cfg.conn_send_buf_cnt;
        c->sb_cnt--;
        freed++;
    }
    c->sb_nxt_off = c->sb_nxt_off > freed ? c->sb_nxt_off - freed : 0;
    c->snd_una = ack;
    if (seq_lt(c->snd_nxt, ack))
        c->snd_nxt = ack;
    c->retries = 0;
    c->backoff = 0;
    c->tlp_out = 0;
    if (c->in_recovery) {
        if (seq_ge(ack, c->recover)) {
            pn_cc_on_recovery_exit(s, c);     /* RFC 6582 3.2 step 3: full ACK */
            if (c->sack_ok)
                pn_sack_reset(s, c, PN_SSEG_RTX);
        } else {
            /* RFC 6582 3.2 step 5: partial ACK -- resend the next hole, deflate; with
             * SACK the next hole not resent yet (the head is lost: it is unacknowledged
             * after the ACK for what was resent before it) */
            if (!c->sack_ok)
                pn_tcp_retransmit_head(s, c, false);
            else
                pn_sack_recover(s, c, true);
            pn_cc_on_partial_ack(s, c, acked);
        }
    } else {
        pn_cc_on_ack(s, c, acked);
    }
    c->dupacks = 0;
    if (c->snd_una == c->snd_max)
        pn_timer_del(s, &c->t_rtx);      /* RFC 6298 5.2 */
    else
        pn_rtx_arm(s, c);                /* RFC 6298 5.3 */
    if (freed && c->want_more_sendable) {
        c->want_more_sendable = 0;
        if (!c->ms_ev_live) {
            c->ms_ev_live = 1;
            pn_ev_push(s, c, PN_EV_MORE_SENDABLE);
        }
    }
}

/* RFC 5681 2: a duplicate ACK carries no data, no SYN/FIN, the same ACK and window, while
 * data is outstanding. The third starts fast retransmit (3.2) unless it covers no more
 * than `recover` (RFC 6582 4.1); later ones inflate cwnd (3.2 step 4). With SACK an ACK
 * that reports SACKed data counts whatever its window (a receiver's window moves as its
 * out-of-order queue fills, as Linux's does), and three SACKed segments above the head
 * also start recovery (RFC 6675 5: IsLost(HighACK + 1)). */
static void dup_ack(pn_stack *s, pn_conn *c, const pn_tcp_seg *t)
{
    uint32_t wnd = (uint32_t)t->wnd << c->snd_wscale;
    bool sacks = c->sack_ok && t->nsack;
    if (t->plen || (t->flags & (PN_TH_SYN | PN_TH_FIN)) || (wnd != c->snd_wnd && !sacks) ||
        c->snd_una == c->snd_max) {
        return;
    }
    c->dupacks++;
    bool sb_lost = sacks && !c->in_recovery && pn_sack_head_lost(s, c);
    bool lost = c->dupacks == 3 || sb_lost;
    /* RFC 6582 4.1 keeps duplicate ACKs at or below `recover` -- a timeout's resends of
     * what had arrived -- from starting recovery. The scoreboard tells a loss from those
     * (SACKed segments are not resent; D-SACKs below snd_una are ignored; RACK compares
     * send times), so its evidence may start one there too, as Linux's does after a
     * timeout: otherwise a segment lost again while going back waits for the next RTO. */
    if (lost && !c->in_recovery && (seq_gt(t->ack, c->recover) || sb_lost)) {
        s->st.TcpExtTCPFastRetrans++;
        pn_cc_on_fast_retransmit(s, c);
        if (c->sack_ok) {
            s->st.TcpExtTCPSackRecovery++;
            pn_sack_reset(s, c, PN_SSEG_RTX);
            pn_prr_start(c);
            pn_sack_recover(s, c, true);
        } else {
            pn_tcp_retransmit_head(s, c, false);
        }
        pn_rtx_arm(s, c);
    } else if (c->in_recovery && (c->dupacks > 3 || sacks)) {
        /* a segment left the network: with SACK pipe falls and the holes go first
         * (RFC 6675 5 step (C)); without, cwnd inflates */
        if (c->sack_ok)
            pn_sack_recover(s, c, false);
        else
            pn_cc_on_dupack_in_recovery(s, c);
    }
}

/* ------------------------------------------------------------------ synchronized states */
static bool acceptable(pn_stack *s, const pn_conn *c, const pn_tcp_seg *t, uint32_t *wnd_out)
{
    uint32_t adv = seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
    uint32_t phys = s->cfg.conn_recv_buf_size - c->rlen;
    uint32_t wnd = adv > phys ? adv : phys;   /* what we can take, at least what we offered */
    *wnd_out = wnd;
    uint32_t len = t->plen + ((t->flags & PN_TH_SYN) ? 1 : 0) + ((t->flags & PN_TH_FIN) ? 1 : 0);
    uint32_t rn = c->rcv_nxt;
    /* RFC 9293 3.10.7.4, the four cases */
    if (len == 0) {
        if (wnd == 0)
            return t->seq == rn;
        return seq_ge(t->seq, rn) && seq_lt(t->seq, rn + wnd);
    }
    if (wnd == 0)
        return false;
    uint32_t last = t->seq + len - 1;
    return (seq_ge(t->seq, rn) && seq_lt(t->seq, rn + wnd)) ||
           (seq_ge(last, rn) && seq_lt(last, rn + wnd));
}

static void challenge_ack(pn_stack *s, pn_conn *c)
{
    if (pn_challenge_ack_allowed(s))
        pn_tcp_send_ack(s, c);
}

/* The steps of a segment's arrival in a synchronized state (RFC 9293 3.10.7.4), each
 * returning true when it finished with the segment. */

/* Before the sequence check: a SYN-RECEIVED connection's repeated SYN or simultaneous-open
 * SYN-ACK, PAWS (RFC 7323 5.3), and a SYN on a synchronized connection (RFC 5961 4.2). */
static bool before_window(pn_stack *s, pn_conn *c, const pn_tcp_seg *t)
{
    uint8_t fl = t->flags;
    /* a retransmitted SYN while our SYN-ACK is outstanding: answer it again */
    if (c->state == PN_TCP_SYN_RECEIVED && (fl & PN_TH_SYN) && !(fl & PN_TH_ACK) &&
        t->seq == c->irs) {
        if (pn_oow_allowed(s, &c->oow_ack_ns, &s->st.TcpExtTCPACKSkippedSynRecv))
            pn_tcp_send_syn(s, c);
        return true;
    }
    /* simultaneous open (RFC 9293 3.5 figure 8): the peer's SYN-ACK repeats the SYN we
     * already took, and acknowledges ours */
    if (c->state == PN_TCP_SYN_RECEIVED && (fl & PN_TH_SYN) && (fl & PN_TH_ACK) &&
        !(fl & PN_TH_RST) && t->seq == c->irs && seq_gt(t->ack, c->snd_una) &&
        seq_le(t->ack, c->snd_max)) {
        pn_tcp_established(s, c, t);
        c->snd_wnd = t->wnd;   /* a SYN's window is never scaled (RFC 7323 2.2) */
        if (c->snd_wnd > c->max_snd_wnd)
            c->max_snd_wnd = c->snd_wnd;
        pn_tcp_send_ack(s, c);
        return true;
    }
    /* RFC 7323 5.3 PAWS: a TSval older than TS.Recent marks an old duplicate */
    if (c->ts_ok && t->has_ts && !(fl & PN_TH_RST) && (int32_t)(t->tsval - c->ts_recent) < 0 &&
        s->now - c->ts_recent_ns < PAWS_IDLE_NS) {
        s->st.TcpExtPAWSEstabRejected++;
        if (pn_oow_allowed(s, &c->oow_ack_ns, &s->st.TcpExtTCPACKSkippedPAWS))
            pn_tcp_send_ack(s, c);
        return true;
    }
    /* RFC 5961 4.2: a SYN on a synchronised connection, whatever its sequence number,
     * gets a challenge ACK (rate-limited, section 7) and is dropped; a peer that really
     * restarted answers it with an RST at exactly RCV.NXT */
    if (fl & PN_TH_SYN) {
        challenge_ack(s, c);
        return true;
    }
    return false;
}

/* The sequence check: an unacceptable segment is answered with an ACK and dropped, except
 * an ACK at rcv_nxt into a zero window, whose text and FIN `seg` loses. */
static bool outside_window(pn_stack *s, pn_conn *c, const pn_tcp_seg *t, pn_tcp_seg *seg)
{
    uint8_t fl = t->flags;
    uint32_t wnd;
    if (acceptable(s, c, t, &wnd))
        return false;
    /* RFC 9293: with a zero window an ACK at rcv_nxt is still processed */
    if (!(wnd == 0 && t->seq == c->rcv_nxt && (fl & PN_TH_ACK) && !(fl & (PN_TH_RST | PN_TH_SYN)))) {
        /* answer with an ACK; for bare ACKs at most every 500 ms (as Linux's
         * tcp_invalid_ratelimit), so two confused peers cannot storm */
        bool bare = t->plen == 0 && !(fl & (PN_TH_SYN | PN_TH_FIN));
        /* a probe into a buffer full of bytes the application left: present them
         * again, or a reader that waits for more would never consume and the window
         * would never reopen */
        if (c->rlen == s->cfg.conn_recv_buf_size && !c->data_ev_live && !c->fin_rcvd)
            pn_ev_data(s, c);
        if (!(fl & PN_TH_RST) &&
            (!bare || pn_oow_allowed(s, &c->oow_ack_ns, &s->st.TcpExtTCPACKSkippedSeq)))
            pn_tcp_send_ack(s, c);
        return true;
    }
    if (t->plen && c->rlen == s->cfg.conn_recv_buf_size && !c->data_ev_live && !c->fin_rcvd)
        pn_ev_data(s, c);   /* as above: a zero-window probe at rcv_nxt */
    seg->plen = 0;
    seg->flags &= (uint8_t)~PN_TH_FIN;
    pn_tcp_send_ack(s, c);
    return false;
}

/* RFC 5961 3.2: an RST in the window resets the connection only at exactly rcv_nxt. */
static void rst_in_window(pn_stack *s, pn_conn *c, const pn_tcp_seg *t)
{
    if (t->seq != c->rcv_nxt) {
        challenge_ack(s, c);       /* RFC 5961 3.2: in the window but not exact */
        return;
    }
    s->end_reason = PN_REASON_RESET;
    if (c->state == PN_TCP_SYN_RECEIVED) {
        s->st.TcpAttemptFails++;
        pn_conn_free(s, c, c->active ? PN_EV_CONNECTION_REFUSED : 0);
    } else {
        if (c->state == PN_TCP_ESTABLISHED || c->state == PN_TCP_CLOSE_WAIT)
            s->st.TcpEstabResets++;
        pn_conn_free(s, c, PN_EV_CONNECTION_RESET);
    }
}

/* The ACK: TS.Recent, the handshake's end in SYN-RECEIVED, RFC 5961 5.2's limits, new and
 * duplicate ACKs. *advanced: SND.UNA moved. */
static bool ack_step(pn_stack *s, pn_conn *c, const pn_tcp_seg *t, bool *advanced)
{
    *advanced = false;
    /* RFC 7323 4.3: TS.Recent follows the segment that covers Last.ACK.sent */
    if (c->ts_ok && t->has_ts && seq_le(t->seq, c->last_ack_sent) &&
        (int32_t)(t->tsval - c->ts_recent) >= 0) {
        c->ts_recent = t->tsval;
        c->ts_recent_ns = s->now;
    }
    if (c->state == PN_TCP_SYN_RECEIVED) {
        if (!(seq_gt(t->ack, c->snd_una) && seq_le(t->ack, c->snd_max))) {
            pn_tcp_send_rst_reply(s, c->dst_mac, c->remote_ip, c->remote_port, c->local_port,
                                  t->ack, 0, PN_TH_RST);
            return true;
        }
        /* allow_new_connection: asked only for a peer that completed the handshake
         * (a flood of spoofed SYNs never reaches the application) */
        if (!c->active && s->accept_fn &&
            !s->accept_fn(s->accept_ctx, c->remote_ip, c->remote_port)) {
            s->st.TcpAttemptFails++;
            pn_tcp_send_rst_reply(s, c->dst_mac, c->remote_ip, c->remote_port,
                                  c->local_port, t->ack, 0, PN_TH_RST);
            pn_conn_free(s, c, 0);
            return true;
        }
        pn_tcp_established(s, c, t);
        c->snd_wnd = (uint32_t)t->wnd << c->snd_wscale;
        c->max_snd_wnd = c->snd_wnd;
        return false;
    }
    /* a zero-window probe's byte acknowledged (tcp_out.c sends it beyond snd_max) */
    if (c->persist && t->ack == c->snd_max + 1 && seq_lt(c->snd_max, c->data_end))
        c->snd_nxt = c->snd_max = t->ack;
    if (seq_gt(t->ack, c->snd_max)) {          /* RFC 5961 5.2: acks unsent data */
        challenge_ack(s, c);
        return true;
    }
    uint32_t mw = c->max_snd_wnd > 65535 ? c->max_snd_wnd : 65535;
    if (seq_lt(t->ack, c->snd_una - mw)) {      /* RFC 5961 5.2 */
        challenge_ack(s, c);
        return true;
    }
    c->delivered_now = 0;
    if (c->sack_ok && t->nsack)
        pn_sack_mark(s, c, t);
    if (seq_gt(t->ack, c->snd_una)) {
        *advanced = true;
        new_ack(s, c, t);
    } else if (t->ack == c->snd_una) {
        dup_ack(s, c, t);
    }
    return c->in_use != 1;
}

/* The send window, and the persist timer it ends. */
static void window_step(pn_stack *s, pn_conn *c, const pn_tcp_seg *t, bool advanced)
{
    /* RFC 9293 3.10.7.4 takes the window only from a segment newer than the last one that
     * set it: SND.WL1 < SEG.SEQ, or SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK. We also take
     * it from any segment whose ACK advanced SND.UNA, whatever its sequence number (as
     * Linux's tcp_may_update_window): a peer retransmitting old data after a loss puts its
     * current ACK and window on it, and the ACK proves the window is at least that recent.
     * Without this, an old segment that acknowledges new data with a zero window moves
     * SND.UNA but keeps the old window, and we send past the peer's right edge. */
    if (advanced || seq_lt(c->snd_wl1, t->seq) ||
        (c->snd_wl1 == t->seq && seq_le(c->snd_wl2, t->ack))) {
        c->snd_wnd = (uint32_t)t->wnd << c->snd_wscale;
        c->snd_wl1 = t->seq;
        c->snd_wl2 = t->ack;
        if (c->snd_wnd > c->max_snd_wnd)
            c->max_snd_wnd = c->snd_wnd;
        if (c->snd_wnd)
            c->zw_since = 0;           /* the zero-window clock restarts (tcp_timer.c) */
    }
    if (c->persist) {
        c->retries = 0;                /* the peer answers our probes: keep probing */
        if (c->snd_wnd > 0) {
            c->persist = 0;
            c->pshift = 0;
            pn_timer_del(s, &c->t_rtx);
        }
    }
}

/* Our FIN acknowledged: FIN-WAIT-1 moves on; CLOSING and LAST-ACK end the connection. */
static bool our_fin_step(pn_stack *s, pn_conn *c)
{
    if (!(c->fin_queued && seq_gt(c->snd_una, c->data_end)))
        return false;
    switch (c->state) {
    case PN_TCP_FIN_WAIT_1:
        c->state = PN_TCP_FIN_WAIT_2;
        /* nothing is in flight now: the retransmission timer bounds the wait for the
         * peer's FIN (tcp_timer.c, fin_timeout_ms) */
        if (s->cfg.fin_timeout_ms)
            pn_timer_set(s, &c->t_rtx, s->now + (uint64_t)s->cfg.fin_timeout_ms * 1000000u);
        return false;
    case PN_TCP_CLOSING:
    case PN_TCP_LAST_ACK:
        pn_conn_closed(s, c);
        return true;
    default:
        return false;
    }
}

/* The segment's text and FIN (RFC 9293 3.10.7.4, seventh and eighth). */
static bool text_step(pn_stack *s, pn_conn *c, const pn_tcp_seg *t, pn_rx_ctx *x)
{
    if (c->state == PN_TCP_ESTABLISHED || c->state == PN_TCP_FIN_WAIT_1 ||
        c->state == PN_TCP_FIN_WAIT_2) {
        if (t->plen || (t->flags & PN_TH_FIN))
            pn_tcp_receive_text(s, c, t, x);
    } else if (t->plen || (t->flags & PN_TH_FIN)) {
        x->ack_now = true;             /* after the peer's FIN: nothing more is accepted */
    }
    if (!x->fin)
        return false;
    pn_tcp_fin_in_order(s, c);
    switch (c->state) {
    case PN_TCP_ESTABLISHED:
        c->state = PN_TCP_CLOSE_WAIT;
        return false;
    case PN_TCP_FIN_WAIT_1:
    case PN_TCP_FIN_WAIT_2:
        if (c->state == PN_TCP_FIN_WAIT_1 && !(c->fin_queued && seq_gt(c->snd_una, c->data_end))) {
            c->state = PN_TCP_CLOSING;   /* simultaneous close */
            pn_tcp_send_ack(s, c);
            return true;
        }
        pn_tcp_send_ack(s, c);
        pn_conn_closed(s, c);
        return true;
    default:
        return false;
    }
}

/* Send what the window allows, and the ACK: now, or delayed (RFC 1122 4.2.3.2). */
static void output_step(pn_stack *s, pn_conn *c, const pn_rx_ctx *x)
{
    uint64_t before = s->st.TcpOutSegs;
    pn_tcp_output(s, c);
    if (x->ack_now) {
        if (s->st.TcpOutSegs == before)
            pn_tcp_send_ack(s, c);
    } else if (x->ack_delay && c->delack_bytes) {
        if (s->cfg.delayed_ack_ms == 0) {
            if (!c->ack_pending) {
                c->ack_pending = 1;
                s->ackq[s->ackq_n++] = c->idx;
            }
        } else if (c->t_delack.heap_idx == PN_NONE32) {
            pn_timer_set(s, &c->t_delack, s->now + (uint64_t)s->cfg.delayed_ack_ms * 1000000u);
        }
    }
}

void pn_tcp_sync_rx(pn_stack *s, pn_conn *c, const pn_tcp_seg *t)
{
    c->ka_rx_ns = s->now;      /* the peer is alive: the keepalive clock restarts */
    c->ka_probes = 0;
    if (before_window(s, c, t))
        return;
    pn_tcp_seg seg = *t;
    if (outside_window(s, c, t, &seg))
        return;
    if (seg.flags & PN_TH_RST) {
        rst_in_window(s, c, &seg);
        return;
    }
    if (!(seg.flags & PN_TH_ACK))
        return;
    bool advanced;
    if (ack_step(s, c, &seg, &advanced))
        return;
    window_step(s, c, &seg, advanced);
    if (our_fin_step(s, c))
        return;
    pn_rx_ctx x = {false, false, false};
    if (text_step(s, c, &seg, &x))
        return;
    output_step(s, c, &x);
}

void pn_tcp_flush_acks(pn_stack *s)
{
    uint32_t n = s->ackq_n;
    s->ackq_n = 0;   /* an ACK that fails again queues itself anew (pn_tcp_send_ack) */
    for (uint32_t i = 0; i < n; i++) {
        pn_conn *c = &s->conns[s->ackq[i]];
        bool due = c->ack_pending && c->in_use == 1 && (c->delack_bytes || c->ack_lost);
        c->ack_pending = 0;
        c->ack_lost = 0;
        if (due)
            pn_tcp_send_ack(s, c);
    }
}

void pn_tcp_rx(pn_stack *s, const uint8_t *mac, uint32_t ip, const uint8_t *tcp, uint32_t len)
{
    pn_tcp_seg t;
    if (pn_tcp_parse(tcp, len, &t) < 0) {
        s->st.drop_malformed++;
        s->st.TcpInErrs++;
        return;
    }
    s->st.TcpInSegs++;
    if (t.flags & PN_TH_RST)
        s->st.TcpInRsts++;
    if ((t.flags & PN_TH_SYN) && (t.flags & (PN_TH_FIN | PN_TH_RST))) {
        s->st.drop_malformed++;        /* SYN+FIN / SYN+RST: nonsense, never answered */
        return;
    }
    uint32_t v = pn_ht_find(s, ip, t.sport, t.dport), isn_floor = 0;
    bool reopened = false;
    if (v != PN_NONE32) {
        if (!(v & 0x80000000u)) {
            pn_conn *c = &s->conns[v];
            if (c->state == PN_TCP_SYN_SENT)
                pn_tcp_syn_sent_rx(s, c, mac, &t);
            else if (c->state != PN_TCP_ARP_WAIT)
                pn_tcp_sync_rx(s, c, &t);
            return;
        }
        if (!pn_tw_rx(s, v & 0x7fffffffu, mac, ip, &t, &isn_floor))
            return;
        reopened = true;
    }
    if (pn_is_listening(s, t.dport))
        pn_tcp_listen_rx(s, mac, ip, &t, reopened ? &isn_floor : NULL);
    else if (s->link->caps & PN_LINK_OWN_IP)
        pn_tcp_reply_rst(s, mac, ip, &t);
    else
        s->st.PnNotOursDrops++;  /* a shared address: the kernel's flow, not ours to reset */
}
