/* ax_fill.h -- returning AF_XDP RX frames to the fill ring without losing any.
 *
 * The kernel publishes an RX descriptor just before it retires the fill slot the frame came
 * from, so a poller can find the fill ring full while frames wait to go back. Frames the
 * ring cannot take now wait in a backlog (room for every RX frame, so it cannot overflow)
 * and go first at the next release or RX burst. Header-only so the C tests can drive it
 * with a ring of their own (needs <xdp/xsk.h>). */
#ifndef PN_AX_FILL_H
#define PN_AX_FILL_H
#include <stdint.h>
#include <xdp/xsk.h>

typedef struct pn_ax_fill_backlog {
    uint64_t *addr;      /* frames not yet in the fill ring, oldest first */
    uint32_t n, cap;     /* cap >= the RX frame count */
} pn_ax_fill_backlog;

/* Move the backlog into the fill ring, as much as it has room for. Returns how many
 * frames still wait (0: all returned). */
static inline uint32_t pn_ax_fill_flush(struct xsk_ring_prod *fill, pn_ax_fill_backlog *b)
{
    if (b->n == 0)
        return 0;
    uint32_t room = xsk_prod_nb_free(fill, b->n);
    uint32_t take = room < b->n ? room : b->n;
    uint32_t idx = 0;
    if (take == 0 || xsk_ring_prod__reserve(fill, take, &idx) != take)
        return b->n;
    for (uint32_t i = 0; i < take; i++)
        *xsk_ring_prod__fill_addr(fill, idx + i) = b->addr[i];
    xsk_ring_prod__submit(fill, take);
    b->n -= take;
    for (uint32_t i = 0; i < b->n; i++)
        b->addr[i] = b->addr[take + i];
    return b->n;
}

/* Return n frames (UMEM chunk addresses) to the fill ring behind any backlog. Returns 1
 * when some frames had to wait (the event the link counts), 0 when all went in; frames
 * beyond the backlog's cap (impossible when cap >= the RX frame count) are counted in
 * *lost. */
static inline int pn_ax_fill_return(struct xsk_ring_prod *fill, pn_ax_fill_backlog *b,
                                    const uint64_t *addr, uint32_t n, uint64_t *lost)
{
    for (uint32_t i = 0; i < n; i++) {
        if (b->n < b->cap)
            b->addr[b->n++] = addr[i];
        else
            (*lost)++;
    }
    return pn_ax_fill_flush(fill, b) != 0;
}
#endif
