/* tcp_timer.c -- RTT estimation and the retransmission timer (RFC 6298), SYN retries,
 * the persist timer (RFC 9293 3.8.6.1, RFC 1122 4.2.2.17), delayed ACK, user timers. */
#include "pn_internal.h"
#include "wire_tcp.h"

static uint64_t min_rto(const pn_stack *s) { return (uint64_t)s->cfg.min_rto_ms * 1000u; }
static uint64_t max_rto(const pn_stack *s) { return (uint64_t)s->cfg.max_rto_ms * 1000u; }

/* RFC 8985 7.2: the probe timeout, 2 SRTT (10 ms at least, as Linux; plus a peer's
 * delayed ACK when one segment is out); 0 when no probe is due. Unlike 7.2, in SACK
 * recovery too: there the flight shrinks to the holes resent, and when the one ACK a
 * recovery waits for is lost nothing else is out to bring another -- the probe (the
 * last unSACKed segment again) does, 10 ms on instead of an RTO's 200. */
static uint64_t tlp_timeout_us(const pn_conn *c)
{
    bool open = c->state == PN_TCP_ESTABLISHED || c->state == PN_TCP_CLOSE_WAIT;
    if (!c->sack_ok || !open || c->tlp_out || c->persist || c->backoff ||
        !c->rtt_valid || c->snd_una == c->snd_max)
        return 0;
    uint64_t pto = 2 * (uint64_t)c->srtt_us;
    if (pto < 10000u)
        pto = 10000u;
    if (c->snd_max - c->snd_una <= c->mss)
        pto += 200000u;   /* WCDelAckT */
    return pto;
}

void pn_rtx_arm(pn_stack *s, pn_conn *c)
{
    uint64_t us = (uint64_t)c->rto_us << (c->persist ? c->pshift : c->backoff);
    if (us > max_rto(s))
        us = max_rto(s);
    uint64_t pto = tlp_timeout_us(c);
    c->tlp_armed = pto && pto < us;
    pn_timer_set(s, &c->t_rtx, s->now + (c->tlp_armed ? pto : us) * 1000u);
}

/* RFC 6298 2.2 / 2.3 (alpha 1/8, beta 1/4, K 4, G 1 ms), clamped to [min_rto, max_rto]. */
void pn_rtt_sample(pn_stack *s, pn_conn *c, uint64_t r)
{
    if (r > 600000000u)
        return;
    uint32_t rr = (uint32_t)r;
    if (!c->rtt_valid) {
        c->srtt_us = rr;
        c->rttvar_us = rr / 2;
        c->rtt_valid = 1;
    } else {
        uint32_t d = c->srtt_us > rr ? c->srtt_us - rr : rr - c->srtt_us;
        c->rttvar_us = (3 * c->rttvar_us + d) / 4;
        c->srtt_us = (7 * (uint64_t)c->srtt_us + rr) / 8 > UINT32_MAX ? UINT32_MAX
                   : (uint32_t)((7 * (uint64_t)c->srtt_us + rr) / 8);
    }
    uint64_t k = 4 * (uint64_t)c->rttvar_us;
    uint64_t rto = c->srtt_us + (k > 1000 ? k : 1000);
    if (rto < min_rto(s))
        rto = min_rto(s);
    if (rto > max_rto(s))
        rto = max_rto(s);
    c->rto_us = (uint32_t)rto;
}

/* RFC 6298 5.5: double the RTO (kept as a shift of the estimate, undone by the next ACK
 * of new data as 4.4BSD's t_rxtshift, so one bad episode does not outlive the loss). */
static void backoff(pn_stack *s, pn_conn *c)
{
    (void)s;
    if (c->backoff < 16)
        c->backoff++;
}

/* A limit ran out on a connection the peer may still hold open: tell it with a RST, then
 * free the slot with CONNECTION_TIMEOUT and `reason`. */
static void abort_with_rst(pn_stack *s, pn_conn *c, uint32_t reason)
{
    s->end_reason = reason;
    pn_tcp_send_ctl(s, c, PN_TH_RST | PN_TH_ACK);
    s->st.TcpOutRsts++;
    pn_conn_free(s, c, PN_EV_CONNECTION_TIMEOUT);
}

static void rtx_timeout(pn_stack *s, pn_conn *c)
{
    if (c->state == PN_TCP_FIN_WAIT_2) {
        /* fin_timeout_ms passed without the peer's FIN (armed in tcp_in.c): end it as
         * Linux's tcp_fin_timeout does, with a RST the peer's half-open side can use */
        s->st.PnFinWait2Timeouts++;
        abort_with_rst(s, c, PN_REASON_FIN_WAIT_2);
        return;
    }
    switch (c->state) {
    case PN_TCP_SYN_SENT:
    case PN_TCP_SYN_RECEIVED:
        if (++c->retries > s->cfg.syn_retries) {
            s->st.TcpAttemptFails++;
            s->end_reason = PN_REASON_SYN_RETRIES;
            /* a passive half-open connection was never seen by the application */
            pn_conn_free(s, c, (c->active || c->state == PN_TCP_SYN_SENT) ? PN_EV_CONNECTION_TIMEOUT : 0);
            return;
        }
        backoff(s, c);
        pn_tcp_send_syn(s, c);
        pn_rtx_arm(s, c);
        return;
    default:
        break;
    }
    if (c->persist) {
        if (++c->retries > s->cfg.tcp_retries) {
            s->st.TcpExtTCPTimeouts++;
            s->st.TcpExtTCPAbortOnTimeout++;
            s->end_reason = PN_REASON_PROBES;
            pn_conn_free(s, c, PN_EV_CONNECTION_TIMEOUT);
            return;
        }
        /* a peer that answers every probe but never opens its window (never reads) holds
         * our buffers forever: zero_window_timeout_ms bounds it (RFC 9293 3.8.6.1 lets the
         * sender keep probing; RFC 1122 4.2.2.17 does not forbid closing -- Linux has no such
         * limit, only tcp_retries2 for unanswered probes) */
        if (s->cfg.zero_window_timeout_ms && c->snd_wnd == 0 && c->zw_since &&
            s->now > c->zw_since &&
            s->now - c->zw_since >= (uint64_t)s->cfg.zero_window_timeout_ms * 1000000u) {
            s->st.TcpExtTCPAbortOnTimeout++;
            s->st.PnZeroWindowAborts++;
            abort_with_rst(s, c, PN_REASON_ZERO_WINDOW);
            return;
        }
        if (c->pshift < 15)
            c->pshift++;
        if (c->snd_wnd == 0) {
            pn_tcp_send_probe(s, c);
        } else {
            /* RFC 1122 4.2.3.4: the override timeout sends what the window allows */
            pn_timer_del(s, &c->t_rtx);
            pn_tcp_output_force(s, c);
        }
        if (c->persist)
            pn_rtx_arm(s, c);
        return;
    }
    if (c->snd_una == c->snd_max) {   /* nothing in flight: a transmit that found no buffer */
        pn_tcp_output(s, c);
        return;
    }
    if (c->tlp_armed) {               /* the probe first: its ACK may save the timeout */
        c->tlp_armed = 0;
        pn_tlp_probe(s, c);
        pn_rtx_arm(s, c);             /* now the RTO itself (no probe while one is out) */
        return;
    }
    if (++c->retries > s->cfg.tcp_retries) {
        s->st.TcpExtTCPTimeouts++;
        s->st.TcpExtTCPAbortOnTimeout++;
        s->end_reason = PN_REASON_RETRIES;
        pn_conn_free(s, c, PN_EV_CONNECTION_TIMEOUT);
        return;
    }
    s->st.TcpExtTCPTimeouts++;
    pn_cc_on_rto(s, c);
    /* SACKed segments are skipped when going back (RFC 6675 5.1), as Linux does, unless
     * this is a second timeout in a row: then the receiver may have reneged (RFC 2018 8),
     * and everything goes again */
    if (c->sack_ok)
        pn_sack_reset(s, c, c->retries > 1 ? PN_SSEG_SACKED | PN_SSEG_RTX : PN_SSEG_RTX);
    backoff(s, c);
    c->rtt_timing = 0;            /* Karn's rule */
    pn_tcp_retransmit_head(s, c, true);   /* RFC 6298 5.4, then go-back-N within cwnd */
    pn_tcp_output(s, c);
    pn_rtx_arm(s, c);             /* RFC 6298 5.6 */
}

/* RFC 1122 4.2.3.6, as Linux: after keepalive_idle_ms without a segment from the peer,
 * send a probe (seq snd_una - 1, no data: the peer answers with an ACK) every
 * keepalive_intvl_ms; keepalive_cnt unanswered probes end the connection. Data in flight
 * leaves it to the retransmission timer. */
static void keepalive_timeout(pn_stack *s, pn_conn *c)
{
    uint64_t idle = (uint64_t)s->cfg.keepalive_idle_ms * 1000000u;
    uint64_t intvl = (uint64_t)s->cfg.keepalive_intvl_ms * 1000000u;
    if (idle == 0 || (c->state != PN_TCP_ESTABLISHED && c->state != PN_TCP_CLOSE_WAIT))
        return;
    if (c->snd_una != c->snd_max || c->persist) {
        pn_timer_set(s, &c->t_ka, s->now + idle);
        return;
    }
    uint64_t quiet = s->now - c->ka_rx_ns;
    if (c->ka_probes == 0 && quiet < idle) {
        pn_timer_set(s, &c->t_ka, c->ka_rx_ns + idle);
        return;
    }
    if (c->ka_probes >= s->cfg.keepalive_cnt) {
        s->st.PnKeepaliveTimeouts++;
        abort_with_rst(s, c, PN_REASON_KEEPALIVE);
        return;
    }
    pn_tcp_send_keepalive(s, c);
    s->st.TcpExtTCPKeepAlive++;
    c->ka_probes++;
    pn_timer_set(s, &c->t_ka, s->now + (intvl ? intvl : 1000000u));
}

void pn_tcp_timer(pn_stack *s, pn_conn *c, pn_timer *t)
{
    if (c->in_use != 1)
        return;
    switch (t->kind) {
    case PN_T_RTX:
        rtx_timeout(s, c);
        break;
    case PN_T_DELACK:
        if (c->delack_bytes)
            pn_tcp_send_ack(s, c);
        break;
    case PN_T_KEEPALIVE:
        keepalive_timeout(s, c);
        break;
    case PN_T_USER: {
        int i = pn_ev_push(s, c, PN_EV_USER_TIMEOUT);
        if (i >= 0)
            s->evq[i].timer_id = t->sub;
        break;
    }
    default:
        break;
    }
}
