/* time_wait.c -- TIME_WAIT in its own pool (efvitcp's max_time_wait_conn_cnt): 2*MSL
 * (RFC 9293 3.6), a retransmitted FIN is re-ACKed and restarts the wait, RSTs are ignored
 * (RFC 1337), a new SYN may reopen (RFC 6191 / RFC 1122 4.2.2.13), and when the pool is
 * full the oldest entry is recycled. Entries form an age list, so expiry is FIFO. */
#include "pn_internal.h"
#include "wire_tcp.h"

static void unlink_tw(pn_stack *s, uint32_t i)
{
    pn_tw *t = &s->tw[i];
    if (t->prev != PN_NONE32) s->tw[t->prev].next = t->next; else s->tw_old = t->next;
    if (t->next != PN_NONE32) s->tw[t->next].prev = t->prev; else s->tw_new = t->prev;
}

static void append_tw(pn_stack *s, uint32_t i)
{
    pn_tw *t = &s->tw[i];
    t->next = PN_NONE32;
    t->prev = s->tw_new;
    if (s->tw_new != PN_NONE32) s->tw[s->tw_new].next = i; else s->tw_old = i;
    s->tw_new = i;
}

void pn_tw_kill(pn_stack *s, uint32_t i)
{
    pn_tw *t = &s->tw[i];
    if (!t->in_use)
        return;
    pn_ht_del(s, t->remote_ip, t->remote_port, t->local_port);
    if (t->active && s->link->ops->flow_del) {
        pn_flow f = {s->cfg.local_ip, t->remote_ip, t->local_port, t->remote_port};
        s->link->ops->flow_del(s->link, &f);
    }
    unlink_tw(s, i);
    t->in_use = 0;
    t->next = s->tw_free;
    s->tw_free = i;
    s->tw_used--;
}

void pn_tw_enter(pn_stack *s, const pn_conn *c)
{
    if (s->cfg.max_time_wait_conn_cnt == 0) {
        if (c->active && s->link->ops->flow_del) {
            pn_flow f = {s->cfg.local_ip, c->remote_ip, c->local_port, c->remote_port};
            s->link->ops->flow_del(s->link, &f);
        }
        return;
    }
    if (s->tw_free == PN_NONE32)
        pn_tw_kill(s, s->tw_old);   /* full: recycle the oldest */
    uint32_t i = s->tw_free;
    pn_tw *t = &s->tw[i];
    s->tw_free = t->next;
    memset(t, 0, sizeof *t);
    t->remote_ip = c->remote_ip;
    t->remote_port = c->remote_port;
    t->local_port = c->local_port;
    t->snd_nxt = c->snd_max;
    t->rcv_nxt = c->rcv_nxt;
    t->ts_ok = c->ts_ok;
    t->ts_recent = c->ts_recent;
    t->ts_offset = c->ts_offset;
    t->oow_ack_ns = 0;
    t->snd_wscale = c->snd_wscale;
    t->rcv_wscale = c->rcv_wscale;
    t->active = c->active;
    memcpy(t->dst_mac, c->dst_mac, 6);
    t->expire = s->now + PN_TW_NS;
    t->in_use = 1;
    append_tw(s, i);
    s->tw_used++;
    pn_ht_add(s, t->remote_ip, t->remote_port, t->local_port, 0x80000000u | i);
    s->st.TcpExtTW++;
}

static void tw_ack(pn_stack *s, const pn_tw *t)
{
    pn_tcp_send_raw(s, t->dst_mac, t->remote_ip, t->local_port, t->remote_port, t->snd_nxt,
                    t->rcv_nxt, PN_TH_ACK, 0, t->ts_ok, pn_ts_now(s, t->ts_offset), t->ts_recent);
}

/* Returns 1 when the segment should go on to a listener (the entry is gone). */
int pn_tw_rx(pn_stack *s, uint32_t i, const uint8_t *mac, uint32_t ip, const pn_tcp_seg *g,
             uint32_t *isn_floor)
{
    (void)mac;
    (void)ip;
    if (i >= s->cfg.max_time_wait_conn_cnt)
        return 0;
    pn_tw *t = &s->tw[i];
    if (g->flags & PN_TH_RST)
        return 0;                                   /* RFC 1337: ignore */
    if ((g->flags & PN_TH_SYN) && !(g->flags & PN_TH_ACK)) {
        /* RFC 6191 2: with timestamps on both the old connection and the SYN, a SYN
         * whose TSval is newer than TS.Recent may start a new incarnation, whatever its
         * sequence number (and one with an older TSval may not, whatever its sequence
         * number); otherwise RFC 1122 4.2.2.13: a SYN above our rcv_nxt. */
        bool newer = (t->ts_ok && g->has_ts) ? (int32_t)(g->tsval - t->ts_recent) > 0
                                             : seq_gt(g->seq, t->rcv_nxt);
        if (newer && pn_is_listening(s, t->local_port)) {
            s->st.TcpExtTWRecycled++;
            /* as Linux's tcp_timewait_state_process: the new incarnation's sequence space
             * starts past the old one's, which the ISN clock may not have passed */
            *isn_floor = t->snd_nxt + 65537u;
            pn_tw_kill(s, i);
            return 1;
        }
        if (pn_oow_allowed(s, &t->oow_ack_ns, &s->st.TcpExtTCPACKSkippedTimeWait))
            tw_ack(s, t);
        return 0;
    }
    if (g->flags & PN_TH_FIN) {                     /* RFC 9293 3.10.7.4: re-ACK, restart */
        tw_ack(s, t);
        t->expire = s->now + PN_TW_NS;
        unlink_tw(s, i);
        append_tw(s, i);
        return 0;
    }
    /* a retransmitted FIN is always re-ACKed (above: our last ACK was lost); SYNs and
     * data are rate-limited, so a confused or hostile peer cannot make us storm */
    if (g->plen && pn_oow_allowed(s, &t->oow_ack_ns, &s->st.TcpExtTCPACKSkippedTimeWait))
        tw_ack(s, t);
    return 0;
}

void pn_tw_expire(pn_stack *s)
{
    while (s->tw_old != PN_NONE32 && s->tw[s->tw_old].expire <= s->now)
        pn_tw_kill(s, s->tw_old);
}
