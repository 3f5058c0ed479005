/* test_ack.c -- stretch ACKs (pn_config.ack_every) on the sim wire, in virtual time: a bulk
 * receiver with ack_every 8 sends about one ACK per 8 segments where the RFC's 2 sends one
 * per 2, every byte still arrives, and a connection's first 64 KB -- when the sender's
 * window is small -- goes as fast as with 2: it never waits for the delayed-ACK timer. */
#include "pn_internal.h"
#include "util.h"

#define CIP IP(10, 0, 0, 1)
#define SIP IP(10, 0, 0, 2)
#define MSS 1460u

typedef struct { uint64_t took_ns, data_segs, acks; } result;

/* The client sends `total` bytes to a server whose ack_every is `every`. */
static result send_to(uint8_t every, uint64_t total)
{
    world w;
    node *cl, *sv;
    pn_config a, b;
    cfg_bulk_pair(&a, &b);   /* NewReno: an initial window of 3 segments */
    b.ack_every = every;
    world_pair(&w, NULL, &a, &b, &cl, &sv);
    sv->default_rx = total;
    stream *st = client_open(cl, SIP, 80, 0, 0);
    world_run(&w, 1000000000ull, NULL, NULL);   /* the handshake */
    CHECK(st->established);
    pn_stats c0, s0, c1, s1;
    pn_stack_stats(cl->s, &c0);
    pn_stack_stats(sv->s, &s0);
    st->tx_total = total;
    uint64_t t0 = w.now;
    stream_pump(cl, st);
    CHECK(world_run(&w, 60000000000ull, server_got, &total));
    result r = {w.now - t0, 0, 0};
    pn_stack_stats(cl->s, &c1);
    pn_stack_stats(sv->s, &s1);
    r.data_segs = c1.TcpOutSegs - c0.TcpOutSegs;
    r.acks = s1.TcpOutSegs - s0.TcpOutSegs;
    world_free(&w);
    return r;
}

static void test_stretch_acks_halve_the_ack_load_and_lose_nothing(void)
{
    result two = send_to(2, 8u << 20), eight = send_to(8, 8u << 20);
    printf("  8 MB: ack_every 2: %llu ACKs for %llu segments; 8: %llu for %llu\n",
           (unsigned long long)two.acks, (unsigned long long)two.data_segs,
           (unsigned long long)eight.acks, (unsigned long long)eight.data_segs);
    CHECK(two.acks * 3 > two.data_segs);          /* about one per 2 */
    CHECK(eight.acks * 6 < eight.data_segs);      /* about one per 8 */
    CHECK(eight.acks * 10 > eight.data_segs);
}

static void test_a_small_window_never_waits_for_the_delayed_ack(void)
{
    /* 64 KB from an initial window of 3 segments: with every ACK held for 8 segments,
     * each round trip would wait out delayed_ack_ms (10 ms) */
    result two = send_to(2, 60000), eight = send_to(8, 60000);
    printf("  first 60 KB: %.3f ms with ack_every 2, %.3f ms with 8\n", two.took_ns / 1e6,
           eight.took_ns / 1e6);
    CHECK_EQ(eight.took_ns, two.took_ns);
    CHECK(two.took_ns < 10000000ull);
}

int main(void)
{
    RUN(test_stretch_acks_halve_the_ack_load_and_lose_nothing);
    RUN(test_a_small_window_never_waits_for_the_delayed_ack);
    HARNESS_DONE();
}
