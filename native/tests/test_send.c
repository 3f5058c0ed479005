/* test_send.c -- the send and receive contracts: `more`, sendv, sendable and
 * immediately_sendable, MORE_SENDABLE, `remaining`, zero window and persist probes,
 * option negotiation (window scale, timestamps, MSS by buffer size), congestion control.
 * Over five hundred lines as one subject's tests, each of which reads on its own. */
#include <signal.h>
#include <unistd.h>

#include "pn_internal.h"
#include "util.h"

static uint32_t SIP, CIP;

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

static void test_more(void)
{
    world w;
    node *cl, *sv;
    world_pair(&w, NULL, NULL, NULL, &cl, &sv);
    stream *st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    stream *ss = server_stream(sv);
    uint8_t buf[4000];
    gen_bytes(st->tx_seed, 0, buf, sizeof buf);
    pn_stats a0, a1;
    pn_stack_stats(cl->s, &a0);
    CHECK_EQ(pn_send(cl->s, st->conn, buf, 100, 1), 100);
    world_run(&w, 1000000000ull, NULL, NULL);
    pn_stack_stats(cl->s, &a1);
    CHECK_EQ(a1.TcpOutSegs, a0.TcpOutSegs);     /* held back */
    CHECK_EQ(ss->rx_seen, 0);
    CHECK_EQ(pn_send(cl->s, st->conn, buf + 100, 2000, 1), 2000);   /* 2100: 2 full + 180 held */
    world_run(&w, 1000000000ull, NULL, NULL);
    CHECK_EQ(ss->rx_seen, 1920);
    CHECK_EQ(pn_send(cl->s, st->conn, buf + 2100, 10, 0), 10);      /* flush */
    world_run(&w, 1000000000ull, NULL, NULL);
    CHECK_EQ(ss->rx_seen, 2110);
    CHECK_EQ(ss->rx_bad, 0);
    pn_stack_stats(cl->s, &a1);
    CHECK_EQ(a1.TcpOutSegs - a0.TcpOutSegs, 3);  /* 960, 960, 190: no tiny segments */
    world_free(&w);
}

static void test_sendv(void)
{
    world w;
    node *cl, *sv;
    world_pair(&w, NULL, NULL, NULL, &cl, &sv);
    stream *st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    stream *ss = server_stream(sv);
    uint8_t buf[3000];
    gen_bytes(st->tx_seed, 0, buf, sizeof buf);
    pn_iovec v[4] = {{buf, 1}, {buf + 1, 0}, {buf + 1, 1500}, {buf + 1501, 1499}};
    CHECK_EQ(pn_sendv(cl->s, st->conn, v, 4, 0), 3000);
    CHECK_EQ(pn_sendv(cl->s, st->conn, v, -1, 0), PN_EINVAL);
    pn_iovec bad = {NULL, 5};
    CHECK_EQ(pn_sendv(cl->s, st->conn, &bad, 1, 0), PN_EINVAL);
    CHECK_EQ(pn_sendv(cl->s, 199, v, 1, 0), PN_EBADCONN);
    world_run(&w, 1000000000ull, NULL, NULL);
    CHECK_EQ(ss->rx_seen, 3000);
    CHECK_EQ(ss->rx_bad, 0);
    world_free(&w);
}

static void test_sendable(void)
{
    world w;
    node *cl, *sv;
    pn_config c;
    cfg_for(&c, CIP);
    c.conn_send_buf_cnt = 64;
    world_pair(&w, NULL, &c, NULL, &cl, &sv);
    stream *st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    CHECK_EQ(pn_sendable(cl->s, st->conn), 64 * 960);
    CHECK_EQ(pn_immediately_sendable(cl->s, st->conn), 40960);
    uint8_t buf[70000];
    gen_bytes(st->tx_seed, 0, buf, sizeof buf);
    CHECK_EQ(pn_send(cl->s, st->conn, buf, 1000, 1), 1000);   /* 960 out, 40 held */
    CHECK_EQ(pn_sendable(cl->s, st->conn), 64 * 960 - 1000);
    CHECK_EQ(pn_immediately_sendable(cl->s, st->conn), 40960 - 1000);
    CHECK_EQ(pn_send(cl->s, st->conn, buf + 1000, 920, 0), 920);   /* fills the held one */
    CHECK_EQ(pn_sendable(cl->s, st->conn), 62 * 960);
    /* more than the buffers hold: a short write, then MORE_SENDABLE once acked */
    int32_t r = pn_send(cl->s, st->conn, buf + 1920, 64 * 960, 0);
    CHECK_EQ(r, 62 * 960);
    st->tx_sent = 1920 + (uint64_t)r;
    CHECK_EQ(pn_sendable(cl->s, st->conn), 0);
    CHECK_EQ(pn_immediately_sendable(cl->s, st->conn), 0);
    CHECK_EQ(pn_send(cl->s, st->conn, buf, 10, 0), 0);
    st->tx_total = 1920 + 64 * 960 + 20000;   /* the stream pumps the rest on MORE_SENDABLE */
    world_run(&w, 10000000000ull, NULL, NULL);
    CHECK(st->more_sendable >= 1);
    stream *ss = server_stream(sv);
    CHECK_EQ(ss->rx_seen, st->tx_total);
    CHECK_EQ(ss->rx_bad, 0);
    CHECK_EQ(pn_sendable(cl->s, st->conn), 64 * 960);
    world_free(&w);
}

/* A raw peer that advertises a zero window: the sender must probe (RFC 9293 3.8.6.1),
 * with backoff, without timing out while the probes are answered, and send once the
 * window opens. */
static struct {
    node *cl;
    pn_link *raw;
    uint8_t mac[6];
    uint32_t ip, rcv_nxt, iss;
    uint16_t wnd;
    uint32_t probes, data_bytes;
    uint8_t silent;      /* after the handshake, answer nothing */
    uint32_t seen_data;
} zp;

static void zw_peer(world *w, const uint8_t *f, uint32_t len)
{
    (void)w;
    if (len < 54 || f[12] != 8 || f[23] != 6)
        return;
    const uint8_t *t = f + 34;
    uint32_t thl = (uint32_t)(t[12] >> 4) * 4, plen = len - 34 - thl;
    uint32_t seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
    uint16_t sport = (uint16_t)(t[0] << 8 | t[1]);
    uint8_t fl = t[13];
    uint8_t out[200];
    raw_seg r = {zp.mac, zp.cl->mac, zp.ip, CIP, 80, sport, zp.iss + 1, 0, 0x10, zp.wnd,
                 NULL, 0, NULL, 0};
    if (fl & 0x02) {
        zp.rcv_nxt = seq + 1;
        r.seq = zp.iss;
        r.ack = zp.rcv_nxt;
        r.flags = 0x12;
        uint8_t mss[4] = {2, 4, 0x05, 0xb4};
        r.opts = mss;
        r.optlen = 4;
        raw_send(zp.raw, out, build_tcp_frame(out, &r));
        return;
    }
    if (!plen)
        return;
    zp.seen_data++;
    if (zp.silent)
        return;
    if (zp.wnd == 0) {
        zp.probes++;
    } else if (seq == zp.rcv_nxt) {
        zp.rcv_nxt += plen;
        zp.data_bytes += plen;
    }
    r.ack = zp.rcv_nxt;
    raw_send(zp.raw, out, build_tcp_frame(out, &r));
}

static void test_zero_window_persist(void)
{
    world w;
    node *cl, *sv;
    world_pair(&w, NULL, NULL, NULL, &cl, &sv);
    memset(&zp, 0, sizeof zp);
    zp.cl = cl;
    zp.raw = world_add_raw(&w, 9);
    memcpy(zp.mac, zp.raw->mac, 6);
    zp.ip = IP(10, 0, 0, 9);
    zp.iss = 5000;
    zp.wnd = 0;
    w.raw_hook = zw_peer;
    pn_stack_add_neighbour(cl->s, zp.ip, zp.mac);
    stream *st = client_open(cl, zp.ip, 80, 0, 0);
    world_run(&w, 1000000000ull, NULL, NULL);
    CHECK(st->established);
    uint8_t buf[5000];
    gen_bytes(1, 0, buf, sizeof buf);
    CHECK_EQ(pn_send(cl->s, st->conn, buf, sizeof buf, 0), 5000);
    CHECK_EQ(pn_immediately_sendable(cl->s, st->conn), 0);
    uint64_t t0 = w.now;
    world_run(&w, 300000000000ull, NULL, NULL);   /* five minutes of a closed window */
    CHECK(w.now - t0 >= 299000000000ull);
    pn_conn_info ci;
    CHECK_EQ(pn_conn_info_get(cl->s, st->conn, &ci), 0);
    CHECK_EQ(ci.state, PN_TCP_ESTABLISHED);
    /* backoff from 1 s doubling to 30 s: about 15 probes in 300 s, not thousands */
    CHECK(zp.probes >= 8 && zp.probes <= 20);
    CHECK_EQ(zp.data_bytes, 0);
    /* the window opens (a window update) and the data flows */
    zp.wnd = 65535;
    uint8_t out[200];
    raw_seg r = {zp.mac, cl->mac, zp.ip, CIP, 80, ci.local_port, zp.iss + 1, zp.rcv_nxt, 0x10,
                 zp.wnd, NULL, 0, NULL, 0};
    raw_send(zp.raw, out, build_tcp_frame(out, &r));
    world_run(&w, 60000000000ull, NULL, NULL);
    CHECK_EQ(zp.data_bytes, 5000);
    pn_conn_info_get(cl->s, st->conn, &ci);
    CHECK_EQ(ci.snd_una, ci.snd_nxt);
    world_free(&w);
}

/* `remaining`: the bytes left are presented again first, with the new ones after. */
static uint8_t kept[64];
static uint32_t kept_n, checked;
static void keep_tail(node *n, pn_event *e)
{
    if (e->type != PN_EV_DATA)
        return;
    if (kept_n) {
        CHECK(e->len >= kept_n);
        CHECK(memcmp(e->data, kept, kept_n) == 0);
        checked++;
    }
    uint32_t r = e->len > 10 ? 10 : e->len;
    memcpy(kept, e->data + e->len - r, r);
    kept_n = r;
    CHECK_EQ(pn_keep(n->s, e->conn_id, r), 0);
}

static void test_remaining(void)
{
    world w;
    node *cl, *sv;
    world_pair(&w, NULL, NULL, NULL, &cl, &sv);
    sv->hook = keep_tail;
    kept_n = checked = 0;
    stream *st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    stream *ss = server_stream(sv);
    ss->partial = 0;
    /* the stream's own accounting consumes all; keep_tail overrides remaining = 10, so
     * fix the stream to match by marking the node partial-free and checking raw bytes */
    uint8_t buf[500];
    gen_bytes(st->tx_seed, 0, buf, sizeof buf);
    for (int i = 0; i < 5; i++) {
        pn_send(cl->s, st->conn, buf + i * 100, 100, 0);
        world_run(&w, 100000000ull, NULL, NULL);
    }
    CHECK_EQ(checked, 4);
    world_free(&w);
}

/* pn_keep, not the caller's event array, carries what stays unconsumed: a caller that
 * hands each pn_poll() a fresh array (and frees it) loses nothing and reads no dead
 * memory (the core once read `remaining` back from the previous call's array). */
static void test_a_fresh_event_array_each_poll(void)
{
    world w;
    node *cl, *sv;
    world_pair(&w, NULL, NULL, NULL, &cl, &sv);
    w.fresh_event_arrays = true;
    sv->partial = 1;
    sv->default_tx = 300000;
    sv->default_rx = 300000;
    stream *st = client_open(cl, SIP, 80, 300000, 300000);
    st->partial = 1;
    CHECK(world_run(&w, 20000000000ull, all_streams_done, NULL));
    stream *ss = server_stream(sv);
    CHECK(ss != NULL);
    CHECK_EQ(st->rx_seen, 300000);
    CHECK_EQ(st->rx_bad, 0);
    if (ss) {
        CHECK_EQ(ss->rx_seen, 300000);
        CHECK_EQ(ss->rx_bad, 0);
    }
    world_free(&w);
}

static pn_conn *conn_of(node *n, uint32_t id) { return &n->s->conns[id]; }

static void negotiate(uint8_t cws, uint8_t cts, uint8_t sws, uint8_t sts, uint8_t c1k)
{
    world w;
    node *cl, *sv;
    pn_config a, b;
    cfg_for(&a, CIP);
    a.window_scale = cws;
    a.timestamps = cts;
    a.send_buf_1k = c1k;
    a.conn_recv_buf_size = 1 << 20;
    cfg_for(&b, SIP);
    b.window_scale = sws;
    b.timestamps = sts;
    b.conn_recv_buf_size = 1 << 20;
    world_pair(&w, NULL, &a, &b, &cl, &sv);
    sv->default_tx = 3000000;
    sv->default_rx = 3000000;
    stream *st = client_open(cl, SIP, 80, 3000000, 3000000);
    CHECK(world_run(&w, 60000000000ull, all_streams_done, NULL));
    pn_conn *c = conn_of(cl, st->conn);
    stream *ss = server_stream(sv);
    pn_conn *d = conn_of(sv, ss->conn);
    CHECK_EQ(c->ws_ok, cws && sws);
    CHECK_EQ(d->ws_ok, cws && sws);
    CHECK_EQ(c->ts_ok, cts && sts);
    CHECK_EQ(d->ts_ok, cts && sts);
    CHECK_EQ(c->rcv_wscale, (cws && sws) ? 5 : 0);   /* 1 MiB >> 5 fits 16 bits */
    CHECK_EQ(d->snd_wscale, c->rcv_wscale);
    uint32_t ts = (cts && sts) ? 12 : 0;
    CHECK_EQ(c->mss, (c1k ? 960u : 1460u) - ts);
    CHECK_EQ(d->mss, 960u - ts);
    pn_conn_info ci;
    pn_conn_info_get(cl->s, st->conn, &ci);
    CHECK(ci.rcv_wnd <= ((cws && sws) ? (1u << 20) : 65535u));
    if (!(cts && sts))
        CHECK(ci.srtt_us > 0);   /* with timestamps, 1 ms ticks see this wire as 0 */
    CHECK_EQ(st->rx_bad + ss->rx_bad, 0);
    world_free(&w);
}

static void test_options(void)
{
    for (int m = 0; m < 32; m++)
        negotiate(m & 1, (m >> 1) & 1, (m >> 2) & 1, (m >> 3) & 1, (m >> 4) & 1);
}

/* Congestion control: a lost segment halves the window (newreno/cubic); none keeps none. */
static void cc_case(uint8_t cc)
{
    world w;
    node *cl, *sv;
    pn_config a;
    cfg_for(&a, CIP);
    a.congestion_control = cc;
    a.window_scale = 1;
    a.conn_recv_buf_size = 1 << 20;
    pn_config b = a;
    b.local_ip = SIP;
    world_pair(&w, NULL, &a, &b, &cl, &sv);
    sv->default_rx = 20000000;
    stream *st = client_open(cl, SIP, 80, 20000000, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    pn_conn_info ci;
    pn_conn_info_get(cl->s, st->conn, &ci);
    if (cc == PN_CC_NONE)
        CHECK_EQ(ci.cwnd, UINT32_MAX);
    else
        CHECK_EQ(ci.cwnd, 4 * 960);   /* RFC 5681 IW for a 960-byte MSS */
    /* drop the 2000th data frame from the client */
    uint8_t m[6];
    memcpy(m, cl->mac, 6);
    pn_sim_wire_drop_nth(w.wire, 2000, 6, m, NULL, 6);
    CHECK(world_run(&w, 60000000000ull, all_streams_done, NULL));
    world_run(&w, 1000000000ull, NULL, NULL);
    stream *ss = server_stream(sv);
    CHECK_EQ(ss->rx_seen, 20000000);
    CHECK_EQ(ss->rx_bad, 0);
    pn_conn_info_get(cl->s, st->conn, &ci);
    pn_stats s;
    pn_stack_stats(cl->s, &s);
    CHECK_EQ(s.TcpExtTCPFastRetrans, 1);
    CHECK_EQ(s.TcpExtTCPTimeouts, 0);
    if (cc == PN_CC_NONE) {
        CHECK_EQ(ci.cwnd, UINT32_MAX);
    } else {
        CHECK(ci.ssthresh != UINT32_MAX);
        CHECK(ci.ssthresh >= 2 * 960);
        CHECK(ci.cwnd >= ci.ssthresh);   /* grew again after recovery */
    }
    printf("  cc %d: cwnd %u ssthresh %u srtt %u us rto %u ms\n", cc, ci.cwnd, ci.ssthresh,
           ci.srtt_us, ci.rto_ms);
    world_free(&w);
}

static void test_cc(void)
{
    cc_case(PN_CC_NONE);
    cc_case(PN_CC_NEWRENO);
    cc_case(PN_CC_CUBIC);
}


/* Delayed ACK (RFC 1122 4.2.3.2, RFC 5681 4.2): one small segment is ACKed after
 * delayed_ack_ms, two full segments at once; delayed_ack_ms = 0 ACKs at once. */
static bool got_n(world *w, void *ctx)
{
    stream *ss = NULL;
    node *sv = &w->nodes[1];
    for (uint32_t i = 0; i < sv->nstreams; i++)
        if (sv->streams[i].used)
            ss = &sv->streams[i];
    return ss && ss->rx_seen >= *(uint64_t *)ctx;
}

static void delack_case(uint32_t ms)
{
    world w;
    node *cl, *sv;
    pn_config b;
    cfg_for(&b, SIP);
    b.delayed_ack_ms = ms;
    world_pair(&w, NULL, NULL, &b, &cl, &sv);
    stream *st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 5000000000ull, est2, NULL);
    world_run(&w, 1000000000ull, NULL, NULL);
    pn_stats a0, a1;
    pn_stack_stats(sv->s, &a0);
    uint8_t buf[2100];
    gen_bytes(st->tx_seed, 0, buf, sizeof buf);
    pn_send(cl->s, st->conn, buf, 100, 0);
    uint64_t want = 100, t0 = w.now;
    CHECK(world_run(&w, 1000000000ull, got_n, &want));
    pn_stack_stats(sv->s, &a1);
    CHECK_EQ(a1.TcpOutSegs - a0.TcpOutSegs, ms ? 0 : 1);
    world_run(&w, 1000000000ull, NULL, NULL);
    pn_stack_stats(sv->s, &a1);
    CHECK_EQ(a1.TcpOutSegs - a0.TcpOutSegs, 1);
    pn_conn_info ci;
    pn_conn_info_get(cl->s, st->conn, &ci);
    CHECK_EQ(ci.snd_una, ci.snd_nxt);
    if (ms)
        CHECK(w.now - t0 >= (uint64_t)ms * 1000000u);
    /* two full segments: ACKed without waiting */
    pn_stack_stats(sv->s, &a0);
    pn_send(cl->s, st->conn, buf + 100, 1920, 0);
    want = 2020;
    CHECK(world_run(&w, 1000000000ull, got_n, &want));
    pn_stack_stats(sv->s, &a1);
    CHECK_EQ(a1.TcpOutSegs - a0.TcpOutSegs, 1);
    world_free(&w);
}

static void test_delayed_ack(void)
{
    delack_case(10);
    delack_case(0);
}


/* A link whose transmit ring is often full (tx_buf() returns NULL): nothing is lost for
 * good, the stack retries. */
typedef struct flaky {
    pn_link link;
    pn_link *inner;
    uint64_t calls, fails;
} flaky;
static pn_link_ops flaky_ops;
static int fl_rx(pn_link *l, uint64_t now, pn_rx_frame *f, int max)
{
    return ((flaky *)l)->inner->ops->rx_burst(((flaky *)l)->inner, now, f, max);
}
static void fl_rel(pn_link *l, const pn_rx_frame *f, int n)
{
    ((flaky *)l)->inner->ops->rx_release(((flaky *)l)->inner, f, n);
}
static uint8_t *fl_txbuf(pn_link *l, uint32_t *cap)
{
    flaky *x = (flaky *)l;
    if (++x->calls % 3 == 0) {
        x->fails++;
        return NULL;
    }
    return x->inner->ops->tx_buf(x->inner, cap);
}
static int fl_send(pn_link *l, uint8_t *b, uint32_t len)
{
    return ((flaky *)l)->inner->ops->tx_send(((flaky *)l)->inner, b, len);
}
static void fl_flush(pn_link *l) { ((flaky *)l)->inner->ops->tx_flush(((flaky *)l)->inner); }
static int fl_flow(pn_link *l, const pn_flow *f) { (void)l; (void)f; return 0; }
static void fl_destroy(pn_link *l)
{
    pn_link_destroy(((flaky *)l)->inner);
    free(l);
}
static pn_link *make_flaky(pn_link *inner)
{
    flaky *x = calloc(1, sizeof *x);
    flaky_ops = (pn_link_ops){.name = "flaky", .rx_burst = fl_rx, .rx_release = fl_rel,
                              .tx_buf = fl_txbuf, .tx_send = fl_send, .tx_flush = fl_flush,
                              .flow_add = fl_flow, .flow_del = fl_flow, .destroy = fl_destroy};
    x->link = *inner;
    x->link.ops = &flaky_ops;
    x->link.pcap_fd = -1;
    x->inner = inner;
    return &x->link;
}

/* A link whose frames are short: tx_buf() offers at most 50 bytes. The stack never writes
 * more than it was offered -- an ARP frame is padded to the Ethernet minimum of 60, so
 * with 50 it is not sent at all (counted as drop_no_buffer). */
static uint32_t short_cap, short_over;
static uint8_t *sh_txbuf(pn_link *l, uint32_t *cap)
{
    uint8_t *b = ((flaky *)l)->inner->ops->tx_buf(((flaky *)l)->inner, cap);
    if (b && *cap > short_cap)
        *cap = short_cap;
    return b;
}
static int sh_send(pn_link *l, uint8_t *b, uint32_t len)
{
    if (len > short_cap)
        short_over++;
    return fl_send(l, b, len);
}
/* A flaky-style wrapper whose transmit side is `txbuf` (and `send`, when given). */
static pn_link *wrap_tx(pn_link *inner, pn_link_ops *ops, uint8_t *(*txbuf)(pn_link *, uint32_t *),
                        int (*send)(pn_link *, uint8_t *, uint32_t))
{
    pn_link *l = make_flaky(inner);
    *ops = flaky_ops;
    ops->tx_buf = txbuf;
    if (send)
        ops->tx_send = send;
    l->ops = ops;
    return l;
}
static pn_link *make_short(pn_link *inner)
{
    static pn_link_ops short_ops;
    return wrap_tx(inner, &short_ops, sh_txbuf, sh_send);
}

static void test_short_tx_buffers_are_not_overrun(void)
{
    world w;
    node *cl, *sv;
    short_cap = 50;
    short_over = 0;
    wrap_link = make_short;
    world_pair(&w, NULL, NULL, NULL, &cl, &sv);
    wrap_link = NULL;
    uint32_t id;
    CHECK_EQ(pn_connect(cl->s, SIP, 80, 0, &id), 0);   /* needs ARP first */
    world_run(&w, 100000000ull, NULL, NULL);
    pn_stats st;
    pn_stack_stats(cl->s, &st);
    CHECK_EQ(short_over, 0);
    CHECK(st.drop_no_buffer > 0);
    world_free(&w);
}

/* A link whose transmit ring is full for exactly the next `fail_next` frames (only the
 * link `fail_link`). */
static uint32_t fail_next;
static pn_link *fail_link;
static uint8_t *once_txbuf(pn_link *l, uint32_t *cap)
{
    if (fail_next && l == fail_link) {
        fail_next--;
        return NULL;
    }
    return ((flaky *)l)->inner->ops->tx_buf(((flaky *)l)->inner, cap);
}
static pn_link *make_full_once(pn_link *inner)
{
    static pn_link_ops once_ops;
    return wrap_tx(inner, &once_ops, once_txbuf, NULL);
}

/* The server's ACK of a segment finds its transmit ring full: it is sent at the next
 * poll, not left to the client's retransmission timeout (counted in PnAckRetries). */
static void test_ack_lost_to_a_full_ring_is_retried(void)
{
    world w;
    node *cl, *sv;
    pn_config cc, sc;
    cfg_for(&cc, CIP);
    cfg_for(&sc, SIP);
    sc.delayed_ack_ms = 0;
    fail_next = 0;
    wrap_link = make_full_once;
    world_pair(&w, NULL, &cc, &sc, &cl, &sv);
    wrap_link = NULL;
    uint32_t id;
    CHECK_EQ(pn_connect(cl->s, SIP, 80, 0, &id), 0);
    node_stream(cl, id)->used = 1;
    CHECK(world_run(&w, 1000000000ull, est2, NULL));
    world_run(&w, 50000000ull, NULL, NULL);
    fail_link = sv->l;
    fail_next = 1;   /* the server's next frame: the ACK of "ping" */
    CHECK_EQ(pn_send(cl->s, id, "ping", 4, 0), 4);
    world_run(&w, 20000000ull, NULL, NULL);   /* 20 ms: well inside the client's RTO */
    pn_conn_info ci;
    CHECK_EQ(pn_conn_info_get(cl->s, id, &ci), 0);
    CHECK_EQ(ci.snd_una, ci.snd_nxt);        /* acknowledged */
    pn_stats a, b;
    pn_stack_stats(cl->s, &a);
    pn_stack_stats(sv->s, &b);
    CHECK_EQ(a.TcpRetransSegs, 0);
    CHECK_EQ(b.PnAckRetries, 1);
    world_free(&w);
}

/* The output loop must not spin whatever state it finds: snd_nxt below the send buffer's
 * head breaks an invariant (a bug elsewhere could make it so); the loop repairs it and
 * goes on. A hang is turned into a failure by the alarm. */
static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test_output_cannot_spin: the output loop hung\n";
    if (write(2, msg, sizeof msg - 1) < 0) {}
    _exit(1);
}

static void test_output_cannot_spin(void)
{
    world w;
    node *cl, *sv;
    world_pair(&w, NULL, NULL, NULL, &cl, &sv);
    uint32_t id;
    CHECK_EQ(pn_connect(cl->s, SIP, 80, 0, &id), 0);
    node_stream(cl, id)->used = 1;
    CHECK(world_run(&w, 1000000000ull, est2, NULL));
    pn_conn *c = &cl->s->conns[id];
    CHECK_EQ(pn_send(cl->s, id, "abcdef", 6, 1), 6);   /* more: held, not sent yet */
    c->snd_nxt = c->snd_una - 1000;   /* below the head segment */
    signal(SIGALRM, on_alarm);
    alarm(5);
    CHECK_EQ(pn_send(cl->s, id, "gh", 2, 0), 2);
    world_run(&w, 100000000ull, NULL, NULL);
    alarm(0);
    pn_conn_info ci;
    CHECK_EQ(pn_conn_info_get(cl->s, id, &ci), 0);
    CHECK_EQ(ci.snd_una, ci.snd_nxt);   /* all 8 bytes sent and acknowledged */
    pn_stats st;
    pn_stack_stats(cl->s, &st);
    CHECK_EQ(st.PnInvariantRepairs, 1);
    world_free(&w);
}

static void test_tx_ring_full(void)
{
    world w;
    node *cl, *sv;
    wrap_link = make_flaky;
    world_pair(&w, NULL, NULL, NULL, &cl, &sv);
    wrap_link = NULL;
    sv->default_tx = 2000000;
    sv->default_rx = 2000000;
    stream *st = client_open(cl, SIP, 80, 2000000, 2000000);
    CHECK(world_run(&w, 600000000000ull, all_streams_done, NULL));
    CHECK_EQ(st->rx_seen, 2000000);
    CHECK_EQ(st->rx_bad, 0);
    stream *ss = server_stream(sv);
    CHECK(ss && ss->rx_seen == 2000000 && ss->rx_bad == 0);
    pn_stats a;
    pn_stack_stats(cl->s, &a);
    CHECK(a.drop_no_buffer > 1000);
    CHECK(((flaky *)cl->l)->fails > 1000);
    world_free(&w);
}


/* The peer goes silent: tcp_retries RTOs with exponential backoff (RFC 6298 5.5), capped
 * at max_rto, then CONNECTION_TIMEOUT. */
static void test_data_timeout(void)
{
    world w;
    node *cl, *sv;
    world_pair(&w, NULL, NULL, NULL, &cl, &sv);
    memset(&zp, 0, sizeof zp);
    zp.cl = cl;
    zp.raw = world_add_raw(&w, 9);
    memcpy(zp.mac, zp.raw->mac, 6);
    zp.ip = IP(10, 0, 0, 9);
    zp.iss = 7000;
    zp.wnd = 65535;
    zp.silent = 1;
    w.raw_hook = zw_peer;
    pn_stack_add_neighbour(cl->s, zp.ip, zp.mac);
    stream *st = client_open(cl, zp.ip, 80, 0, 0);
    world_run(&w, 1000000000ull, NULL, NULL);
    CHECK(st->established);
    CHECK_EQ(pn_send(cl->s, st->conn, "ping", 4, 0), 4);
    uint64_t t0 = w.now;
    world_run(&w, 600000000000ull, NULL, NULL);
    CHECK(st->timeout);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_TIMEOUT], 1);
    CHECK_EQ(zp.seen_data, 11);   /* the first send and tcp_retries = 10 retransmissions */
    /* the handshake's sample puts the RTO at min_rto (100 ms); doubling, capped at 30 s:
     * 0.1+0.2+...+25.6 + 30 + 30 = 111.1 s */
    double el = (double)(w.now - t0) / 1e9;
    CHECK(el > 110 && el < 112.5);
    pn_stats a;
    pn_stack_stats(cl->s, &a);
    CHECK_EQ(a.TcpRetransSegs, 10);
    world_free(&w);
}


/* Between two stacks: the reader keeps everything, the window closes, the writer probes;
 * each probe presents the held bytes again, so once the reader consumes, the window
 * reopens and the rest flows. */
static int consume;
static void maybe_keep(node *n, pn_event *e)
{
    if (e->type == PN_EV_DATA && !consume) {
        stream *st = node_stream(n, e->conn_id);
        st->rx_consumed -= e->len - st->kept;   /* undo what the stream counted */
        pn_keep(n->s, e->conn_id, e->len);
    }
}

static void test_zero_window_reopen(void)
{
    world w;
    node *cl, *sv;
    world_pair(&w, NULL, NULL, NULL, &cl, &sv);
    sv->hook = maybe_keep;
    sv->default_rx = 100000;
    consume = 0;
    stream *st = client_open(cl, SIP, 80, 100000, 0);
    world_run(&w, 30000000000ull, NULL, NULL);
    stream *ss = server_stream(sv);
    CHECK(ss != NULL);
    CHECK_EQ(ss->rx_seen, 40960);
    pn_conn_info ci;
    pn_conn_info_get(cl->s, st->conn, &ci);
    CHECK_EQ(ci.snd_wnd, 0);
    CHECK_EQ(ci.state, PN_TCP_ESTABLISHED);
    uint32_t data_events = sv->counts[PN_EV_DATA];
    consume = 1;
    CHECK(world_run(&w, 120000000000ull, all_streams_done, NULL));
    CHECK_EQ(ss->rx_seen, 100000);
    CHECK_EQ(ss->rx_bad, 0);
    CHECK(sv->counts[PN_EV_DATA] > data_events);
    world_free(&w);
}


/* The smallest receive buffer (512 bytes, below one MSS): both sides' SWS avoidance still
 * move every byte, in segments of about half the buffer. */
static void test_tiny_receive_buffer(void)
{
    world w;
    node *cl, *sv;
    pn_config a, b;
    cfg_for(&a, CIP);
    a.conn_recv_buf_size = 512;
    cfg_for(&b, SIP);
    b.conn_recv_buf_size = 512;
    b.send_buf_1k = 0;
    world_pair(&w, NULL, &a, &b, &cl, &sv);
    sv->default_tx = 200000;
    sv->default_rx = 200000;
    stream *st = client_open(cl, SIP, 80, 200000, 200000);
    CHECK(world_run(&w, 600000000000ull, all_streams_done, NULL));
    CHECK_EQ(st->rx_seen, 200000);
    CHECK_EQ(st->rx_bad, 0);
    stream *ss = server_stream(sv);
    CHECK(ss && ss->rx_seen == 200000 && ss->rx_bad == 0);
    pn_stats x;
    pn_stack_stats(cl->s, &x);
    CHECK(x.TcpOutSegs > 400);
    world_free(&w);
}

/* send_buf_size: our MSS is the buffer less 64 bytes, never above the MTU's (sim: 1500),
 * and every byte of a stream sent in such segments arrives; a size that is not a multiple
 * of 64 in 1024..65536 is refused. */
static void mss_case(uint32_t sbs, uint16_t mtu, uint32_t want_mss)
{
    world w;
    node *cl, *sv;
    pn_config a, b;
    cfg_for(&a, CIP);
    a.send_buf_size = sbs;
    a.mtu = mtu;
    a.conn_recv_buf_size = 1 << 18;
    a.window_scale = 1;
    cfg_for(&b, SIP);
    b.conn_recv_buf_size = 1 << 18;
    b.window_scale = 1;
    world_pair(&w, NULL, &a, &b, &cl, &sv);
    sv->default_tx = 0;
    sv->default_rx = 400000;
    stream *st = client_open(cl, SIP, 80, 400000, 0);
    uint64_t total = 400000;
    CHECK(world_run(&w, 60000000000ull, server_got, &total));
    CHECK_EQ(conn_of(cl, st->conn)->mss, want_mss);
    stream *ss = server_stream(sv);
    CHECK_EQ(ss->rx_seen, 400000u);
    CHECK_EQ(st->rx_bad + ss->rx_bad, 0);
    world_free(&w);
}

static void test_send_buf_size_sets_the_mss(void)
{
    mss_case(1088, 1500, 1024);    /* the buffer is the limit */
    mss_case(4096, 1500, 1460);    /* the MTU is */
    mss_case(4096, 1200, 1160);    /* a smaller MTU of our own */
    mss_case(0, 1500, 960);        /* 0: send_buf_1k's 1K buffers, efvitcp's 960 */
    pn_config c;
    char err[128];
    pn_stack *s = NULL;
    world w;
    world_init(&w, NULL);
    uint8_t mac[6] = {2, 0, 0, 0, 0, 0x42};
    pn_link *l = pn_sim_link_create(w.wire, mac, err, sizeof err);
    CHECK(l != NULL);
    for (uint32_t bad = 1000; bad <= 1001; bad++) {
        cfg_for(&c, CIP);
        c.send_buf_size = bad == 1000 ? 1000 : 1100;   /* too small; not a multiple of 64 */
        CHECK_EQ(pn_stack_create(&s, &c, l, err, sizeof err), PN_EINVAL);
        CHECK(strstr(err, "send_buf_size") != NULL);
    }
    pn_link_destroy(l);
    world_free(&w);
}

int main(void)
{
    SIP = IP(10, 0, 0, 2);
    CIP = IP(10, 0, 0, 1);
    RUN(test_more);
    RUN(test_sendv);
    RUN(test_sendable);
    RUN(test_zero_window_persist);
    RUN(test_zero_window_reopen);
    RUN(test_remaining);
    RUN(test_a_fresh_event_array_each_poll);
    RUN(test_options);
    RUN(test_cc);
    RUN(test_delayed_ack);
    RUN(test_tx_ring_full);
    RUN(test_output_cannot_spin);
    RUN(test_ack_lost_to_a_full_ring_is_retried);
    RUN(test_short_tx_buffers_are_not_overrun);
    RUN(test_data_timeout);
    RUN(test_tiny_receive_buffer);
    RUN(test_send_buf_size_sets_the_mss);
    HARNESS_DONE();
}
