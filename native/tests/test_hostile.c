/* test_hostile.c -- hostile peers on the sim link: a SYN flood from random sources (the
 * half-open pool, SYN cookies, allow_new_connection asked only after the handshake), SYN
 * cookies carrying window scale and timestamps, forged cookie ACKs, out-of-order bounds,
 * per-source limits, a peer whose window stays zero and one that never ACKs (ended at
 * their limits with the reason), RFC 5961 answers, and the counters' names. Over five
 * hundred lines as one subject's tests, each of which reads on its own. */
#include "pn_internal.h"
#include "util.h"

#define CIP IP(10, 0, 0, 1)
#define SIP IP(10, 0, 0, 2)
#define RIP IP(10, 0, 0, 9)

static pn_stats stats(node *n)
{
    pn_stats s;
    pn_stack_stats(n->s, &s);
    return s;
}

static int accept_calls;
static int count_accept(void *ctx, uint32_t ip, uint16_t port)
{
    (void)ctx; (void)ip; (void)port;
    accept_calls++;
    return 1;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

/* 2000 spoofed SYNs from random 10.x sources fill the half-open pool; a real client then
 * connects (through a cookie) and moves 200 KB each way intact. */
static void test_syn_flood(void)
{
    pn_sim_params p;
    pn_sim_params_default(&p);
    world w;
    world_init(&w, &p);
    pn_config c;
    cfg_for(&c, CIP);
    node *cl = world_add(&w, &c, CIP, 1);
    cfg_for(&c, SIP);
    c.max_conn_cnt = 16;                 /* half-open pool: 8 */
    node *sv = world_add(&w, &c, SIP, 2);
    pn_listen(sv->s, 80);
    accept_calls = 0;
    pn_stack_set_accept(sv->s, count_accept, NULL);
    sv->default_tx = 200000;
    sv->default_rx = 200000;
    pn_link *raw = world_add_raw(&w, 9);
    uint8_t f[100];
    for (int i = 0; i < 2000; i++) {
        uint8_t mss[4] = {2, 4, 0x05, 0xb4};
        raw_seg r = {raw->mac, sv->mac, IP(10, rnd() % 250 + 1, rnd() % 250, rnd() % 250 + 1),
                     SIP, (uint16_t)(1024 + rnd() % 60000), 80, rnd(), 0, 0x02, 65535,
                     mss, 4, NULL, 0};
        raw_send(raw, f, build_tcp_frame(f, &r));
        if (i % 100 == 0)
            world_run(&w, 1000000, NULL, NULL);
    }
    world_run(&w, 1000000, NULL, NULL);
    pn_stats a = stats(sv);
    CHECK_EQ(sv->s->half_open, 8);
    CHECK_EQ(sv->s->conn_live, 8);       /* the table's other half stays free */
    CHECK_EQ(a.TcpExtSyncookiesSent, 1992);
    CHECK_EQ(a.TcpExtTCPReqQFullDoCookies, 1992);
    CHECK_EQ(accept_calls, 0);           /* no spoofed source reached the application */
    stream *st = client_open(cl, SIP, 80, 200000, 200000);
    CHECK(world_run(&w, 30000000000ull, all_streams_done, NULL));
    CHECK(st->established);
    CHECK_EQ(st->rx_seen, 200000);
    CHECK_EQ(st->rx_bad, 0);
    a = stats(sv);
    CHECK_EQ(a.TcpExtSyncookiesRecv, 1);
    CHECK_EQ(a.TcpExtSyncookiesFailed, 0);
    CHECK_EQ(accept_calls, 1);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_ESTABLISHED], 1);
    /* the spoofed half-opens time out (syn_retries) without an event */
    world_run(&w, 60000000000ull, NULL, NULL);
    CHECK_EQ(sv->s->half_open, 0);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_TIMEOUT], 0);
    world_free(&w);
}

/* syn_cookies = always, with window scale and timestamps: the options survive the cookie
 * (the peer's shift in our TSval), a 1 MB transfer each way uses windows > 64 KB. */
static void test_cookie_options(void)
{
    pn_sim_params p;
    pn_sim_params_default(&p);
    p.delay_ns = 2000000;
    world w;
    world_init(&w, &p);
    pn_config c;
    cfg_for(&c, CIP);
    c.window_scale = c.timestamps = 1;
    c.conn_recv_buf_size = 262144;
    node *cl = world_add(&w, &c, CIP, 1);
    cfg_for(&c, SIP);
    c.window_scale = c.timestamps = 1;
    c.conn_recv_buf_size = 262144;
    c.syn_cookies = PN_SYN_COOKIES_ALWAYS;
    c.send_buf_1k = 0;                   /* MSS up to MTU - 40: the cookie's 1460 shows */
    node *sv = world_add(&w, &c, SIP, 2);
    pn_listen(sv->s, 80);
    sv->default_tx = 1000000;
    sv->default_rx = 1000000;
    stream *st = client_open(cl, SIP, 80, 1000000, 1000000);
    CHECK(world_run(&w, 60000000000ull, all_streams_done, NULL));
    CHECK_EQ(st->rx_seen, 1000000);
    CHECK_EQ(st->rx_bad, 0);
    pn_stats a = stats(sv);
    CHECK_EQ(a.TcpExtSyncookiesSent, 1);
    CHECK_EQ(a.TcpExtSyncookiesRecv, 1);
    pn_conn_info ci;
    CHECK_EQ(pn_conn_info_get(cl->s, st->conn, &ci), 0);
    CHECK(ci.snd_wnd > 65535);           /* the server's scaled window reached the client */
    uint32_t sconn = PN_NONE32;
    for (uint32_t i = 0; i < sv->nstreams; i++)
        if (sv->streams[i].used == 1)
            sconn = sv->streams[i].conn;
    CHECK_EQ(pn_conn_info_get(sv->s, sconn, &ci), 0);
    CHECK(ci.snd_wnd > 65535);           /* and the client's, from the cookie's TSval */
    CHECK_EQ(ci.mss, 1460 - 12);        /* the MSS the cookie named, less timestamps */
    world_free(&w);
}

/* Forged final ACKs: while cookies are being sent, a guessed ACK fails validation and gets
 * an RST (no connection); with no recent cookie it is not even tried. */
static uint32_t rsts_seen;
static void count_rst(world *w, const uint8_t *f, uint32_t len)
{
    (void)w;
    if (len >= 54 && f[23] == 6 && (f[34 + 13] & 0x04))
        rsts_seen++;
}

static void test_forged_cookie_ack(void)
{
    pn_sim_params p;
    pn_sim_params_default(&p);
    world w;
    world_init(&w, &p);
    pn_config c;
    cfg_for(&c, SIP);
    c.syn_cookies = PN_SYN_COOKIES_ALWAYS;
    node *sv = world_add(&w, &c, SIP, 2);
    pn_listen(sv->s, 80);
    pn_link *raw = world_add_raw(&w, 9);
    w.raw_hook = count_rst;
    rsts_seen = 0;
    uint8_t f[100];
    raw_seg r = {raw->mac, sv->mac, RIP, SIP, 5555, 80, 1000, 12345, 0x10, 65535,
                 NULL, 0, NULL, 0};
    raw_send(raw, f, build_tcp_frame(f, &r));     /* no cookie sent yet */
    world_run(&w, 1000000, NULL, NULL);
    CHECK_EQ(stats(sv).TcpExtSyncookiesFailed, 0);
    CHECK_EQ(rsts_seen, 1);
    r.flags = 0x02;                               /* a SYN: a cookie goes out */
    raw_send(raw, f, build_tcp_frame(f, &r));
    world_run(&w, 1000000, NULL, NULL);
    r.flags = 0x10;
    r.seq = 1001;
    for (int i = 0; i < 100; i++) {
        r.ack = rnd();
        raw_send(raw, f, build_tcp_frame(f, &r));
    }
    world_run(&w, 1000000, NULL, NULL);
    pn_stats a = stats(sv);
    CHECK_EQ(a.TcpExtSyncookiesFailed, 100);
    CHECK_EQ(a.TcpExtSyncookiesRecv, 0);
    CHECK_EQ(sv->s->conn_live, 0);
    CHECK_EQ(rsts_seen, 101);
    world_free(&w);
}

/* A raw peer for the server side: handshake from raw frames, then crafted segments. */
static struct {
    pn_link *raw;
    node *sv;
    uint32_t iss, s_iss, s_seq, s_ack, acks, rsts;
    uint16_t s_wnd;
} rp;

static void rp_hook(world *w, const uint8_t *f, uint32_t len)
{
    (void)w;
    if (len < 54 || f[23] != 6)
        return;
    const uint8_t *t = f + 34;
    uint32_t seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
    uint32_t ack = (uint32_t)t[8] << 24 | (uint32_t)t[9] << 16 | (uint32_t)t[10] << 8 | t[11];
    if ((t[13] & 0x12) == 0x12)
        rp.s_iss = seq;
    if (t[13] & 0x04)
        rp.rsts++;
    else if (t[13] == 0x10)
        rp.acks++;
    rp.s_seq = seq;
    rp.s_ack = ack;
    rp.s_wnd = (uint16_t)(t[14] << 8 | t[15]);
}

/* A segment from the raw peer (port 4444) to the server's port 80 with these options. */
static void rp_send_opts(uint8_t flags, uint32_t seq, uint32_t ack, const uint8_t *opts,
                         uint32_t optlen, const uint8_t *data, uint32_t n)
{
    uint8_t f[1600];
    raw_seg r = {rp.raw->mac, rp.sv->mac, RIP, SIP, 4444, 80, seq, ack, flags, 65535,
                 opts, optlen, data, n};
    raw_send(rp.raw, f, build_tcp_frame(f, &r));
}

/* The same with an MSS on a SYN and no other option. */
static void rp_send(uint8_t flags, uint32_t seq, uint32_t ack, const uint8_t *data, uint32_t n)
{
    static const uint8_t mss[4] = {2, 4, 0x05, 0xb4};
    bool syn = flags & 0x02;
    rp_send_opts(flags, seq, ack, syn ? mss : NULL, syn ? 4 : 0, data, n);
}

/* A server (config sc) listening on port 80 and the raw peer, before any segment. */
static void rp_world(world *w, const pn_config *sc)
{
    pn_sim_params p;
    pn_sim_params_default(&p);
    world_init(w, &p);
    rp.sv = world_add(w, sc, SIP, 2);
    pn_listen(rp.sv->s, 80);
    rp.raw = world_add_raw(w, 9);
    w->raw_hook = rp_hook;
    rp.iss = 777;
    rp.acks = rp.rsts = 0;
}

/* rp_world, then the raw peer's handshake. */
static void rp_setup(world *w, const pn_config *sc)
{
    rp_world(w, sc);
    rp_send(0x02, rp.iss, 0, NULL, 0);
    world_run(w, 1000000, NULL, NULL);
    rp_send(0x10, rp.iss + 1, rp.s_iss + 1, NULL, 0);
    world_run(w, 1000000, NULL, NULL);
}

static uint32_t rp_conn(void)
{
    for (uint32_t i = 0; i < rp.sv->nstreams; i++)
        if (rp.sv->streams[i].used == 1)
            return rp.sv->streams[i].conn;
    return PN_NONE32;
}

/* A segment from the raw peer with a timestamp option (NOP NOP TS), and an MSS on a SYN. */
static void rp_send_ts(uint8_t flags, uint32_t seq, uint32_t ack, uint32_t tsval,
                       const uint8_t *data, uint32_t n)
{
    uint8_t o[16] = {2, 4, 0x05, 0xb4, 1, 1, 8, 10};
    for (int i = 0; i < 4; i++)
        o[8 + i] = (uint8_t)(tsval >> (24 - 8 * i));   /* TSecr (o[12..15]) stays 0 */
    bool syn = flags & 0x02;
    rp_send_opts(flags, seq, ack, syn ? o : o + 4, syn ? 16 : 12, data, n);
}

/* Replies to out-of-window segments are rate-limited per connection (oow_rate_limit_ms,
 * as Linux's tcp_oow_rate_limited), so a confused or hostile peer cannot make us storm:
 * ten duplicate SYNs in SYN-RECEIVED draw one SYN-ACK, ten PAWS-rejected segments (an
 * older TSval) one ACK, each 1 ms apart; the rest are counted. */
static void test_oow_replies_are_rate_limited(void)
{
    pn_config c;
    cfg_for(&c, SIP);
    c.timestamps = 1;
    world w;
    rp_world(&w, &c);
    rp_send_ts(0x02, rp.iss, 0, 100, NULL, 0);
    world_run(&w, 1000000, NULL, NULL);
    pn_stats a = stats(rp.sv);
    for (int i = 0; i < 10; i++) {
        rp_send_ts(0x02, rp.iss, 0, 100, NULL, 0);
        world_run(&w, 1000000, NULL, NULL);
    }
    pn_stats b = stats(rp.sv);
    CHECK_EQ(b.TcpOutSegs - a.TcpOutSegs, 1);
    CHECK_EQ(b.TcpExtTCPACKSkippedSynRecv - a.TcpExtTCPACKSkippedSynRecv, 9);
    /* complete the handshake; then ten in-window segments whose TSval went back */
    rp_send_ts(0x10, rp.iss + 1, rp.s_iss + 1, 200, NULL, 0);
    world_run(&w, 1000000, NULL, NULL);
    pn_conn_info ci;
    CHECK_EQ(pn_conn_info_get(rp.sv->s, rp_conn(), &ci), 0);
    CHECK_EQ(ci.state, PN_TCP_ESTABLISHED);
    static const uint8_t x[10] = "0123456789";
    w.now += 600000000ull;   /* (virtual time) past the limit the SYN-ACK above set */
    a = stats(rp.sv);
    for (int i = 0; i < 10; i++) {
        rp_send_ts(0x18, rp.iss + 1, rp.s_iss + 1, 50, x, 10);
        world_run(&w, 1000000, NULL, NULL);
    }
    b = stats(rp.sv);
    CHECK_EQ(b.TcpExtPAWSEstabRejected - a.TcpExtPAWSEstabRejected, 10);
    CHECK_EQ(b.TcpOutSegs - a.TcpOutSegs, 1);
    CHECK_EQ(b.TcpExtTCPACKSkippedPAWS - a.TcpExtTCPACKSkippedPAWS, 9);
    CHECK_EQ(node_stream(rp.sv, rp_conn())->rx_seen, 0);   /* none of it was taken */
    world_free(&w);
}

/* max_ooo_segs / max_ooo_bytes: holes beyond the bounds are dropped and counted; the data
 * still arrives complete once the holes are filled (the peer resends what was dropped). */
static void test_ooo_bounds(void)
{
    pn_config c;
    cfg_for(&c, SIP);
    c.max_ooo_segs = 4;
    c.max_ooo_bytes = 3000;
    world w;
    rp_setup(&w, &c);
    uint32_t conn = rp_conn();
    CHECK(conn != PN_NONE32);
    static uint8_t d[100 * 20];
    gen_bytes(5, 0, d, sizeof d);
    uint32_t s0 = rp.iss + 1;
    for (int i = 1; i < 20; i += 2)               /* 10 holes: odd segments only */
        rp_send(0x18, s0 + (uint32_t)i * 100, rp.s_iss + 1, d + i * 100, 100);
    world_run(&w, 1000000, NULL, NULL);
    pn_conn *pc = &rp.sv->s->conns[conn];
    CHECK_EQ(pc->ooo_n, 4);
    CHECK_EQ(pc->ooo_bytes, 400);
    pn_stats a = stats(rp.sv);
    CHECK_EQ(a.TcpExtTCPOFOQueue, 4);
    CHECK_EQ(a.TcpExtTCPOFODrop, 6);
    /* one big range beyond the byte bound */
    static uint8_t big[1400];
    rp_send(0x18, s0 + 5000, rp.s_iss + 1, big, 1400);
    rp_send(0x18, s0 + 7000, rp.s_iss + 1, big, 1400);   /* would make 3200 > 3000 */
    world_run(&w, 1000000, NULL, NULL);
    CHECK_EQ(stats(rp.sv).TcpExtTCPOFODrop, 8);   /* the count bound, then the byte bound */
    /* the peer resends everything in order: all 2000 bytes arrive */
    for (int i = 0; i < 20; i++)
        rp_send(0x18, s0 + (uint32_t)i * 100, rp.s_iss + 1, d + i * 100, 100);
    world_run(&w, 1000000, NULL, NULL);
    stream *ss = node_stream(rp.sv, conn);
    CHECK_EQ(ss->rx_seen, 2000);
    CHECK_EQ(pc->ooo_n, 0);
    world_free(&w);
}

/* RFC 5961 on an established connection, each answer and the state after. */
static void test_rfc5961_answers(void)
{
    pn_config c;
    cfg_for(&c, SIP);
    world w;
    rp_setup(&w, &c);
    uint32_t conn = rp_conn();
    pn_conn_info ci;
    CHECK_EQ(pn_conn_info_get(rp.sv->s, conn, &ci), 0);
    CHECK_EQ(ci.state, PN_TCP_ESTABLISHED);
    uint32_t rn = rp.iss + 1, una = rp.s_iss + 1;
    pn_stats a0 = stats(rp.sv);
    /* SYN on an established connection (in and out of the window): challenge ACKs */
    rp_send(0x02, rn + 10, 0, NULL, 0);
    rp_send(0x02, rn + 100000000, 0, NULL, 0);
    world_run(&w, 1000000, NULL, NULL);
    pn_stats a1 = stats(rp.sv);
    CHECK_EQ(a1.TcpExtTCPChallengeACK - a0.TcpExtTCPChallengeACK, 2);
    CHECK_EQ(rp.s_ack, rn);              /* the challenge ACK names RCV.NXT */
    /* an ACK for data never sent (future ACK, RFC 5961 5.2): challenge ACK, dropped */
    static const uint8_t x[10] = "0123456789";
    rp_send(0x18, rn, una + 5000, x, 10);
    world_run(&w, 1000000, NULL, NULL);
    pn_stats a2 = stats(rp.sv);
    CHECK_EQ(a2.TcpExtTCPChallengeACK - a1.TcpExtTCPChallengeACK, 1);
    CHECK_EQ(node_stream(rp.sv, conn)->rx_seen, 0);    /* its data was not taken */
    /* an ACK older than SND.UNA - MAX.SND.WND (RFC 5961 5.2): challenge ACK, dropped */
    rp_send(0x18, rn, una - 200000, x, 10);
    world_run(&w, 1000000, NULL, NULL);
    pn_stats a3 = stats(rp.sv);
    CHECK_EQ(a3.TcpExtTCPChallengeACK - a2.TcpExtTCPChallengeACK, 1);
    CHECK_EQ(node_stream(rp.sv, conn)->rx_seen, 0);
    /* data outside the window: an ACK (RFC 9293 3.10.7.4), no challenge, nothing taken */
    uint32_t acks = rp.acks;
    rp_send(0x18, rn + 1000000, una, x, 10);
    world_run(&w, 1000000, NULL, NULL);
    CHECK(rp.acks > acks);
    CHECK_EQ(rp.s_ack, rn);
    CHECK_EQ(stats(rp.sv).TcpExtTCPChallengeACK, a3.TcpExtTCPChallengeACK);
    /* in-window RST not at RCV.NXT: challenge ACK, still established */
    rp_send(0x04, rn + 5, 0, NULL, 0);
    world_run(&w, 1000000, NULL, NULL);
    CHECK_EQ(stats(rp.sv).TcpExtTCPChallengeACK - a3.TcpExtTCPChallengeACK, 1);
    CHECK_EQ(pn_conn_info_get(rp.sv->s, conn, &ci), 0);
    CHECK_EQ(ci.state, PN_TCP_ESTABLISHED);
    /* good data still flows */
    rp_send(0x18, rn, una, x, 10);
    world_run(&w, 1000000, NULL, NULL);
    CHECK_EQ(node_stream(rp.sv, conn)->rx_seen, 10);
    /* RST exactly at RCV.NXT: reset, with the reason */
    rp_send(0x04, rn + 10, 0, NULL, 0);
    world_run(&w, 1000000, NULL, NULL);
    CHECK_EQ(rp.sv->counts[PN_EV_CONNECTION_RESET], 1);
    pn_stats a4 = stats(rp.sv);
    CHECK_EQ(a4.TcpEstabResets, 1);
    CHECK_EQ(a4.TcpInRsts, 2);
    world_free(&w);
}

/* RFC 5961 7 with challenge_ack_limit = 1: one challenge ACK a second, the rest skipped
 * (the budget's half is rounded up, so a limit of 1 is not a limit of 0). */
static void test_challenge_ack_limit_one(void)
{
    pn_config c;
    cfg_for(&c, SIP);
    c.challenge_ack_limit = 1;
    world w;
    rp_setup(&w, &c);
    uint32_t rn = rp.iss + 1;
    pn_stats a0 = stats(rp.sv);
    for (int i = 0; i < 3; i++)
        rp_send(0x02, rn + 10, 0, NULL, 0);
    world_run(&w, 1000000, NULL, NULL);
    pn_stats a1 = stats(rp.sv);
    CHECK_EQ(a1.TcpExtTCPChallengeACK - a0.TcpExtTCPChallengeACK, 1);
    CHECK_EQ(a1.TcpExtTCPACKSkippedChallenge - a0.TcpExtTCPACKSkippedChallenge, 2);
    world_free(&w);
}

/* Per-source limit: the third connection from one address is not accepted. */
static void test_per_source_limit(void)
{
    pn_sim_params p;
    pn_sim_params_default(&p);
    world w;
    world_init(&w, &p);
    pn_config c;
    cfg_for(&c, CIP);
    c.syn_retries = 1;
    node *cl = world_add(&w, &c, CIP, 1);
    cfg_for(&c, SIP);
    c.max_conns_per_source = 2;
    node *sv = world_add(&w, &c, SIP, 2);
    pn_listen(sv->s, 80);
    for (int i = 0; i < 3; i++)
        client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 10000000000ull, NULL, NULL);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_ESTABLISHED], 2);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_ESTABLISHED], 2);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_TIMEOUT], 1);
    CHECK_EQ(stats(sv).PnPerSourceDrops, 2);   /* the SYN and its one retry */
    world_free(&w);
}

/* A peer that never reads (zero window forever, every probe answered) and one that never
 * ACKs: each connection ends at its limit with its reason; a third connection on the same
 * stack keeps moving data. */
static struct { pn_link *raw; node *cl; uint32_t iss; uint32_t rcv[2]; } zz;
static uint32_t reasons[8];
static void reason_hook(node *n, pn_event *e)
{
    (void)n;
    if (e->type == PN_EV_CONNECTION_TIMEOUT && e->reason < 8)
        reasons[e->reason]++;
}

static void zz_hook(world *w, const uint8_t *f, uint32_t len)
{
    (void)w;
    if (len < 54 || f[23] != 6)
        return;
    const uint8_t *t = f + 34;
    uint32_t thl = (uint32_t)(t[12] >> 4) * 4, plen = len - 34 - thl;
    uint32_t seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
    uint16_t sport = (uint16_t)(t[0] << 8 | t[1]);
    uint16_t dport = (uint16_t)(t[2] << 8 | t[3]);
    int k = dport == 81;                 /* port 80: zero window; 81: never ACKs */
    uint8_t out[100], mss[4] = {2, 4, 0x05, 0xb4};
    raw_seg r = {zz.raw->mac, zz.cl->mac, RIP, CIP, dport, sport, zz.iss + 1, 0, 0x10,
                 k ? 65535 : 0, NULL, 0, NULL, 0};
    if (t[13] & 0x02) {
        zz.rcv[k] = seq + 1;
        r.seq = zz.iss;
        r.ack = seq + 1;
        r.flags = 0x12;
        r.opts = mss;
        r.optlen = 4;
        raw_send(zz.raw, out, build_tcp_frame(out, &r));
        return;
    }
    if (k == 1 || !plen)
        return;                          /* never ACKs / nothing to answer */
    r.ack = zz.rcv[0];                   /* every probe answered, window still zero */
    raw_send(zz.raw, out, build_tcp_frame(out, &r));
}

static void test_zero_window_and_silent_peers(void)
{
    pn_sim_params p;
    pn_sim_params_default(&p);
    world w;
    world_init(&w, &p);
    pn_config c;
    cfg_for(&c, CIP);
    c.zero_window_timeout_ms = 20000;
    node *cl = world_add(&w, &c, CIP, 1);
    cl->hook = reason_hook;
    memset(reasons, 0, sizeof reasons);
    cfg_for(&c, SIP);
    node *sv = world_add(&w, &c, SIP, 2);
    pn_listen(sv->s, 90);
    sv->default_rx = UINT64_MAX;
    zz.cl = cl;
    zz.raw = world_add_raw(&w, 9);
    zz.iss = 3000;
    w.raw_hook = zz_hook;
    pn_stack_add_neighbour(cl->s, RIP, zz.raw->mac);
    stream *z = client_open(cl, RIP, 80, 0, 0);
    stream *q = client_open(cl, RIP, 81, 0, 0);
    stream *good = client_open(cl, SIP, 90, 400000000ull, 0);
    world_run(&w, 200000000ull, NULL, NULL);
    CHECK(z->established && q->established && good->established);
    static uint8_t buf[5000];
    CHECK_EQ(pn_send(cl->s, z->conn, buf, sizeof buf, 0), 5000);
    CHECK_EQ(pn_send(cl->s, q->conn, buf, sizeof buf, 0), 5000);
    world_run(&w, 150000000000ull, NULL, NULL);
    CHECK(z->timeout);
    CHECK(q->timeout);
    CHECK_EQ(reasons[PN_REASON_ZERO_WINDOW], 1);
    CHECK_EQ(reasons[PN_REASON_RETRIES], 1);
    pn_stats a = stats(cl);
    CHECK_EQ(a.PnZeroWindowAborts, 1);
    CHECK_EQ(a.TcpExtTCPAbortOnTimeout, 2);
    CHECK(!good->timeout && !good->reset);
    CHECK(good->tx_sent > 100000000ull);   /* the other connection kept moving data */
    world_free(&w);
}


/* RFC 6191: with timestamps, a SYN reopens a TIME_WAIT connection when its TSval is newer
 * than TS.Recent, whatever its sequence number, and not when it is older, whatever its
 * sequence number. */
static uint32_t tw_synacks;
static void tw_hook(world *w, const uint8_t *f, uint32_t len)
{
    rp_hook(w, f, len);
    if (len >= 54 && f[23] == 6 && (f[34 + 13] & 0x12) == 0x12)
        tw_synacks++;
}

static void ts_send(uint8_t flags, uint32_t seq, uint32_t ack, uint32_t tsval)
{
    uint8_t f[200], o[16] = {1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 0x05, 0xb4};
    o[4] = (uint8_t)(tsval >> 24); o[5] = (uint8_t)(tsval >> 16);
    o[6] = (uint8_t)(tsval >> 8); o[7] = (uint8_t)tsval;
    raw_seg r = {rp.raw->mac, rp.sv->mac, RIP, SIP, 4444, 80, seq, ack, flags, 65535,
                 o, (flags & 0x02) ? 16 : 12, NULL, 0};
    raw_send(rp.raw, f, build_tcp_frame(f, &r));
}

static void test_time_wait_rfc6191(void)
{
    pn_sim_params p;
    pn_sim_params_default(&p);
    world w;
    world_init(&w, &p);
    pn_config c;
    cfg_for(&c, SIP);
    c.timestamps = 1;
    rp.sv = world_add(&w, &c, SIP, 2);
    rp.sv->auto_fin = 1;
    pn_listen(rp.sv->s, 80);
    rp.raw = world_add_raw(&w, 9);
    w.raw_hook = tw_hook;
    tw_synacks = 0;
    uint32_t iss = 50000;
    ts_send(0x02, iss, 0, 1000);
    world_run(&w, 1000000, NULL, NULL);
    CHECK_EQ(tw_synacks, 1);
    uint32_t una = rp.s_iss + 1;
    ts_send(0x10, iss + 1, una, 1001);
    world_run(&w, 1000000, NULL, NULL);
    ts_send(0x11, iss + 1, una, 1002);            /* our FIN; the server answers FIN */
    world_run(&w, 100000000, NULL, NULL);
    ts_send(0x10, iss + 2, rp.s_seq + 1, 1003);   /* ACK of its FIN: it enters TIME_WAIT */
    world_run(&w, 100000000, NULL, NULL);
    CHECK_EQ(rp.sv->counts[PN_EV_CONNECTION_CLOSED], 1);
    CHECK_EQ(rp.sv->s->tw_used, 1);
    /* higher sequence, older TSval: not a new incarnation (answered with an ACK) */
    ts_send(0x02, iss + 100000, 0, 900);
    world_run(&w, 1000000, NULL, NULL);
    CHECK_EQ(tw_synacks, 1);
    CHECK_EQ(rp.sv->s->tw_used, 1);
    /* lower sequence, newer TSval: reopens */
    ts_send(0x02, iss - 100000, 0, 2000);
    world_run(&w, 1000000, NULL, NULL);
    CHECK_EQ(tw_synacks, 2);
    CHECK_EQ(rp.sv->s->tw_used, 0);
    CHECK_EQ(stats(rp.sv).TcpExtTWRecycled, 1);
    world_free(&w);
}

/* A valid cookie ACK processed in the same poll as a later SYN's cookie (a flood's SYNs and
 * a real client's ACK in one burst) is still accepted. */
static void test_cookie_ack_in_a_flood_burst(void)
{
    pn_config c;
    cfg_for(&c, SIP);
    c.syn_cookies = PN_SYN_COOKIES_ALWAYS;
    world w;
    rp_world(&w, &c);
    rp_send(0x02, 777, 0, NULL, 0);
    world_run(&w, 1000000, NULL, NULL);
    uint8_t f[100];
    for (int i = 0; i < 8; i++) {                 /* the flood and the ACK, one burst */
        raw_seg r = {rp.raw->mac, rp.sv->mac, IP(10, 9, 9, (uint8_t)(i + 1)), SIP, 999, 80,
                     rnd(), 0, 0x02, 65535, NULL, 0, NULL, 0};
        raw_send(rp.raw, f, build_tcp_frame(f, &r));
    }
    rp_send(0x10, 778, rp.s_iss + 1, NULL, 0);
    world_run(&w, 1000000, NULL, NULL);
    pn_stats a = stats(rp.sv);
    CHECK_EQ(a.TcpExtSyncookiesRecv, 1);
    CHECK_EQ(a.TcpOutRsts, 0);
    CHECK_EQ(rp.sv->counts[PN_EV_CONNECTION_ESTABLISHED], 1);
    world_free(&w);
}

/* Shared address (the link's PN_LINK_OWN_IP unset: the kernel owns the address too, as
 * af_packet/af_xdp in shared mode): a segment for a flow the stack has no connection or
 * listener for belongs to the kernel, and the stack must not answer it with a RST. With
 * its own address the stack answers as RFC 9293 3.10.7.1 says. */
static void test_shared_address_is_silent_about_other_flows(void)
{
    for (int shared = 0; shared <= 1; shared++) {
        pn_sim_params p;
        pn_sim_params_default(&p);
        world w;
        world_init(&w, &p);
        pn_config c;
        cfg_for(&c, SIP);
        node *sv = world_add(&w, &c, SIP, 2);
        pn_listen(sv->s, 80);
        if (shared)
            sv->s->link->caps &= ~(uint32_t)PN_LINK_OWN_IP;
        pn_link *raw = world_add_raw(&w, 9);
        pn_stack_add_neighbour(sv->s, RIP, raw->mac);
        uint8_t f[100];
        raw_seg r = {raw->mac, sv->mac, RIP, SIP, 40000, 22, 1000, 5000, 0x10, 1000,
                     NULL, 0, (const uint8_t *)"x", 1};
        raw_send(raw, f, build_tcp_frame(f, &r));
        r.flags = 0x02;             /* SYN */
        r.plen = 0;
        raw_send(raw, f, build_tcp_frame(f, &r));
        world_run(&w, 1000000, NULL, NULL);
        pn_stats a = stats(sv);
        CHECK_EQ(a.TcpOutRsts, shared ? 0u : 2u);
        CHECK_EQ(a.PnNotOursDrops, shared ? 2u : 0u);
        CHECK_EQ(w.raw_rx, shared ? 0u : 2u);
        world_free(&w);
    }
}

static void test_stats_names(void)
{
    size_t n = 0;
    while (pn_stats_names[n])
        n++;
    CHECK_EQ(n, sizeof(pn_stats) / sizeof(uint64_t));
    CHECK(strcmp(pn_stats_names[n - 1], "TcpExtTCPLossProbes") == 0);
    CHECK(strcmp(pn_reason_str(PN_REASON_ZERO_WINDOW), "unknown reason") != 0);
}

int main(void)
{
    RUN(test_syn_flood);
    RUN(test_cookie_options);
    RUN(test_forged_cookie_ack);
    RUN(test_ooo_bounds);
    RUN(test_rfc5961_answers);
    RUN(test_oow_replies_are_rate_limited);
    RUN(test_challenge_ack_limit_one);
    RUN(test_per_source_limit);
    RUN(test_zero_window_and_silent_peers);
    RUN(test_time_wait_rfc6191);
    RUN(test_cookie_ack_in_a_flood_burst);
    RUN(test_shared_address_is_silent_about_other_flows);
    RUN(test_stats_names);
    HARNESS_DONE();
}
