/* test_scale.c -- 1,000 concurrent connections to one server stack, every byte of every
 * stream verified both ways, then all closed; max_conn_cnt; slot reuse. */
#include "pn_internal.h"
#include "util.h"

static uint32_t SIP, CIP;
#define NCONN 1000

static void fin_back(node *n, pn_event *e)
{
    if (e->type == PN_EV_FIN)
        pn_send_fin(n->s, e->conn_id);
}

static bool all_closed(world *w, void *ctx)
{
    (void)ctx;
    /* a server whose last FIN is re-sent after the client recycled that TIME_WAIT entry
     * (pool of 100 for 1000 closes, 1% loss) gets a RST: RESET instead of CLOSED */
    return w->nodes[0].counts[PN_EV_CONNECTION_CLOSED] >= NCONN &&
           w->nodes[1].counts[PN_EV_CONNECTION_CLOSED] +
                   w->nodes[1].counts[PN_EV_CONNECTION_RESET] >= NCONN;
}

static void test_1000_connections(void)
{
    pn_sim_params p;
    pn_sim_params_default(&p);
    p.loss = 0.01;
    p.seed = 7;
    world w;
    world_init(&w, &p);
    pn_config c;
    cfg_for(&c, CIP);
    c.max_conn_cnt = NCONN;
    c.conn_send_buf_cnt = 32;
    c.conn_recv_buf_size = 16384;
    c.max_time_wait_conn_cnt = 100;
    c.congestion_control = PN_CC_NEWRENO;
    node *cl = world_add(&w, &c, CIP, 1);
    cfg_for(&c, SIP);
    c.max_conn_cnt = NCONN;
    c.conn_send_buf_cnt = 32;
    c.conn_recv_buf_size = 16384;
    c.max_time_wait_conn_cnt = 100;
    c.congestion_control = PN_CC_NEWRENO;
    node *sv = world_add(&w, &c, SIP, 2);
    printf("  footprint: 1000-connection stack (32x1K send, 16K recv) %zu bytes\n",
           pn_stack_memory(sv->s));
    sv->default_tx = 30000;
    sv->default_rx = 50000;
    sv->hook = fin_back;
    pn_listen(sv->s, 7000);
    for (int i = 0; i < NCONN; i++)
        CHECK(client_open(cl, SIP, 7000, 50000, 30000) != NULL);
    uint32_t extra;
    CHECK_EQ(pn_connect(cl->s, SIP, 7000, 0, &extra), PN_ENOCONN);
    double t0 = wall_s();
    CHECK(world_run(&w, 600000000000ull, all_streams_done, NULL));
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_ESTABLISHED], NCONN);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_ESTABLISHED], NCONN);
    uint64_t rx_c = 0, rx_s = 0, bad = 0;
    for (int i = 0; i < NCONN; i++) {
        rx_c += cl->streams[i].rx_seen;
        rx_s += sv->streams[i].rx_seen;
        bad += cl->streams[i].rx_bad + sv->streams[i].rx_bad;
    }
    CHECK_EQ(rx_c, (uint64_t)NCONN * 30000);
    CHECK_EQ(rx_s, (uint64_t)NCONN * 50000);
    CHECK_EQ(bad, 0);
    /* close them all: the client's FINs, the server answers each */
    for (int i = 0; i < NCONN; i++)
        CHECK_EQ(pn_send_fin(cl->s, cl->streams[i].conn), 0);
    CHECK(world_run(&w, 600000000000ull, all_closed, NULL));
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_CLOSED], NCONN);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_CLOSED] + sv->counts[PN_EV_CONNECTION_RESET], NCONN);
    CHECK(sv->counts[PN_EV_CONNECTION_RESET] < 30);
    printf("  1000 connections: 80 MB verified and closed in %.2f s wall\n", wall_s() - t0);
    pn_stats a;
    pn_stack_stats(cl->s, &a);
    CHECK_EQ(a.TcpExtTW, NCONN);
    CHECK(cl->s->tw_used <= 100);
    /* every slot is free again after one more poll */
    world_run(&w, 1000000ull, NULL, NULL);
    CHECK_EQ(cl->s->conn_live, 0);
    CHECK_EQ(sv->s->conn_live, 0);
    CHECK_EQ(cl->s->zombies, 0);
    uint32_t id;
    CHECK_EQ(pn_connect(cl->s, SIP, 7000, 0, &id), 0);
    world_free(&w);
}

/* max_conn_cnt on a server: the extra SYN is dropped (ListenOverflows); it gets in once a
 * slot frees up, within its SYN retries. */
static void closer(node *n, pn_event *e)
{
    if (e->type == PN_EV_CONNECTION_ESTABLISHED && n->counts[PN_EV_CONNECTION_ESTABLISHED] == 1)
        pn_set_user_timer(n->s, e->conn_id, 0, 1500);
    if (e->type == PN_EV_USER_TIMEOUT)
        pn_close(n->s, e->conn_id);
}

static void test_max_conn(void)
{
    pn_sim_params p;
    pn_sim_params_default(&p);
    world w;
    world_init(&w, &p);
    pn_config c;
    cfg_for(&c, CIP);
    node *cl = world_add(&w, &c, CIP, 1);
    cfg_for(&c, SIP);
    c.max_conn_cnt = 3;
    c.max_syn_backlog = 3;   /* no cookies: the table itself is what is tested */
    node *sv = world_add(&w, &c, SIP, 2);
    sv->hook = closer;
    pn_listen(sv->s, 80);
    for (int i = 0; i < 4; i++)
        client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 1000000000ull, NULL, NULL);
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_ESTABLISHED], 3);
    pn_stats b;
    pn_stack_stats(sv->s, &b);
    CHECK(b.TcpExtListenOverflows >= 1);
    world_run(&w, 5000000000ull, NULL, NULL);   /* the first closes at 1.5 s; SYN retry at 3 s */
    CHECK_EQ(sv->counts[PN_EV_CONNECTION_ESTABLISHED], 4);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_ESTABLISHED], 4);
    CHECK_EQ(cl->counts[PN_EV_CONNECTION_RESET], 1);
    world_free(&w);
}

/* Events that do not fit stay queued; a slot freed in a batch is not reused before the
 * next poll, and DATA pointers stay valid until then. */
static void test_event_overflow(void)
{
    world w;
    node *cl, *sv;
    world_pair(&w, NULL, NULL, NULL, &cl, &sv);
    for (int i = 0; i < 50; i++)
        client_open(cl, SIP, 80, 0, 0);
    /* drive the server by hand with room for 7 events a poll */
    pn_event ev[7];
    uint32_t est = 0, polls = 0;
    for (int round = 0; round < 200 && est < 50; round++) {
        for (int i = 0; i < 3; i++)
            pn_poll(cl->s, w.now, cl->ev, EV_MAX);
        int k = pn_poll(sv->s, w.now, ev, 7);
        CHECK(k >= 0 && k <= 7);
        polls++;
        for (int j = 0; j < k; j++)
            est += ev[j].type == PN_EV_CONNECTION_ESTABLISHED;
        w.now += 10000;
    }
    CHECK_EQ(est, 50);
    CHECK(polls >= 8);
    world_free(&w);
}

int main(void)
{
    SIP = IP(10, 0, 0, 2);
    CIP = IP(10, 0, 0, 1);
    RUN(test_1000_connections);
    RUN(test_max_conn);
    RUN(test_event_overflow);
    HARNESS_DONE();
}
