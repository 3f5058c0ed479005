/* test_ax_fill.c -- AF_XDP fill-ring returns (src/ax_fill.h) against a tiny ring in memory:
 * a full fill ring must not lose the frames the stack gives back (issue 11 §3). */
#include <string.h>

#include "harness.h"

#if defined(__has_include)
#if __has_include(<xdp/xsk.h>)
#define HAVE_XSK 1
#endif
#endif

#ifdef HAVE_XSK
#include "ax_fill.h"

/* A fill ring of `size` slots as the kernel shares it: producer, consumer, descriptors. */
static struct {
    uint32_t producer, consumer, flags;
    uint64_t ring[8];
} mem;

static void ring_init(struct xsk_ring_prod *r, uint32_t size)
{
    memset(&mem, 0, sizeof mem);
    memset(r, 0, sizeof *r);
    r->mask = size - 1;
    r->size = size;
    r->producer = &mem.producer;
    r->consumer = &mem.consumer;
    r->ring = mem.ring;
    r->flags = &mem.flags;
    r->cached_cons = size;       /* as libxdp sets it: consumer + size */
}

static void kernel_takes(uint32_t n)
{
    __atomic_store_n(&mem.consumer, mem.consumer + n, __ATOMIC_RELEASE);
}

static void test_full_ring_keeps_frames(void)
{
    struct xsk_ring_prod fill;
    ring_init(&fill, 4);
    uint64_t store[8];
    pn_ax_fill_backlog b = { store, 0, 8 };
    uint64_t lost = 0;
    const uint64_t first[4] = { 0x000, 0x800, 0x1000, 0x1800 };
    CHECK_EQ(pn_ax_fill_return(&fill, &b, first, 4, &lost), 0);
    CHECK_EQ(mem.producer, 4);
    /* The ring is full (the kernel has not retired a slot) when two frames come back. */
    const uint64_t back[2] = { 0x2000, 0x2800 };
    CHECK_EQ(pn_ax_fill_return(&fill, &b, back, 2, &lost), 1);
    CHECK_EQ(b.n, 2);
    CHECK_EQ(mem.producer, 4);
    /* One slot retires: the oldest waiting frame goes in, the other still waits. */
    kernel_takes(1);
    CHECK_EQ(pn_ax_fill_flush(&fill, &b), 1);
    CHECK_EQ(mem.producer, 5);
    CHECK_EQ(mem.ring[4 & 3], 0x2000);
    /* More retire; a new return goes in behind the one that waited, in order. */
    kernel_takes(3);
    const uint64_t more[1] = { 0x3000 };
    CHECK_EQ(pn_ax_fill_return(&fill, &b, more, 1, &lost), 0);
    CHECK_EQ(b.n, 0);
    CHECK_EQ(mem.producer, 7);
    CHECK_EQ(mem.ring[5 & 3], 0x2800);
    CHECK_EQ(mem.ring[6 & 3], 0x3000);
    CHECK_EQ(lost, 0);
}

static void test_backlog_cap_counts_loss(void)
{
    struct xsk_ring_prod fill;
    ring_init(&fill, 2);
    uint64_t store[1];
    pn_ax_fill_backlog b = { store, 0, 1 };
    uint64_t lost = 0;
    const uint64_t a[1] = { 0x000 }, c[1] = { 0x800 }, d[1] = { 0x1000 }, e[1] = { 0x1800 };
    CHECK_EQ(pn_ax_fill_return(&fill, &b, a, 1, &lost), 0);
    CHECK_EQ(pn_ax_fill_return(&fill, &b, c, 1, &lost), 0);   /* the ring is full now */
    CHECK_EQ(pn_ax_fill_return(&fill, &b, d, 1, &lost), 1);   /* waits in the backlog */
    CHECK_EQ(lost, 0);
    CHECK_EQ(pn_ax_fill_return(&fill, &b, e, 1, &lost), 1);   /* beyond the backlog's cap */
    CHECK_EQ(b.n, 1);
    CHECK_EQ(b.addr[0], 0x1000);
    CHECK_EQ(lost, 1);
}
#endif

int main(void)
{
#ifdef HAVE_XSK
    RUN(test_full_ring_keeps_frames);
    RUN(test_backlog_cap_counts_loss);
#else
    printf("test_ax_fill: skipped (no <xdp/xsk.h>: apt-get install libxdp-dev)\n");
#endif
    HARNESS_DONE();
}
