/* tcp_cc.c -- congestion control: none (efvitcp's default: no cwnd, recovery bookkeeping
 * only so fast retransmit still works), NewReno (RFC 5681 + RFC 6582), CUBIC (RFC 9438).
 * Windows are in bytes; CUBIC's arithmetic is in segments and seconds as the RFC states. */
#include <math.h>

#include "pn_internal.h"

#define CUBIC_C 0.4      /* RFC 9438 5 */
#define CUBIC_BETA 0.7

static uint32_t flight(const pn_conn *c) { return c->snd_max - c->snd_una; }

static uint32_t half_flight(const pn_conn *c)
{
    uint32_t f = flight(c) / 2, m = 2 * c->mss;   /* RFC 5681 eq. (4) */
    return f > m ? f : m;
}

void pn_cc_init(pn_stack *s, pn_conn *c)
{
    c->recover = c->snd_una;
    c->in_recovery = 0;
    c->dupacks = 0;
    c->ca_acc = 0;
    c->ssthresh = UINT32_MAX;   /* RFC 5681 3.1: arbitrarily high */
    if (s->cfg.congestion_control == PN_CC_NONE) {
        c->cwnd = UINT32_MAX;
        return;
    }
    /* RFC 5681 3.1: IW by SMSS */
    uint32_t m = c->mss;
    c->cwnd = m > 2190 ? 2 * m : m > 1095 ? 3 * m : 4 * m;
    c->cubic_wmax = 0;
    c->cubic_epoch_ns = 0;
}

static void cubic_ca(pn_stack *s, pn_conn *c, uint32_t acked)
{
    double mss = c->mss, cw = c->cwnd / mss;
    if (c->cubic_epoch_ns == 0) {       /* RFC 9438 4.2: start of a congestion-avoidance epoch */
        c->cubic_epoch_ns = s->now ? s->now : 1;
        c->cubic_cwnd_epoch = cw;
        if (c->cubic_wmax < cw) {
            c->cubic_k = 0;
            c->cubic_wmax = cw;
        } else {
            c->cubic_k = cbrt((c->cubic_wmax - cw) / CUBIC_C);   /* eq. 2 */
        }
        c->cubic_west = cw;
    }
    double rtt = (c->srtt_us ? c->srtt_us : 100000) / 1e6;
    double t = (double)(s->now - c->cubic_epoch_ns) / 1e9;
    double d = t + rtt - c->cubic_k;
    double target = CUBIC_C * d * d * d + c->cubic_wmax;          /* eq. 1 at t + RTT */
    if (target < cw)
        target = cw;
    if (target > 1.5 * cw)
        target = 1.5 * cw;                                         /* 4.2: bounded growth */
    double segs = acked / mss;
    double alpha = 3.0 * (1 - CUBIC_BETA) / (1 + CUBIC_BETA);      /* 4.3 */
    c->cubic_west += alpha * segs / cw;
    double nw;
    if (c->cubic_west > target)
        nw = c->cubic_west;                                         /* Reno-friendly region */
    else
        nw = cw + (target - cw) / cw * segs;                        /* concave / convex */
    double bytes = nw * mss;
    if (bytes > 1e9)
        bytes = 1e9;
    if (bytes > c->cwnd)
        c->cwnd = (uint32_t)bytes;
}

static void grow(pn_stack *s, pn_conn *c, uint32_t acked)
{
    if (c->cwnd < c->ssthresh) {
        /* slow start; RFC 3465 2.2 allows L = 2*SMSS for delayed/stretch ACKs */
        uint32_t inc = acked < 2 * c->mss ? acked : 2 * c->mss;
        c->cwnd += inc;
        return;
    }
    if (s->cfg.congestion_control == PN_CC_CUBIC) {
        cubic_ca(s, c, acked);
        return;
    }
    /* RFC 5681 3.1 eq. (3) alternative: one SMSS per cwnd of bytes acknowledged */
    c->ca_acc += acked;
    if (c->ca_acc >= c->cwnd) {
        c->ca_acc -= c->cwnd;
        c->cwnd += c->mss;
    }
}

void pn_cc_on_ack(pn_stack *s, pn_conn *c, uint32_t acked)
{
    if (s->cfg.congestion_control == PN_CC_NONE)
        return;
    grow(s, c, acked);
    /* a window the peer never offers is never used: stop growing at twice its largest
     * (cf. RFC 7661's restraint while not cwnd-limited), so cwnd cannot run away */
    uint64_t cap = 2 * (uint64_t)(c->max_snd_wnd > 65535 ? c->max_snd_wnd : 65535);
    if (c->cwnd > cap)
        c->cwnd = (uint32_t)cap;
}

static void cubic_loss(pn_conn *c)
{
    double cw = c->cwnd / (double)c->mss;
    /* RFC 9438 4.7 fast convergence */
    if (cw < c->cubic_wmax)
        c->cubic_wmax = cw * (1 + CUBIC_BETA) / 2;
    else
        c->cubic_wmax = cw;
    c->cubic_epoch_ns = 0;
    double ss = cw * CUBIC_BETA * c->mss;                           /* 4.6 */
    uint32_t m2 = 2 * c->mss;
    c->ssthresh = ss < m2 ? m2 : (uint32_t)ss;
}

void pn_cc_on_fast_retransmit(pn_stack *s, pn_conn *c)
{
    c->recover = c->snd_max;        /* RFC 6582 3.2 step 2 */
    c->in_recovery = 1;
    if (s->cfg.congestion_control == PN_CC_NONE)
        return;
    if (s->cfg.congestion_control == PN_CC_CUBIC)
        cubic_loss(c);
    else
        c->ssthresh = half_flight(c);
    /* RFC 5681 3.2 step 3; with SACK the window is not inflated: Proportional Rate
     * Reduction paces what goes until the flight is down to ssthresh (tcp_sack.c) */
    c->cwnd = c->ssthresh + (c->sack_ok ? 0 : 3 * c->mss);
}

/* RFC 6582 3.2 step 5: a partial ACK deflates the window by what it acknowledged, then
 * adds back one MSS when it acknowledged at least that much. */
void pn_cc_on_partial_ack(pn_stack *s, pn_conn *c, uint32_t acked)
{
    if (s->cfg.congestion_control == PN_CC_NONE || c->sack_ok)
        return;
    c->cwnd = c->cwnd > acked ? c->cwnd - acked : c->mss;
    if (acked >= c->mss)
        c->cwnd += c->mss;
}

/* RFC 5681 3.2 step 4: each further duplicate ACK in fast recovery inflates the window
 * (not with SACK: PRR paces what goes instead, tcp_sack.c). */
void pn_cc_on_dupack_in_recovery(pn_stack *s, pn_conn *c)
{
    if (s->cfg.congestion_control != PN_CC_NONE && !c->sack_ok)
        c->cwnd += c->mss;
}

void pn_cc_on_recovery_exit(pn_stack *s, pn_conn *c)
{
    c->in_recovery = 0;
    if (s->cfg.congestion_control == PN_CC_NONE)
        return;
    /* RFC 6582 3.2 step 3, option 1; with SACK cwnd is ssthresh (RFC 6937 3: PRR
     * brought the flight down to it), where option 1 would collapse it after holes, not
     * data, went out (a window of one segment waits out the peer's delayed ACK) */
    uint32_t f = flight(c) + c->mss;
    if (c->sack_ok)
        c->cwnd = c->ssthresh;
    else
        c->cwnd = c->ssthresh < f ? c->ssthresh : f;
    c->ca_acc = 0;
}

void pn_cc_on_rto(pn_stack *s, pn_conn *c)
{
    c->recover = c->snd_max;        /* RFC 6582 4: no fast retransmit for these dupacks */
    c->in_recovery = 0;
    c->dupacks = 0;
    if (s->cfg.congestion_control == PN_CC_NONE)
        return;
    if (c->retries <= 1) {          /* RFC 5681 3.1: ssthresh only on the first timeout */
        if (s->cfg.congestion_control == PN_CC_CUBIC)
            cubic_loss(c);
        else
            c->ssthresh = half_flight(c);
    }
    c->cwnd = c->mss;               /* RFC 5681 eq. (5): loss window */
    c->ca_acc = 0;
}
