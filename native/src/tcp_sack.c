/* tcp_sack.c -- selective acknowledgment (RFC 2018) and the loss recovery it allows
 * (RFC 6675, simplified). As a receiver: the out-of-order ranges we hold, reported in
 * our ACKs, the one holding the latest segment first. As a sender: a scoreboard of which
 * sent segments the peer holds (pn_sseg.flags), and in recovery RFC 6675's: lost holes
 * (three SACKed segments above them) resent first, then new data, at the pace of
 * Proportional Rate Reduction (RFC 6937) -- instead of NewReno's one hole per round
 * trip. RACK's time rule (RFC 8985 6) also finds a segment lost -- a
 * resent one too -- when one sent well after it arrived, and a tail loss probe (7)
 * draws the SACK that finds it when the last segments of a flight are lost. */
#include "pn_internal.h"
#include "wire_tcp.h"

void pn_sack_blocks(const pn_conn *c, pn_tcp_out *o)
{
    uint32_t max = o->ts_on ? 3u : 4u, n = 0, first = c->ooo_n;
    for (uint32_t i = 0; i < c->ooo_n; i++)
        if (seq_ge(c->ooo_last, c->ooo[i].s) && seq_lt(c->ooo_last, c->ooo[i].e))
            first = i;
    if (first < c->ooo_n) {   /* RFC 2018 4: the block holding the latest segment first */
        o->sack[n][0] = c->ooo[first].s;
        o->sack[n][1] = c->ooo[first].e;
        n++;
    }
    for (uint32_t i = c->ooo_n; i-- > 0 && n < max;) {   /* then the highest ones */
        if (i == first)
            continue;
        o->sack[n][0] = c->ooo[i].s;
        o->sack[n][1] = c->ooo[i].e;
        n++;
    }
    o->nsack = (uint8_t)n;
}

void pn_sack_mark(pn_stack *s, pn_conn *c, const pn_tcp_seg *t)
{
    for (uint32_t b = 0; b < t->nsack; b++) {
        uint32_t l = t->sack[b][0], r = t->sack[b][1];
        /* RFC 2018 4: only what lies above snd_una and was sent counts (a D-SACK block
         * below it, RFC 2883, says nothing about holes) */
        if (!seq_lt(l, r) || seq_lt(l, c->snd_una) || seq_gt(r, c->snd_max))
            continue;
        for (uint32_t k = 0; k < c->sb_cnt; k++) {
            pn_sseg *g = pn_seg_at(s, c, k);
            if (!seq_lt(g->seq, r))
                break;
            if (seq_ge(g->seq, l) && seq_le(g->seq + g->len, r) &&
                !(g->flags & PN_SSEG_SACKED)) {
                g->flags |= PN_SSEG_SACKED;
                c->delivered_now += g->len;
                pn_rack_delivered(c, g);
            }
        }
    }
}

/* RFC 6675 4 IsLost: a segment is lost once DupThresh (3) segments above it are SACKed
 * (fewer may only be reordered); the head also when a partial ACK says so. */
#define DUP_THRESH 3u

void pn_rack_delivered(pn_conn *c, const pn_sseg *g)
{
    /* a resent segment's delivery may be the first send's: it does not move the clock
     * (RFC 8985 6.2 step 2 tells them apart by RTT; we leave them out) */
    if (g->flags & PN_SSEG_RTX)
        return;
    if (!c->rack_valid || (int32_t)(g->xmit_us - c->rack_xmit_us) > 0)
        c->rack_xmit_us = g->xmit_us;
    c->rack_valid = 1;
}

/* RACK (RFC 8985 6.2): sent more than a reordering window before a segment the peer
 * already has -- a quarter of the smoothed RTT, 1 ms at least, as the sim's and a
 * veth's reordering is well inside it. A lost retransmission is found the same way. */
static bool rack_lost(const pn_conn *c, const pn_sseg *g)
{
    uint32_t reo = c->srtt_us / 4 > 1000u ? c->srtt_us / 4 : 1000u;
    return c->rack_valid && (int32_t)(c->rack_xmit_us - g->xmit_us) > (int32_t)reo;
}

bool pn_sack_head_lost(pn_stack *s, const pn_conn *c)
{
    if (!c->sb_cnt || (pn_seg_at(s, c, 0)->flags & PN_SSEG_SACKED))
        return false;
    if (rack_lost(c, pn_seg_at(s, c, 0)))
        return true;
    uint32_t above = 0;
    for (uint32_t k = 1; k < c->sb_cnt && above < DUP_THRESH; k++)
        above += (pn_seg_at(s, c, k)->flags & PN_SSEG_SACKED) != 0;
    return above >= DUP_THRESH;
}

/* The sent segments the peer has not SACKed, in order: from *k on, the next one's index
 * and how many SACKed segments lie above it (*above counts down from the total). */
static pn_sseg *next_unsacked(pn_stack *s, const pn_conn *c, uint32_t *k, uint32_t *above)
{
    for (; *k < c->sb_cnt; (*k)++) {
        pn_sseg *g = pn_seg_at(s, c, *k);
        if (!seq_lt(g->seq, c->snd_max))
            return NULL;
        if (!(g->flags & PN_SSEG_SACKED))
            return g;
        (*above)--;
    }
    return NULL;
}

void pn_prr_start(pn_conn *c)
{
    c->prr_delivered = c->prr_out = 0;
    c->recover_fs = c->snd_max - c->snd_una;
}

/* RFC 6937 3: what this ACK lets out. Above ssthresh, in proportion to what was
 * delivered (the flight shrinks smoothly to ssthresh, so ACKs keep coming: a lone
 * ACK lost no longer leaves nothing in flight); at or below it, back up to ssthresh by
 * at most what was delivered and one MSS (slow start reduction bound). */
static uint64_t prr_budget(const pn_conn *c, uint32_t pipe)
{
    if (pipe > c->ssthresh) {
        uint64_t fs = c->recover_fs ? c->recover_fs : 1;
        uint64_t want = ((uint64_t)c->prr_delivered * c->ssthresh + fs - 1) / fs;
        return want > c->prr_out ? want - c->prr_out : 0;
    }
    uint64_t a = c->prr_delivered > c->prr_out ? c->prr_delivered - c->prr_out : 0;
    if (a < c->delivered_now)
        a = c->delivered_now;
    a += c->mss;
    uint64_t room = c->ssthresh - pipe;
    return a < room ? a : room;
}

void pn_sack_recover(pn_stack *s, pn_conn *c, bool head_lost)
{
    uint32_t sacked = 0;
    for (uint32_t k = 0; k < c->sb_cnt; k++)
        sacked += (pn_seg_at(s, c, k)->flags & PN_SSEG_SACKED) != 0;
    /* SetPipe: what is in flight -- sent, not SACKed, not lost, plus resent holes */
    uint32_t pipe = 0, above = sacked;
    pn_sseg *g;
    for (uint32_t k = 0; (g = next_unsacked(s, c, &k, &above)) != NULL; k++) {
        bool lost = above >= DUP_THRESH || (head_lost && k == 0) || rack_lost(c, g);
        if ((g->flags & PN_SSEG_RTX) && rack_lost(c, g))
            g->flags &= (uint16_t)~PN_SSEG_RTX;   /* the resend was lost too: again */
        pipe += (lost ? 0u : g->len) + ((g->flags & PN_SSEG_RTX) ? g->len : 0u);
    }
    bool cc = s->cfg.congestion_control != PN_CC_NONE;
    c->prr_delivered += c->delivered_now;
    uint64_t budget = cc ? prr_budget(c, pipe) : UINT32_MAX;
    /* NextSeg rule 1: the lost holes, lowest first */
    above = sacked;
    for (uint32_t k = 0; (g = next_unsacked(s, c, &k, &above)) != NULL; k++) {
        bool must = head_lost && k == 0;
        if ((above < DUP_THRESH && !must && !rack_lost(c, g)) || (g->flags & PN_SSEG_RTX))
            continue;   /* not known lost, or resent already */
        /* the head goes whatever the budget when it is known lost by an ACK (RFC 6675 5
         * step 4.2, RFC 6937 3: the fast retransmission itself is not limited) */
        if (!must && g->len > budget)
            break;
        if (pn_tcp_retransmit_seg(s, c, k) != 0)
            break;
        g->flags |= PN_SSEG_RTX;
        s->st.PnSackHoleRetrans++;
        budget = budget > g->len ? budget - g->len : 0;
        c->prr_out += g->len;
    }
    /* rule 2, new data with the rest of the budget, is output()'s */
    c->prr_budget = budget > UINT32_MAX ? UINT32_MAX : (uint32_t)budget;
}

void pn_sack_reset(pn_stack *s, pn_conn *c, uint16_t clear)
{
    for (uint32_t k = 0; k < c->sb_cnt; k++)
        pn_seg_at(s, c, k)->flags &= (uint16_t)~clear;
}

void pn_tlp_probe(pn_stack *s, pn_conn *c)
{
    c->tlp_out = 1;
    s->st.TcpExtTCPLossProbes++;
    uint32_t before = c->snd_max;
    pn_tcp_output_force(s, c);   /* new data, if the peer's window takes it */
    if (c->snd_max == before && c->sb_cnt) {
        /* else the last segment sent that the peer has not SACKed, again: RFC 8985 7.3
         * resends the last one, whose SACK would tell nothing new when it arrived */
        uint32_t k = c->sb_cnt;
        while (k > 0 && (!seq_lt(pn_seg_at(s, c, k - 1)->seq, c->snd_max) ||
                         (pn_seg_at(s, c, k - 1)->flags & PN_SSEG_SACKED)))
            k--;
        if (k > 0)
            pn_tcp_retransmit_seg(s, c, k - 1);
    }
}
