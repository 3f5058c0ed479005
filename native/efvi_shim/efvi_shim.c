/*
 * efvi_shim.c -- pollnet's look-alike of the ef_vi API (a test library, not AMD Onload).
 * One file of about a thousand lines: it is one library, the ef_vi calls the link makes.
 *
 * It provides the ef_vi calls native/src/link_efvi.c makes, with Onload's documented
 * names, argument order, return conventions (0 / >= 0 or a negative errno), event layout
 * and buffer-ownership rules, and moves frames over an AF_PACKET socket bound to an
 * ordinary interface (a veth between namespaces in the tests).
 *
 * What it models, and checks (misuse is counted in efvi_shim_stats().violations and
 * printed once to stderr, never silently tolerated):
 *   - registered memory: p_mem page-aligned, length a multiple of 2048; DMA addresses are
 *     per 4 KiB page and deliberately discontiguous across pages; a descriptor whose buffer
 *     crosses a page, lies outside registered memory or belongs to another protection
 *     domain is refused (-EINVAL);
 *   - rings: capacities rounded up to 512..4096 slots, usable capacity = slots - 1;
 *     ef_vi_receive_push() hands over descriptors only in multiples of 8 (7000-series rule);
 *     ef_vi_transmit_push() without a new descriptor is a violation;
 *   - receive: only frames matching a filter (IPv4 full, IPv4 local, local MAC incl.
 *     broadcast) arrive, in posted buffers in FIFO order, after a prefix
 *     (EFVI_SHIM_PREFIX_LEN, default 14); EF_EVENT_RX_BYTES counts prefix + frame; a frame
 *     larger than ef_vi_receive_buffer_len() is scattered over several buffers with
 *     SOP/CONT flags; bad IPv4/TCP/UDP checksums give RX_DISCARD CSUM_BAD; no posted buffer
 *     drops the frame; RX timestamps (EF_VI_RX_TIMESTAMPS) are the kernel's receive time,
 *     readable only until the next ef_eventq_poll();
 *   - transmit: completions come back on later polls, coalesced (one TX event for up to
 *     EF_VI_TRANSMIT_BATCH descriptors, unbundled by ef_vi_transmit_unbundle); CTPIO
 *     (EFVI_SHIM_CTPIO=1 makes the capability appear) sends the CTPIO copy, the fallback
 *     descriptor must follow before any other send, and EFVI_SHIM_CTPIO_FAIL_PCT percent of
 *     CTPIO sends "fail" so the fallback frame goes instead;
 *   - the wire: frames above the MTU never arrive (a kernel peer across a veth sends GSO
 *     super-frames with offloads on: they are cut into MSS-sized segments, as the peer's
 *     NIC would have done with TSO);
 *   - filters: a second identical filter is -EEXIST (as when another application holds
 *     it); ef_vi_free() removes a VI's filters.
 * Frames the kernel hands AF_PACKET with CHECKSUM_PARTIAL get their checksum completed, as
 * they would be on a real wire.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_ether.h>
#include <linux/if_packet.h>

#include "efvi_shim.h"
#include <etherfabric/base.h>
#include <etherfabric/capabilities.h>
#include <etherfabric/ef_vi.h>
#include <etherfabric/memreg.h>
#include <etherfabric/pd.h>
#include <etherfabric/vi.h>

#define PAGE 4096u
#define MAX_REGIONS 64
#define MAX_FILTERS 8192
#define RX_BUFFER_LEN 1792u  /* ef10's default receive buffer length */
#define TS_OFF 4u            /* where the prefix keeps the timestamp (8 + 4 bytes) */

enum { F_NONE = 0, F_IP4_FULL = 1, F_IP4_LOCAL = 2, F_ETH_LOCAL = 3 };

static efvi_shim_stats g_stats;
static unsigned g_next_id = 1;

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
    g_stats.violations++;
    if (g_stats.violations <= 5) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "efvi_shim: API misuse: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
}

const efvi_shim_stats *efvi_shim_stats_get(void) { return &g_stats; }

/* EFVI_SHIM_STATS=1: the counters on stderr at exit (for diagnosing a test run). */
__attribute__((destructor)) static void report(void)
{
    const char *e = getenv("EFVI_SHIM_STATS");
    if (!e || e[0] != '1')
        return;
    fprintf(stderr, "efvi_shim: violations=%llu rx_frames=%llu rx_no_buffer=%llu "
            "rx_oversize=%llu rx_segmented=%llu tx_frames=%llu tx_wire_errors=%llu tx_ctpio=%llu "
            "tx_ctpio_fallback=%llu filters_added=%llu filters_deleted=%llu\n",
            (unsigned long long)g_stats.violations, (unsigned long long)g_stats.rx_frames,
            (unsigned long long)g_stats.rx_no_buffer, (unsigned long long)g_stats.rx_oversize,
            (unsigned long long)g_stats.rx_segmented, (unsigned long long)g_stats.tx_frames, (unsigned long long)g_stats.tx_wire_errors,
            (unsigned long long)g_stats.tx_ctpio, (unsigned long long)g_stats.tx_ctpio_fallback,
            (unsigned long long)g_stats.filters_added,
            (unsigned long long)g_stats.filters_deleted);
}

/* ------------------------------------------------------------------ registered memory */

typedef struct region {
    int used;
    unsigned pd_id;
    uint8_t *mem;
    size_t len;
    uint64_t base;           /* DMA tag of this region */
    ef_addr *addrs;          /* per page */
} region;

static region g_regions[MAX_REGIONS];

/* Page i of a region gets DMA page (npages - 1 - i): contiguous within a page only. */
static ef_addr page_dma(const region *r, size_t i)
{
    size_t np = r->len / PAGE + (r->len % PAGE != 0);
    return r->base | ((ef_addr)(np - 1 - i) << 12);
}

/* The host address of [addr, addr + len) in pd's registered memory, or NULL. */
static uint8_t *dma_to_ptr(unsigned pd_id, ef_addr addr, size_t len)
{
    for (int k = 0; k < MAX_REGIONS; k++) {
        region *r = &g_regions[k];
        if (!r->used || (addr & ~(((ef_addr)1 << 40) - 1)) != r->base)
            continue;
        if (r->pd_id != pd_id)
            return NULL;
        size_t np = r->len / PAGE + (r->len % PAGE != 0);
        size_t dpage = (size_t)((addr & (((ef_addr)1 << 40) - 1)) >> 12);
        if (dpage >= np)
            return NULL;
        size_t page = np - 1 - dpage;
        size_t off = (size_t)(addr & (PAGE - 1));
        if (off + len > PAGE)  /* DMA addresses are not contiguous across pages */
            return NULL;
        size_t host = page * PAGE + off;
        if (host + len > r->len)
            return NULL;
        return r->mem + host;
    }
    return NULL;
}

int ef_memreg_alloc(ef_memreg *mr, ef_driver_handle mr_dh, struct ef_pd *pd,
                    ef_driver_handle pd_dh, void *p_mem, size_t len_bytes)
{
    (void)mr_dh;
    (void)pd_dh;
    if (mr == NULL || pd == NULL || p_mem == NULL)
        return -EINVAL;
    if (((uintptr_t)p_mem & (PAGE - 1)) != 0) {
        violation("ef_memreg_alloc: p_mem %p is not 4 KiB aligned", p_mem);
        return -EINVAL;
    }
    if (len_bytes == 0 || len_bytes % 2048 != 0) {
        violation("ef_memreg_alloc: length %zu is not a multiple of 2048", len_bytes);
        return -EINVAL;
    }
    for (int k = 0; k < MAX_REGIONS; k++) {
        region *r = &g_regions[k];
        if (r->used)
            continue;
        size_t np = len_bytes / PAGE + (len_bytes % PAGE != 0);
        r->addrs = calloc(np, sizeof *r->addrs);
        if (r->addrs == NULL)
            return -ENOMEM;
        r->used = 1;
        r->pd_id = pd->pd_resource_id;
        r->mem = p_mem;
        r->len = len_bytes;
        r->base = (ef_addr)(k + 1) << 40;
        for (size_t i = 0; i < np; i++)
            r->addrs[i] = page_dma(r, i);
        mr->mr_dma_addrs = r->addrs;
        mr->mr_dma_addrs_base = r->addrs;
        return 0;
    }
    return -ENOSPC;
}

int ef_memreg_free(ef_memreg *mr, ef_driver_handle mr_dh)
{
    (void)mr_dh;
    for (int k = 0; k < MAX_REGIONS; k++) {
        region *r = &g_regions[k];
        if (r->used && r->addrs == mr->mr_dma_addrs_base) {
            free(r->addrs);
            memset(r, 0, sizeof *r);
            mr->mr_dma_addrs = mr->mr_dma_addrs_base = NULL;
            return 0;
        }
    }
    return -EINVAL;
}

/* ------------------------------------------------------------------ driver, pd */

int ef_driver_open(ef_driver_handle *dh_out)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);  /* stands in for /dev/sfc_char */
    if (fd < 0)
        return -errno;
    *dh_out = fd;
    return 0;
}

int ef_driver_close(ef_driver_handle dh)
{
    return close(dh) == 0 ? 0 : -errno;
}

int ef_pd_alloc_by_name(ef_pd *pd, ef_driver_handle pd_dh, const char *name,
                        enum ef_pd_flags flags)
{
    (void)pd_dh;
    if (pd == NULL || name == NULL)
        return -EINVAL;
    if (if_nametoindex(name) == 0)
        return -ENODEV;
    memset(pd, 0, sizeof *pd);
    pd->pd_flags = flags;
    pd->pd_resource_id = g_next_id++;
    pd->pd_intf_name = strdup(name);
    pd->pd_cluster_sock = -1;
    pd->pd_cluster_dh = -1;
    return pd->pd_intf_name ? 0 : -ENOMEM;
}

int ef_pd_free(ef_pd *pd, ef_driver_handle pd_dh)
{
    (void)pd_dh;
    for (int k = 0; k < MAX_REGIONS; k++)
        if (g_regions[k].used && g_regions[k].pd_id == pd->pd_resource_id)
            violation("ef_pd_free: memory is still registered with the protection domain");
    free(pd->pd_intf_name);
    pd->pd_intf_name = NULL;
    return 0;
}

int ef_vi_capabilities_get(ef_driver_handle handle, int ifindex, enum ef_vi_capability cap,
                           unsigned long *value)
{
    (void)handle;
    (void)ifindex;
    const char *c;
    switch (cap) {
    case EF_VI_CAP_CTPIO:
        c = getenv("EFVI_SHIM_CTPIO");
        *value = (c && c[0] == '1') ? 1 : 0;
        return 0;
    case EF_VI_CAP_HW_RX_TIMESTAMPING:
        c = getenv("EFVI_SHIM_RX_TIMESTAMPS");
        *value = (c && c[0] == '0') ? 0 : 1;
        return 0;
    case EF_VI_CAP_RX_FILTER_TYPE_TCP_LOCAL:
    case EF_VI_CAP_RX_FILTER_TYPE_TCP_FULL:
    case EF_VI_CAP_RX_FILTER_TYPE_UDP_LOCAL:
    case EF_VI_CAP_RX_FILTER_TYPE_UDP_FULL:
    case EF_VI_CAP_RX_FILTER_TYPE_ETH_LOCAL:
        *value = 1;
        return 0;
    default:
        return -EOPNOTSUPP;
    }
}

/* ------------------------------------------------------------------ the VI */

typedef struct filter {
    int used;
    int id, type;
    struct efvi_shim_vi *owner;
    uint8_t proto;
    uint32_t lip, rip;       /* network order */
    uint16_t lport, rport;   /* network order */
    uint8_t mac[6];
} filter;

static filter g_filters[MAX_FILTERS];

typedef struct rxd { ef_addr addr; ef_request_id id; } rxd;
typedef struct txd { ef_addr addr; int len; ef_request_id id; uint8_t ctpio_ok; } txd;

struct efvi_shim_vi {
    int fd, ifindex;
    unsigned pd_id;
    uint8_t mac[6];
    unsigned mtu;
    uint32_t rx_slots, tx_slots;     /* powers of two */
    rxd *rxr;
    uint32_t rx_added, rx_posted, rx_removed;
    txd *txr;
    uint32_t tx_added, tx_pushed, tx_done, tx_reported;
    unsigned rx_buffer_len, prefix_len;
    int rx_ts;
    uint8_t ctpio_pending;           /* a CTPIO send waits for its fallback */
    uint8_t ctpio_frame[2048];
    size_t ctpio_len;
    unsigned ctpio_fail_pct;
    uint64_t ctpio_seq;
    uint64_t poll_gen;               /* bumped by each ef_eventq_poll */
    uint64_t *ts_gen;                /* [rx_slots] poll that delivered the buffer */
    uint8_t frame[65536 + 64];
    uint8_t gso[65536 + 64];         /* a super-frame being cut into segments */
    size_t gso_len, gso_off;         /* gso_len 0: none; gso_off: payload bytes done */
    struct timespec gso_ts;
};

static uint32_t round_slots(int want, uint32_t dflt)
{
    uint32_t w = want < 0 ? dflt : (uint32_t)want;
    uint32_t n = 512;
    while (n < w && n < 4096)
        n <<= 1;
    return w > 4096 ? 0 : n;
}

int ef_vi_alloc_from_pd(ef_vi *vi, ef_driver_handle vi_dh, struct ef_pd *pd,
                        ef_driver_handle pd_dh, int evq_capacity, int rxq_capacity,
                        int txq_capacity, ef_vi *evq_opt, ef_driver_handle evq_dh,
                        enum ef_vi_flags flags)
{
    (void)pd_dh;
    (void)evq_dh;
    (void)evq_capacity;
    if (vi == NULL || pd == NULL || pd->pd_intf_name == NULL || evq_opt != NULL)
        return -EINVAL;
    if ((flags & EF_VI_TX_CTPIO)) {
        unsigned long v = 0;
        if (ef_vi_capabilities_get(vi_dh, 0, EF_VI_CAP_CTPIO, &v) < 0 || !v)
            return -EOPNOTSUPP;
    }
    uint32_t rs = round_slots(rxq_capacity, 512), ts = round_slots(txq_capacity, 512);
    if (rs == 0 || ts == 0)
        return -EINVAL;
    struct efvi_shim_vi *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->fd = -1;
    s->rx_slots = rs;
    s->tx_slots = ts;
    s->rxr = calloc(rs, sizeof *s->rxr);
    s->txr = calloc(ts, sizeof *s->txr);
    s->ts_gen = calloc(rs, sizeof *s->ts_gen);
    int rc = -ENOMEM;
    if (!s->rxr || !s->txr || !s->ts_gen)
        goto fail;
    s->pd_id = pd->pd_resource_id;
    s->rx_buffer_len = RX_BUFFER_LEN;
    const char *pl = getenv("EFVI_SHIM_PREFIX_LEN");
    s->prefix_len = pl ? (unsigned)atoi(pl) : 14;
    if (s->prefix_len < TS_OFF + 12 && (flags & EF_VI_RX_TIMESTAMPS))
        s->prefix_len = TS_OFF + 12;
    s->rx_ts = (flags & EF_VI_RX_TIMESTAMPS) != 0;
    const char *fp = getenv("EFVI_SHIM_CTPIO_FAIL_PCT");
    s->ctpio_fail_pct = fp ? (unsigned)atoi(fp) : 0;
    s->ifindex = (int)if_nametoindex(pd->pd_intf_name);
    s->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (s->fd < 0) {
        rc = -errno;
        goto fail;
    }
    int one = 1;
    (void)setsockopt(s->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    (void)setsockopt(s->fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one);
    (void)setsockopt(s->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    int big = 4 << 20;
    (void)setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = s->ifindex;
    if (bind(s->fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        rc = -errno;
        goto fail;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", pd->pd_intf_name);
    if (ioctl(s->fd, SIOCGIFHWADDR, &ifr) == 0)
        memcpy(s->mac, ifr.ifr_hwaddr.sa_data, 6);
    if (ioctl(s->fd, SIOCGIFMTU, &ifr) == 0)
        s->mtu = (unsigned)ifr.ifr_mtu;
    memset(vi, 0, sizeof *vi);
    vi->inited = 1;
    vi->vi_resource_id = g_next_id++;
    vi->dh = vi_dh;
    vi->vi_flags = flags;
    vi->shim = s;
    return 0;  /* queue id */
fail:
    if (s->fd >= 0)
        close(s->fd);
    free(s->rxr);
    free(s->txr);
    free(s->ts_gen);
    free(s);
    return rc;
}

int ef_vi_free(ef_vi *vi, ef_driver_handle nic)
{
    (void)nic;
    struct efvi_shim_vi *s = vi->shim;
    if (s == NULL)
        return -EINVAL;
    for (int i = 0; i < MAX_FILTERS; i++)
        if (g_filters[i].used && g_filters[i].owner == s)
            memset(&g_filters[i], 0, sizeof g_filters[i]);
    close(s->fd);
    free(s->rxr);
    free(s->txr);
    free(s->ts_gen);
    free(s);
    vi->shim = NULL;
    vi->inited = 0;
    return 0;
}

unsigned ef_vi_mtu(ef_vi *vi, ef_driver_handle vi_dh)
{
    (void)vi_dh;
    return vi->shim->mtu + 14;
}

int ef_vi_get_mac(ef_vi *vi, ef_driver_handle vi_dh, void *mac_out)
{
    (void)vi_dh;
    memcpy(mac_out, vi->shim->mac, 6);
    return 0;
}

int ef_vi_receive_prefix_len(const ef_vi *vi) { return (int)vi->shim->prefix_len; }
int ef_vi_receive_buffer_len(const ef_vi *vi) { return (int)vi->shim->rx_buffer_len; }
void ef_vi_receive_set_buffer_len(ef_vi *vi, unsigned buf_len)
{
    vi->shim->rx_buffer_len = buf_len;
}
int ef_vi_receive_capacity(const ef_vi *vi) { return (int)vi->shim->rx_slots - 1; }
int ef_vi_receive_fill_level(const ef_vi *vi)
{
    return (int)(vi->shim->rx_added - vi->shim->rx_removed);
}
int ef_vi_receive_space(const ef_vi *vi)
{
    return ef_vi_receive_capacity(vi) - ef_vi_receive_fill_level(vi);
}
int ef_vi_transmit_capacity(const ef_vi *vi) { return (int)vi->shim->tx_slots - 1; }
int ef_vi_transmit_fill_level(const ef_vi *vi)
{
    return (int)(vi->shim->tx_added - vi->shim->tx_reported);
}
static int tx_space(const ef_vi *vi)
{
    return ef_vi_transmit_capacity(vi) - ef_vi_transmit_fill_level(vi);
}

int ef_vi_receive_init(ef_vi *vi, ef_addr addr, ef_request_id dma_id)
{
    struct efvi_shim_vi *s = vi->shim;
    if (ef_vi_receive_space(vi) <= 0)
        return -EAGAIN;
    if (addr % EF_VI_DMA_ALIGN != 0)
        violation("ef_vi_receive_init: DMA address %#llx not EF_VI_DMA_ALIGN-aligned",
                  (unsigned long long)addr);
    if (dma_to_ptr(s->pd_id, addr, s->rx_buffer_len) == NULL) {
        violation("ef_vi_receive_init: buffer at %#llx (+%u) is not in one page of memory "
                  "registered with this VI's protection domain",
                  (unsigned long long)addr, s->rx_buffer_len);
        return -EINVAL;
    }
    rxd *d = &s->rxr[s->rx_added & (s->rx_slots - 1)];
    d->addr = addr;
    d->id = dma_id;
    s->rx_added++;
    return 0;
}

void ef_vi_receive_push(ef_vi *vi)
{
    struct efvi_shim_vi *s = vi->shim;
    uint32_t fresh = s->rx_added - s->rx_posted;
    s->rx_posted += fresh & ~7u;  /* only multiples of 8 reach the NIC */
}

int ef_vi_receive_get_timestamp_with_sync_flags(ef_vi *vi, const void *pkt,
                                                ef_timespec *ts_out, unsigned *flags_out)
{
    struct efvi_shim_vi *s = vi->shim;
    if (!s->rx_ts) {
        violation("ef_vi_receive_get_timestamp: RX timestamps are not enabled on this VI");
        return -EINVAL;
    }
    const uint8_t *p = pkt;
    /* The buffer's slot remembers which poll delivered it. */
    uint64_t gen = 0;
    for (uint32_t i = 0; i < s->rx_slots; i++) {
        uint8_t *q = dma_to_ptr(s->pd_id, s->rxr[i].addr, 1);
        if (q == p) {
            gen = s->ts_gen[i];
            break;
        }
    }
    if (gen != s->poll_gen) {
        violation("ef_vi_receive_get_timestamp: called after a later ef_eventq_poll()");
        ts_out->tv_sec = ts_out->tv_nsec = 0;
        return -EINVAL;
    }
    uint64_t sec;
    uint32_t nsec;
    memcpy(&sec, p + TS_OFF, 8);
    memcpy(&nsec, p + TS_OFF + 8, 4);
    if (sec == 0 && nsec == 0) {
        ts_out->tv_sec = ts_out->tv_nsec = 0;
        return -ENODATA;
    }
    ts_out->tv_sec = (time_t)sec;
    ts_out->tv_nsec = (long)nsec;
    if (flags_out)
        *flags_out = EF_VI_SYNC_FLAG_CLOCK_SET;
    return 0;
}

/* ------------------------------------------------------------------ transmit */

static int tx_post(ef_vi *vi, ef_addr addr, int bytes, ef_request_id id, uint8_t ctpio_ok)
{
    struct efvi_shim_vi *s = vi->shim;
    if (tx_space(vi) <= 0)
        return -EAGAIN;
    if (bytes <= 0 || bytes > 2048 || dma_to_ptr(s->pd_id, addr, (size_t)bytes) == NULL) {
        violation("transmit: %d bytes at %#llx are not in one page of registered memory of "
                  "this protection domain", bytes, (unsigned long long)addr);
        return -EINVAL;
    }
    txd *d = &s->txr[s->tx_added & (s->tx_slots - 1)];
    d->addr = addr;
    d->len = bytes;
    d->id = id;
    d->ctpio_ok = ctpio_ok;
    s->tx_added++;
    return 0;
}

static void tx_wire(struct efvi_shim_vi *s, const uint8_t *frame, size_t len)
{
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = s->ifindex;
    sll.sll_halen = 6;
    memcpy(sll.sll_addr, frame, 6);
    for (int tries = 0; tries < 1000; tries++) {
        if (sendto(s->fd, frame, len, 0, (struct sockaddr *)&sll, sizeof sll) >= 0) {
            g_stats.tx_frames++;
            return;
        }
        if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR)
            break;
    }
    g_stats.tx_wire_errors++;
}

int ef_vi_transmit_init(ef_vi *vi, ef_addr addr, int bytes, ef_request_id dma_id)
{
    if (vi->shim->ctpio_pending) {
        violation("ef_vi_transmit_init after ef_vi_transmit_ctpio without its fallback");
        vi->shim->ctpio_pending = 0;
    }
    return tx_post(vi, addr, bytes, dma_id, 0);
}

void ef_vi_transmit_push(ef_vi *vi)
{
    struct efvi_shim_vi *s = vi->shim;
    if (s->tx_pushed == s->tx_added) {
        violation("ef_vi_transmit_push with no descriptor initialised since the last push");
        return;
    }
    while (s->tx_pushed != s->tx_added) {
        txd *d = &s->txr[s->tx_pushed & (s->tx_slots - 1)];
        uint8_t *p = dma_to_ptr(s->pd_id, d->addr, (size_t)d->len);
        if (p != NULL)
            tx_wire(s, p, (size_t)d->len);
        s->tx_pushed++;
    }
    s->tx_done = s->tx_pushed;
}

void ef_vi_transmit_ctpio(ef_vi *vi, const void *frame_buf, size_t frame_len,
                          unsigned ct_threshold)
{
    (void)ct_threshold;
    struct efvi_shim_vi *s = vi->shim;
    if (!(vi->vi_flags & EF_VI_TX_CTPIO)) {
        violation("ef_vi_transmit_ctpio on a VI allocated without EF_VI_TX_CTPIO");
        return;
    }
    if (s->ctpio_pending)
        violation("ef_vi_transmit_ctpio twice without ef_vi_transmit_ctpio_fallback");
    if (frame_len > sizeof s->ctpio_frame)
        frame_len = sizeof s->ctpio_frame;
    memcpy(s->ctpio_frame, frame_buf, frame_len);  /* the buffer is free again on return */
    s->ctpio_len = frame_len;
    s->ctpio_pending = 1;
}

int ef_vi_transmit_ctpio_fallback(ef_vi *vi, ef_addr dma_addr, size_t len,
                                  ef_request_id dma_id)
{
    struct efvi_shim_vi *s = vi->shim;
    if (!s->ctpio_pending)
        violation("ef_vi_transmit_ctpio_fallback without a preceding ef_vi_transmit_ctpio");
    s->ctpio_seq++;
    int ok = s->ctpio_pending && (s->ctpio_fail_pct == 0 ||
                                  (s->ctpio_seq * 2654435761u) % 100 >= s->ctpio_fail_pct);
    int rc = tx_post(vi, dma_addr, (int)len, dma_id, (uint8_t)ok);
    if (rc < 0) {
        s->ctpio_pending = 0;
        return rc;
    }
    /* The CTPIO frame went out (or failed and the fallback goes instead). */
    txd *d = &s->txr[s->tx_pushed & (s->tx_slots - 1)];
    if (ok) {
        tx_wire(s, s->ctpio_frame, s->ctpio_len);
        g_stats.tx_ctpio++;
    } else {
        uint8_t *p = dma_to_ptr(s->pd_id, d->addr, (size_t)d->len);
        if (p != NULL)
            tx_wire(s, p, (size_t)d->len);
        g_stats.tx_ctpio_fallback++;
    }
    s->tx_pushed++;
    s->tx_done = s->tx_pushed;
    s->ctpio_pending = 0;
    return 0;
}

int ef_vi_transmit_unbundle(ef_vi *ep, const ef_event *event, ef_request_id *ids)
{
    struct efvi_shim_vi *s = ep->shim;
    unsigned last = event->tx.desc_id;  /* index of the last completed descriptor */
    int n = 0;
    while (n < EF_VI_TRANSMIT_BATCH && s->tx_reported != s->tx_done) {
        uint32_t i = s->tx_reported & (s->tx_slots - 1);
        ids[n++] = s->txr[i].id;
        s->tx_reported++;
        if (i == last)
            break;
    }
    return n;
}

/* ------------------------------------------------------------------ filters */

void ef_filter_spec_init(ef_filter_spec *fs, enum ef_filter_flags flags)
{
    memset(fs, 0, sizeof *fs);
    fs->flags = flags;
}

int ef_filter_spec_set_ip4_local(ef_filter_spec *fs, int protocol, unsigned host_be32,
                                 int port_be16)
{
    if (fs->type != F_NONE)
        return -EPROTONOSUPPORT;
    if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
        return -EINVAL;
    fs->type = F_IP4_LOCAL;
    fs->data[0] = (unsigned)protocol;
    fs->data[1] = host_be32;
    fs->data[2] = (unsigned)port_be16 & 0xffffu;
    return 0;
}

int ef_filter_spec_set_ip4_full(ef_filter_spec *fs, int protocol, unsigned host_be32,
                                int port_be16, unsigned rhost_be32, int rport_be16)
{
    if (fs->type != F_NONE)
        return -EPROTONOSUPPORT;
    if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
        return -EINVAL;
    fs->type = F_IP4_FULL;
    fs->data[0] = (unsigned)protocol;
    fs->data[1] = host_be32;
    fs->data[2] = (unsigned)port_be16 & 0xffffu;
    fs->data[3] = rhost_be32;
    fs->data[4] = (unsigned)rport_be16 & 0xffffu;
    return 0;
}

int ef_filter_spec_set_eth_local(ef_filter_spec *fs, int vlan_id, const void *mac)
{
    if (fs->type != F_NONE)
        return -EPROTONOSUPPORT;
    if (vlan_id != EF_FILTER_VLAN_ID_ANY)
        return -EOPNOTSUPP;
    fs->type = F_ETH_LOCAL;
    memcpy(&fs->data[0], mac, 6);
    return 0;
}

static int same_filter(const filter *f, const ef_filter_spec *fs)
{
    if (f->type != (int)fs->type)
        return 0;
    if (f->type == F_ETH_LOCAL)
        return memcmp(f->mac, &fs->data[0], 6) == 0;
    return f->proto == fs->data[0] && f->lip == fs->data[1] && f->lport == fs->data[2] &&
           (f->type == F_IP4_LOCAL || (f->rip == fs->data[3] && f->rport == fs->data[4]));
}

int ef_vi_filter_add(ef_vi *vi, ef_driver_handle vi_dh, const ef_filter_spec *fs,
                     ef_filter_cookie *cookie_out)
{
    (void)vi_dh;
    if (vi->shim == NULL || fs->type == F_NONE)
        return -EINVAL;
    int freei = -1;
    for (int i = 0; i < MAX_FILTERS; i++) {
        if (!g_filters[i].used) {
            if (freei < 0)
                freei = i;
            continue;
        }
        /* Broadcast/multicast MAC filters are replicated to every subscriber; unicast
         * filters belong to one VI. */
        if (same_filter(&g_filters[i], fs) &&
            !(fs->type == F_ETH_LOCAL && (((const uint8_t *)&fs->data[0])[0] & 1)))
            return -EEXIST;
    }
    if (freei < 0)
        return -ENOSPC;
    filter *f = &g_filters[freei];
    memset(f, 0, sizeof *f);
    f->used = 1;
    f->id = freei;
    f->type = (int)fs->type;
    f->owner = vi->shim;
    if (f->type == F_ETH_LOCAL) {
        memcpy(f->mac, &fs->data[0], 6);
    } else {
        f->proto = (uint8_t)fs->data[0];
        f->lip = fs->data[1];
        f->lport = (uint16_t)fs->data[2];
        f->rip = fs->data[3];
        f->rport = (uint16_t)fs->data[4];
    }
    g_stats.filters_added++;
    if (cookie_out) {
        cookie_out->filter_id = freei;
        cookie_out->filter_type = f->type;
    }
    return 0;
}

int ef_vi_filter_del(ef_vi *vi, ef_driver_handle vi_dh, ef_filter_cookie *cookie)
{
    (void)vi_dh;
    int i = cookie->filter_id;
    if (i < 0 || i >= MAX_FILTERS || !g_filters[i].used || g_filters[i].owner != vi->shim ||
        g_filters[i].type != cookie->filter_type) {
        violation("ef_vi_filter_del: cookie %d/%d names no filter of this VI", i,
                  cookie->filter_type);
        return -EINVAL;
    }
    memset(&g_filters[i], 0, sizeof g_filters[i]);
    g_stats.filters_deleted++;
    return 0;
}

/* Does a filter of s take this frame? Most specific first, as the NIC checks them. */
static int frame_matches(struct efvi_shim_vi *s, const uint8_t *f, size_t len)
{
    int ip = len >= 34 && f[12] == 0x08 && f[13] == 0x00 && (f[14] >> 4) == 4;
    uint8_t proto = 0;
    uint32_t sip = 0, dip = 0;
    uint16_t sport = 0, dport = 0;
    int l4 = 0;
    if (ip) {
        unsigned ihl = (f[14] & 15u) * 4u;
        uint16_t frag = (uint16_t)(f[20] << 8 | f[21]);
        proto = f[23];
        memcpy(&sip, f + 26, 4);
        memcpy(&dip, f + 30, 4);
        /* IP filters do not match fragments. */
        if ((frag & 0x3fff) == 0 && (proto == IPPROTO_TCP || proto == IPPROTO_UDP) &&
            len >= 14 + ihl + 4) {
            memcpy(&sport, f + 14 + ihl, 2);
            memcpy(&dport, f + 14 + ihl + 2, 2);
            l4 = 1;
        }
    }
    int best = 0, mine = 0;
    for (int i = 0; i < MAX_FILTERS; i++) {
        filter *x = &g_filters[i];
        if (!x->used)
            continue;
        int rank = 0;
        if (x->type == F_IP4_FULL && l4 && x->proto == proto && x->lip == dip &&
            x->lport == dport && x->rip == sip && x->rport == sport)
            rank = 3;
        else if (x->type == F_IP4_LOCAL && l4 && x->proto == proto && x->lip == dip &&
                 x->lport == dport)
            rank = 2;
        else if (x->type == F_ETH_LOCAL && memcmp(x->mac, f, 6) == 0)
            rank = 1;
        if (rank > best) {
            best = rank;
            mine = x->owner == s;
        } else if (rank == best && rank == 1 && x->owner == s) {
            mine = 1;  /* MAC filters replicate to every subscriber */
        }
    }
    return best > 0 && mine;
}

/* ------------------------------------------------------------------ checksums */

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        s += (uint32_t)p[n - 1] << 8;
    return s;
}

static uint16_t fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

/* 0 good, -1 bad. partial: the L4 field holds only the pseudo-header sum: complete it. */
static int check_csums(uint8_t *f, size_t len, int partial)
{
    if (len < 34 || f[12] != 0x08 || f[13] != 0x00 || (f[14] >> 4) != 4)
        return 0;
    size_t ihl = (f[14] & 15u) * 4u;
    size_t tot = (size_t)(f[16] << 8 | f[17]);
    if (ihl < 20 || 14 + ihl > len || tot < ihl || 14 + tot > len)
        return 0;  /* malformed: the stack judges it */
    if (fold(sum16(f + 14, ihl, 0)) != 0)
        return -1;
    uint8_t proto = f[23];
    uint16_t frag = (uint16_t)(f[20] << 8 | f[21]);
    if ((frag & 0x3fff) != 0 || (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
        return 0;
    uint8_t *l4 = f + 14 + ihl;
    size_t l4len = tot - ihl;
    size_t cpos = proto == IPPROTO_TCP ? 16 : 6;
    if (l4len < cpos + 2)
        return 0;
    if (proto == IPPROTO_UDP && l4[6] == 0 && l4[7] == 0)
        return 0;  /* no UDP checksum */
    uint32_t ps = sum16(f + 26, 8, 0) + proto + (uint32_t)l4len;
    if (partial) {
        l4[cpos] = l4[cpos + 1] = 0;
        uint16_t c = fold(sum16(l4, l4len, ps));
        if (proto == IPPROTO_UDP && c == 0)
            c = 0xffff;
        l4[cpos] = (uint8_t)(c >> 8);
        l4[cpos + 1] = (uint8_t)c;
        return 0;
    }
    return fold(sum16(l4, l4len, ps)) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ the event queue */

static int emit_rx(struct efvi_shim_vi *s, ef_event *evs, int n, int max, const uint8_t *f,
                   size_t len, const struct timespec *ts, int bad_csum)
{
    /* Count the buffers the frame needs: prefix + frame, buffer by buffer. */
    size_t total = s->prefix_len + len;
    uint32_t need = (uint32_t)((total + s->rx_buffer_len - 1) / s->rx_buffer_len);
    if (s->rx_posted - s->rx_removed < need || n + (int)need > max) {
        g_stats.rx_no_buffer++;
        return n;
    }
    size_t done = 0;
    for (uint32_t b = 0; b < need; b++) {
        uint32_t slot = s->rx_removed & (s->rx_slots - 1);
        rxd *d = &s->rxr[slot];
        uint8_t *p = dma_to_ptr(s->pd_id, d->addr, s->rx_buffer_len);
        size_t chunk = total - done < s->rx_buffer_len ? total - done : s->rx_buffer_len;
        if (p != NULL) {
            size_t k = 0;
            if (b == 0) {
                memset(p, 0, s->prefix_len);
                if (s->rx_ts) {
                    uint64_t sec = (uint64_t)ts->tv_sec;
                    uint32_t nsec = (uint32_t)ts->tv_nsec;
                    memcpy(p + TS_OFF, &sec, 8);
                    memcpy(p + TS_OFF + 8, &nsec, 4);
                }
                k = s->prefix_len;
            }
            memcpy(p + k, f + (done + k - s->prefix_len), chunk - k);
        }
        s->ts_gen[slot] = s->poll_gen;
        done += chunk;
        ef_event *e = &evs[n++];
        memset(e, 0, sizeof *e);
        unsigned flags = (b == 0 ? EF_EVENT_FLAG_SOP : 0) |
                         (b + 1 < need ? EF_EVENT_FLAG_CONT : 0) |
                         ((f[0] & 1) ? EF_EVENT_FLAG_MULTICAST : 0);
        if (bad_csum && b + 1 == need) {
            e->rx_discard.type = EF_EVENT_TYPE_RX_DISCARD;
            e->rx_discard.rq_id = (unsigned)d->id;
            e->rx_discard.len = (unsigned)done;
            e->rx_discard.flags = flags;
            e->rx_discard.subtype = EF_EVENT_RX_DISCARD_CSUM_BAD;
        } else {
            e->rx.type = EF_EVENT_TYPE_RX;
            e->rx.rq_id = (unsigned)d->id;
            e->rx.len = (unsigned)done;
            e->rx.flags = flags;
        }
        s->rx_removed++;
    }
    g_stats.rx_frames++;
    return n;
}

/* Cut the oversized IPv4/TCP frame in s->gso into MSS-sized segments, as TSO would have
 * on the sender's NIC, and deliver as many as the events array takes (the rest on the next
 * poll); anything else that large is dropped. */
static int emit_segments(struct efvi_shim_vi *s, ef_event *evs, int n, int max)
{
    const uint8_t *f = s->gso;
    size_t len = s->gso_len;
    const struct timespec *ts = &s->gso_ts;
    if (len < 54 || f[12] != 0x08 || f[13] != 0x00 || (f[14] >> 4) != 4 || f[23] != 6) {
        g_stats.rx_oversize++;
        s->gso_len = 0;
        return n;
    }
    size_t ihl = (f[14] & 15u) * 4u, tot = (size_t)(f[16] << 8 | f[17]);
    if (tot < 20 || 14 + tot > len)
        tot = len - 14;  /* GSO frames may carry a zero or stale total length */
    size_t thl = (size_t)(f[14 + ihl + 12] >> 4) * 4u;
    size_t hdr = 14 + ihl + thl;
    if (ihl < 20 || thl < 20 || hdr > 14 + tot) {
        g_stats.rx_oversize++;
        s->gso_len = 0;
        return n;
    }
    size_t mss = s->mtu - ihl - thl, data = 14 + tot - hdr;
    uint32_t seq = (uint32_t)f[14 + ihl + 4] << 24 | (uint32_t)f[14 + ihl + 5] << 16 |
                   (uint32_t)f[14 + ihl + 6] << 8 | f[14 + ihl + 7];
    uint8_t flags = f[14 + ihl + 13];
    static uint8_t seg[65536];
    size_t off = s->gso_off;
    uint16_t id = (uint16_t)((f[18] << 8 | f[19]) + off / mss);
    for (; off < data && n + 2 <= max; off += mss, id++) {
        size_t k = data - off < mss ? data - off : mss;
        memcpy(seg, f, hdr);
        memcpy(seg + hdr, f + hdr + off, k);
        size_t iplen = ihl + thl + k;
        seg[16] = (uint8_t)(iplen >> 8);
        seg[17] = (uint8_t)iplen;
        seg[18] = (uint8_t)(id >> 8);
        seg[19] = (uint8_t)id;
        seg[24] = seg[25] = 0;
        uint16_t c = fold(sum16(seg + 14, ihl, 0));
        seg[24] = (uint8_t)(c >> 8);
        seg[25] = (uint8_t)c;
        uint8_t *t = seg + 14 + ihl;
        uint32_t sq = seq + (uint32_t)off;
        t[4] = (uint8_t)(sq >> 24);
        t[5] = (uint8_t)(sq >> 16);
        t[6] = (uint8_t)(sq >> 8);
        t[7] = (uint8_t)sq;
        /* FIN and PSH belong to the last segment only, CWR to the first. */
        t[13] = (uint8_t)(flags & ~((off + k < data ? 0x09 : 0) | (off ? 0x80 : 0)));
        t[16] = t[17] = 0;
        uint32_t ps = sum16(seg + 26, 8, 0) + 6 + (uint32_t)(thl + k);
        c = fold(sum16(t, thl + k, ps));
        t[16] = (uint8_t)(c >> 8);
        t[17] = (uint8_t)c;
        g_stats.rx_segmented++;
        n = emit_rx(s, evs, n, max, seg, hdr + k, ts, 0);
    }
    s->gso_off = off;
    if (off >= data)
        s->gso_len = 0;
    return n;
}

int ef_eventq_poll(ef_vi *evq, ef_event *evs, int evs_len)
{
    struct efvi_shim_vi *s = evq->shim;
    if (evs_len < EF_VI_EVENT_POLL_MIN_EVS) {
        violation("ef_eventq_poll: evs_len %d < EF_VI_EVENT_POLL_MIN_EVS", evs_len);
        return -EINVAL;
    }
    s->poll_gen++;
    int n = 0;
    /* Transmit completions first: one event per EF_VI_TRANSMIT_BATCH descriptors. */
    uint32_t pending = s->tx_done - s->tx_reported, covered = 0;
    while (pending > covered && n < evs_len) {
        uint32_t k = pending - covered < EF_VI_TRANSMIT_BATCH ? pending - covered
                                                               : EF_VI_TRANSMIT_BATCH;
        covered += k;
        uint32_t last = (s->tx_reported + covered - 1) & (s->tx_slots - 1);
        ef_event *e = &evs[n++];
        memset(e, 0, sizeof *e);
        e->tx.type = EF_EVENT_TYPE_TX;
        e->tx.desc_id = last;
        e->tx.flags = s->txr[last].ctpio_ok ? EF_EVENT_FLAG_CTPIO : 0;
    }
    /* Then what is left of a super-frame, and frames from the wire, for as long as there
     * is room for their events. */
    if (s->gso_len)
        n = emit_segments(s, evs, n, evs_len);
    while (n + 2 <= evs_len && s->gso_len == 0) {
        struct iovec iov = {s->frame, sizeof s->frame};
        char ctl[256];
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctl;
        mh.msg_controllen = sizeof ctl;
        ssize_t r = recvmsg(s->fd, &mh, MSG_DONTWAIT | MSG_TRUNC);
        if (r < 0)
            break;
        if ((size_t)r > sizeof s->frame || r < 14)
            continue;
        struct timespec ts = {0, 0};
        int partial = 0, vlan = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
                struct tpacket_auxdata aux;
                memcpy(&aux, CMSG_DATA(c), sizeof aux);
                partial = (aux.tp_status & TP_STATUS_CSUMNOTREADY) != 0;
                vlan = (aux.tp_status & TP_STATUS_VLAN_VALID) != 0;
            } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
                memcpy(&ts, CMSG_DATA(c), sizeof ts);
            }
        }
        if (vlan || !frame_matches(s, s->frame, (size_t)r))
            continue;
        if ((size_t)r > s->mtu + 14u) {
            /* A GSO super-frame from the kernel on the other end of a veth: on a real wire
             * the sender's NIC would have cut it into MTU-sized segments (TSO). */
            memcpy(s->gso, s->frame, (size_t)r);
            s->gso_len = (size_t)r;
            s->gso_off = 0;
            s->gso_ts = ts;
            n = emit_segments(s, evs, n, evs_len);
            continue;
        }
        int bad = check_csums(s->frame, (size_t)r, partial) < 0;
        n = emit_rx(s, evs, n, evs_len, s->frame, (size_t)r, &ts, bad);
    }
    return n;
}
