/*
 * simcap.c -- a capture of our own TCP on the sim link, for pollnet.tools.TcpStream's tests.
 *
 * Two stacks (10.0.0.1 client, 10.0.0.2 server, port 80) on a sim wire with seeded loss,
 * reordering and duplication, recorded to a pcap. The client sends N bytes, the server M
 * bytes, both then FIN. Byte i of the client's stream is (i * 131 + i / 977) & 255, of the
 * server's (i * 7 + 3) & 255. Prints "ok sent=N received=M" when both sides got the other's
 * stream intact and the connection closed, in virtual time.
 *
 *   simcap OUT.pcap N M SEED LOSS REORDER DUPLICATE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pncore.h"

static uint8_t cbyte(uint64_t i) { return (uint8_t)((i * 131 + i / 977) & 255); }
static uint8_t sbyte(uint64_t i) { return (uint8_t)((i * 7 + 3) & 255); }

typedef struct side {
    pn_stack *s;
    uint32_t conn;
    int up, fin_sent, closed, bad;
    uint64_t sent, want_send, got;
    uint8_t (*out)(uint64_t);
    uint8_t (*in)(uint64_t);
} side;

static void pump(side *x)
{
    uint8_t buf[4096];
    while (x->up && x->sent < x->want_send) {
        int32_t room = pn_sendable(x->s, x->conn);
        if (room <= 0)
            break;
        uint64_t k = x->want_send - x->sent;
        if (k > sizeof buf)
            k = sizeof buf;
        if (k > (uint64_t)room)
            k = (uint64_t)room;
        for (uint64_t i = 0; i < k; i++)
            buf[i] = x->out(x->sent + i);
        int32_t n = pn_send(x->s, x->conn, buf, (uint32_t)k, 0);
        if (n <= 0)
            break;
        x->sent += (uint64_t)n;
    }
    if (x->up && x->sent == x->want_send && !x->fin_sent && pn_send_fin(x->s, x->conn) == 0)
        x->fin_sent = 1;
}

static void poll_side(side *x, uint64_t now)
{
    pn_event ev[64];
    int n = pn_poll(x->s, now, ev, 64);
    for (int i = 0; i < n; i++) {
        pn_event *e = &ev[i];
        switch (e->type) {
        case PN_EV_CONNECTION_ESTABLISHED:
            x->conn = e->conn_id;
            x->up = 1;
            break;
        case PN_EV_DATA:
        case PN_EV_FIN:
            for (uint32_t k = 0; k < e->len; k++)
                if (e->data[k] != x->in(x->got + k))
                    x->bad = 1;
            x->got += e->len;
            break;
        case PN_EV_CONNECTION_CLOSED:
            x->closed = 1;
            break;
        case PN_EV_MORE_SENDABLE:
            break;
        default:
            fprintf(stderr, "simcap: event %u\n", e->type);
            x->bad = 1;
            x->closed = 1;
            break;
        }
    }
    pump(x);
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: simcap OUT.pcap N M SEED LOSS REORDER DUPLICATE\n");
        return 2;
    }
    char err[256];
    pn_sim_params sp;
    pn_sim_params_default(&sp);
    sp.seed = strtoull(argv[4], NULL, 10);
    sp.loss = atof(argv[5]);
    sp.reorder = atof(argv[6]);
    sp.duplicate = atof(argv[7]);
    sp.delay_ns = 50000;
    sp.reorder_delay_ns = 200000;
    pn_sim_wire *w = pn_sim_wire_create(&sp, err, sizeof err);
    if (!w || pn_sim_wire_pcap(w, argv[1], err, sizeof err) < 0) {
        fprintf(stderr, "simcap: %s\n", err);
        return 1;
    }
    const uint8_t mac_c[6] = {2, 0, 0, 0, 0, 1}, mac_s[6] = {2, 0, 0, 0, 0, 2};
    pn_link *lc = pn_sim_link_create(w, mac_c, err, sizeof err);
    pn_link *ls = pn_sim_link_create(w, mac_s, err, sizeof err);
    if (!lc || !ls) {
        fprintf(stderr, "simcap: %s\n", err);
        return 1;
    }
    side c = {0}, s = {0};
    pn_config cfg;
    pn_config_default(&cfg);
    cfg.netmask = 0xffffff00u;
    cfg.max_conn_cnt = 4;
    cfg.recv_buf_cnt = 256;
    cfg.local_ip = 0x0a000001u;
    cfg.mtu = lc->mtu ? lc->mtu : 1500;
    if (pn_stack_create(&c.s, &cfg, lc, err, sizeof err) < 0) {
        fprintf(stderr, "simcap: %s\n", err);
        return 1;
    }
    cfg.local_ip = 0x0a000002u;
    if (pn_stack_create(&s.s, &cfg, ls, err, sizeof err) < 0) {
        fprintf(stderr, "simcap: %s\n", err);
        return 1;
    }
    pn_stack_add_neighbour(c.s, 0x0a000002u, mac_s);
    pn_stack_add_neighbour(s.s, 0x0a000001u, mac_c);
    c.want_send = strtoull(argv[2], NULL, 10);
    s.want_send = strtoull(argv[3], NULL, 10);
    c.out = cbyte;
    c.in = sbyte;
    s.out = sbyte;
    s.in = cbyte;
    if (pn_listen(s.s, 80) < 0 || pn_connect(c.s, 0x0a000002u, 80, 0, &c.conn) < 0) {
        fprintf(stderr, "simcap: listen/connect failed\n");
        return 1;
    }
    uint64_t now = 1000000000ull, end = now + 600ull * 1000000000ull;
    while (!(c.closed && s.closed) && now < end) {
        poll_side(&c, now);
        poll_side(&s, now);
        uint64_t next = pn_sim_wire_next_arrival(w);
        uint64_t t1 = pn_stack_next_timer(c.s), t2 = pn_stack_next_timer(s.s);
        if (t1 < next)
            next = t1;
        if (t2 < next)
            next = t2;
        now = (next == UINT64_MAX || next <= now) ? now + 1000 : next;
    }
    int ok = c.closed && s.closed && !c.bad && !s.bad && c.got == s.want_send &&
             s.got == c.want_send;
    printf("%s sent=%llu received=%llu\n", ok ? "ok" : "FAILED",
           (unsigned long long)s.got, (unsigned long long)c.got);
    pn_stack_destroy(c.s);
    pn_stack_destroy(s.s);
    pn_link_destroy(lc);
    pn_link_destroy(ls);
    pn_sim_wire_destroy(w);
    return ok ? 0 : 1;
}
