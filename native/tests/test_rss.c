/* test_rss.c -- the Toeplitz hash against the published RSS verification data, and a
 * shard's link choosing the client ports (port_fits): every ephemeral port picked fits,
 * an explicit one that does not is refused by name, and a link that cannot tell fails
 * the connect instead of picking a port whose replies go astray. */
#include "pn_internal.h"
#include "rss.h"
#include "util.h"

/* The verification key and IPv4-with-TCP vectors published for NDIS RSS ("Verifying the
 * RSS Hash Calculation"): source, destination, expected hash. */
static const uint8_t KEY[40] = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

static void test_toeplitz_matches_the_published_vectors(void)
{
    CHECK_EQ(pn_rss_tcp4(KEY, sizeof KEY, IP(66, 9, 149, 187), IP(161, 142, 100, 80), 2794,
                         1766), 0x51ccc178u);
    CHECK_EQ(pn_rss_tcp4(KEY, sizeof KEY, IP(199, 92, 111, 2), IP(65, 69, 140, 83), 14230,
                         4739), 0xc626b0eau);
    CHECK_EQ(pn_rss_tcp4(KEY, sizeof KEY, IP(24, 19, 198, 95), IP(12, 22, 207, 184), 12898,
                         38024), 0x5c2b394au);
    /* the queue of a reply: the vector's source is the remote end, its destination us */
    uint32_t indir[4] = {7, 5, 3, 1};
    pn_rss r = {.key_len = sizeof KEY, .indir = indir, .indir_size = 4};
    memcpy(r.key, KEY, sizeof KEY);
    pn_flow f = {.local_ip = IP(161, 142, 100, 80), .remote_ip = IP(66, 9, 149, 187),
                 .local_port = 1766, .remote_port = 2794};
    CHECK_EQ(pn_rss_queue(&r, &f), indir[0x51ccc178u % 4]);
    f = (pn_flow){.local_ip = IP(65, 69, 140, 83), .remote_ip = IP(199, 92, 111, 2),
                  .local_port = 4739, .remote_port = 14230};
    CHECK_EQ(pn_rss_queue(&r, &f), indir[0xc626b0eau % 4]);
    /* a key too short for the input hashes nothing rather than read past it */
    uint8_t in[12] = {1};
    CHECK_EQ(pn_rss_toeplitz(KEY, 15, in, sizeof in), 0u);
}

static int fits_mode;   /* 0: ports = 1 mod 4 fit; 1: the link cannot tell */
static int odd_shard_fits(pn_link *l, const pn_flow *f)
{
    if (fits_mode == 1) {
        snprintf(l->err, sizeof l->err, "cannot tell");
        return -1;
    }
    return f->local_port % 4 == 1;
}

static void test_a_shard_picks_ports_that_fit(void)
{
    world w;
    node *cl, *sv;
    world_pair(&w, NULL, NULL, NULL, &cl, &sv);
    pn_link_ops ops = *cl->s->link->ops;
    ops.port_fits = odd_shard_fits;
    const pn_link_ops *before = cl->s->link->ops;
    cl->s->link->ops = &ops;
    fits_mode = 0;
    for (int i = 0; i < 20; i++) {
        uint32_t id;
        CHECK_EQ(pn_connect(cl->s, PAIR_SIP, 80, 0, &id), 0);
        pn_conn_info ci;
        CHECK_EQ(pn_conn_info_get(cl->s, id, &ci), 0);
        CHECK_EQ(ci.local_port % 4, 1);
    }
    uint32_t id;
    CHECK_EQ(pn_connect(cl->s, PAIR_SIP, 80, 40000, &id), PN_ELINK);
    CHECK(strstr(cl->s->link->err, "local port 40000") != NULL);
    CHECK_EQ(pn_connect(cl->s, PAIR_SIP, 80, 40001, &id), 0);
    fits_mode = 1;
    CHECK_EQ(pn_connect(cl->s, PAIR_SIP, 80, 0, &id), PN_ELINK);
    CHECK(strstr(cl->s->link->err, "cannot tell") != NULL);
    cl->s->link->ops = before;
    world_free(&w);
}

int main(void)
{
    RUN(test_toeplitz_matches_the_published_vectors);
    RUN(test_a_shard_picks_ports_that_fit);
    HARNESS_DONE();
}
