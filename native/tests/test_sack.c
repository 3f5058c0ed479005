/* test_sack.c -- SACK recovery's timing on the sim wire, in virtual time: a lost tail is
 * probed (RFC 8985 7) long before the retransmission timeout, and a lost retransmission
 * is found by RACK's time rule (RFC 8985 6) instead of by a timeout. Without SACK both
 * wait for the RTO. */
#include "pn_internal.h"
#include "util.h"

#define CIP IP(10, 0, 0, 1)
#define SIP IP(10, 0, 0, 2)
#define MSS 1460u

static bool server_got(world *w, void *ctx)
{
    node *sv = &w->nodes[1];
    for (uint32_t i = 0; i < sv->nstreams; i++)
        if (sv->streams[i].used && sv->streams[i].rx_seen >= *(const uint64_t *)ctx)
            return true;
    return false;
}

/* Drop, `times` times, the client's segment that starts `off` bytes into its stream. */
static void drop_segment(world *w, uint16_t cport, uint32_t isn, uint32_t off, int times)
{
    uint8_t m[16];   /* src ip, dst ip, ports, seq: contiguous from frame byte 26 */
    uint32_t seq = isn + 1 + off;
    uint32_t v[2] = {CIP, SIP};
    for (int i = 0; i < 2; i++)
        for (int b = 0; b < 4; b++)
            m[4 * i + b] = (uint8_t)(v[i] >> (24 - 8 * b));
    m[8] = (uint8_t)(cport >> 8); m[9] = (uint8_t)cport;
    m[10] = 0; m[11] = 80;
    for (int b = 0; b < 4; b++)
        m[12 + b] = (uint8_t)(seq >> (24 - 8 * b));
    for (int t = 0; t < times; t++)   /* a rule that drops stops the search: each its 1st */
        CHECK(pn_sim_wire_drop_nth(w->wire, 1, 26, m, NULL, sizeof m) >= 0);
}

/* Send `total` bytes with the segments at `offs` dropped `times` times each; the virtual
 * time it took and the client's counters. */
static uint64_t run(uint8_t sack, uint64_t total, const uint32_t *offs, int n, int times,
                    pn_stats *st)
{
    world w;
    node *cl, *sv;
    pn_config a, b;
    cfg_for(&a, CIP);
    cfg_for(&b, SIP);
    a.send_buf_1k = b.send_buf_1k = 0;
    a.sack = b.sack = sack;
    a.window_scale = b.window_scale = 1;
    a.conn_recv_buf_size = b.conn_recv_buf_size = 1u << 20;
    a.congestion_control = b.congestion_control = PN_CC_NEWRENO;
    world_pair(&w, NULL, &a, &b, &cl, &sv);
    sv->default_rx = total;
    stream *st_c = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 1000000000ull, NULL, NULL);   /* the handshake */
    CHECK(st_c->established);
    pn_conn_info ci;
    CHECK_EQ(pn_conn_info_get(cl->s, st_c->conn, &ci), 0);
    CHECK_EQ(ci.mss, MSS);
    for (int i = 0; i < n; i++)
        drop_segment(&w, ci.local_port, ci.snd_una - 1, offs[i], times);
    st_c->tx_total = total;
    uint64_t t0 = w.now;
    stream_pump(cl, st_c);
    CHECK(world_run(&w, 60000000000ull, server_got, &total));
    uint64_t took = w.now - t0;
    pn_stack_stats(cl->s, st);
    world_free(&w);
    return took;
}

static void test_a_lost_tail_is_probed_before_the_timeout(void)
{
    const uint32_t tail[3] = {17 * MSS, 18 * MSS, 19 * MSS};   /* of 20 segments */
    pn_stats with, without;
    uint64_t t_sack = run(1, 20 * MSS, tail, 3, 1, &with);
    uint64_t t_plain = run(0, 20 * MSS, tail, 3, 1, &without);
    printf("  lost tail: %.1f ms with SACK (timeouts %llu), %.1f ms without (%llu)\n",
           t_sack / 1e6, (unsigned long long)with.TcpExtTCPTimeouts, t_plain / 1e6,
           (unsigned long long)without.TcpExtTCPTimeouts);
    CHECK_EQ(with.TcpExtTCPTimeouts, 0);
    CHECK(without.TcpExtTCPTimeouts > 0);
    CHECK(t_sack < 50000000ull && t_plain >= 100000000ull);   /* min_rto_ms 100 */
}

static void test_a_lost_retransmission_is_found_without_a_timeout(void)
{
    const uint32_t hole[1] = {5 * MSS};
    pn_stats with, without;
    uint64_t t_sack = run(1, 4000000, hole, 1, 2, &with);   /* sent, resent: both lost */
    uint64_t t_plain = run(0, 4000000, hole, 1, 2, &without);
    printf("  lost retransmission: %.1f ms with SACK (timeouts %llu), %.1f ms without (%llu)\n",
           t_sack / 1e6, (unsigned long long)with.TcpExtTCPTimeouts, t_plain / 1e6,
           (unsigned long long)without.TcpExtTCPTimeouts);
    CHECK_EQ(with.TcpExtTCPTimeouts, 0);
    CHECK(with.PnSackHoleRetrans >= 2);
    CHECK(without.TcpExtTCPTimeouts > 0);
}

int main(void)
{
    RUN(test_a_lost_tail_is_probed_before_the_timeout);
    RUN(test_a_lost_retransmission_is_found_without_a_timeout);
    HARNESS_DONE();
}
