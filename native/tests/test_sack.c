/* test_sack.c -- SACK recovery's timing on the sim wire, in virtual time: a lost tail is
 * probed (RFC 8985 7) long before the retransmission timeout, and a lost retransmission
 * is found by RACK's time rule (RFC 8985 6) instead of by a timeout. Without SACK both
 * wait for the RTO. */
#include "pn_internal.h"
#include "util.h"

#define CIP IP(10, 0, 0, 1)
#define SIP IP(10, 0, 0, 2)
#define MSS 1460u

/* The client's whole stream acknowledged (ctx: the sequence number past its end). */
static bool client_acked(world *w, void *ctx)
{
    node *cl = &w->nodes[0];
    for (uint32_t i = 0; i < cl->nstreams; i++) {
        pn_conn_info ci;
        if (cl->streams[i].used && pn_conn_info_get(cl->s, cl->streams[i].conn, &ci) == 0)
            return ci.snd_una == *(const uint32_t *)ctx;
    }
    return false;
}

static void put32(uint8_t *m, uint32_t v)
{
    for (int b = 0; b < 4; b++)
        m[b] = (uint8_t)(v >> (24 - 8 * b));
}

/* Drop, `times` times, the frame from `src` to `dst` (ports `sport` -> `dport`) whose
 * sequence number is `seq` -- and, when `ack` is not 0, whose ACK field is `ack`: the
 * bytes from the IP source on (frame offset 26) are contiguous up to the ACK field. */
static void drop_frame(world *w, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
                       uint32_t seq, uint32_t ack, int times)
{
    uint8_t m[20];
    put32(m, src);
    put32(m + 4, dst);
    m[8] = (uint8_t)(sport >> 8); m[9] = (uint8_t)sport;
    m[10] = (uint8_t)(dport >> 8); m[11] = (uint8_t)dport;
    put32(m + 12, seq);
    put32(m + 16, ack);
    uint32_t len = ack ? 20u : 16u;
    for (int t = 0; t < times; t++)   /* a rule that drops stops the search: each its 1st */
        CHECK(pn_sim_wire_drop_nth(w->wire, 1, 26, m, NULL, len) >= 0);
}

/* Send `total` bytes with the segments at `offs` dropped `times` times each; the virtual
 * time it took and the client's counters. */
static uint64_t run(uint8_t sack, uint64_t total, const uint32_t *offs, int n, int times,
                    bool drop_final_ack, pn_stats *st)
{
    world w;
    node *cl, *sv;
    pn_config a, b;
    cfg_bulk_pair(&a, &b);
    a.sack = b.sack = sack;
    world_pair(&w, NULL, &a, &b, &cl, &sv);
    sv->default_rx = total;
    stream *st_c = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 1000000000ull, NULL, NULL);   /* the handshake */
    CHECK(st_c->established);
    pn_conn_info ci;
    CHECK_EQ(pn_conn_info_get(cl->s, st_c->conn, &ci), 0);
    CHECK_EQ(ci.mss, MSS);
    for (int i = 0; i < n; i++)
        drop_frame(&w, CIP, SIP, ci.local_port, 80, ci.snd_una + offs[i], 0, times);
    if (drop_final_ack)   /* the server's ACK of the whole stream, once */
        drop_frame(&w, SIP, CIP, 80, ci.local_port, ci.rcv_nxt, ci.snd_una + (uint32_t)total, 1);
    st_c->tx_total = total;
    uint64_t t0 = w.now;
    stream_pump(cl, st_c);
    CHECK(world_run(&w, 60000000000ull, server_got, &total));
    uint32_t end = ci.snd_una + (uint32_t)total;
    CHECK(world_run(&w, 60000000000ull, client_acked, &end));   /* and the sender knows */
    uint64_t took = w.now - t0;
    pn_stack_stats(cl->s, st);
    world_free(&w);
    return took;
}

static void test_a_lost_tail_is_probed_before_the_timeout(void)
{
    const uint32_t tail[3] = {17 * MSS, 18 * MSS, 19 * MSS};   /* of 20 segments */
    pn_stats with, without;
    uint64_t t_sack = run(1, 20 * MSS, tail, 3, 1, false, &with);
    uint64_t t_plain = run(0, 20 * MSS, tail, 3, 1, false, &without);
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
    uint64_t t_sack = run(1, 4000000, hole, 1, 2, false, &with);   /* sent, resent: lost */
    uint64_t t_plain = run(0, 4000000, hole, 1, 2, false, &without);
    printf("  lost retransmission: %.1f ms with SACK (timeouts %llu), %.1f ms without (%llu)\n",
           t_sack / 1e6, (unsigned long long)with.TcpExtTCPTimeouts, t_plain / 1e6,
           (unsigned long long)without.TcpExtTCPTimeouts);
    CHECK_EQ(with.TcpExtTCPTimeouts, 0);
    CHECK(with.PnSackHoleRetrans >= 2);
    CHECK(without.TcpExtTCPTimeouts > 0);
}

/* A hole resent in recovery, and the one ACK that answers it lost: nothing else is in
 * flight to bring another, so the probe (in recovery too, unlike RFC 8985 7.2) resends
 * and draws it, 10 ms on rather than at the RTO. */
static void test_the_lost_ack_of_a_recovery_is_probed(void)
{
    const uint32_t hole[1] = {10 * MSS};   /* of 20, all sent at once */
    pn_stats with, without;
    uint64_t t_sack = run(1, 20 * MSS, hole, 1, 1, true, &with);
    uint64_t t_plain = run(0, 20 * MSS, hole, 1, 1, true, &without);
    printf("  recovery's ACK lost: %.1f ms with SACK (timeouts %llu, probes %llu), "
           "%.1f ms without (%llu)\n", t_sack / 1e6,
           (unsigned long long)with.TcpExtTCPTimeouts,
           (unsigned long long)with.TcpExtTCPLossProbes, t_plain / 1e6,
           (unsigned long long)without.TcpExtTCPTimeouts);
    CHECK_EQ(with.TcpExtTCPTimeouts, 0);
    CHECK(with.TcpExtTCPSackRecovery > 0 && with.TcpExtTCPLossProbes > 0);
    CHECK(t_sack < 50000000ull && t_plain >= 100000000ull);
}

int main(void)
{
    RUN(test_a_lost_tail_is_probed_before_the_timeout);
    RUN(test_the_lost_ack_of_a_recovery_is_probed);
    RUN(test_a_lost_retransmission_is_found_without_a_timeout);
    HARNESS_DONE();
}
