/* test_window.c -- the send window against a peer that reorders its own segments: a
 * retransmitted old segment carrying a new ACK and a zero window (seen from Linux under
 * 2% loss) must close our window, and our pure ACKs must then stay inside the window the
 * peer offers (a Linux receiver at a zero window drops ACKs beyond it unread). */
#include "pn_internal.h"
#include "util.h"

#define CIP IP(10, 0, 0, 1)
#define PIP IP(10, 0, 0, 9)

static struct {
    node *cl;
    pn_link *raw;
    uint8_t mac[6];
    uint32_t iss, c_iss;       /* the peer's ISS; the client's (learnt from its SYN) */
    uint16_t cport;
    uint32_t max_end;          /* highest sequence number the client has sent, + 1 */
    uint32_t acks, ack_seq;    /* pure ACKs seen, and the last one's sequence number */
} pr;

static void peer(world *w, const uint8_t *f, uint32_t len)
{
    (void)w;
    if (len < 54 || f[12] != 8 || f[23] != 6)
        return;
    const uint8_t *t = f + 34;
    uint32_t thl = (uint32_t)(t[12] >> 4) * 4, plen = len - 34 - thl;
    uint32_t seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
    uint8_t fl = t[13];
    if (fl & 0x02) {            /* SYN: answer SYN-ACK, window 20000, MSS 1460 */
        pr.cport = (uint16_t)(t[0] << 8 | t[1]);
        pr.c_iss = seq;
        pr.max_end = seq + 1;
        uint8_t out[100], mss[4] = {2, 4, 0x05, 0xb4};
        raw_seg r = {pr.mac, pr.cl->mac, PIP, CIP, 80, pr.cport, pr.iss, seq + 1, 0x12, 20000,
                     mss, 4, NULL, 0};
        raw_send(pr.raw, out, build_tcp_frame(out, &r));
        return;
    }
    if (plen && seq_gt(seq + plen, pr.max_end))
        pr.max_end = seq + plen;
    if (!plen && fl == 0x10) {
        pr.acks++;
        pr.ack_seq = seq;
    }
}

static void peer_seg(uint32_t seq, uint32_t ack, uint16_t wnd, uint32_t plen)
{
    static const uint8_t data[200];
    uint8_t out[300];
    raw_seg r = {pr.mac, pr.cl->mac, PIP, CIP, 80, pr.cport, seq, ack, 0x10, wnd,
                 NULL, 0, plen ? data : NULL, plen};
    raw_send(pr.raw, out, build_tcp_frame(out, &r));
}

/* A world with our client connected to the raw peer (its ISN iss); returns the stream. */
static stream *open_to_raw_peer(world *w, node **cl_out, uint32_t iss)
{
    pn_sim_params p;
    pn_sim_params_default(&p);
    world_init(w, &p);
    pn_config c;
    cfg_for(&c, CIP);
    node *cl = world_add(w, &c, CIP, 1);
    memset(&pr, 0, sizeof pr);
    pr.cl = cl;
    pr.raw = world_add_raw(w, 9);
    memcpy(pr.mac, pr.raw->mac, 6);
    pr.iss = iss;
    w->raw_hook = peer;
    pn_stack_add_neighbour(cl->s, PIP, pr.mac);
    stream *st = client_open(cl, PIP, 80, 0, 0);
    world_run(w, 100000000ull, NULL, NULL);
    CHECK(st->established);
    *cl_out = cl;
    return st;
}

/* RFC 9293 3.10.7.4 takes a window only from a segment newer than SND.WL1/WL2; an old
 * segment retransmitted by the peer with a new ACK and a zero window must still close the
 * window (as Linux's tcp_may_update_window), and the ACK it draws must carry
 * snd_una + snd_wnd, not the highest sequence sent (as Linux's tcp_acceptable_seq). */
static void test_old_segment_closes_window(void)
{
    world w;
    node *cl;
    stream *st = open_to_raw_peer(&w, &cl, 90000);
    uint32_t una = pr.c_iss + 1, p1 = pr.iss + 1;
    /* the peer sends two segments, A (p1) and B (p1 + 100); A is lost, B is held out of
     * order and sets SND.WL1 = p1 + 100 */
    peer_seg(p1 + 100, una, 19200, 100);
    world_run(&w, 50000000ull, NULL, NULL);
    /* we send 40000 bytes: 19200 go out (the window, 20 full segments) */
    static uint8_t buf[40000];
    CHECK_EQ(pn_send(cl->s, st->conn, buf, sizeof buf, 0), 40000);
    world_run(&w, 5000000ull, NULL, NULL);
    CHECK_EQ(pr.max_end - una, 19200);
    /* the peer retransmits A (older than SND.WL1), now acknowledging 9600 bytes, with a
     * zero window: its receive buffer filled meanwhile */
    uint32_t acks0 = pr.acks;
    peer_seg(p1, una + 9600, 0, 100);
    world_run(&w, 50000000ull, NULL, NULL);   /* shorter than the persist timer (RTO) */
    pn_conn_info ci;
    CHECK_EQ(pn_conn_info_get(cl->s, st->conn, &ci), 0);
    CHECK_EQ(ci.snd_una - una, 9600);
    CHECK_EQ(ci.snd_wnd, 0);
    CHECK_EQ(pr.max_end - una, 19200);        /* nothing sent past the peer's window */
    CHECK(pr.acks > acks0);                   /* the hole's filling was acknowledged ... */
    CHECK_EQ(pr.ack_seq - una, 9600);         /* ... at the window's right edge */
    /* a newer segment opens the window again: the rest flows */
    for (int i = 0; i < 40 && pr.max_end - una < 40000; i++) {
        peer_seg(p1 + 200, pr.max_end, 19200, 0);
        world_run(&w, 20000000ull, NULL, NULL);
    }
    CHECK_EQ(pr.max_end - una, 40000);
    peer_seg(p1 + 200, pr.max_end, 19200, 0);
    world_run(&w, 20000000ull, NULL, NULL);
    pn_conn_info_get(cl->s, st->conn, &ci);
    CHECK_EQ(ci.state, PN_TCP_ESTABLISHED);
    CHECK_EQ(ci.snd_una - una, 40000);
    world_free(&w);
}

/* The window rule's other half: a segment as old as SND.WL1 that acknowledges nothing new
 * (a reordered duplicate) does not shrink the window (RFC 9293 3.10.7.4). */
static void test_stale_segment_keeps_window(void)
{
    world w;
    node *cl;
    stream *st = open_to_raw_peer(&w, &cl, 7);
    uint32_t una = pr.c_iss + 1, p1 = pr.iss + 1;
    peer_seg(p1 + 100, una, 30000, 100);      /* out of order: SND.WL1 = p1 + 100 */
    world_run(&w, 50000000ull, NULL, NULL);
    peer_seg(p1, una, 0, 100);                /* older, no new ACK: its window is stale */
    world_run(&w, 50000000ull, NULL, NULL);
    pn_conn_info ci;
    CHECK_EQ(pn_conn_info_get(cl->s, st->conn, &ci), 0);
    CHECK_EQ(ci.snd_wnd, 30000);
    world_free(&w);
}

int main(void)
{
    RUN(test_old_segment_closes_window);
    RUN(test_stale_segment_keeps_window);
    HARNESS_DONE();
}
