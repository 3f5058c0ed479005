/* test_basic.c -- open/close basics on the sim link: handshake, transfer, refused, SYN
 * timeout, ARP resolution and failure, the accept callback, user timers, ICMP echo. */
#include <unistd.h>

#include "util.h"

static uint32_t SIP, CIP;

static stream *client_connect(node *cl, uint16_t port, uint64_t tx, uint64_t rx)
{
    uint32_t id = 0;
    int r = pn_connect(cl->s, SIP, port, 0, &id);
    CHECK_EQ(r, 0);
    if (r < 0)
        return NULL;
    stream *st = node_stream(cl, id);
    memset(st, 0, sizeof *st);
    st->used = 1;
    st->conn = id;
    st->tx_total = tx;
    st->rx_expect = rx;
    pn_conn_info ci;
    pn_conn_info_get(cl->s, id, &ci);
    st->tx_seed = ((uint64_t)CIP << 16 | ci.local_port) * 2;
    st->rx_seed = ((uint64_t)CIP << 16 | ci.local_port) * 2 + 1;
    return st;
}

static bool established_both(world *w, void *ctx)
{
    (void)ctx;
    return w->nodes[0].counts[PN_EV_CONNECTION_ESTABLISHED] >= 1 &&
           w->nodes[1].counts[PN_EV_CONNECTION_ESTABLISHED] >= 1;
}

static void test_handshake(void)
{
    world w;
    node *cl, *sv;
    world_two(&w, NULL, NULL, NULL, &cl, &sv);
    CHECK_EQ(pn_listen(sv->s, 80), 0);
    CHECK_EQ(pn_listen(sv->s, 80), PN_EPORT);
    stream *st = client_connect(cl, 80, 0, 0);
    CHECK(world_run(&w, 5000000000ull, established_both, NULL));
    pn_conn_info ci;
    CHECK_EQ(pn_conn_info_get(cl->s, st->conn, &ci), 0);
    CHECK_EQ(ci.state, PN_TCP_ESTABLISHED);
    CHECK_EQ(ci.mss, 960);
    CHECK_EQ(ci.remote_port, 80);
    pn_stats s1;
    pn_stack_stats(cl->s, &s1);
    CHECK_EQ(s1.ArpRequestsOut, 1);
    CHECK_EQ(s1.TcpActiveOpens, 1);
    pn_stack_stats(sv->s, &s1);
    CHECK_EQ(s1.TcpPassiveOpens, 1);
    CHECK_EQ(s1.ArpRepliesOut, 1);
    world_free(&w);
}

static void test_transfer_small(void)
{
    world w;
    node *cl, *sv;
    world_two(&w, NULL, NULL, NULL, &cl, &sv);
    sv->default_tx = 100000;
    sv->default_rx = 300000;
    pn_listen(sv->s, 80);
    stream *st = client_connect(cl, 80, 300000, 100000);
    CHECK(world_run(&w, 60000000000ull, all_streams_done, NULL));
    CHECK_EQ(st->rx_seen, 100000);
    CHECK_EQ(st->rx_bad, 0);
    stream *ss = NULL;
    for (uint32_t i = 0; i < sv->nstreams; i++)
        if (sv->streams[i].used)
            ss = &sv->streams[i];
    CHECK(ss != NULL);
    if (ss) {
        CHECK_EQ(ss->rx_seen, 300000);
        CHECK_EQ(ss->rx_bad, 0);
    }
    world_free(&w);
}

static void test_refused(void)
{
    world w;
    node *cl, *sv;
    world_two(&w, NULL, NULL, NULL, &cl, &sv);
    stream *st = client_connect(cl, 81, 0, 0);
    world_run(&w, 5000000000ull, NULL, NULL);
    CHECK(st->refused);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_REFUSED], 1);
    CHECK_EQ(pn_send(cl->s, st->conn, "x", 1, 0), PN_EBADCONN);
    world_free(&w);
}

/* RFC 6298 5.7: when the SYN had to be retransmitted (and so gave no RTT sample, Karn),
 * the RTO is 3 s once the connection is established; after a clean handshake it comes
 * from the measured RTT. */
static void test_rto_after_syn_retransmit(void)
{
    for (int lose = 0; lose <= 1; lose++) {
        world w;
        node *cl, *sv;
        world_two(&w, NULL, NULL, NULL, &cl, &sv);
        pn_listen(sv->s, 80);
        if (lose) {   /* the client's first SYN: its source MAC and the TCP flags byte */
            uint8_t m[42] = {0}, k[42] = {0};
            memcpy(m, cl->mac, 6);
            memset(k, 0xff, 6);
            m[41] = 0x02;
            k[41] = 0xff;
            CHECK(pn_sim_wire_drop_nth(w.wire, 1, 6, m, k, 42) >= 0);
        }
        stream *st = client_connect(cl, 80, 0, 0);
        world_run(&w, 10000000000ull, NULL, NULL);
        CHECK_EQ(cl->counts[PN_EV_CONNECTION_ESTABLISHED], 1);
        pn_conn_info ci;
        CHECK_EQ(pn_conn_info_get(cl->s, st->conn, &ci), 0);
        if (lose)
            CHECK_EQ(ci.rto_ms, 3000);
        else
            CHECK(ci.rto_ms < 1000);
        world_free(&w);
    }
}

static void test_syn_timeout(void)
{
    world w;
    node *cl, *sv;
    world_two(&w, NULL, NULL, NULL, &cl, &sv);
    uint8_t ghost[6] = {0x02, 0, 0, 0, 0, 0x77};
    pn_stack_add_neighbour(cl->s, IP(10, 0, 0, 9), ghost);
    uint32_t id;
    uint64_t t0 = w.now;
    CHECK_EQ(pn_connect(cl->s, IP(10, 0, 0, 9), 80, 0, &id), 0);
    world_run(&w, 60000000000ull, NULL, NULL);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_TIMEOUT], 1);
    /* 3 retries at 1, 2, 4 s then the 8 s wait: 15 s (RFC 6298 5.5 backoff) */
    CHECK(w.now - t0 >= 15000000000ull && w.now - t0 < 16000000000ull);
    pn_stats st;
    pn_stack_stats(cl->s, &st);
    CHECK_EQ(st.TcpOutSegs, 4);
    world_free(&w);
}

static void test_arp_failed(void)
{
    world w;
    node *cl, *sv;
    world_two(&w, NULL, NULL, NULL, &cl, &sv);
    uint32_t id;
    CHECK_EQ(pn_connect(cl->s, IP(10, 0, 0, 99), 80, 0, &id), 0);
    pn_conn_info ci;
    pn_conn_info_get(cl->s, id, &ci);
    CHECK_EQ(ci.state, PN_TCP_ARP_WAIT);
    world_run(&w, 10000000000ull, NULL, NULL);
    CHECK_EQ(cl->counts[PN_EV_ARP_FAILED], 1);
    pn_stats st;
    pn_stack_stats(cl->s, &st);
    CHECK_EQ(st.ArpRequestsOut, 4);   /* one try and arp_retries = 3 more */
    CHECK_EQ(pn_connect(cl->s, IP(192, 168, 1, 1), 80, 0, &id), PN_ENOROUTE);
    world_free(&w);
}

static int reject_odd(void *ctx, uint32_t ip, uint16_t port)
{
    (void)ip;
    (*(int *)ctx)++;
    return port % 2 == 0;
}

static void test_accept_reject(void)
{
    world w;
    node *cl, *sv;
    world_two(&w, NULL, NULL, NULL, &cl, &sv);
    int calls = 0;
    pn_stack_set_accept(sv->s, reject_odd, &calls);
    pn_listen(sv->s, 80);
    uint32_t a, b;
    CHECK_EQ(pn_connect(cl->s, SIP, 80, 40001, &a), 0);
    CHECK_EQ(pn_connect(cl->s, SIP, 80, 40002, &b), 0);
    node_stream(cl, a)->used = 1;
    node_stream(cl, b)->used = 1;
    world_run(&w, 5000000000ull, NULL, NULL);
    CHECK_EQ(calls, 2);
    /* asked when the handshake completes: the refused peer is reset after its ACK */
    CHECK(node_stream(cl, a)->reset);
    CHECK(node_stream(cl, b)->established);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_ESTABLISHED], 1);
    world_free(&w);
}

static void test_user_timers(void)
{
    world w;
    node *cl, *sv;
    pn_config c;
    cfg_for(&c, CIP);
    c.user_timer_cnt = 3;
    world_two(&w, NULL, &c, NULL, &cl, &sv);
    pn_listen(sv->s, 80);
    stream *st = client_connect(cl, 80, 0, 0);
    world_run(&w, 5000000000ull, established_both, NULL);
    uint64_t t0 = w.now;
    CHECK_EQ(pn_set_user_timer(cl->s, st->conn, 0, 100), 0);
    CHECK_EQ(pn_set_user_timer(cl->s, st->conn, 1, 65000), 0);
    CHECK_EQ(pn_set_user_timer(cl->s, st->conn, 2, 300), 0);
    CHECK_EQ(pn_set_user_timer(cl->s, st->conn, 2, 0), 0);   /* deleted */
    CHECK_EQ(pn_set_user_timer(cl->s, st->conn, 3, 10), PN_ETIMER);
    CHECK_EQ(pn_set_user_timer(cl->s, st->conn, 0, 65001), PN_ETIMER);
    CHECK_EQ(pn_set_user_timer(cl->s, 150, 0, 10), PN_EBADCONN);
    world_run(&w, 1000000000ull, NULL, NULL);
    CHECK_EQ(st->user_timeouts, 1);
    world_run(&w, 70000000000ull, NULL, NULL);
    CHECK_EQ(st->user_timeouts, 2);
    CHECK(w.now - t0 >= 65000000000ull);
    world_free(&w);
}

/* A raw endpoint on the wire that sends a ping and reads the reply. */
static void test_icmp_echo(void)
{
    world w;
    node *cl, *sv;
    world_two(&w, NULL, NULL, NULL, &cl, &sv);
    uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x33};
    char err[100];
    pn_link *raw = pn_sim_link_create(w.wire, mac, err, sizeof err);
    uint8_t f[14 + 20 + 16] = {0};
    memcpy(f, sv->mac, 6);
    memcpy(f + 6, mac, 6);
    f[12] = 0x08;
    uint8_t *ip = f + 14;
    ip[0] = 0x45; ip[3] = 36; ip[8] = 64; ip[9] = 1;
    ip[12] = 10; ip[13] = 0; ip[14] = 0; ip[15] = 3;
    ip[16] = SIP >> 24; ip[17] = (SIP >> 16) & 255; ip[18] = (SIP >> 8) & 255; ip[19] = SIP & 255;
    uint32_t sum = 0;
    for (int i = 0; i < 20; i += 2) sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    ip[10] = (uint8_t)(~sum >> 8); ip[11] = (uint8_t)~sum;
    uint8_t *ic = ip + 20;
    ic[0] = 8; ic[4] = 0x12; ic[5] = 0x34; ic[7] = 1; memcpy(ic + 8, "pingpong", 8);
    sum = 0;
    for (int i = 0; i < 16; i += 2) sum += (uint32_t)(ic[i] << 8 | ic[i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    ic[2] = (uint8_t)(~sum >> 8); ic[3] = (uint8_t)~sum;
    pn_rx_frame fr[4];
    raw->ops->rx_burst(raw, w.now, fr, 0);
    uint32_t cap;
    uint8_t *tb = raw->ops->tx_buf(raw, &cap);
    memcpy(tb, f, sizeof f);
    raw->ops->tx_send(raw, tb, sizeof f);
    for (int i = 1; i <= 3; i++)   /* the raw endpoint is not a node: poll by hand */
        pn_poll(sv->s, w.now + (uint64_t)i * 1000000u, sv->ev, EV_MAX);
    int n = raw->ops->rx_burst(raw, w.now + 10000000u, fr, 4);
    CHECK_EQ(n, 1);
    if (n == 1) {
        CHECK_EQ(fr[0].len, sizeof f);
        CHECK_EQ(fr[0].data[14 + 20], 0);   /* echo reply */
        CHECK(memcmp(fr[0].data + 14 + 20 + 8, "pingpong", 8) == 0);
        raw->ops->rx_release(raw, fr, n);
    }
    pn_stats st;
    pn_stack_stats(sv->s, &st);
    CHECK_EQ(st.IcmpEchoReplies, 1);
    pn_link_destroy(raw);
    world_free(&w);
}

static void test_footprint(void)
{
    pn_config c;
    cfg_for(&c, CIP);
    c.max_conn_cnt = 1;
    size_t client = pn_stack_footprint(&c);
    cfg_for(&c, SIP);
    size_t server = pn_stack_footprint(&c);
    printf("footprint: default client (1 conn) %zu bytes (%.2f MiB); default server (200 conns) %zu bytes (%.2f MiB)\n",
           client, client / 1048576.0, server, server / 1048576.0);
    CHECK(client > 512 * 1024 && client < 2 * 1024 * 1024);
    CHECK(server > 200 * 512 * 1024);
    c.conn_send_buf_cnt = 1;
    CHECK_EQ(pn_stack_footprint(&c), 0);
    pn_stack *s;
    char err[200];
    err[0] = 0;
    CHECK_EQ(pn_stack_create(&s, &c, NULL, err, sizeof err), PN_EINVAL);
    pn_sim_wire *w = pn_sim_wire_create(NULL, err, sizeof err);
    uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
    pn_link *l = pn_sim_link_create(w, mac, err, sizeof err);
    CHECK_EQ(pn_stack_create(&s, &c, l, err, sizeof err), PN_EINVAL);
    CHECK(strstr(err, "conn_send_buf_cnt") != NULL);
    cfg_for(&c, SIP);
    CHECK_EQ(pn_stack_create(&s, &c, l, err, sizeof err), 0);
    CHECK_EQ(pn_stack_memory(s), pn_stack_footprint(&c));
    pn_stack_destroy(s);
    pn_link_destroy(l);
    pn_sim_wire_destroy(w);
}


/* A gratuitous ARP moves the server's address to a new MAC: the client's table and its
 * connection follow (RFC 826 merge; RFC 5227 2.4 announcements). */
static uint64_t to_new_mac;
static void count_to_raw(world *w, const uint8_t *f, uint32_t len)
{
    (void)w;
    if (len >= 34 && f[12] == 8 && f[13] == 0)
        to_new_mac++;
}

static void test_gratuitous_arp(void)
{
    world w;
    node *cl, *sv;
    world_two(&w, NULL, NULL, NULL, &cl, &sv);
    pn_listen(sv->s, 80);
    stream *st = client_connect(cl, 80, 0, 0);
    world_run(&w, 5000000000ull, established_both, NULL);
    pn_link *raw = world_add_raw(&w, 0x44);
    w.raw_hook = count_to_raw;
    uint8_t f[60] = {0};
    memset(f, 0xff, 6);
    memcpy(f + 6, raw->mac, 6);
    f[12] = 8; f[13] = 6;
    uint8_t a[] = {0, 1, 8, 0, 6, 4, 0, 2};
    memcpy(f + 14, a, 8);
    memcpy(f + 22, raw->mac, 6);
    f[28] = 10; f[29] = 0; f[30] = 0; f[31] = 2;
    memcpy(f + 32, raw->mac, 6);
    f[38] = 10; f[39] = 0; f[40] = 0; f[41] = 2;
    raw_send(raw, f, 60);
    world_run(&w, 1000000000ull, NULL, NULL);
    CHECK_EQ(pn_send(cl->s, st->conn, "moved", 5, 0), 5);
    world_run(&w, 1000000000ull, NULL, NULL);
    CHECK(to_new_mac >= 1);
    pn_stats s1;
    pn_stack_stats(cl->s, &s1);
    CHECK(s1.ArpIn >= 2);
    world_free(&w);
}

/* A slot freed in a batch keeps its id until the next pn_poll: a connect made while the
 * batch is being handled gets another id. */
static void test_slot_reuse(void)
{
    world w;
    node *cl, *sv;
    pn_config c;
    cfg_for(&c, CIP);
    c.max_conn_cnt = 2;
    world_two(&w, NULL, &c, NULL, &cl, &sv);
    uint32_t a, b;
    CHECK_EQ(pn_connect(cl->s, SIP, 81, 0, &a), 0);   /* refused: nobody listens */
    int k = 0, got = 0;
    for (int i = 0; i < 50 && !got; i++) {
        pn_poll(sv->s, w.now, sv->ev, EV_MAX);
        k = pn_poll(cl->s, w.now, cl->ev, EV_MAX);
        for (int j = 0; j < k; j++)
            if (cl->ev[j].type == PN_EV_CONNECTION_REFUSED && cl->ev[j].conn_id == a)
                got = 1;
        w.now += 10000;
    }
    CHECK(got);
    CHECK_EQ(pn_connect(cl->s, SIP, 81, 0, &b), 0);
    CHECK(b != a);                                    /* a's id is still taken */
    uint32_t c3;
    CHECK_EQ(pn_connect(cl->s, SIP, 81, 0, &c3), PN_ENOCONN);
    pn_poll(cl->s, w.now, cl->ev, EV_MAX);            /* now a's slot is free */
    CHECK_EQ(pn_connect(cl->s, SIP, 81, 0, &c3), 0);
    CHECK_EQ(c3, a);
    world_free(&w);
}

/* Captures: the wire's and a link's pcap decode in tshark with no malformed packets. */
static int tshark_malformed(const char *path)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "tshark -r %s 2>&1 | grep -ci -e malformed -e 'bogus' -e 'cut short'", path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    int n = -1;
    if (fscanf(p, "%d", &n) != 1)
        n = -1;
    pclose(p);
    return n;
}

static void test_pcap(void)
{
    pn_sim_params p;
    pn_sim_params_default(&p);
    p.loss = 0.05;
    p.corrupt = 0.02;
    world w;
    world_init(&w, &p);
    char wp[64], lp[64], err[200];
    snprintf(wp, sizeof wp, "/tmp/pn_wire_%d.pcap", (int)getpid());
    snprintf(lp, sizeof lp, "/tmp/pn_link_%d.pcap", (int)getpid());
    CHECK_EQ(pn_sim_wire_pcap(w.wire, wp, err, sizeof err), 0);
    pn_config c;
    cfg_for(&c, CIP);
    c.timestamps = 1;
    c.window_scale = 1;
    node *cl = world_add(&w, &c, CIP, 1);
    CHECK_EQ(pn_link_pcap(cl->l, lp, err, sizeof err), 0);
    CHECK(pn_link_pcap(cl->l, "/nonexistent/dir/x.pcap", err, sizeof err) < 0);
    CHECK(strstr(err, "/nonexistent") != NULL);
    cfg_for(&c, SIP);
    c.timestamps = 1;
    c.window_scale = 1;
    node *sv = world_add(&w, &c, SIP, 2);
    sv->default_tx = 50000;
    sv->default_rx = 50000;
    sv->auto_fin = 1;
    pn_listen(sv->s, 80);
    stream *st = client_connect(cl, 80, 50000, 50000);
    st->send_fin_when_done = 1;
    CHECK(world_run(&w, 60000000000ull, all_streams_done, NULL));
    world_run(&w, 5000000000ull, NULL, NULL);
    CHECK_EQ(st->rx_bad, 0);
    world_free(&w);   /* closes the wire's capture; the link's closes with the link */
    if (system("command -v tshark >/dev/null 2>&1") == 0) {
        CHECK_EQ(tshark_malformed(wp), 0);
        CHECK_EQ(tshark_malformed(lp), 0);
    } else {
        printf("  (tshark not found: decode check skipped)\n");
    }
    unlink(wp);
    unlink(lp);
}


/* Simultaneous open (RFC 9293 3.5, figure 8): both sides connect to each other's port. */
static void test_simultaneous_open(void)
{
    world w;
    node *cl, *sv;
    world_two(&w, NULL, NULL, NULL, &cl, &sv);
    pn_stack_add_neighbour(cl->s, SIP, sv->mac);
    pn_stack_add_neighbour(sv->s, CIP, cl->mac);
    uint32_t a, b;
    CHECK_EQ(pn_connect(cl->s, SIP, 5000, 6000, &a), 0);
    CHECK_EQ(pn_connect(sv->s, CIP, 6000, 5000, &b), 0);
    node_stream(cl, a)->used = 1;
    node_stream(sv, b)->used = 1;
    world_run(&w, 5000000000ull, NULL, NULL);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_ESTABLISHED], 1);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_ESTABLISHED], 1);
    CHECK_EQ(pn_send(cl->s, a, "hi", 2, 0), 2);
    world_run(&w, 1000000000ull, NULL, NULL);
    pn_conn_info ci;
    pn_conn_info_get(sv->s, b, &ci);
    CHECK_EQ(ci.state, PN_TCP_ESTABLISHED);
    pn_stats st;
    pn_stack_stats(cl->s, &st);
    CHECK_EQ(st.TcpRetransSegs, 0);
    world_free(&w);
}

int main(void)
{
    SIP = IP(10, 0, 0, 2);
    CIP = IP(10, 0, 0, 1);
    if (getenv("ONLY")) { if (!strcmp(getenv("ONLY"), "transfer")) RUN(test_transfer_small); HARNESS_DONE(); }
    RUN(test_footprint);
    RUN(test_handshake);
    RUN(test_transfer_small);
    RUN(test_refused);
    RUN(test_syn_timeout);
    RUN(test_arp_failed);
    RUN(test_rto_after_syn_retransmit);
    RUN(test_accept_reject);
    RUN(test_user_timers);
    RUN(test_icmp_echo);
    RUN(test_gratuitous_arp);
    RUN(test_simultaneous_open);
    RUN(test_slot_reuse);
    RUN(test_pcap);
    HARNESS_DONE();
}
