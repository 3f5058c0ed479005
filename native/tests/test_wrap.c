/* test_wrap.c -- every state across the 2^32 sequence wrap, under loss and reordering.
 * A test hook (isn_bias) puts a connection's ISNs where the test wants them: just below
 * 2^32, so the handshake, data both ways (and its retransmissions), the FINs and TIME_WAIT
 * all cross 0; then a 4-tuple reopened from TIME_WAIT on both sides, whose new ISNs start
 * past the old sequence space (RFC 6191; Linux's tw_snd_nxt + 65537) and across 0. */
#include "pn_internal.h"
#include "util.h"

static uint32_t SIP, CIP;
enum { BYTES = 200000, REUSE_GAP = 65537 };

/* The next ISN `n` picks for this 4-tuple is `target` (give or take the ISN clock's
 * 4 us ticks until the SYN is handled). */
static void aim_isn(node *n, uint32_t rip, uint16_t rport, uint16_t lport, uint32_t target)
{
    n->s->isn_bias = 0;
    n->s->isn_bias = target - pn_isn(n->s, rip, rport, lport);
}

static bool near(uint32_t iss, uint32_t target)
{
    return (uint32_t)(iss - target) < 1000;
}

static bool crosses_zero(uint32_t iss)
{
    return iss > 0x80000000u && iss + BYTES + 2 < 0x80000000u;
}

static bool closes_seen(world *w, void *ctx)
{
    uint32_t want = *(uint32_t *)ctx;
    return w->nodes[0].counts[PN_EV_CONNECTION_CLOSED] >= want &&
           w->nodes[1].counts[PN_EV_CONNECTION_CLOSED] >= want;
}

typedef struct { uint32_t cl_iss, sv_iss; } isns;

/* One connection from `lport`: ISNs aimed at `target`, BYTES each way, a FIN each way
 * (both sides end in TIME_WAIT). Returns the ISNs both sides used. */
static isns run_connection(world *w, node *cl, node *sv, uint16_t lport, uint32_t target,
                           uint32_t round)
{
    isns out = {0, 0};
    world_run(w, 1000, NULL, NULL);   /* both stacks' clocks at the world's */
    aim_isn(cl, SIP, 80, lport, target);
    aim_isn(sv, CIP, lport, 80, target);
    for (uint32_t i = 0; i < sv->nstreams; i++)   /* conn ids come again: fresh streams */
        if (sv->streams[i].closed)
            memset(&sv->streams[i], 0, sizeof sv->streams[i]);
    stream *st = client_open_from(cl, lport, SIP, 80, BYTES, BYTES);
    CHECK(st != NULL);
    if (!st)
        return out;
    st->send_fin_when_done = 1;
    out.cl_iss = cl->s->conns[st->conn].iss;
    CHECK(world_run(w, 60000000000ull, all_streams_done, NULL));
    stream *ss = NULL;
    for (uint32_t i = 0; i < sv->nstreams; i++)
        if (sv->streams[i].used && !sv->streams[i].closed)
            ss = &sv->streams[i];
    CHECK(ss != NULL);
    if (ss)
        out.sv_iss = sv->s->conns[ss->conn].iss;
    CHECK(world_run(w, 60000000000ull, closes_seen, &round));
    CHECK_EQ(st->rx_seen, BYTES);
    CHECK_EQ(st->rx_bad, 0);
    CHECK(st->fin_seen);
    if (ss) {
        CHECK_EQ(ss->rx_seen, BYTES);
        CHECK_EQ(ss->rx_bad, 0);
        CHECK(ss->fin_seen);
    }
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_RESET] + sv->counts[PN_EV_CONNECTION_RESET], 0);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_TIMEOUT] + sv->counts[PN_EV_CONNECTION_TIMEOUT], 0);
    return out;
}

static void test_every_state_across_the_wrap(void)
{
    pn_sim_params p;
    pn_sim_params_default(&p);
    p.loss = 0.02;
    p.reorder = 0.02;
    p.seed = 7;
    world w;
    node *cl, *sv;
    world_pair(&w, &p, NULL, NULL, &cl, &sv);
    sv->default_tx = BYTES;
    sv->default_rx = BYTES;
    sv->auto_fin = 1;

    /* 1: handshake, data, retransmissions, FINs and TIME_WAIT across 0 */
    isns a = run_connection(&w, cl, sv, 45001, (uint32_t)0 - 3000, 1);
    CHECK(near(a.cl_iss, (uint32_t)0 - 3000) && crosses_zero(a.cl_iss));
    CHECK(near(a.sv_iss, (uint32_t)0 - 3000) && crosses_zero(a.sv_iss));
    CHECK(cl->s->st.TcpRetransSegs > 0 && sv->s->st.TcpRetransSegs > 0);

    /* 2: a connection whose sequence space ends REUSE_GAP + 3000 below 2^32 ... */
    uint32_t end_at = (uint32_t)0 - REUSE_GAP - 3000;
    isns b = run_connection(&w, cl, sv, 45000, end_at - BYTES - 2, 2);
    CHECK_EQ(cl->s->tw_used, 2);   /* both 4-tuples wait on both sides */
    CHECK_EQ(sv->s->tw_used, 2);
    /* 3: ... reopened from TIME_WAIT on both sides: each new ISN is the old snd_nxt +
     * 65537, 3000 below 2^32 (the ISN clock aimed far lower), and its data crosses 0 */
    uint64_t recycled = sv->s->st.TcpExtTWRecycled;
    isns r = run_connection(&w, cl, sv, 45000, (uint32_t)0 - 1000000, 3);
    CHECK_EQ(sv->s->st.TcpExtTWRecycled, recycled + 1);
    CHECK_EQ(r.cl_iss, b.cl_iss + BYTES + 2 + REUSE_GAP);
    CHECK_EQ(r.sv_iss, b.sv_iss + BYTES + 2 + REUSE_GAP);
    CHECK(crosses_zero(r.cl_iss) && crosses_zero(r.sv_iss));
    world_free(&w);
}

int main(void)
{
    SIP = IP(10, 0, 0, 2);
    CIP = IP(10, 0, 0, 1);
    RUN(test_every_state_across_the_wrap);
    HARNESS_DONE();
}
