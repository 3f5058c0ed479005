/* tcp_rcv.h -- a segment's text into the linear receive buffer (RFC 9293 3.10.7.4):
 * trimmed to what is new and what fits, in order at the end, out of order into bounded
 * ranges that the next in-order segment joins; and a FIN reached in order. Whether to ACK
 * now or later is the caller's (tcp_in.c), from what this reports in pn_rx_ctx.
 * A header of static functions, included by tcp_in.c alone: this is the per-segment path,
 * and a call across object files cost 0.6-0.8% of a round trip (callgrind, efvi:sim). */
#ifndef PN_TCP_RCV_H
#define PN_TCP_RCV_H
#include "pn_internal.h"
#include "wire_tcp.h"

typedef struct pn_rx_ctx {
    bool ack_now, ack_delay, fin;   /* ACK at once, ACK later, a FIN is now in order */
} pn_rx_ctx;

/* Out-of-order data is bounded per connection (max_ooo_segs ranges, max_ooo_bytes bytes):
 * a peer cannot make us hold an unbounded scatter of holes (RFC 9293 3.10.7.4 lets a
 * receiver drop any segment it cannot keep; the peer resends). False: dropped. */
static bool ooo_insert(pn_stack *s, pn_conn *c, uint32_t a, uint32_t b)
{
    /* ranges are kept sorted and disjoint; merge whatever [a, b) touches */
    uint32_t i = 0;
    while (i < c->ooo_n && seq_lt(c->ooo[i].e, a))
        i++;
    uint32_t j = i;
    while (j < c->ooo_n && seq_le(c->ooo[j].s, b)) {
        a = seq_min(a, c->ooo[j].s);
        b = seq_max(b, c->ooo[j].e);
        j++;
    }
    uint32_t merged = 0;
    for (uint32_t k = i; k < j; k++)
        merged += c->ooo[k].e - c->ooo[k].s;
    uint32_t bytes = c->ooo_bytes - merged + (b - a);
    if ((i == j && c->ooo_n >= s->cfg.max_ooo_segs) || bytes > s->cfg.max_ooo_bytes) {
        s->st.TcpExtTCPOFODrop++;
        return false;   /* no room: dropped, the peer will resend */
    }
    s->st.TcpExtTCPOFOQueue++;
    c->ooo_bytes = bytes;
    uint32_t removed = j - i;
    if (removed == 0) {
        memmove(&c->ooo[i + 1], &c->ooo[i], (c->ooo_n - i) * sizeof c->ooo[0]);
        c->ooo_n++;
    } else if (removed > 1) {
        memmove(&c->ooo[i + 1], &c->ooo[j], (c->ooo_n - j) * sizeof c->ooo[0]);
        c->ooo_n -= removed - 1;
    }
    c->ooo[i].s = a;
    c->ooo[i].e = b;
    return true;
}

static void pn_tcp_receive_text(pn_stack *s, pn_conn *c, const pn_tcp_seg *t, pn_rx_ctx *x)
{
    uint32_t seq = t->seq, n = t->plen;
    const uint8_t *p = t->payload;
    bool fin = (t->flags & PN_TH_FIN) != 0;
    if (n > c->rcv_mss && n <= (uint32_t)s->cfg.mtu - 40)
        c->rcv_mss = n;
    if (seq_lt(seq, c->rcv_nxt)) {     /* trim what we already have */
        uint32_t d = c->rcv_nxt - seq;
        if (d > n) {                   /* all old; a FIN at seq+n is old too */
            if (n || fin)
                x->ack_now = true;
            return;
        }
        p += d;
        n -= d;
        seq = c->rcv_nxt;
    }
    /* trim to the buffer (bounds by construction: rlen + offset + n <= size) */
    uint32_t off = seq - c->rcv_nxt;
    uint32_t room = s->cfg.conn_recv_buf_size - c->rlen;
    if (off >= room) {
        if (n || fin)
            x->ack_now = true;
        return;
    }
    if (n > room - off) {
        n = room - off;
        fin = false;
    }
    if (n == 0 && !fin)
        return;
    if (seq == c->rcv_nxt) {
        bool had_ooo = c->ooo_n != 0;
        memcpy(c->rbuf + c->rlen, p, n);
        c->rlen += n;
        c->rcv_nxt += n;
        while (c->ooo_n && seq_le(c->ooo[0].s, c->rcv_nxt)) {
            c->ooo_bytes -= c->ooo[0].e - c->ooo[0].s;
            if (seq_gt(c->ooo[0].e, c->rcv_nxt)) {
                c->rlen += c->ooo[0].e - c->rcv_nxt;
                c->rcv_nxt = c->ooo[0].e;
            }
            memmove(&c->ooo[0], &c->ooo[1], (c->ooo_n - 1) * sizeof c->ooo[0]);
            c->ooo_n--;
        }
        if (c->fin_ooo && c->fin_ooo_seq == c->rcv_nxt)
            fin = true;
        if (c->rlen > 0 && (n > 0 || had_ooo))
            pn_ev_data(s, c);
        x->fin = fin;
        if (had_ooo || fin) {
            x->ack_now = true;         /* RFC 5681 4.2: a segment that fills a hole */
            c->quick_acks = PN_QUICK_ACK_BYTES;   /* the sender's window was just cut */
        } else {
            /* RFC 5681 4.2: at least every second full segment; cfg.ack_every (stretch
             * ACKs) once the sender's window has had room to grow */
            uint32_t every = c->quick_acks && s->cfg.ack_every > 2 ? 2 : s->cfg.ack_every;
            c->quick_acks -= n < c->quick_acks ? n : c->quick_acks;
            c->delack_bytes += n;
            if (c->delack_bytes >= every * c->rcv_mss)
                x->ack_now = true;
            else
                x->ack_delay = true;
        }
    } else {
        memcpy(c->rbuf + c->rlen + off, p, n);
        if (n && !ooo_insert(s, c, seq, seq + n))
            fin = false;
        else if (n)
            c->ooo_last = seq;   /* the first SACK block reports this one (RFC 2018 4) */
        if (fin) {
            c->fin_ooo = 1;
            c->fin_ooo_seq = seq + n;
        }
        x->ack_now = true;             /* RFC 5681 4.2: an immediate duplicate ACK */
    }
}

/* Our rcv_nxt passes the peer's FIN: FIN now, or after the DATA event still waiting. */
static void pn_tcp_fin_in_order(pn_stack *s, pn_conn *c)
{
    c->rcv_nxt++;
    c->fin_rcvd = 1;
    c->fin_ooo = 0;
    if (c->data_ev_live) {
        /* new bytes are waiting in a DATA event: the application sees them first, and the
         * FIN (with what it leaves) at the next poll (stack.c, pn_fin_deferred) */
        if (!c->fin_defer) {
            c->fin_defer = 1;
            s->finq[s->finq_n++] = c->idx;
        }
    } else {
        int i = pn_ev_push(s, c, PN_EV_FIN);
        if (i >= 0) {
            c->data_ev_live = 1;
            c->data_ev_pos = (uint32_t)i;
        }
    }
}
#endif
