/* test_malformed.c -- hostile frames through pn_poll: truncations, bad lengths and
 * offsets, bad checksums, absurd options, random bytes, mutated valid frames, and a
 * structured fuzz run -- hundreds of thousands of frames from a fixed seed. No crash, no
 * leak (ASan/LSan), no out-of-bounds transmit, and no state change for the established
 * connection except what the RFCs allow. */
#include <stdbool.h>

#include "fuzz_common.h"
#include "harness.h"



static uint64_t rs = 0x1234567887654321ull;
static uint64_t rnd(void)
{
    uint64_t z = (rs += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}


static void snapshot(fz *z, pn_conn_info *ci) { CHECK_EQ(pn_conn_info_get(z->s, z->conn, ci), 0); }

static bool same(const pn_conn_info *a, const pn_conn_info *b)
{
    return a->state == b->state && a->snd_una == b->snd_una && a->snd_nxt == b->snd_nxt &&
           a->rcv_nxt == b->rcv_nxt && a->snd_wnd == b->snd_wnd;
}

/* a no-op segment for the established connection: pure ACK, nothing new */
static uint32_t noop(fz *z, uint8_t *f)
{
    uint8_t ts[12] = {1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 0};
    return fz_tcp(f, FZ_PEER_PORT, 80, z->peer_seq, z->peer_ack, 0x10, 1000, ts, 12, NULL, 0);
}

static void flush(fz *z)
{
    z->now += 1000;
    fz_poll(z, NULL, 0);
}

static void test_noop_is_noop(void)
{
    fz z;
    CHECK_EQ(fz_setup(&z, 0), 0);
    pn_conn_info a, b;
    snapshot(&z, &a);
    uint8_t f[FZ_FRAME];
    uint32_t n = noop(&z, f);
    fz_inject(&z, f, n, 0);
    flush(&z);
    snapshot(&z, &b);
    CHECK(same(&a, &b));
    pn_stats st;
    pn_stack_stats(z.s, &st);
    CHECK_EQ(st.drop_malformed + st.drop_bad_csum, 0);
    fz_teardown(&z);
}

static void test_truncations_and_lengths(void)
{
    fz z;
    CHECK_EQ(fz_setup(&z, 1), 0);
    pn_conn_info a, b;
    snapshot(&z, &a);
    uint8_t f[FZ_FRAME], g[FZ_FRAME];
    uint32_t n = noop(&z, f);
    uint64_t cnt = 0;
    for (uint32_t len = 0; len < n; len++) {   /* every truncation */
        memcpy(g, f, len);
        fz_inject(&z, g, len, 0);
        flush(&z);
        cnt++;
    }
    /* every IHL, every data offset, total lengths around the truth, checksums fixed */
    for (int ihl = 0; ihl < 16; ihl++) {
        memcpy(g, f, n);
        g[14] = (uint8_t)(0x40 | ihl);
        fz_fix_csums(g, n);
        fz_inject(&z, g, n, 0);
        flush(&z);
    }
    for (int doff = 0; doff < 16; doff++) {
        if (doff >= 5 && doff <= 7)
            continue;   /* valid: the options become 12/8/4 bytes of in-order data */
        memcpy(g, f, n);
        g[46] = (uint8_t)(doff << 4);
        fz_fix_csums(g, n);
        fz_inject(&z, g, n, 0);
        flush(&z);
    }
    for (int tot = 0; tot < 80; tot++) {
        memcpy(g, f, n);
        g[16] = 0;
        g[17] = (uint8_t)tot;
        fz_fix_csums(g, n);
        fz_inject(&z, g, n, 0);
        flush(&z);
    }
    g[16] = 0xff;   /* total length far beyond the frame */
    g[17] = 0xff;
    fz_inject(&z, g, n, 0);
    flush(&z);
    memcpy(g, f, n);   /* a bad checksum, then the same marked CSUM_OK by the link */
    g[n - 1] ^= 0x55;
    fz_inject(&z, g, n, 0);
    flush(&z);
    snapshot(&z, &b);
    CHECK(same(&a, &b));
    pn_stats st;
    pn_stack_stats(z.s, &st);
    CHECK(st.drop_malformed >= n - 1);
    CHECK(st.drop_bad_csum >= 1);
    CHECK(!z.l.bad_tx);
    fz_teardown(&z);
}

static void test_absurd_options(void)
{
    fz z;
    CHECK_EQ(fz_setup(&z, 2), 0);
    pn_conn_info a, b;
    snapshot(&z, &a);
    static const uint8_t opts[][12] = {
        {2, 0, 0, 0},                 /* length 0 */
        {2, 1, 0, 0},                 /* length 1 */
        {8, 255, 0, 0},               /* overruns */
        {3, 3, 200, 0},               /* shift 200 outside a SYN */
        {8, 10, 0, 0},                /* timestamp cut short */
        {2, 4, 0, 0},                 /* MSS 0 outside a SYN */
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        {0, 9, 9, 9},                 /* EOL then garbage */
        {30, 4, 1, 2},                /* unknown kind */
        {8, 6, 0, 0, 0, 0, 0, 0},     /* timestamp with a wrong length: ignored */
    };
    uint8_t f[FZ_FRAME];
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        uint32_t n = fz_tcp(f, FZ_PEER_PORT, 80, z.peer_seq, z.peer_ack, 0x10, 1000, opts[i], 12,
                            NULL, 0);
        fz_inject(&z, f, n, 0);
        flush(&z);
    }
    snapshot(&z, &b);
    CHECK(same(&a, &b));
    pn_stats st;
    pn_stack_stats(z.s, &st);
    CHECK(st.drop_malformed >= 3);
    /* absurd options on SYNs to the listener: accepted or not, never a crash; a SYN with
     * MSS 1 is clamped (as Linux's tcp_min_snd_mss) */
    uint8_t tiny[4] = {2, 4, 0, 1};
    uint32_t n = fz_tcp(f, 999, 80, 5, 0, 0x02, 100, tiny, 4, NULL, 0);
    fz_inject(&z, f, n, 0);
    flush(&z);
    CHECK(!z.l.bad_tx);
    fz_teardown(&z);
}

static void test_bit_flips(void)
{
    fz z;
    CHECK_EQ(fz_setup(&z, 0), 0);
    pn_conn_info a, b;
    snapshot(&z, &a);
    uint8_t f[FZ_FRAME], g[FZ_FRAME];
    uint32_t n = noop(&z, f);
    uint32_t iters = 200000;
    for (uint32_t i = 0; i < iters; i++) {
        memcpy(g, f, n);
        uint64_t r = rnd();
        int flips = 1 + (int)(r % 3);
        for (int k = 0; k < flips; k++) {
            uint64_t bit = (rnd() % (n * 8));
            g[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        fz_inject(&z, g, n, 0);
        if ((i & 7) == 7)
            flush(&z);
    }
    flush(&z);
    snapshot(&z, &b);
    CHECK(same(&a, &b));
    CHECK(!z.l.bad_tx);
    fz_teardown(&z);
}

static void test_random_bytes(void)
{
    fz z;
    CHECK_EQ(fz_setup(&z, 1), 0);
    pn_conn_info a, b;
    snapshot(&z, &a);
    uint8_t g[FZ_FRAME];
    uint32_t iters = 300000;
    for (uint32_t i = 0; i < iters; i++) {
        uint32_t len = (uint32_t)(rnd() % 1600);
        for (uint32_t k = 0; k < len; k += 8) {
            uint64_t r = rnd();
            memcpy(g + k, &r, len - k >= 8 ? 8 : len - k);
        }
        int mode = (int)(i % 4);
        if (mode >= 1 && len >= 14) {   /* ours, IPv4 or ARP */
            memcpy(g, FZ_MAC_US, 6);
            g[6] &= 0xfe;
            g[12] = 8;
            g[13] = (mode == 3) ? 6 : 0;
        }
        if (mode == 2 && len >= 34) {   /* IPv4 to us from the peer, checksums made right */
            g[14] = 0x45;
            fz_put32(g + 26, FZ_IP_PEER + (uint32_t)(rnd() % 3));
            fz_put32(g + 30, FZ_IP_US);
            g[23] = (i & 8) ? 6 : 1;
            g[16] = (uint8_t)((len - 14) >> 8);
            g[17] = (uint8_t)(len - 14);
            g[20] = g[21] = 0;
            if (len >= 38 && g[23] == 6 && g[34] == 0x04 && g[35] == 0xd2 && g[36] == 0 && g[37] == 80)
                g[35] ^= 1;   /* never the established tuple */
            fz_fix_csums(g, len);
        }
        fz_inject(&z, g, len, (i % 16 == 5) ? PN_RX_CSUM_OK : 0);
        if ((i & 7) == 7)
            flush(&z);
    }
    flush(&z);
    snapshot(&z, &b);
    CHECK(same(&a, &b));
    CHECK(!z.l.bad_tx);
    /* the connection still works: in-order data arrives intact */
    uint8_t f[FZ_FRAME];
    uint8_t ts[12] = {1, 1, 8, 10, 0, 0, 0, 3, 0, 0, 0, 0};
    uint32_t n = fz_tcp(f, FZ_PEER_PORT, 80, z.peer_seq, z.peer_ack, 0x18, 1000, ts, 12,
                        (const uint8_t *)"hello", 5);
    fz_inject(&z, f, n, 0);
    z.now += 1000;
    int k = pn_poll(z.s, z.now, z.ev, 32);
    int got = 0;
    for (int i = 0; i < k; i++)
        if (z.ev[i].type == PN_EV_DATA && z.ev[i].conn_id == z.conn && z.ev[i].len == 5 &&
            memcmp(z.ev[i].data, "hello", 5) == 0)
            got = 1;
    CHECK(got);
    pn_stats st;
    pn_stack_stats(z.s, &st);
    printf("  random frames: in %llu, malformed %llu, bad csum %llu, not ours %llu, RSTs out %llu\n",
           (unsigned long long)st.frames_in, (unsigned long long)st.drop_malformed,
           (unsigned long long)st.drop_bad_csum, (unsigned long long)st.drop_not_ours,
           (unsigned long long)st.TcpOutRsts);
    fz_teardown(&z);
}

/* The structured decoder (as the libFuzzer target): valid-checksum segments with fuzzed
 * fields, mutations, ARP, ICMP, time jumps and API calls. */
static void test_structured(void)
{
    uint32_t sessions = 20000;
    uint64_t bytes = 0, segs = 0, bad = 0, evs = 0, outs = 0;
    uint8_t in[600];
    for (uint32_t s = 0; s < sessions; s++) {
        fz z;
        if (fz_setup(&z, (uint8_t)s) < 0) {
            CHECK(0);
            return;
        }
        size_t n = 200 + rnd() % 400;
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)rnd();
        fz_run(&z, in, n);
        bytes += n;
        pn_stats st;
        pn_stack_stats(z.s, &st);
        segs += st.TcpInSegs;
        bad += st.drop_malformed + st.drop_bad_csum;
        outs += st.TcpOutSegs;
        evs += z.events;
        if (z.l.bad_tx)
            h_fail++;
        fz_teardown(&z);
    }
    CHECK(bytes > 0);
    printf("  structured fuzz: %u sessions, %llu input bytes, %llu segments in, %llu dropped as bad, %llu out, %llu events\n",
           sessions, (unsigned long long)bytes, (unsigned long long)segs, (unsigned long long)bad,
           (unsigned long long)outs, (unsigned long long)evs);
}


/* PAWS (RFC 7323 5): a segment whose TSval is older than TS.Recent is dropped (and
 * ACKed); its data is not taken. */
static void test_paws(void)
{
    fz z;
    CHECK_EQ(fz_setup(&z, 0), 0);
    pn_conn_info a, b;
    snapshot(&z, &a);
    uint8_t f[FZ_FRAME];
    uint8_t ts[12] = {1, 1, 8, 10, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0};   /* just before 2, mod 2^32 */
    uint32_t n = fz_tcp(f, FZ_PEER_PORT, 80, z.peer_seq, z.peer_ack, 0x18, 1000, ts, 12,
                        (const uint8_t *)"old", 3);
    fz_inject(&z, f, n, 0);
    flush(&z);
    snapshot(&z, &b);
    CHECK(same(&a, &b));
    pn_stats st;
    pn_stack_stats(z.s, &st);
    CHECK_EQ(st.TcpExtPAWSEstabRejected, 1);
    /* a newer TSval is taken */
    ts[4] = ts[5] = ts[6] = 0;
    ts[7] = 9;
    n = fz_tcp(f, FZ_PEER_PORT, 80, z.peer_seq, z.peer_ack, 0x18, 1000, ts, 12,
               (const uint8_t *)"new", 3);
    fz_inject(&z, f, n, 0);
    flush(&z);
    snapshot(&z, &b);
    CHECK_EQ(b.rcv_nxt, a.rcv_nxt + 3);
    fz_teardown(&z);
}

int main(void)
{
    RUN(test_noop_is_noop);
    RUN(test_paws);
    RUN(test_truncations_and_lengths);
    RUN(test_absurd_options);
    RUN(test_bit_flips);
    RUN(test_random_bytes);
    RUN(test_structured);
    HARNESS_DONE();
}
