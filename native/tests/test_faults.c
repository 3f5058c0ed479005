/* test_faults.c -- byte-exact bidirectional transfers on the sim wire, clean and under
 * loss, reordering, duplication and corruption, for every congestion control and option
 * combination (SACK on in half of them, of every kind). Prints the simulated throughput
 * (wall clock, both directions counted). */
#include "util.h"

static uint32_t SIP, CIP;

typedef struct variant {
    const char *name;
    uint8_t cc, ws, ts, buf1k, partial;
    uint32_t delack;
    double loss, reorder, dup, corrupt;
    uint64_t bytes;   /* each way */
    uint8_t sack;
    uint8_t ack_every;
} variant;

/* What the last run_variant saw: both stacks' counters summed, and its virtual time. */
static pn_stats last_stats;
static uint64_t last_virtual_ns;


static double run_variant(const variant *v, bool print)
{
    pn_sim_params p;
    pn_sim_params_default(&p);
    p.seed = 0x5eed0000u + v->cc * 16u + v->ws * 4u + v->ts * 2u + v->buf1k;
    p.loss = v->loss;
    p.reorder = v->reorder;
    p.duplicate = v->dup;
    p.corrupt = v->corrupt;
    p.delay_ns = 20000;
    p.jitter_ns = 2000;
    p.reorder_delay_ns = 60000;
    world w;
    world_init(&w, &p);
    pn_config c;
    cfg_for(&c, CIP);
    c.congestion_control = v->cc;
    c.window_scale = v->ws;
    c.timestamps = v->ts;
    c.send_buf_1k = v->buf1k;
    c.delayed_ack_ms = v->delack;
    c.sack = v->sack;
    c.ack_every = v->ack_every;
    c.max_conn_cnt = 4;
    if (v->ws)
        c.conn_recv_buf_size = 256 * 1024;
    c.tcp_retries = 30;   /* 10% loss can lose a retransmission many times in a row */
    node *cl = world_add(&w, &c, CIP, 1);
    cfg_for(&c, SIP);
    c.congestion_control = v->cc;
    c.window_scale = v->ws;
    c.timestamps = v->ts;
    c.send_buf_1k = v->buf1k;
    c.delayed_ack_ms = v->delack;
    c.sack = v->sack;
    c.ack_every = v->ack_every;
    c.max_conn_cnt = 4;
    if (v->ws)
        c.conn_recv_buf_size = 256 * 1024;
    c.tcp_retries = 30;
    node *sv = world_add(&w, &c, SIP, 2);
    sv->default_tx = v->bytes;
    sv->default_rx = v->bytes;
    sv->partial = v->partial;
    pn_listen(sv->s, 5001);
    uint32_t id = 0;
    CHECK_EQ(pn_connect(cl->s, SIP, 5001, 0, &id), 0);
    stream *st = node_stream(cl, id);
    memset(st, 0, sizeof *st);
    pn_conn_info ci;
    pn_conn_info_get(cl->s, id, &ci);
    st->used = 1;
    st->conn = id;
    st->tx_total = v->bytes;
    st->rx_expect = v->bytes;
    st->partial = v->partial;
    st->tx_seed = ((uint64_t)CIP << 16 | ci.local_port) * 2;
    st->rx_seed = ((uint64_t)CIP << 16 | ci.local_port) * 2 + 1;
    double t0 = wall_s(), c0 = cpu_s();
    uint64_t v0 = w.now;
    bool ok = world_run(&w, 3600ull * 1000000000ull, all_streams_done, NULL);
    double dt = wall_s() - t0, dc = cpu_s() - c0;
    CHECK(ok);
    CHECK_EQ(st->rx_seen, v->bytes);
    CHECK_EQ(st->rx_bad, 0);
    stream *ss = NULL;
    for (uint32_t i = 0; i < sv->nstreams; i++)
        if (sv->streams[i].used)
            ss = &sv->streams[i];
    CHECK(ss != NULL);
    if (ss) {
        CHECK_EQ(ss->rx_seen, v->bytes);
        CHECK_EQ(ss->rx_bad, 0);
    }
    pn_conn_info_get(cl->s, id, &ci);
    CHECK_EQ(ci.state, PN_TCP_ESTABLISHED);
    pn_sim_stats ws;
    pn_sim_wire_stats(w.wire, &ws);
    pn_stats a, b;
    pn_stack_stats(cl->s, &a);
    pn_stack_stats(sv->s, &b);
    const uint64_t *pa = (const uint64_t *)&a, *pb = (const uint64_t *)&b;
    uint64_t *sum = (uint64_t *)&last_stats;
    for (size_t i = 0; i < sizeof a / sizeof(uint64_t); i++)
        sum[i] = pa[i] + pb[i];
    last_virtual_ns = w.now - v0;
    double mbs = 2.0 * (double)v->bytes / 1e6 / dt, mbc = 2.0 * (double)v->bytes / 1e6 / dc;
    if (print || !ok || h_fail)
        printf("  %-34s %6.1f MB/s per CPU-s, %6.1f wall (%llu MB each way, %.2f s virtual), retrans %llu+%llu, bad csum %llu+%llu, wire drop %llu dup %llu reord %llu corrupt %llu\n",
               v->name, mbc, mbs, (unsigned long long)(v->bytes / 1000000),
               (double)(w.now - v0) / 1e9,
               (unsigned long long)a.TcpRetransSegs, (unsigned long long)b.TcpRetransSegs,
               (unsigned long long)a.drop_bad_csum, (unsigned long long)b.drop_bad_csum,
               (unsigned long long)ws.dropped, (unsigned long long)ws.duplicated,
               (unsigned long long)ws.reordered, (unsigned long long)ws.corrupted);
    world_free(&w);
    return mbs;
}

static void test_50mb_clean(void)
{
    variant v = {"50 MB clean (cc none, 1K)", PN_CC_NONE, 0, 0, 1, 0, 10, 0, 0, 0, 0,
                 50000000, 0, 2};
    run_variant(&v, true);
}

static void test_50mb_faults(void)
{
    variant v = {"50 MB, 10% loss/reorder 2% dup 1% corrupt", PN_CC_NONE, 0, 0, 1, 1, 10,
                 0.10, 0.10, 0.02, 0.01, 50000000, 0, 8};
    run_variant(&v, true);
}

static void test_matrix(void)
{
    static const char *ccn[] = {"none", "newreno", "cubic"};
    uint64_t bytes = 5000000;
    for (uint8_t cc = 0; cc < 3; cc++)
        for (uint8_t opt = 0; opt < 16; opt++) {
            variant v;
            memset(&v, 0, sizeof v);
            char name[64];
            v.cc = cc;
            v.ws = opt & 1;
            v.ts = (opt >> 1) & 1;
            v.delack = (opt >> 2) & 1 ? 10 : 0;
            v.buf1k = (opt >> 3) & 1;
            v.partial = (opt + cc) & 1;
            v.sack = (uint8_t)((opt ^ (opt >> 3) ^ cc) & 1);   /* half of them, each kind */
            v.ack_every = ((opt >> 1) ^ (opt >> 2) ^ cc) & 1 ? 8 : 2;   /* half, crosswise */
            v.loss = 0.05;
            v.reorder = 0.05;
            v.dup = 0.01;
            v.corrupt = 0.005;
            v.bytes = bytes;
            snprintf(name, sizeof name, "%s ws%d ts%d delack%d %s%s ack/%u", ccn[cc], v.ws,
                     v.ts, v.delack ? 1 : 0, v.buf1k ? "1K" : "2K", v.sack ? " sack" : "",
                     v.ack_every);
            v.name = name;
            int f0 = h_fail;
            run_variant(&v, getenv("PN_VERBOSE") != NULL);
            if (h_fail != f0)
                printf("  variant %s FAILED\n", name);
        }
}

static void test_cc_clean(void)
{
    static const char *ccn[] = {"none", "newreno", "cubic"};
    for (uint8_t cc = 0; cc < 3; cc++) {
        char name[64];
        snprintf(name, sizeof name, "clean %s 2K ws ts", ccn[cc]);
        variant v = {name, cc, 1, 1, 0, 0, 10, 0, 0, 0, 0, 10000000, 0, 2};
        run_variant(&v, true);
    }
}


/* A 100 Mbit/s bottleneck with a 64-frame queue: the transfer takes at least the
 * serialisation time, the queue overflows under slow start, and every byte arrives. */
static void test_bandwidth_cap(void)
{
    for (uint8_t cc = 1; cc <= 2; cc++) {
        pn_sim_params p;
        pn_sim_params_default(&p);
        p.bandwidth_bps = 100000000;
        p.queue_frames = 64;
        p.delay_ns = 500000;
        world w;
        world_init(&w, &p);
        pn_config c;
        cfg_for(&c, CIP);
        c.congestion_control = cc;
        c.window_scale = 1;
        c.conn_recv_buf_size = 1 << 20;
        c.send_buf_1k = 0;
        node *cl = world_add(&w, &c, CIP, 1);
        cfg_for(&c, SIP);
        c.congestion_control = cc;
        c.window_scale = 1;
        c.conn_recv_buf_size = 1 << 20;
        c.send_buf_1k = 0;
        node *sv = world_add(&w, &c, SIP, 2);
        sv->default_rx = 10000000;
        pn_listen(sv->s, 80);
        uint32_t id;
        pn_connect(cl->s, SIP, 80, 0, &id);
        stream *st = node_stream(cl, id);
        pn_conn_info ci;
        pn_conn_info_get(cl->s, id, &ci);
        st->used = 1;
        st->conn = id;
        st->tx_total = 10000000;
        st->tx_seed = ((uint64_t)CIP << 16 | ci.local_port) * 2;
        uint64_t t0 = w.now;
        CHECK(world_run(&w, 600000000000ull, all_streams_done, NULL));
        stream *ss = NULL;
        for (uint32_t i = 0; i < sv->nstreams; i++)
            if (sv->streams[i].used)
                ss = &sv->streams[i];
        CHECK(ss && ss->rx_seen == 10000000 && ss->rx_bad == 0);
        double secs = (double)(w.now - t0) / 1e9;
        double mbps = 10000000 * 8 / secs / 1e6;
        pn_sim_stats ws;
        pn_sim_wire_stats(w.wire, &ws);
        printf("  %s through 100 Mbit/s, 64-frame queue: %.1f Mbit/s goodput, %llu queue drops\n",
               cc == 1 ? "newreno" : "cubic", mbps, (unsigned long long)ws.queue_drops);
        CHECK(mbps <= 100.0);
        CHECK(mbps > 60.0);
        world_free(&w);
    }
}


/* Ping-pong of 64-byte messages: the CPU cost of one round trip (two stacks, the sim wire
 * and the test loop together). Printed, not asserted. */
static uint32_t pp_left;
static void pp_echo(node *n, pn_event *e)
{
    if (e->type != PN_EV_DATA || e->len < 64)
        return;
    node_stream(n, e->conn_id)->keep_all = 0;
    if (n->ip == SIP) {
        pn_send(n->s, e->conn_id, e->data, 64, 0);
    } else if (pp_left) {
        pp_left--;
        pn_send(n->s, e->conn_id, e->data, 64, 0);
    }
    CHECK_EQ(pn_keep(n->s, e->conn_id, e->len - 64), 0);
}

static void test_pingpong_cost(void)
{
    pn_sim_params p;
    pn_sim_params_default(&p);
    p.delay_ns = 1000;
    world w;
    world_init(&w, &p);
    pn_config c;
    cfg_for(&c, CIP);
    c.delayed_ack_ms = 0;
    node *cl = world_add(&w, &c, CIP, 1);
    cl->hook = pp_echo;
    cfg_for(&c, SIP);
    c.delayed_ack_ms = 0;
    node *sv = world_add(&w, &c, SIP, 2);
    sv->hook = pp_echo;
    pn_listen(sv->s, 80);
    uint32_t id;
    pn_connect(cl->s, SIP, 80, 0, &id);
    node_stream(cl, id)->used = 1;
    world_run(&w, 1000000000ull, NULL, NULL);
    uint8_t msg[64] = {1};
    pp_left = 100000;
    double c0 = cpu_s();
    uint64_t v0 = w.now;
    pn_send(cl->s, id, msg, 64, 0);
    world_run(&w, 60000000000ull, NULL, NULL);
    double dc = cpu_s() - c0;
    CHECK_EQ(pp_left, 0);
    printf("  ping-pong 64 B: %.0f ns CPU per round trip (2 stacks + sim), %.1f us virtual RTT\n",
           dc * 1e9 / 100000, (double)(w.now - v0) / 1e3 / 100000);
    world_free(&w);
}

/* SACK (RFC 2018, 6675) on both ends: the same seeded loss, reordering and duplication
 * cost less virtual time than without it, every byte arrives, and the recovery was the
 * SACK one (holes resent from the scoreboard); without it none is. */
static void test_sack_under_loss(void)
{
    static const uint8_t ccs[] = {PN_CC_NEWRENO, PN_CC_CUBIC, PN_CC_NONE};
    for (size_t i = 0; i < sizeof ccs; i++) {
        variant v = {"5 MB, 2% loss 1% reorder, SACK", ccs[i], 1, 1, 0, 0, 10, 0.02, 0.01,
                     0.002, 0, 5000000, 1, 2};
        run_variant(&v, true);
        uint64_t with = last_virtual_ns;
        CHECK(last_stats.TcpExtTCPSackRecovery > 0);
        CHECK(last_stats.PnSackHoleRetrans > 0);
        v.sack = 0;
        v.name = "5 MB, 2% loss 1% reorder, no SACK";
        run_variant(&v, true);
        CHECK_EQ(last_stats.TcpExtTCPSackRecovery, 0);
        CHECK_EQ(last_stats.PnSackHoleRetrans, 0);
        CHECK(with < last_virtual_ns);
    }
}

int main(void)
{
    SIP = IP(10, 0, 0, 2);
    CIP = IP(10, 0, 0, 1);
    if (getenv("ONLY_BW")) {
        RUN(test_bandwidth_cap);
        HARNESS_DONE();
    }
    const char *one = getenv("PN_VARIANT");   /* cc,ws,ts,delack,buf1k,partial,loss,bytes */
    if (one) {
        variant v;
        memset(&v, 0, sizeof v);
        v.ack_every = 2;
        unsigned cc, ws, ts, da, b1, pa;
        double loss;
        unsigned long long by;
        if (sscanf(one, "%u,%u,%u,%u,%u,%u,%lf,%llu", &cc, &ws, &ts, &da, &b1, &pa, &loss, &by) == 8) {
            v.cc = (uint8_t)cc; v.ws = (uint8_t)ws; v.ts = (uint8_t)ts; v.delack = da;
            v.buf1k = (uint8_t)b1; v.partial = (uint8_t)pa; v.loss = loss; v.reorder = loss;
            v.dup = loss / 5; v.corrupt = loss / 10; v.bytes = by; v.name = one;
            run_variant(&v, true);
        }
        HARNESS_DONE();
    }
    RUN(test_pingpong_cost);
    RUN(test_50mb_clean);
    RUN(test_50mb_faults);
    RUN(test_cc_clean);
    RUN(test_sack_under_loss);
    RUN(test_matrix);
    RUN(test_bandwidth_cap);
    HARNESS_DONE();
}
