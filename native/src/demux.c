/* demux.c -- finding a segment's connection: the 4-tuple hash over live connections and
 * TIME_WAIT entries, the listening ports, and the stack-wide challenge-ACK budget. */
#include "pn_internal.h"

#define TWBIT 0x80000000u  /* a hash value naming a TIME_WAIT entry, not a connection */

/* ------------------------------------------------------------------ demux hash
 * Open addressing, linear probing, backward-shift deletion (no tombstones). */
static uint32_t ht_hash(const pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport)
{
    uint64_t k = ((uint64_t)rip << 32 | (uint64_t)rport << 16 | lport) ^ s->isn_key[0];
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k & s->ht_mask;
}

static bool ht_match(const pn_stack *s, uint32_t v, uint32_t rip, uint16_t rport, uint16_t lport)
{
    if (v & TWBIT) {
        const pn_tw *t = &s->tw[v & ~TWBIT];
        return t->remote_ip == rip && t->remote_port == rport && t->local_port == lport;
    }
    const pn_conn *c = &s->conns[v];
    return c->remote_ip == rip && c->remote_port == rport && c->local_port == lport;
}

uint32_t pn_ht_find(const pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport)
{
    for (uint32_t i = ht_hash(s, rip, rport, lport);; i = (i + 1) & s->ht_mask) {
        uint32_t v = s->ht[i];
        if (v == PN_NONE32)
            return PN_NONE32;
        if (ht_match(s, v, rip, rport, lport))
            return v;
    }
}

void pn_ht_add(pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport, uint32_t val)
{
    uint32_t i = ht_hash(s, rip, rport, lport);
    while (s->ht[i] != PN_NONE32)
        i = (i + 1) & s->ht_mask;
    s->ht[i] = val;
}

static uint32_t ht_home(const pn_stack *s, uint32_t v)
{
    if (v & TWBIT) {
        const pn_tw *t = &s->tw[v & ~TWBIT];
        return ht_hash(s, t->remote_ip, t->remote_port, t->local_port);
    }
    const pn_conn *c = &s->conns[v];
    return ht_hash(s, c->remote_ip, c->remote_port, c->local_port);
}

void pn_ht_del(pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport)
{
    uint32_t i = ht_hash(s, rip, rport, lport);
    for (;; i = (i + 1) & s->ht_mask) {
        uint32_t v = s->ht[i];
        if (v == PN_NONE32)
            return;
        if (ht_match(s, v, rip, rport, lport))
            break;
    }
    /* backward shift: pull later entries of the cluster into the hole when allowed */
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & s->ht_mask; s->ht[j] != PN_NONE32; j = (j + 1) & s->ht_mask) {
        uint32_t h = ht_home(s, s->ht[j]);
        /* can move j to hole iff h is not cyclically in (hole, j] */
        bool in = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
        if (!in) {
            s->ht[hole] = s->ht[j];
            hole = j;
        }
    }
    s->ht[hole] = PN_NONE32;
}

/* ------------------------------------------------------------------ listeners */
bool pn_is_listening(const pn_stack *s, uint16_t port)
{
    for (uint32_t i = 0; i < s->listen_n; i++)
        if (s->listen[i] == port)
            return true;
    return false;
}

int pn_listen(pn_stack *s, uint16_t port)
{
    if (!s || port == 0)
        return PN_EINVAL;
    if (pn_is_listening(s, port))
        return PN_EPORT;
    if (s->listen_n >= PN_MAX_LISTEN)
        return PN_ENOMEM;
    pn_flow f = {s->cfg.local_ip, 0, port, 0};
    if (s->link->ops->flow_add && s->link->ops->flow_add(s->link, &f) < 0)
        return PN_ELINK;
    s->listen[s->listen_n++] = port;
    return PN_OK;
}

int pn_unlisten(pn_stack *s, uint16_t port)
{
    if (!s)
        return PN_EINVAL;
    for (uint32_t i = 0; i < s->listen_n; i++)
        if (s->listen[i] == port) {
            s->listen[i] = s->listen[--s->listen_n];
            pn_flow f = {s->cfg.local_ip, 0, port, 0};
            if (s->link->ops->flow_del)
                s->link->ops->flow_del(s->link, &f);
            return PN_OK;
        }
    return PN_EINVAL;
}

/* RFC 5961 7: a global limit on challenge ACKs per second. */
bool pn_challenge_ack_allowed(pn_stack *s)
{
    /* RFC 5961 7: at most challenge_ack_limit a second per stack; each second's budget is
     * drawn from [ceil(limit/2), ceil(limit/2) + limit), as Linux does since CVE-2016-5696, so an off-path
     * attacker cannot count our challenge ACKs against a known constant. chal_cnt counts
     * down what is left this second. */
    uint64_t sec = s->now / 1000000000u;
    if (sec != s->chal_sec) {
        uint32_t lim = s->cfg.challenge_ack_limit;
        s->chal_sec = sec;
        /* half rounded up, as Linux: a limit of 1 still allows one a second */
        s->chal_cnt = (lim + 1) / 2 +
                      (uint32_t)(pn_siphash(s->isn_key, &sec, sizeof sec) % (lim ? lim : 1));
    }
    if (s->chal_cnt == 0) {
        s->st.TcpExtTCPACKSkippedChallenge++;
        return false;
    }
    s->chal_cnt--;
    s->st.TcpExtTCPChallengeACK++;
    return true;
}
