/*
 * link_efvi.c -- the efvi link: AMD/Solarflare ef_vi, the hardware efvitcp was made for.
 * One file of about nine hundred lines, as every link is one file (pn_link.h).
 *
 * Written against the documented ef_vi API (Onload's etherfabric/base.h, pd.h, memreg.h,
 * vi.h, ef_vi.h, capabilities.h). Built for real when the Onload headers and libciul are
 * found (native/build_links.py: efvi_build()), or against pollnet's own look-alike library
 * (native/efvi_shim, POLLNET_EFVI_SHIM=1) that moves frames over AF_PACKET for tests.
 * Otherwise this file is a stub whose create call says why the link is missing.
 *
 * Resources (created in this order, freed in reverse by destroy):
 *   ef_driver_open -> ef_pd_alloc_by_name(ifname) -> ef_vi_capabilities_get (CTPIO, RX
 *   timestamps) -> ef_vi_alloc_from_pd -> ef_memreg_alloc of one page-aligned region.
 *
 * Packet buffers: the region is an array of 2048-byte buffers (rx_bufs RX, then tx_bufs
 * TX). A 2048-byte buffer at a 2048-byte offset never crosses a 4 KiB page, so every DMA
 * address comes from ef_memreg_dma_addr() of the buffer's own offset (DMA addresses are
 * contiguous only within a page) and is EF_VI_DMA_ALIGN-aligned. RX buffers are at least
 * ef_vi_receive_buffer_len() long (set down to 2048 when the VI wants more).
 *
 *   rx_burst    polls the event queue into a queue of ready frames (RX: frame at
 *               buffer + ef_vi_receive_prefix_len(), length EF_EVENT_RX_BYTES - prefix;
 *               hardware timestamp read before the next poll, as documented), then hands
 *               frames out. RX_DISCARD and the buffers of a multi-buffer (jumbo) frame go
 *               straight back to the ring; TX/TX_ERROR free TX buffers through
 *               ef_vi_transmit_unbundle.
 *   rx_release  returns buffers to a free list; the ring is refilled in batches of 8
 *               (ef_vi_receive_init x8, one ef_vi_receive_push), as the docs advise.
 *   tx_buf      a free TX buffer (one free buffer <=> one free TX descriptor slot).
 *   tx_send     CTPIO NICs: ef_vi_transmit_ctpio, then ef_vi_transmit_ctpio_fallback with
 *               the same frame in registered memory (required before the next send).
 *               Others: ef_vi_transmit_init (the doorbell waits for tx_flush).
 *   tx_flush    ef_vi_transmit_push once if descriptors were initialised since the last.
 *   flow_add    ef_filter_spec_set_ip4_full (connections) or _ip4_local (listeners) +
 *               ef_vi_filter_add; the cookie is kept per flow for ef_vi_filter_del.
 *               pn_efvi_link_udp_filter() adds UDP ip4_local filters the same way (for
 *               pollnet.tools: UDP through the link without the stack).
 *
 * ARP: filters steal frames from the kernel, but nothing steers ARP replies to us (their
 * destination is the interface's MAC, which the kernel owns). So when the stack sends an
 * ARP request, the link asks the kernel to resolve the same address
 * (pn_route_neigh_probe) and, when the kernel's neighbour table has it (pn_route_lookup,
 * polled at most every millisecond), hands the stack an ARP reply built from it -- the
 * kernel's table is what efvitcp relies on too. With own_ip (an address the kernel does
 * not have) a broadcast MAC filter brings ARP requests for that address to the stack (the
 * NIC replicates broadcast to every subscriber, the kernel included).
 *
 * Shared address (own_ip 0): ports the stack uses are held by kernel sockets
 * (real_link.h), so the kernel never hands them out to its own connections.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "real_link.h"

#define WHO "efvi"

#ifndef PN_HAVE_EFVI

/* PN_EFVI_SKIP, set by native/build_links.py: why there is no ef_vi in this build. */
#if defined(PN_EFVI_SKIP) && PN_EFVI_SKIP == 2
#define PN_EFVI_SKIP_REASON "Onload's etherfabric headers were found but not libciul"
#elif defined(PN_EFVI_SKIP) && PN_EFVI_SKIP == 3
#define PN_EFVI_SKIP_REASON "POLLNET_NO_EFVI was set at build time"
#elif defined(PN_EFVI_SKIP) && PN_EFVI_SKIP == 4
#include "pn_efvi_build.h"   /* the compiler's first error against Onload's headers */
#else
#define PN_EFVI_SKIP_REASON "Onload's etherfabric headers (etherfabric/vi.h) were not found"
#endif

pn_link *pn_efvi_link_create(const pn_real_link_params *p, char *err, size_t errlen)
{
    (void)p;
    pn_rl_errf(err, errlen, WHO,
               "this build has no efvi link (%s); install AMD Onload (set ONLOAD_HOME) and "
               "rebuild", PN_EFVI_SKIP_REASON);
    return NULL;
}

const char *pn_efvi_build_info(void)
{
    return "not built: " PN_EFVI_SKIP_REASON;
}

int pn_efvi_link_info_get(pn_link *l, pn_efvi_link_info *out)
{
    (void)l;
    (void)out;
    return PN_EINVAL;
}

int pn_efvi_link_udp_filter(pn_link *l, uint32_t local_ip, uint16_t port, int add)
{
    (void)l;
    (void)local_ip;
    (void)port;
    (void)add;
    return PN_EINVAL;
}

#else /* PN_HAVE_EFVI */

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <time.h>

#include <etherfabric/base.h>
#include <etherfabric/capabilities.h>
#include <etherfabric/ef_vi.h>
#include <etherfabric/memreg.h>
#include <etherfabric/pd.h>
#include <etherfabric/vi.h>

#ifdef PN_EFVI_SHIM
#define PN_EFVI_BUILD_INFO "efvi_shim: pollnet's ef_vi look-alike over AF_PACKET (tests)"
#else
#define PN_EFVI_BUILD_INFO "AMD Onload ef_vi (libciul)"
#endif

#define BUF_SIZE 2048u             /* one packet buffer (ef_memreg_alloc's unit) */
#define DEFAULT_RX_BUFS 504u       /* a multiple of 8 that fits a 512-slot ring */
#define MAX_RX_BUFS 4095u          /* a 4096-slot ring holds 4095 (capacity = mask) */
#define DEFAULT_TX_BUFS 511u
#define REFILL_BATCH 8u            /* RX descriptors are pushed in multiples of 8 */
#define EV_BATCH 64
#define CT_THRESHOLD 64u           /* CTPIO cut-through after this many bytes */
#define MIN_FRAME 60u              /* Ethernet minimum without FCS */
#define MAX_FLOWS 4096u
#define ARP_SLOTS 8u
#define ARP_POLL_NS 1000000ull     /* neighbour-table look-ups at most every 1 ms */
#define ARP_GIVE_UP_NS 3000000000ull
#define SYN_FRAME 64u              /* a synthesized ARP reply (42 bytes, padded) */

enum { B_FREE = 0, B_RING = 1, B_READY = 2, B_HELD = 3 };

typedef struct flow_slot {
    pn_flow f;
    ef_filter_cookie cookie;
    uint8_t used;
    uint8_t proto;             /* IPPROTO_TCP (the stack's flows) or IPPROTO_UDP (tools) */
} flow_slot;

typedef struct arp_wait {
    uint32_t ip;               /* host order, 0 = free */
    uint32_t spa;              /* the stack's address (the reply's target) */
    uint8_t sha[6];            /* the stack's MAC */
    uint64_t next_check, give_up;
} arp_wait;

typedef struct ready_frame {
    uint32_t id;               /* buffer index, or rx_bufs + ARP slot */
    uint32_t len;
    uint64_t ts;
} ready_frame;

typedef struct efvi_link {
    pn_real_link rl;
    ef_driver_handle dh;
    ef_pd pd;
    ef_vi vi;
    ef_memreg mr;
    uint8_t dh_ok, pd_ok, vi_ok, mr_ok;
    uint8_t own_ip, ctpio, rx_ts, in_jumbo;
    int ifindex;
    uint8_t *mem;
    size_t mem_len;
    uint32_t rx_bufs, tx_bufs;
    uint32_t prefix_len, rx_buf_len;
    ef_addr *dma;              /* [rx_bufs + tx_bufs] */
    uint8_t *state;            /* [rx_bufs]: B_* */
    uint32_t *rx_free;         /* [rx_bufs] stack of buffers off the ring */
    uint32_t rx_free_n;
    uint32_t *tx_free;         /* [tx_bufs] stack of free TX buffers (absolute indices) */
    uint32_t tx_free_n;
    uint32_t tx_inited;        /* descriptors initialised since the last push */
    ready_frame *ready;        /* ring [rx_bufs + ARP_SLOTS] */
    uint32_t ready_cap, ready_head, ready_n;
    flow_slot *flows;          /* [MAX_FLOWS] */
    uint32_t flow_n;
    ef_filter_cookie bcast;
    uint8_t bcast_ok;
    arp_wait arp[ARP_SLOTS];
    uint8_t syn[ARP_SLOTS][SYN_FRAME];
    uint8_t syn_busy[ARP_SLOTS];
    pn_port_resv ports;
    pn_efvi_link_info info;
} efvi_link;

static inline uint8_t *buf_ptr(efvi_link *e, uint32_t id)
{
    return e->mem + (size_t)id * BUF_SIZE;
}

static void set_err(efvi_link *e, const char *call, int rc)
{
    pn_rl_errf(e->rl.link.err, sizeof e->rl.link.err, WHO, "%s: %s", call, strerror(-rc));
}

/* ------------------------------------------------------------------ receive ring */

static void refill(efvi_link *e)
{
    uint32_t pushed = 0;
    while (e->rx_free_n >= REFILL_BATCH && ef_vi_receive_space(&e->vi) >= (int)REFILL_BATCH) {
        for (uint32_t k = 0; k < REFILL_BATCH; k++) {
            uint32_t id = e->rx_free[--e->rx_free_n];
            int rc = ef_vi_receive_init(&e->vi, e->dma[id], (ef_request_id)id);
            if (rc < 0) {  /* cannot happen with space checked; keep the buffer */
                e->rx_free[e->rx_free_n++] = id;
                e->info.rx_post_errors++;
                goto push;
            }
            e->state[id] = B_RING;
            pushed++;
        }
    }
push:
    if (pushed)
        ef_vi_receive_push(&e->vi);
}

static void rx_recycle(efvi_link *e, uint32_t id)
{
    e->state[id] = B_FREE;
    e->rx_free[e->rx_free_n++] = id;
}

static void ready_push(efvi_link *e, uint32_t id, uint32_t len, uint64_t ts)
{
    ready_frame *r = &e->ready[(e->ready_head + e->ready_n) % e->ready_cap];
    r->id = id;
    r->len = len;
    r->ts = ts;
    e->ready_n++;
}

static void on_rx(efvi_link *e, const ef_event *ev)
{
    uint32_t id = (uint32_t)EF_EVENT_RX_RQ_ID(*ev);
    if (id >= e->rx_bufs || e->state[id] != B_RING) {
        e->info.rx_bad_ids++;
        return;
    }
    int cont = EF_EVENT_RX_CONT(*ev) != 0;
    if (e->in_jumbo || cont) {
        /* A frame larger than one buffer: the stack takes no jumbo frames. Every buffer
         * up to the one without CONT belongs to it. */
        if (!e->in_jumbo)
            e->rl.stats.rx_drop_oversize++;
        e->in_jumbo = (uint8_t)cont;
        rx_recycle(e, id);
        return;
    }
    uint32_t bytes = EF_EVENT_RX_BYTES(*ev);
    if (bytes < e->prefix_len + 14 || bytes > e->rx_buf_len) {
        e->info.rx_runts++;
        rx_recycle(e, id);
        return;
    }
    uint64_t ts = 0;
    if (e->rx_ts) {
        /* Documented: after this RX event's poll and before the next poll; pkt is the
         * first buffer of the packet (prefix included). */
#ifdef ef_vi_receive_get_precise_timestamp
        /* Onload 9.0 and later: the unified timestamp call (a macro over the VI's ops);
         * the older calls are deprecated there. */
        ef_precisetime t;
        if (ef_vi_receive_get_precise_timestamp(&e->vi, buf_ptr(e, id), &t) == 0)
            ts = (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
        else
            e->info.rx_ts_missing++;
#else
        /* Onload 8.x (and our look-alike): the call with the clock sync flags. */
        struct timespec t;
        unsigned flags = 0;
        if (ef_vi_receive_get_timestamp_with_sync_flags(&e->vi, buf_ptr(e, id), &t,
                                                        &flags) == 0)
            ts = (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
        else
            e->info.rx_ts_missing++;
#endif
    }
    e->state[id] = B_READY;
    ready_push(e, id, bytes - e->prefix_len, ts);
    e->rl.stats.rx_frames++;
    e->rl.stats.rx_bytes += bytes - e->prefix_len;
}

static void on_rx_discard(efvi_link *e, const ef_event *ev)
{
    uint32_t id = (uint32_t)EF_EVENT_RX_DISCARD_RQ_ID(*ev);
    unsigned why = EF_EVENT_RX_DISCARD_TYPE(*ev);
    if (id >= e->rx_bufs || e->state[id] != B_RING) {
        e->info.rx_bad_ids++;
        return;
    }
    if (why < PN_EFVI_DISCARD_KINDS)
        e->info.rx_discard[why]++;
    e->in_jumbo = EF_EVENT_RX_DISCARD_CONT(*ev) ? 1 : 0;
    rx_recycle(e, id);
}

static void on_tx(efvi_link *e, const ef_event *ev, int error)
{
    ef_request_id ids[EF_VI_TRANSMIT_BATCH];
    int n = ef_vi_transmit_unbundle(&e->vi, ev, ids);
    if (error)
        e->rl.stats.tx_errors += (uint64_t)(n > 0 ? n : 1);
    else if (EF_EVENT_TX_CTPIO(*ev))
        e->info.tx_ctpio_ok += (uint64_t)(n > 0 ? n : 0);
    for (int i = 0; i < n; i++) {
        uint32_t id = (uint32_t)ids[i];
        if (id < e->rx_bufs || id >= e->rx_bufs + e->tx_bufs || e->tx_free_n >= e->tx_bufs) {
            e->info.tx_bad_ids++;
            continue;
        }
        e->tx_free[e->tx_free_n++] = id;
    }
}

/* Poll the event queue once and sort out every event. < 0: the VI is unusable. */
static int poll_events(efvi_link *e)
{
    ef_event evs[EV_BATCH];
    int n = ef_eventq_poll(&e->vi, evs, EV_BATCH);
    for (int i = 0; i < n; i++) {
        switch (EF_EVENT_TYPE(evs[i])) {
        case EF_EVENT_TYPE_RX:
            on_rx(e, &evs[i]);
            break;
        case EF_EVENT_TYPE_RX_DISCARD:
            on_rx_discard(e, &evs[i]);
            break;
        case EF_EVENT_TYPE_TX:
            on_tx(e, &evs[i], 0);
            break;
        case EF_EVENT_TYPE_TX_ERROR:
            on_tx(e, &evs[i], 1);
            break;
        case EF_EVENT_TYPE_RX_NO_DESC_TRUNC:
            e->rl.stats.rx_kernel_drops++;  /* the ring ran dry mid-frame */
            break;
        case EF_EVENT_TYPE_OFLOW:
            pn_rl_errf(e->rl.link.err, sizeof e->rl.link.err, WHO,
                       "event queue overflow: the VI's state is undefined (poll more often)");
            return PN_ELINK;
        case EF_EVENT_TYPE_RESET:
            pn_rl_errf(e->rl.link.err, sizeof e->rl.link.err, WHO,
                       "event queue reset by the driver (NIC reset or hot-unplug)");
            return PN_ELINK;
        default:
            e->info.other_events++;
            break;
        }
    }
    if (n > 0)
        refill(e);
    return n;
}

/* ------------------------------------------------------------------ ARP via the kernel */

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The stack sent an ARP request: ask the kernel to resolve the same address. */
static void arp_request_out(efvi_link *e, const uint8_t *f, uint32_t len)
{
    if (len < 42 || f[12] != 0x08 || f[13] != 0x06 || f[20] != 0 || f[21] != 1)
        return;
    uint32_t tpa = get32(f + 38);
    arp_wait *slot = NULL;
    for (uint32_t i = 0; i < ARP_SLOTS; i++) {
        if (e->arp[i].ip == tpa) {
            slot = &e->arp[i];
            break;
        }
        if (slot == NULL && e->arp[i].ip == 0)
            slot = &e->arp[i];
    }
    if (slot == NULL) {
        e->info.arp_lookups_dropped++;
        return;
    }
    uint64_t now = mono_ns();
    if (slot->ip != tpa) {
        slot->ip = tpa;
        slot->give_up = now + ARP_GIVE_UP_NS;
    }
    slot->spa = get32(f + 28);
    memcpy(slot->sha, f + 22, 6);
    slot->next_check = now;  /* the kernel may know it already */
    char err[128];
    if (pn_route_neigh_probe(tpa, e->ifindex, err, sizeof err) < 0)
        e->info.arp_probe_errors++;
}

static void arp_poll(efvi_link *e)
{
    uint64_t now = 0;
    for (uint32_t i = 0; i < ARP_SLOTS; i++) {
        arp_wait *w = &e->arp[i];
        if (w->ip == 0)
            continue;
        if (now == 0)
            now = mono_ns();
        if (now < w->next_check)
            continue;
        w->next_check = now + ARP_POLL_NS;
        if (now > w->give_up) {
            w->ip = 0;  /* the stack's own ARP timer reports the failure */
            continue;
        }
        pn_route r;
        char err[128];
        if (pn_route_lookup(w->ip, &r, err, sizeof err) < 0 || !r.has_mac ||
            r.next_hop != w->ip)
            continue;
        uint32_t s;
        for (s = 0; s < ARP_SLOTS && e->syn_busy[s]; s++)
            ;
        if (s == ARP_SLOTS || e->ready_n == e->ready_cap)
            return;  /* the stack still holds earlier replies: next time */
        uint8_t *f = e->syn[s];
        memset(f, 0, SYN_FRAME);
        memcpy(f, w->sha, 6);
        memcpy(f + 6, r.mac, 6);
        f[12] = 0x08;
        f[13] = 0x06;
        f[14] = 0;
        f[15] = 1;        /* Ethernet */
        f[16] = 0x08;
        f[17] = 0x00;     /* IPv4 */
        f[18] = 6;
        f[19] = 4;
        f[20] = 0;
        f[21] = 2;        /* reply */
        memcpy(f + 22, r.mac, 6);
        put32(f + 28, w->ip);
        memcpy(f + 32, w->sha, 6);
        put32(f + 38, w->spa);
        e->syn_busy[s] = 1;
        ready_push(e, e->rx_bufs + s, MIN_FRAME, 0);
        e->info.arp_from_kernel++;
        w->ip = 0;
    }
}

/* ------------------------------------------------------------------ link ops */

static int ev_rx_burst(pn_link *l, uint64_t now_ns, pn_rx_frame *frames, int max)
{
    (void)now_ns;
    efvi_link *e = (efvi_link *)l;
    if (e->ready_n < (uint32_t)(max > 0 ? max : 0)) {
        int rc = poll_events(e);
        if (rc < 0)
            return rc;
    }
    arp_poll(e);
    int n = 0;
    while (n < max && e->ready_n > 0) {
        ready_frame *r = &e->ready[e->ready_head];
        e->ready_head = (e->ready_head + 1) % e->ready_cap;
        e->ready_n--;
        pn_rx_frame *f = &frames[n++];
        if (r->id >= e->rx_bufs) {
            f->data = e->syn[r->id - e->rx_bufs];
        } else {
            f->data = buf_ptr(e, r->id) + e->prefix_len;
            e->state[r->id] = B_HELD;
        }
        f->len = r->len;
        f->flags = 0;  /* the stack verifies checksums itself */
        f->handle = r->id;
        f->hw_ts_ns = r->ts;
    }
    return n;
}

static void ev_rx_release(pn_link *l, const pn_rx_frame *frames, int n)
{
    efvi_link *e = (efvi_link *)l;
    for (int k = 0; k < n; k++) {
        uint64_t id = frames[k].handle;
        if (id >= e->rx_bufs) {
            if (id < (uint64_t)e->rx_bufs + ARP_SLOTS)
                e->syn_busy[id - e->rx_bufs] = 0;
            continue;
        }
        if (e->state[id] != B_HELD)
            continue;
        rx_recycle(e, (uint32_t)id);
    }
    refill(e);
}

static uint8_t *ev_tx_buf(pn_link *l, uint32_t *cap)
{
    efvi_link *e = (efvi_link *)l;
    if (e->tx_free_n == 0) {
        /* Completions may be waiting: poll (RX events found here wait in the ready
         * queue, with their timestamps already read). */
        if (e->tx_inited) {
            ef_vi_transmit_push(&e->vi);
            e->tx_inited = 0;
        }
        if (poll_events(e) < 0 || e->tx_free_n == 0) {
            e->rl.stats.tx_ring_full++;
            return NULL;
        }
    }
    uint32_t id = e->tx_free[e->tx_free_n - 1];
    uint32_t room = e->rl.link.mtu + 14u;
    *cap = room < BUF_SIZE ? room : BUF_SIZE;
    return buf_ptr(e, id);
}

static int ev_tx_send(pn_link *l, uint8_t *buf, uint32_t len)
{
    efvi_link *e = (efvi_link *)l;
    if (e->tx_free_n == 0 || buf != buf_ptr(e, e->tx_free[e->tx_free_n - 1]) || len < 14 ||
        len > BUF_SIZE) {
        pn_rl_errf(e->rl.link.err, sizeof e->rl.link.err, WHO,
                   "tx_send: not the buffer of the last tx_buf() or bad length %u", len);
        return PN_EINVAL;
    }
    uint32_t id = e->tx_free[e->tx_free_n - 1];
    if (buf[12] == 0x08 && buf[13] == 0x06)
        arp_request_out(e, buf, len);
    if (len < MIN_FRAME) {  /* pad as the NIC would (CTPIO sends frames unmodified) */
        memset(buf + len, 0, MIN_FRAME - len);
        len = MIN_FRAME;
    }
    int rc;
    if (e->ctpio) {
        ef_vi_transmit_ctpio(&e->vi, buf, len, CT_THRESHOLD);
        rc = ef_vi_transmit_ctpio_fallback(&e->vi, e->dma[id], len, (ef_request_id)id);
    } else {
        rc = ef_vi_transmit_init(&e->vi, e->dma[id], (int)len, (ef_request_id)id);
        if (rc == 0)
            e->tx_inited++;
    }
    if (rc < 0) {
        if (rc == -EAGAIN) {
            e->rl.stats.tx_ring_full++;
            return PN_EAGAIN;
        }
        e->rl.stats.tx_errors++;
        set_err(e, e->ctpio ? "ef_vi_transmit_ctpio_fallback" : "ef_vi_transmit_init", rc);
        return PN_ELINK;
    }
    e->tx_free_n--;
    e->rl.stats.tx_frames++;
    e->rl.stats.tx_bytes += len;
    return PN_OK;
}

static void ev_tx_flush(pn_link *l)
{
    efvi_link *e = (efvi_link *)l;
    if (e->tx_inited == 0)
        return;
    ef_vi_transmit_push(&e->vi);
    e->tx_inited = 0;
}

static flow_slot *flow_find(efvi_link *e, const pn_flow *f, uint8_t proto)
{
    for (uint32_t i = 0; i < MAX_FLOWS; i++) {
        flow_slot *s = &e->flows[i];
        if (s->used && s->proto == proto && s->f.local_ip == f->local_ip &&
            s->f.remote_ip == f->remote_ip &&
            s->f.local_port == f->local_port && s->f.remote_port == f->remote_port)
            return s;
    }
    return NULL;
}

static int flow_add_proto(efvi_link *e, const pn_flow *f, uint8_t proto)
{
    if (flow_find(e, f, proto) != NULL)
        return PN_OK;
    flow_slot *s = NULL;
    for (uint32_t i = 0; i < MAX_FLOWS && s == NULL; i++)
        if (!e->flows[i].used)
            s = &e->flows[i];
    if (s == NULL) {
        pn_rl_errf(e->rl.link.err, sizeof e->rl.link.err, WHO, "%u flows: the filter table "
                   "is full", MAX_FLOWS);
        return PN_ENOMEM;
    }
    int hold = !e->own_ip && proto == IPPROTO_TCP;
    if (hold) {
        int rc = pn_rl_port_hold(&e->ports, f->local_ip, f->local_port, e->rl.link.err,
                                 sizeof e->rl.link.err);
        if (rc < 0)
            return rc;
    }
    ef_filter_spec spec;
    ef_filter_spec_init(&spec, EF_FILTER_FLAG_NONE);
    int rc;
    const char *what;
    if (f->remote_ip == 0 && f->remote_port == 0) {
        what = "ef_filter_spec_set_ip4_local";
        rc = ef_filter_spec_set_ip4_local(&spec, proto, htonl(f->local_ip),
                                          htons(f->local_port));
    } else {
        what = "ef_filter_spec_set_ip4_full";
        rc = ef_filter_spec_set_ip4_full(&spec, proto, htonl(f->local_ip),
                                         htons(f->local_port), htonl(f->remote_ip),
                                         htons(f->remote_port));
    }
    if (rc == 0) {
        what = "ef_vi_filter_add";
        rc = ef_vi_filter_add(&e->vi, e->dh, &spec, &s->cookie);
    }
    if (rc < 0) {
        if (hold)
            pn_rl_port_release(&e->ports, f->local_port);
        set_err(e, what, rc);
        return rc == -EEXIST || rc == -EBUSY ? PN_EPORT : PN_ELINK;
    }
    s->f = *f;
    s->used = 1;
    s->proto = proto;
    e->flow_n++;
    e->info.filters = e->flow_n;
    return PN_OK;
}

static int ev_flow_add(pn_link *l, const pn_flow *f)
{
    return flow_add_proto((efvi_link *)l, f, IPPROTO_TCP);
}

static int flow_del_proto(efvi_link *e, const pn_flow *f, uint8_t proto)
{
    flow_slot *s = flow_find(e, f, proto);
    if (s == NULL)
        return PN_OK;
    int rc = ef_vi_filter_del(&e->vi, e->dh, &s->cookie);
    if (rc < 0) {
        e->info.filter_del_errors++;
        set_err(e, "ef_vi_filter_del", rc);
    }
    if (!e->own_ip && proto == IPPROTO_TCP)
        pn_rl_port_release(&e->ports, f->local_port);
    s->used = 0;
    e->flow_n--;
    e->info.filters = e->flow_n;
    return PN_OK;
}

static int ev_flow_del(pn_link *l, const pn_flow *f)
{
    return flow_del_proto((efvi_link *)l, f, IPPROTO_TCP);
}

static void ev_refresh_stats(pn_real_link *rl)
{
    efvi_link *e = (efvi_link *)rl;
    rl->stats.ports_reserved = e->ports.count;
}

static void ev_destroy(pn_link *l)
{
    efvi_link *e = (efvi_link *)l;
    if (e == NULL)
        return;
    /* Freeing the VI removes its filters; the region is unregistered after it, the
     * protection domain after both, the driver handle last (vi.h, memreg.h, pd.h). */
    if (e->vi_ok)
        ef_vi_free(&e->vi, e->dh);
    if (e->mr_ok)
        ef_memreg_free(&e->mr, e->dh);
    if (e->pd_ok)
        ef_pd_free(&e->pd, e->dh);
    if (e->dh_ok)
        ef_driver_close(e->dh);
    if (e->mem != NULL)
        munmap(e->mem, e->mem_len);
    pn_rl_ports_free(&e->ports);
    free(e->dma);
    free(e->state);
    free(e->rx_free);
    free(e->tx_free);
    free(e->ready);
    free(e->flows);
    free(e);
}

static const pn_link_ops efvi_ops = {
    .name = "efvi",
    .rx_burst = ev_rx_burst,
    .rx_release = ev_rx_release,
    .tx_buf = ev_tx_buf,
    .tx_send = ev_tx_send,
    .tx_flush = ev_tx_flush,
    .flow_add = ev_flow_add,
    .flow_del = ev_flow_del,
    .destroy = ev_destroy,
};

static uint32_t ring_slots(uint32_t bufs)
{
    uint32_t n = 512;
    while (n < bufs + 1)  /* capacity is slots - 1 */
        n <<= 1;
    return n;
}

static int cap_get(efvi_link *e, enum ef_vi_capability cap)
{
    unsigned long v = 0;
    return ef_vi_capabilities_get(e->dh, e->ifindex, cap, &v) == 0 && v != 0;
}

pn_link *pn_efvi_link_create(const pn_real_link_params *p, char *err, size_t errlen)
{
    if (p == NULL) {
        pn_rl_errf(err, errlen, WHO, "no parameters");
        return NULL;
    }
    pn_if_facts ifc;
    if (pn_rl_if_facts(p->ifname, WHO, &ifc, err, errlen) < 0)
        return NULL;
    if (p->frame_size != 0 && p->frame_size != BUF_SIZE) {
        pn_rl_errf(err, errlen, WHO, "frame_size %u: ef_vi packet buffers are %u bytes",
                   p->frame_size, BUF_SIZE);
        return NULL;
    }
    uint32_t rx_bufs = p->ring_frames ? p->ring_frames : DEFAULT_RX_BUFS;
    if (rx_bufs < REFILL_BATCH || rx_bufs > MAX_RX_BUFS) {
        pn_rl_errf(err, errlen, WHO, "ring_frames %u: must be %u..%u (an RX ring holds at "
                   "most 4095 buffers)", rx_bufs, REFILL_BATCH, MAX_RX_BUFS);
        return NULL;
    }

    efvi_link *e = calloc(1, sizeof *e);
    if (e == NULL) {
        pn_rl_errf(err, errlen, WHO, "out of memory");
        return NULL;
    }
    e->rl.link.ops = &efvi_ops;
    e->rl.link.pcap_fd = -1;
    e->rl.refresh_stats = ev_refresh_stats;
    e->ifindex = ifc.ifindex;
    e->own_ip = p->own_ip ? 1 : 0;
    e->rl.link.caps = e->own_ip ? PN_LINK_OWN_IP : 0;
    if (!e->own_ip && pn_rl_ports_init(&e->ports, WHO, err, errlen) < 0)
        goto fail;

    int rc = ef_driver_open(&e->dh);
    if (rc < 0) {
        pn_rl_errf(err, errlen, WHO, "ef_driver_open: %s (is the Onload driver loaded? "
                   "onload_tool reload)", strerror(-rc));
        goto fail;
    }
    e->dh_ok = 1;
    rc = ef_pd_alloc_by_name(&e->pd, e->dh, p->ifname, EF_PD_DEFAULT);
    if (rc < 0) {
        pn_rl_errf(err, errlen, WHO, "ef_pd_alloc_by_name('%s'): %s (a Solarflare/AMD "
                   "interface, the physical one, not a bond or VLAN)", p->ifname,
                   strerror(-rc));
        goto fail;
    }
    e->pd_ok = 1;

    int want_ctpio = cap_get(e, EF_VI_CAP_CTPIO);
    int want_ts = cap_get(e, EF_VI_CAP_HW_RX_TIMESTAMPING);
    uint32_t slots = ring_slots(rx_bufs);
    /* Fall back step by step: CTPIO and timestamps are worth having, not needing. */
    for (int attempt = 0; attempt < 3; attempt++) {
        unsigned flags = EF_VI_FLAGS_DEFAULT;
        if (want_ctpio)
            flags |= EF_VI_TX_CTPIO;
        if (want_ts)
            flags |= EF_VI_RX_TIMESTAMPS;
        rc = ef_vi_alloc_from_pd(&e->vi, e->dh, &e->pd, e->dh, -1, (int)slots,
                                 (int)(DEFAULT_TX_BUFS + 1), NULL, -1,
                                 (enum ef_vi_flags)flags);
        if (rc >= 0)
            break;
        if (want_ctpio)
            want_ctpio = 0;
        else
            want_ts = 0;
    }
    if (rc < 0) {
        pn_rl_errf(err, errlen, WHO, "ef_vi_alloc_from_pd: %s", strerror(-rc));
        goto fail;
    }
    e->vi_ok = 1;
    e->ctpio = (uint8_t)want_ctpio;
    e->rx_ts = (uint8_t)want_ts;

    /* Ring capacities as the VI reports them bound how many buffers can be out. */
    int rxcap = ef_vi_receive_capacity(&e->vi), txcap = ef_vi_transmit_capacity(&e->vi);
    if (rxcap < (int)REFILL_BATCH || txcap < 1) {
        pn_rl_errf(err, errlen, WHO, "VI rings too small (rx %d, tx %d)", rxcap, txcap);
        goto fail;
    }
    if ((uint32_t)rxcap < rx_bufs)
        rx_bufs = (uint32_t)rxcap;
    e->rx_bufs = rx_bufs;
    e->tx_bufs = (uint32_t)txcap < DEFAULT_TX_BUFS ? (uint32_t)txcap : DEFAULT_TX_BUFS;
    e->prefix_len = (uint32_t)ef_vi_receive_prefix_len(&e->vi);
    if (ef_vi_receive_buffer_len(&e->vi) > (int)BUF_SIZE)
        ef_vi_receive_set_buffer_len(&e->vi, BUF_SIZE);
    e->rx_buf_len = (uint32_t)ef_vi_receive_buffer_len(&e->vi);

    uint8_t mac[6];
    rc = ef_vi_get_mac(&e->vi, e->dh, mac);
    memcpy(e->rl.link.mac, rc == 0 ? mac : ifc.mac, 6);
    unsigned vmtu = ef_vi_mtu(&e->vi, e->dh);  /* whole frame, no FCS */
    uint32_t mtu = vmtu > 14 ? vmtu - 14 : ifc.mtu;
    if (mtu > ifc.mtu)
        mtu = ifc.mtu;
    if (mtu + 14 + e->prefix_len > e->rx_buf_len) {
        pn_rl_errf(err, errlen, WHO, "MTU %u does not fit a %u-byte receive buffer after a "
                   "%u-byte prefix (lower the MTU)", mtu, e->rx_buf_len, e->prefix_len);
        goto fail;
    }
    e->rl.link.mtu = (uint16_t)mtu;

    uint32_t nbuf = e->rx_bufs + e->tx_bufs;
    e->mem_len = (size_t)nbuf * BUF_SIZE;
    /* mmap gives page alignment (memreg.h: p_mem on a 4 KiB boundary). */
    e->mem = mmap(NULL, e->mem_len, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (e->mem == MAP_FAILED) {
        e->mem = NULL;
        pn_rl_errf(err, errlen, WHO, "mmap of %zu bytes of packet buffers: %s", e->mem_len,
                   strerror(errno));
        goto fail;
    }
    (void)madvise(e->mem, e->mem_len, MADV_DONTFORK);  /* memreg.h's note on fork */
    rc = ef_memreg_alloc(&e->mr, e->dh, &e->pd, e->dh, e->mem, e->mem_len);
    if (rc < 0) {
        pn_rl_errf(err, errlen, WHO, "ef_memreg_alloc(%zu bytes): %s", e->mem_len,
                   strerror(-rc));
        goto fail;
    }
    e->mr_ok = 1;

    e->dma = calloc(nbuf, sizeof *e->dma);
    e->state = calloc(e->rx_bufs, 1);
    e->rx_free = calloc(e->rx_bufs, sizeof *e->rx_free);
    e->tx_free = calloc(e->tx_bufs, sizeof *e->tx_free);
    e->ready_cap = e->rx_bufs + ARP_SLOTS;
    e->ready = calloc(e->ready_cap, sizeof *e->ready);
    e->flows = calloc(MAX_FLOWS, sizeof *e->flows);
    if (!e->dma || !e->state || !e->rx_free || !e->tx_free || !e->ready || !e->flows) {
        pn_rl_errf(err, errlen, WHO, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < nbuf; i++)
        e->dma[i] = ef_memreg_dma_addr(&e->mr, (size_t)i * BUF_SIZE);
    for (uint32_t i = e->rx_bufs; i-- > 0;)
        e->rx_free[e->rx_free_n++] = i;
    for (uint32_t i = nbuf; i-- > e->rx_bufs;)
        e->tx_free[e->tx_free_n++] = i;
    refill(e);

    if (e->own_ip) {
        /* ARP requests for our address are broadcast: subscribe to broadcast frames. */
        static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        ef_filter_spec spec;
        ef_filter_spec_init(&spec, EF_FILTER_FLAG_NONE);
        rc = ef_filter_spec_set_eth_local(&spec, EF_FILTER_VLAN_ID_ANY, bcast);
        if (rc == 0)
            rc = ef_vi_filter_add(&e->vi, e->dh, &spec, &e->bcast);
        if (rc < 0) {
            pn_rl_errf(err, errlen, WHO, "broadcast filter (for ARP to our own address): %s",
                       strerror(-rc));
            goto fail;
        }
        e->bcast_ok = 1;
    }

    e->info.ctpio = e->ctpio;
    e->info.rx_timestamps = e->rx_ts;
    e->info.rx_prefix_len = e->prefix_len;
    e->info.rx_buffer_len = e->rx_buf_len;
    e->info.rx_bufs = e->rx_bufs;
    e->info.tx_bufs = e->tx_bufs;
    e->info.rx_ring_capacity = (uint32_t)rxcap;
    e->info.tx_ring_capacity = (uint32_t)txcap;
    return &e->rl.link;

fail:
    ev_destroy(&e->rl.link);
    return NULL;
}

const char *pn_efvi_build_info(void)
{
    return PN_EFVI_BUILD_INFO;
}

int pn_efvi_link_udp_filter(pn_link *l, uint32_t local_ip, uint16_t port, int add)
{
    if (l == NULL || l->ops != &efvi_ops || port == 0 || local_ip == 0)
        return PN_EINVAL;
    pn_flow f = {local_ip, 0, port, 0};
    efvi_link *e = (efvi_link *)l;
    return add ? flow_add_proto(e, &f, IPPROTO_UDP) : flow_del_proto(e, &f, IPPROTO_UDP);
}

int pn_efvi_link_info_get(pn_link *l, pn_efvi_link_info *out)
{
    if (l == NULL || out == NULL || l->ops != &efvi_ops)
        return PN_EINVAL;
    efvi_link *e = (efvi_link *)l;
    *out = e->info;
    out->rx_fill_level = (uint32_t)ef_vi_receive_fill_level(&e->vi);
    return PN_OK;
}

#endif /* PN_HAVE_EFVI */
