/* test_close.c -- closing: half close with FIN carrying the unconsumed bytes, the
 * four-way close into TIME_WAIT on both sides, simultaneous close, RST both ways,
 * RFC 5961 RST/SYN checks, the TIME_WAIT pool when full, FIN retransmission in TIME_WAIT.
 * Over five hundred lines as one subject's tests, each of which reads on its own. */
#include "pn_internal.h"
#include "util.h"

static uint32_t SIP, CIP;

/* A client with config `cc` (cfg_for(CIP) and the test's knobs) and a server listening
 * on port 80, with the client's TIME_WAIT pool and event queue sizes. */
static void setup_client(world *w, node **cl, node **sv, const pn_config *cc)
{
    pn_config c;
    cfg_for(&c, SIP);
    c.max_time_wait_conn_cnt = cc->max_time_wait_conn_cnt;
    c.max_events = cc->max_events;
    world_pair(w, NULL, cc, &c, cl, sv);
}

/* A client and a listening server; max_events 0 = the core's own sizing. */
static void setup_events(world *w, node **cl, node **sv, uint32_t tw, uint32_t max_events)
{
    pn_config c;
    cfg_for(&c, CIP);
    c.max_time_wait_conn_cnt = tw;
    c.max_events = max_events;
    setup_client(w, cl, sv, &c);
}

static void setup(world *w, node **cl, node **sv, uint32_t tw)
{
    setup_events(w, cl, sv, tw, 0);
}

static bool est2(world *w, void *ctx)
{
    (void)ctx;
    return w->nodes[0].counts[PN_EV_CONNECTION_ESTABLISHED] >= 1 &&
           w->nodes[1].counts[PN_EV_CONNECTION_ESTABLISHED] >= 1;
}

static stream *server_stream(node *sv)
{
    for (uint32_t i = 0; i < sv->nstreams; i++)
        if (sv->streams[i].used)
            return &sv->streams[i];
    return NULL;
}

/* server: keep every byte unconsumed; at FIN, reply with 3000 bytes and our FIN */
static uint32_t fin_len;
static void keep_all_then_reply(node *n, pn_event *e)
{
    if (e->type == PN_EV_CONNECTION_ESTABLISHED)
        node_stream(n, e->conn_id)->keep_all = 1;
    if (e->type == PN_EV_FIN) {
        fin_len = e->len;
        stream *st = node_stream(n, e->conn_id);
        st->tx_total = 3000;
        stream_pump(n, st);
        CHECK_EQ(pn_send_fin(n->s, e->conn_id), 0);
        CHECK_EQ(pn_send(n->s, e->conn_id, "x", 1, 0), PN_ESTATE);
    }
}

static void test_half_close(void)
{
    world w;
    node *cl, *sv;
    setup(&w, &cl, &sv, 100);
    sv->hook = keep_all_then_reply;
    stream *st = client_open(cl, SIP, 80, 5000, 3000);
    world_run(&w, 5000000000ull, est2, NULL);
    stream_pump(cl, st);
    CHECK_EQ(pn_send_fin(cl->s, st->conn), 0);
    CHECK_EQ(pn_send_fin(cl->s, st->conn), PN_ESTATE);
    CHECK_EQ(pn_send(cl->s, st->conn, "x", 1, 0), PN_ESTATE);
    pn_conn_info ci;
    pn_conn_info_get(cl->s, st->conn, &ci);
    CHECK_EQ(ci.state, PN_TCP_FIN_WAIT_1);
    world_run(&w, 5000000000ull, NULL, NULL);
    CHECK_EQ(fin_len, 5000);               /* FIN presents every unconsumed byte */
    stream *ss = server_stream(sv);
    CHECK(ss != NULL);
    if (ss) {
        CHECK_EQ(ss->rx_seen, 5000);
        CHECK_EQ(ss->rx_bad, 0);
        CHECK(ss->fin_seen);
        CHECK(ss->closed);
    }
    CHECK_EQ(st->rx_seen, 3000);            /* data after our FIN still arrives */
    CHECK_EQ(st->rx_bad, 0);
    CHECK(st->fin_seen);
    CHECK(st->closed);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_CLOSED], 1);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_CLOSED], 1);
    pn_stats a, b;
    pn_stack_stats(cl->s, &a);
    pn_stack_stats(sv->s, &b);
    CHECK_EQ(a.TcpExtTW, 1);
    CHECK_EQ(b.TcpExtTW, 1);               /* the passive closer enters TIME_WAIT too */
    CHECK_EQ(pn_conn_info_get(cl->s, st->conn, &ci), PN_EBADCONN);
    /* TIME_WAIT lasts 2*MSL, then nothing is left */
    CHECK(pn_stack_next_timer(cl->s) != UINT64_MAX);
    world_run(&w, 70000000000ull, NULL, NULL);
    CHECK_EQ(cl->s->tw_used, 0);
    CHECK_EQ(pn_stack_next_timer(cl->s), UINT64_MAX);
    world_free(&w);
}

static void test_simultaneous_close(void)
{
    world w;
    node *cl, *sv;
    setup(&w, &cl, &sv, 100);
    stream *st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    stream *ss = server_stream(sv);
    CHECK_EQ(pn_send_fin(cl->s, st->conn), 0);
    CHECK_EQ(pn_send_fin(sv->s, ss->conn), 0);
    world_run(&w, 5000000000ull, NULL, NULL);
    CHECK_EQ(cl->counts[PN_EV_FIN], 1);
    CHECK_EQ(sv->counts[PN_EV_FIN], 1);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_CLOSED], 1);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_CLOSED], 1);
    pn_stats a;
    pn_stack_stats(cl->s, &a);
    CHECK_EQ(a.TcpExtTW, 1);
    CHECK_EQ(a.TcpRetransSegs, 0);
    world_free(&w);
}

static void test_rst_both_ways(void)
{
    world w;
    node *cl, *sv;
    setup(&w, &cl, &sv, 100);
    stream *st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    CHECK_EQ(pn_close(cl->s, st->conn), 0);
    CHECK_EQ(pn_close(cl->s, st->conn), PN_EBADCONN);
    world_run(&w, 5000000000ull, NULL, NULL);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_RESET], 1);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_RESET], 0);
    /* the other way */
    memset(cl->counts, 0, sizeof cl->counts);
    memset(sv->counts, 0, sizeof sv->counts);
    memset(sv->streams, 0, sv->nstreams * sizeof(stream));
    st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    stream *ss = server_stream(sv);
    CHECK(ss != NULL);
    CHECK_EQ(pn_close(sv->s, ss->conn), 0);
    world_run(&w, 5000000000ull, NULL, NULL);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_RESET], 1);
    CHECK(st->reset);
    pn_stats a;
    pn_stack_stats(sv->s, &a);
    CHECK_EQ(a.TcpOutRsts, 1);
    world_free(&w);
}

/* the server answers a FIN with its own FIN */
static void fin_back(node *n, pn_event *e)
{
    if (e->type == PN_EV_FIN)
        pn_send_fin(n->s, e->conn_id);
}

static void test_time_wait_pool_full(void)
{
    world w;
    node *cl, *sv;
    setup(&w, &cl, &sv, 2);
    sv->hook = fin_back;
    stream *st[5];
    for (int i = 0; i < 5; i++)
        st[i] = client_open(cl, SIP, 80, 100, 0);
    world_run(&w, 5000000000ull, NULL, NULL);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_ESTABLISHED], 5);
    for (int i = 0; i < 5; i++) {
        stream_pump(cl, st[i]);
        CHECK_EQ(pn_send_fin(cl->s, st[i]->conn), 0);
        world_run(&w, 1000000000ull, NULL, NULL);   /* close them one after another */
    }
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_CLOSED], 5);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_CLOSED], 5);
    pn_stats a;
    pn_stack_stats(cl->s, &a);
    CHECK_EQ(a.TcpExtTW, 5);
    CHECK_EQ(cl->s->tw_used, 2);            /* the oldest three were recycled */
    CHECK_EQ(sv->s->tw_used, 2);
    /* the newest two are the last closed: their ports */
    pn_tw *t = &cl->s->tw[cl->s->tw_new];
    pn_conn_info ci;
    (void)ci;
    CHECK(t->in_use);
    world_free(&w);
}

/* The client's last ACK is lost: the server's FIN comes again and TIME_WAIT re-ACKs it. */
static void test_time_wait_reack(void)
{
    world w;
    node *cl, *sv;
    setup(&w, &cl, &sv, 100);
    sv->hook = fin_back;
    stream *st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    /* drop the client's 2nd bare ACK from now: the handshake's was the 1st, so the next
     * two bare ACKs are the FIN's ack (none: FIN|ACK differs) and the final ACK */
    uint8_t m[42] = {0}, k[42] = {0};
    memcpy(m, cl->mac, 6);
    memset(k, 0xff, 6);
    m[41] = 0x10;
    k[41] = 0xff;
    CHECK(pn_sim_wire_drop_nth(w.wire, 1, 6, m, k, 42) >= 0);
    CHECK_EQ(pn_send_fin(cl->s, st->conn), 0);
    world_run(&w, 10000000000ull, NULL, NULL);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_CLOSED], 1);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_CLOSED], 1);
    pn_stats b;
    pn_stack_stats(sv->s, &b);
    CHECK(b.TcpRetransSegs >= 1);
    pn_sim_stats ws;
    pn_sim_wire_stats(w.wire, &ws);
    CHECK_EQ(ws.dropped, 1);
    world_free(&w);
}

/* RFC 5961: an in-window RST that is not at rcv_nxt, and a SYN, get a challenge ACK;
 * a RST exactly at rcv_nxt resets. */
static uint32_t raw_acks;
static void count_acks(world *w, const uint8_t *f, uint32_t len)
{
    (void)w;
    if (len >= 54 && f[12] == 8 && f[23] == 6 && f[47] == 0x10)
        raw_acks++;
}

static void test_rfc5961(void)
{
    world w;
    node *cl, *sv;
    setup(&w, &cl, &sv, 100);
    stream *st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    stream *ss = server_stream(sv);
    pn_conn_info ci;
    pn_conn_info_get(sv->s, ss->conn, &ci);
    /* a raw endpoint forges the client's frames (the wire delivers by destination MAC;
     * the server's replies go to the real client) */
    pn_link *raw = world_add_raw(&w, 9);
    w.raw_hook = count_acks;
    pn_conn_info cci;
    pn_conn_info_get(cl->s, st->conn, &cci);
    uint8_t f[200];
    raw_seg r = {cl->mac, sv->mac, CIP, SIP, cci.local_port, 80, ci.rcv_nxt + 100, 0,
                 0x04, 0, NULL, 0, NULL, 0};
    raw_send(raw, f, build_tcp_frame(f, &r));
    r.seq = ci.rcv_nxt;
    r.flags = 0x02;   /* SYN */
    raw_send(raw, f, build_tcp_frame(f, &r));
    r.seq = ci.rcv_nxt + 1000000;   /* out of window RST: silently dropped */
    r.flags = 0x04;
    raw_send(raw, f, build_tcp_frame(f, &r));
    r.seq = ci.rcv_nxt;             /* old ACK far below snd_una: challenge ACK */
    r.flags = 0x10;
    r.ack = ci.snd_una - 200000;
    r.wnd = 1000;
    raw_send(raw, f, build_tcp_frame(f, &r));
    world_run(&w, 1000000000ull, NULL, NULL);
    pn_stats b;
    pn_stack_stats(sv->s, &b);
    CHECK_EQ(b.TcpExtTCPChallengeACK, 3);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_RESET], 0);
    CHECK_EQ(pn_conn_info_get(sv->s, ss->conn, &ci), 0);
    CHECK_EQ(ci.state, PN_TCP_ESTABLISHED);
    /* rate limit: 2000 in-window RSTs in one virtual second -> a budget drawn from
     * [500, 1500) (RFC 5961 7, randomised as Linux); the rest counted as skipped */
    for (int i = 0; i < 2000; i++) {
        r.seq = ci.rcv_nxt + 1 + (uint32_t)i;
        r.flags = 0x04;
        raw_send(raw, f, build_tcp_frame(f, &r));
        if (i % 50 == 0)
            world_run(&w, 1000, NULL, NULL);
    }
    world_run(&w, 10000000ull, NULL, NULL);
    pn_stack_stats(sv->s, &b);
    CHECK(b.TcpExtTCPChallengeACK < 1500 + 3);
    CHECK(b.TcpExtTCPChallengeACK >= 500);
    CHECK_EQ(b.TcpExtTCPChallengeACK + b.TcpExtTCPACKSkippedChallenge, 2003);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_RESET], 0);
    /* exactly at rcv_nxt: reset */
    r.seq = ci.rcv_nxt;
    raw_send(raw, f, build_tcp_frame(f, &r));
    world_run(&w, 1000000000ull, NULL, NULL);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_RESET], 1);
    pn_stack_stats(sv->s, &b);
    CHECK_EQ(b.TcpEstabResets, 1);
    world_free(&w);
}

/* a segment for no connection gets a RST (RFC 9293 3.10.7.1) */
static void test_closed_port_rst(void)
{
    world w;
    node *cl, *sv;
    setup(&w, &cl, &sv, 100);
    pn_stack_add_neighbour(sv->s, CIP, cl->mac);
    pn_link *raw = world_add_raw(&w, 9);
    uint8_t f[200];
    raw_seg r = {cl->mac, sv->mac, CIP, SIP, 5555, 81, 1000, 77, 0x10, 100, NULL, 0, NULL, 0};
    raw_send(raw, f, build_tcp_frame(f, &r));
    r.flags = 0x04;   /* a RST is never answered */
    raw_send(raw, f, build_tcp_frame(f, &r));
    world_run(&w, 1000000000ull, NULL, NULL);
    pn_stats b;
    pn_stack_stats(sv->s, &b);
    CHECK_EQ(b.TcpOutRsts, 1);
    world_free(&w);
}


/* A closed connection on client port `lport` whose client side sits in TIME_WAIT (the
 * server answers the client's FIN with its own: fin_back). */
static void client_in_time_wait(world *w, node **cl, node **sv, uint16_t lport)
{
    setup(w, cl, sv, 100);
    (*sv)->hook = fin_back;
    uint32_t id;
    CHECK_EQ(pn_connect((*cl)->s, SIP, 80, lport, &id), 0);
    node_stream(*cl, id)->used = 1;
    world_run(w, 1000000000ull, est2, NULL);
    CHECK_EQ(pn_send((*cl)->s, id, "abc", 3, 0), 3);
    CHECK_EQ(pn_send_fin((*cl)->s, id), 0);
    world_run(w, 2000000000ull, NULL, NULL);
    CHECK_EQ((*cl)->counts[PN_EV_CONNECTION_CLOSED], 1);
    CHECK_EQ((*sv)->counts[PN_EV_CONNECTION_CLOSED], 1);
    CHECK_EQ((*cl)->s->tw_used, 1);
}

/* Reconnecting from the same port while both sides hold TIME_WAIT: the client reuses its
 * entry, the server's accepts the new SYN (RFC 6191, RFC 1122 4.2.2.13). */
static void test_time_wait_reuse(void)
{
    world w;
    node *cl, *sv;
    client_in_time_wait(&w, &cl, &sv, 45000);
    uint32_t id;
    CHECK_EQ(sv->s->tw_used, 1);
    CHECK_EQ(pn_connect(cl->s, SIP, 80, 45000, &id), 0);
    node_stream(cl, id)->used = 1;
    world_run(&w, 2000000000ull, NULL, NULL);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_ESTABLISHED], 2);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_ESTABLISHED], 2);
    CHECK_EQ(sv->s->tw_used, 0);
    world_free(&w);
}


/* RFC 7323 7.1 (as Linux): the TSval offset is a keyed hash of the address pair, so
 * TSval neither reveals our clock (the ISN is on the wire: an offset derived from it
 * gives the clock away) nor goes backwards when a 4-tuple is reused out of TIME_WAIT. */
static void test_timestamp_offset_is_per_address_pair(void)
{
    world w;
    node *cl, *sv;
    setup(&w, &cl, &sv, 100);
    sv->hook = fin_back;
    uint32_t id;
    CHECK_EQ(pn_connect(cl->s, SIP, 80, 45000, &id), 0);
    node_stream(cl, id)->used = 1;
    world_run(&w, 1000000000ull, est2, NULL);
    pn_conn *c = &cl->s->conns[id];
    uint32_t off1 = c->ts_offset;
    uint32_t clock_ms = pn_ts_now(cl->s, 0);
    CHECK(pn_ts_now(cl->s, off1) - (uint32_t)(c->iss * 2654435761u) != clock_ms);
    CHECK_EQ(pn_send_fin(cl->s, id), 0);
    world_run(&w, 2000000000ull, NULL, NULL);
    CHECK_EQ(cl->s->tw_used, 1);
    uint32_t tsval_before = pn_ts_now(cl->s, off1);
    CHECK_EQ(pn_connect(cl->s, SIP, 80, 45000, &id), 0);   /* the same 4-tuple again */
    node_stream(cl, id)->used = 1;
    world_run(&w, 2000000000ull, NULL, NULL);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_ESTABLISHED], 2);
    CHECK_EQ(cl->s->conns[id].ts_offset, off1);
    CHECK((int32_t)(pn_ts_now(cl->s, cl->s->conns[id].ts_offset) - tsval_before) >= 0);
    /* another peer address gets another offset */
    CHECK(pn_ts_offset(cl->s, IP(10, 0, 0, 77)) != off1);
    world_free(&w);
}

/* Reopening a 4-tuple from our own TIME_WAIT after a fast transfer: the ISN clock
 * (250k/s) has not caught up with the megabytes sent, so an ISN from it would lie inside
 * the old connection's sequence space. The new ISN starts above it (as Linux's
 * tcp_twsk_unique: snd_nxt + 65537), and the new connection works. */
static void test_time_wait_reopen_above_old_sequence_space(void)
{
    world w;
    node *cl, *sv;
    setup(&w, &cl, &sv, 100);
    sv->auto_fin = 1;
    sv->default_rx = 4000000;
    uint32_t id;
    CHECK_EQ(pn_connect(cl->s, SIP, 80, 45001, &id), 0);
    stream *st = node_stream(cl, id);
    memset(st, 0, sizeof *st);
    st->used = 1;
    st->conn = id;
    st->tx_total = 4000000;
    st->rx_expect = 0;
    st->send_fin_when_done = 1;
    CHECK(world_run(&w, 20000000000ull, all_streams_done, NULL));
    pn_conn_info ci;
    CHECK_EQ(pn_conn_info_get(cl->s, id, &ci), 0);
    uint32_t old_snd_nxt = ci.snd_nxt;
    world_run(&w, 1000000000ull, NULL, NULL);
    CHECK_EQ(cl->s->tw_used, 1);
    CHECK_EQ(pn_connect(cl->s, SIP, 80, 45001, &id), 0);
    CHECK_EQ(pn_conn_info_get(cl->s, id, &ci), 0);
    CHECK(seq_gt(ci.snd_una, old_snd_nxt));   /* snd_una = the new ISN */
    node_stream(cl, id)->used = 1;
    world_run(&w, 2000000000ull, NULL, NULL);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_ESTABLISHED], 2);
    world_free(&w);
}

/* A peer that keeps sending data (or SYNs that start no new incarnation) to a connection
 * in TIME_WAIT gets at most one ACK per oow_rate_limit_ms (as Linux), not one per
 * segment; a retransmitted FIN is still re-ACKed every time. */
static void test_time_wait_replies_are_rate_limited(void)
{
    world w;
    node *cl, *sv;
    client_in_time_wait(&w, &cl, &sv, 45002);
    pn_link *raw = world_add_raw(&w, 9);
    pn_stats a, b;
    pn_stack_stats(cl->s, &a);
    uint8_t f[100];
    for (int i = 0; i < 10; i++) {   /* ten data segments "from the server", 1 ms apart */
        raw_seg r = {raw->mac, cl->mac, SIP, CIP, 80, 45002, 5000u + (uint32_t)i, 1000,
                     0x18, 1000, NULL, 0, (const uint8_t *)"x", 1};
        raw_send(raw, f, build_tcp_frame(f, &r));
        world_run(&w, 1000000ull, NULL, NULL);
    }
    pn_stack_stats(cl->s, &b);
    CHECK_EQ(b.TcpOutSegs - a.TcpOutSegs, 1);
    CHECK_EQ(b.TcpExtTCPACKSkippedTimeWait - a.TcpExtTCPACKSkippedTimeWait, 9);
    world_free(&w);
}

/* Data and FIN in one segment: DATA first; FIN at the next poll with exactly the bytes the
 * application left; CLOSED after it (efvitcp: onData, then onFin with the rest). */
static char fin_seen[64];
static uint32_t order[8], norder;
static void leave3(node *n, pn_event *e)
{
    (void)n;
    if (norder < 8 && (e->type == PN_EV_DATA || e->type == PN_EV_FIN ||
                       e->type == PN_EV_CONNECTION_CLOSED))
        order[norder++] = e->type;
    if (e->type == PN_EV_DATA)
        CHECK_EQ(pn_keep(n->s, e->conn_id, 3), 0);
    if (e->type == PN_EV_FIN && e->len < sizeof fin_seen) {
        memcpy(fin_seen, e->data, e->len);
        fin_seen[e->len] = 0;
        pn_send_fin(n->s, e->conn_id);
    }
}

static void test_data_with_fin(void)
{
    world w;
    node *cl, *sv;
    setup(&w, &cl, &sv, 100);
    sv->hook = leave3;
    norder = 0;
    stream *st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    CHECK_EQ(pn_send(cl->s, st->conn, "hello world", 11, 1), 11);   /* held by `more` */
    CHECK_EQ(pn_send_fin(cl->s, st->conn), 0);                     /* goes with the FIN */
    pn_stats a;
    pn_stack_stats(cl->s, &a);
    world_run(&w, 5000000000ull, NULL, NULL);
    CHECK_EQ(norder, 3);
    CHECK_EQ(order[0], PN_EV_DATA);
    CHECK_EQ(order[1], PN_EV_FIN);
    CHECK_EQ(order[2], PN_EV_CONNECTION_CLOSED);
    CHECK(strcmp(fin_seen, "rld") == 0);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_CLOSED], 1);
    world_free(&w);
}

/* The event queue's positions are free-running uint32 counters: they wrap after 2^32
 * events (about 72 minutes at a million a second). Start both stacks just below the wrap
 * and run eight connections through data, a four-way close and TIME_WAIT across it: no
 * event may be lost or aliased, and every connection slot comes back. */
/* FIN_WAIT_2 whose peer never sends its FIN: fin_timeout_ms ends it (RST, TIMEOUT event
 * with PN_REASON_FIN_WAIT_2, PnFinWait2Timeouts); 0 keeps it forever. */
static uint32_t fw2_reason;
static void note_reason(node *n, pn_event *e)
{
    (void)n;
    if (e->type == PN_EV_CONNECTION_TIMEOUT)
        fw2_reason = e->reason;
}

static void fin_wait_2_run(uint32_t fin_timeout_ms, uint64_t wait_ns, bool expect_end)
{
    pn_config c;
    cfg_for(&c, CIP);
    CHECK_EQ(c.fin_timeout_ms, 60000);          /* Linux's default */
    c.fin_timeout_ms = fin_timeout_ms;
    world w;
    node *cl, *sv;
    setup_client(&w, &cl, &sv, &c);             /* auto_fin 0: the server never sends FIN */
    cl->hook = note_reason;
    fw2_reason = 0;
    stream *st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    CHECK_EQ(pn_send_fin(cl->s, st->conn), 0);
    uint32_t conn = st->conn;
    world_run(&w, 1000000000ull, NULL, NULL);
    pn_conn_info ci;
    CHECK_EQ(pn_conn_info_get(cl->s, conn, &ci), 0);
    CHECK_EQ(ci.state, PN_TCP_FIN_WAIT_2);
    world_run(&w, wait_ns, NULL, NULL);
    pn_stats a, b;
    pn_stack_stats(cl->s, &a);
    pn_stack_stats(sv->s, &b);
    if (expect_end) {
        CHECK_EQ(pn_conn_info_get(cl->s, conn, &ci), PN_EBADCONN);
        CHECK(st->timeout);
        CHECK_EQ(fw2_reason, PN_REASON_FIN_WAIT_2);
        CHECK_EQ(a.PnFinWait2Timeouts, 1);
        CHECK_EQ(b.TcpInRsts, 1);               /* the peer's CLOSE_WAIT learns of it */
        CHECK_EQ(sv->counts[PN_EV_CONNECTION_RESET], 1);
    } else {
        CHECK_EQ(pn_conn_info_get(cl->s, conn, &ci), 0);
        CHECK_EQ(ci.state, PN_TCP_FIN_WAIT_2);
        CHECK_EQ(a.PnFinWait2Timeouts, 0);
    }
    world_free(&w);
}

static void test_fin_wait_2_timeout(void)
{
    fin_wait_2_run(2000, 3000000000ull, true);
    fin_wait_2_run(0, 120000000000ull, false);
    fin_wait_2_run(60000, 30000000000ull, false);   /* not yet at the default */
}

/* Keepalive (RFC 1122 4.2.3.6): off by default; on, an idle connection is probed every
 * keepalive_idle_ms and stays up while the peer (our own stack, its out-of-window ACK
 * under oow_rate_limit_ms) answers; a peer that vanishes ends it after keepalive_cnt
 * probes, keepalive_intvl_ms apart, with PN_REASON_KEEPALIVE. */
static void keepalive_run(bool vanish)
{
    pn_config c;
    cfg_for(&c, CIP);
    CHECK_EQ(c.keepalive_idle_ms, 0);
    CHECK_EQ(c.keepalive_intvl_ms, 75000);
    CHECK_EQ(c.keepalive_cnt, 9);
    c.keepalive_idle_ms = 2000;
    c.keepalive_intvl_ms = 1000;
    c.keepalive_cnt = 3;
    world w;
    node *cl, *sv;
    setup_client(&w, &cl, &sv, &c);
    cl->hook = note_reason;
    fw2_reason = 0;
    stream *st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    uint32_t conn = st->conn;
    pn_stats a, b;
    pn_conn_info ci;
    if (!vanish) {
        world_run(&w, 21000000000ull, NULL, NULL);
        pn_stack_stats(cl->s, &a);
        pn_stack_stats(sv->s, &b);
        CHECK_EQ(pn_conn_info_get(cl->s, conn, &ci), 0);
        CHECK(a.TcpExtTCPKeepAlive >= 9 && a.TcpExtTCPKeepAlive <= 11);   /* one per idle */
        CHECK_EQ(a.PnKeepaliveTimeouts, 0);
        CHECK_EQ(b.TcpExtTCPACKSkippedSeq, 0);   /* every probe answered */
        CHECK_EQ(pn_conn_info_get(sv->s, 0, &ci) == 0 || sv->counts[PN_EV_CONNECTION_ESTABLISHED] == 1, 1);
        world_free(&w);
        return;
    }
    /* the server vanishes: its next frames (the probes' answers) are dropped */
    const uint8_t src[4] = {(uint8_t)(SIP >> 24), (uint8_t)(SIP >> 16), (uint8_t)(SIP >> 8),
                            (uint8_t)SIP};
    for (int i = 0; i < 6; i++)
        pn_sim_wire_drop_nth(w.wire, 1, 26, src, NULL, 4);
    world_run(&w, 4500000000ull, NULL, NULL);   /* idle 2 s, then probes at 2, 3, 4 s */
    pn_stack_stats(cl->s, &a);
    CHECK_EQ(a.TcpExtTCPKeepAlive, 3);
    CHECK_EQ(pn_conn_info_get(cl->s, conn, &ci), 0);
    world_run(&w, 1000000000ull, NULL, NULL);   /* the fourth interval ends it */
    pn_stack_stats(cl->s, &a);
    CHECK_EQ(pn_conn_info_get(cl->s, conn, &ci), PN_EBADCONN);
    CHECK(st->timeout);
    CHECK_EQ(fw2_reason, PN_REASON_KEEPALIVE);
    CHECK_EQ(a.PnKeepaliveTimeouts, 1);
    CHECK_EQ(a.TcpExtTCPKeepAlive, 3);
    world_free(&w);
}

static void test_keepalive(void)
{
    keepalive_run(false);
    keepalive_run(true);
}

static void test_keepalive_off_by_default(void)
{
    world w;
    node *cl, *sv;
    setup(&w, &cl, &sv, 100);
    stream *st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    world_run(&w, 100000000000ull, NULL, NULL);
    pn_stats a;
    pn_stack_stats(cl->s, &a);
    pn_conn_info ci;
    CHECK_EQ(pn_conn_info_get(cl->s, st->conn, &ci), 0);
    CHECK_EQ(a.TcpExtTCPKeepAlive, 0);
    CHECK_EQ(a.TcpOutSegs, 2);                  /* SYN and the handshake's ACK only */
    world_free(&w);
}

static void test_event_queue_wrap(void)
{
    world w;
    node *cl, *sv;
    /* 2^32 = 65537 * 65535 + 1: with 65537 slots, position 2^32 - 1 and position 0 (the
     * next one) land in the same slot unless the queue is sized for free-running
     * counters. */
    setup_events(&w, &cl, &sv, 100, 65537);
    sv->auto_fin = 1;
    sv->default_tx = sv->default_rx = 30000;
    for (int i = 0; i < 2; i++) {
        pn_stack *s = w.nodes[i].s;
        s->ev_head = s->ev_tail = 0xFFFFFFFFu;   /* the next event is the last before the wrap */
    }
    for (int i = 0; i < 8; i++)
        client_open(cl, SIP, 80, 30000, 30000)->send_fin_when_done = 1;
    CHECK(world_run(&w, 30000000000ull, all_streams_done, NULL));
    world_run(&w, 200000000000ull, NULL, NULL);   /* the closes and TIME_WAIT run out */
    CHECK(cl->s->ev_tail < 0x80000000u);          /* the counter did wrap */
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_ESTABLISHED], 8);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_ESTABLISHED], 8);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_CLOSED], 8);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_CLOSED], 8);
    CHECK_EQ(cl->s->conn_live, 0);
    CHECK_EQ(sv->s->conn_live, 0);
    world_free(&w);
}

int main(void)
{
    SIP = IP(10, 0, 0, 2);
    CIP = IP(10, 0, 0, 1);
    RUN(test_half_close);
    RUN(test_event_queue_wrap);
    RUN(test_simultaneous_close);
    RUN(test_data_with_fin);
    RUN(test_rst_both_ways);
    RUN(test_time_wait_pool_full);
    RUN(test_time_wait_reack);
    RUN(test_time_wait_reuse);
    RUN(test_fin_wait_2_timeout);
    RUN(test_keepalive);
    RUN(test_keepalive_off_by_default);
    RUN(test_time_wait_replies_are_rate_limited);
    RUN(test_time_wait_reopen_above_old_sequence_space);
    RUN(test_timestamp_offset_is_per_address_pair);
    RUN(test_rfc5961);
    RUN(test_closed_port_rst);
    HARNESS_DONE();
}
