/* link_sim.c -- an in-process wire: any number of endpoints, a virtual clock, seeded
 * faults (loss, duplication, reordering, corruption, delay + jitter, a bandwidth cap with
 * a queue, scripted drops) and a pcap of everything put on the wire.
 *
 * Like the stack, it allocates nothing per frame: pn_sim_wire_create allocates a pool of
 * frame slots (queue_frames of them, plus SIM_HELD_SLOTS for the frames a receiver holds
 * between rx_burst and rx_release), pn_sim_link_create an endpoint with its arrival heap
 * (room for every slot). A frame takes a slot when it is put on the wire (a duplicate
 * takes its own) and gives it back when the receiver releases it. More than queue_frames
 * frames in flight, or no free slot, is a tail drop (`queue_drops`). Slots are reused
 * last-freed first, so only as many pages are touched as frames were ever in flight at
 * once. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pn_internal.h"
#include "wire_eth.h"

#if defined(__SANITIZE_ADDRESS__)
#define SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_ASAN 1
#endif
#endif
#ifdef SIM_ASAN   /* a released frame's bytes are poisoned until the slot is reused */
#include <sanitizer/asan_interface.h>
#define SIM_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define SIM_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SIM_POISON(p, n) ((void)(p), (void)(n))
#define SIM_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define SIM_MTU 1500u                            /* every sim endpoint's MTU */
#define SIM_FRAME_MAX (SIM_MTU + PN_ETH_HLEN)    /* the largest frame the wire carries */
#define SIM_QUEUE_DEFAULT 65536u                 /* queue_frames = 0 */
#define SIM_HELD_SLOTS (2u * PN_RX_BURST)        /* frames received, not yet released */
#define SIM_MAX_RULES 32

typedef struct sim_frame {
    uint64_t arrive, order;
    struct sim_frame *next_free;   /* in the wire's free list */
    uint32_t len;
    uint8_t data[SIM_FRAME_MAX];
} sim_frame;

typedef struct sim_ep {
    pn_link link;               /* first: a pn_link* is a sim_ep* */
    pn_sim_wire *w;
    sim_frame **heap;           /* room for every slot of the wire's pool */
    uint32_t n;
    uint64_t last_now, busy_until;
    uint64_t last_arrive;       /* a wire is FIFO: jitter delays, it does not reorder */
    uint8_t txbuf[SIM_FRAME_MAX];
} sim_ep;

typedef struct sim_rule {
    uint32_t nth, seen, offset, len;
    uint8_t match[64], mask[64];
    uint8_t live;
} sim_rule;

struct pn_sim_wire {
    pn_sim_params p;
    uint64_t rng[4];
    uint64_t order;
    sim_ep **eps;
    uint32_t n_eps, cap_eps;
    uint64_t inflight;          /* frames queued to endpoints (not yet received) */
    uint32_t qmax;              /* queue_frames, or its default */
    uint32_t n_slots, fresh;    /* pool size; slots [fresh, n_slots) never used yet */
    sim_frame *pool, *free_list;
    int pcap_fd;
    pn_sim_stats st;
    sim_rule rules[SIM_MAX_RULES];
    uint32_t n_rules;
};

/* ---- PRNG: xoshiro256** seeded by splitmix64 */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t rng_next(pn_sim_wire *w)
{
    uint64_t *s = w->rng;
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return r;
}
static double rng_unit(pn_sim_wire *w) { return (double)(rng_next(w) >> 11) * 0x1.0p-53; }
static bool chance(pn_sim_wire *w, double p) { return p > 0 && rng_unit(w) < p; }

/* ---- per-endpoint min-heap on (arrive, order) */
static bool fr_before(const sim_frame *a, const sim_frame *b)
{
    return a->arrive < b->arrive || (a->arrive == b->arrive && a->order < b->order);
}
static void heap_push(sim_ep *e, sim_frame *f)
{
    uint32_t i = e->n++;   /* never full: the heap has room for every slot */
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!fr_before(f, e->heap[p]))
            break;
        e->heap[i] = e->heap[p];
        i = p;
    }
    e->heap[i] = f;
}
static sim_frame *heap_pop(sim_ep *e)
{
    sim_frame *top = e->heap[0], *last = e->heap[--e->n];
    uint32_t i = 0;
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        const sim_frame *mv = last;
        if (l < e->n && fr_before(e->heap[l], mv)) { m = l; mv = e->heap[l]; }
        if (r < e->n && fr_before(e->heap[r], mv)) { m = r; }
        if (m == i)
            break;
        e->heap[i] = e->heap[m];
        i = m;
    }
    if (e->n)
        e->heap[i] = last;
    return top;
}

/* ---- the frame pool */
static bool slot_free(const pn_sim_wire *w) { return w->free_list || w->fresh < w->n_slots; }
static sim_frame *slot_get(pn_sim_wire *w)
{
    sim_frame *f = w->free_list;
    if (f)
        w->free_list = f->next_free;
    else if (w->fresh < w->n_slots)
        f = &w->pool[w->fresh++];
    else
        return NULL;
    SIM_UNPOISON(f->data, sizeof f->data);
    return f;
}
static void slot_put(pn_sim_wire *w, sim_frame *f)
{
    SIM_POISON(f->data, sizeof f->data);
    f->next_free = w->free_list;
    w->free_list = f;
}

/* ---- link ops */
static int sim_rx_burst(pn_link *l, uint64_t now, pn_rx_frame *frames, int max)
{
    sim_ep *e = (sim_ep *)l;
    e->last_now = now;
    int n = 0;
    while (n < max && e->n && e->heap[0]->arrive <= now) {
        sim_frame *f = heap_pop(e);
        frames[n].data = f->data;
        frames[n].len = f->len;
        frames[n].flags = 0;
        frames[n].handle = (uint64_t)(uintptr_t)f;
        frames[n].hw_ts_ns = f->arrive;
        n++;
        if (e->w) {
            e->w->inflight--;
            e->w->st.delivered++;
        }
    }
    return n;
}

static void sim_rx_release(pn_link *l, const pn_rx_frame *frames, int n)
{
    pn_sim_wire *w = ((sim_ep *)l)->w;
    if (!w)   /* the wire is gone, and its pool with it */
        return;
    for (int i = 0; i < n; i++)
        slot_put(w, (sim_frame *)(uintptr_t)frames[i].handle);
}

static uint8_t *sim_tx_buf(pn_link *l, uint32_t *cap)
{
    sim_ep *e = (sim_ep *)l;
    uint32_t c = (uint32_t)l->mtu + PN_ETH_HLEN;
    *cap = c < SIM_FRAME_MAX ? c : SIM_FRAME_MAX;
    return e->txbuf;
}

static bool rule_match(const sim_rule *r, const uint8_t *d, uint32_t len)
{
    if (r->offset + r->len > len)
        return false;
    for (uint32_t i = 0; i < r->len; i++)
        if ((d[r->offset + i] & r->mask[i]) != (r->match[i] & r->mask[i]))
            return false;
    return true;
}

static void deliver(pn_sim_wire *w, sim_ep *to, const uint8_t *d, uint32_t len, uint64_t at)
{
    if (w->inflight >= w->qmax || !slot_free(w)) {
        w->st.queue_drops++;
        return;
    }
    int copies = 1;
    if (chance(w, w->p.duplicate)) {
        copies = 2;
        w->st.duplicated++;
    }
    for (int c = 0; c < copies; c++) {
        uint64_t t = at + w->p.delay_ns;
        if (w->p.jitter_ns)
            t += rng_next(w) % (w->p.jitter_ns + 1);
        if (chance(w, w->p.reorder)) {
            t += w->p.reorder_delay_ns;   /* held back: later frames overtake it */
            w->st.reordered++;
        } else {
            if (t < to->last_arrive)
                t = to->last_arrive;
            to->last_arrive = t;
        }
        sim_frame *f = slot_get(w);
        if (!f) {   /* the duplicate found the pool empty: dropped as by a full queue */
            w->st.queue_drops++;
            return;
        }
        memcpy(f->data, d, len);
        f->len = len;
        f->arrive = t + (uint64_t)c;
        f->order = w->order++;
        if (len && chance(w, w->p.corrupt)) {
            uint64_t bit = rng_next(w) % ((uint64_t)len * 8);
            f->data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            w->st.corrupted++;
        }
        heap_push(to, f);
        w->inflight++;
    }
}

static int sim_tx_send(pn_link *l, uint8_t *buf, uint32_t len)
{
    sim_ep *e = (sim_ep *)l;
    pn_sim_wire *w = e->w;
    if (!w || len < PN_ETH_HLEN || len > SIM_FRAME_MAX)
        return PN_EINVAL;
    uint64_t now = e->last_now;
    w->st.sent++;
    if (w->pcap_fd >= 0)
        pn_pcap_write(w->pcap_fd, now, buf, len);
    for (uint32_t i = 0; i < w->n_rules; i++) {
        sim_rule *r = &w->rules[i];
        if (r->live && rule_match(r, buf, len) && ++r->seen == r->nth) {
            r->live = 0;
            w->st.dropped++;
            return 0;
        }
    }
    if (chance(w, w->p.loss)) {
        w->st.dropped++;
        return 0;
    }
    uint64_t at = now;
    if (w->p.bandwidth_bps) {   /* serialise behind the sender's previous frames */
        uint64_t start = e->busy_until > now ? e->busy_until : now;
        at = start + (uint64_t)len * 8u * 1000000000u / w->p.bandwidth_bps;
        e->busy_until = at;
    }
    bool bcast = (buf[0] & 1) != 0;
    for (uint32_t i = 0; i < w->n_eps; i++) {
        sim_ep *to = w->eps[i];
        if (to == e)
            continue;
        if (bcast || memcmp(to->link.mac, buf, 6) == 0)
            deliver(w, to, buf, len, at);
    }
    return 0;
}

static void sim_tx_flush(pn_link *l) { (void)l; }
static int sim_flow(pn_link *l, const pn_flow *f) { (void)l; (void)f; return 0; }

static void sim_destroy(pn_link *l)
{
    sim_ep *e = (sim_ep *)l;
    pn_sim_wire *w = e->w;
    if (w) {
        for (uint32_t i = 0; i < w->n_eps; i++)
            if (w->eps[i] == e) {
                w->eps[i] = w->eps[--w->n_eps];
                break;
            }
        w->inflight -= e->n;
        for (uint32_t i = 0; i < e->n; i++)
            slot_put(w, e->heap[i]);
    }
    free(e->heap);
    free(e);
}

static const pn_link_ops sim_ops = {
    .name = "sim",
    .rx_burst = sim_rx_burst,
    .rx_release = sim_rx_release,
    .tx_buf = sim_tx_buf,
    .tx_send = sim_tx_send,
    .tx_flush = sim_tx_flush,
    .flow_add = sim_flow,
    .flow_del = sim_flow,
    .destroy = sim_destroy,
};

/* ---- public */
void pn_sim_params_default(pn_sim_params *p)
{
    memset(p, 0, sizeof *p);
    p->seed = 1;
    p->delay_ns = 5000;
    p->reorder_delay_ns = 50000;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

pn_sim_wire *pn_sim_wire_create(const pn_sim_params *p, char *err, size_t errlen)
{
    pn_sim_params d;
    if (!p) {
        pn_sim_params_default(&d);
        p = &d;
    }
    if (p->loss < 0 || p->loss > 1 || p->duplicate < 0 || p->duplicate > 1 || p->reorder < 0 ||
        p->reorder > 1 || p->corrupt < 0 || p->corrupt > 1) {
        set_err(err, errlen, "sim: probabilities must be in [0, 1]");
        return NULL;
    }
    pn_sim_wire *w = calloc(1, sizeof *w);
    if (!w) {
        set_err(err, errlen, "sim: out of memory");
        return NULL;
    }
    w->p = *p;
    w->qmax = p->queue_frames ? p->queue_frames : SIM_QUEUE_DEFAULT;
    w->n_slots = w->qmax + SIM_HELD_SLOTS;
    /* malloc, not calloc: the pages of slots never used are never touched */
    w->pool = malloc((size_t)w->n_slots * sizeof *w->pool);
    if (!w->pool) {
        free(w);
        set_err(err, errlen, "sim: out of memory for the frame pool (lower queue_frames)");
        return NULL;
    }
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++)
        w->rng[i] = splitmix64(&x);
    w->pcap_fd = -1;
    return w;
}

void pn_sim_wire_destroy(pn_sim_wire *w)
{
    if (!w)
        return;
    for (uint32_t i = 0; i < w->n_eps; i++) {
        sim_ep *e = w->eps[i];
        e->n = 0;   /* its frames were slots of the pool freed below */
        e->w = NULL;
    }
    free(w->eps);
    SIM_UNPOISON(w->pool, (size_t)w->n_slots * sizeof *w->pool);
    free(w->pool);
    if (w->pcap_fd >= 0)
        close(w->pcap_fd);
    free(w);
}

int pn_sim_wire_pcap(pn_sim_wire *w, const char *path, char *err, size_t errlen)
{
    if (!w || !path)
        return PN_EINVAL;
    int fd = pn_pcap_open(path, err, errlen);
    if (fd < 0)
        return PN_EINVAL;
    if (w->pcap_fd >= 0)
        close(w->pcap_fd);
    w->pcap_fd = fd;
    return PN_OK;
}

int pn_sim_wire_drop_nth(pn_sim_wire *w, uint32_t nth, uint32_t offset, const uint8_t *match,
                         const uint8_t *mask, uint32_t len)
{
    if (!w || nth == 0 || len > 64 || (len && !match) || w->n_rules >= SIM_MAX_RULES)
        return PN_EINVAL;
    sim_rule *r = &w->rules[w->n_rules];
    memset(r, 0, sizeof *r);
    r->nth = nth;
    r->offset = offset;
    r->len = len;
    if (len)
        memcpy(r->match, match, len);
    for (uint32_t i = 0; i < len; i++)
        r->mask[i] = mask ? mask[i] : 0xff;
    r->live = 1;
    return (int)w->n_rules++;
}

uint64_t pn_sim_wire_next_arrival(const pn_sim_wire *w)
{
    uint64_t t = UINT64_MAX;
    if (!w)
        return t;
    for (uint32_t i = 0; i < w->n_eps; i++)
        if (w->eps[i]->n && w->eps[i]->heap[0]->arrive < t)
            t = w->eps[i]->heap[0]->arrive;
    return t;
}

void pn_sim_wire_stats(const pn_sim_wire *w, pn_sim_stats *out)
{
    if (w && out)
        *out = w->st;
}

pn_link *pn_sim_link_create(pn_sim_wire *w, const uint8_t mac[6], char *err, size_t errlen)
{
    if (!w || !mac) {
        set_err(err, errlen, "sim: wire and mac are required");
        return NULL;
    }
    if (w->n_eps == w->cap_eps) {
        uint32_t nc = w->cap_eps ? w->cap_eps * 2 : 8;
        sim_ep **a = realloc(w->eps, nc * sizeof *a);
        if (!a) {
            set_err(err, errlen, "sim: out of memory");
            return NULL;
        }
        w->eps = a;
        w->cap_eps = nc;
    }
    sim_ep *e = calloc(1, sizeof *e);
    if (!e) {
        set_err(err, errlen, "sim: out of memory");
        return NULL;
    }
    e->heap = malloc((size_t)w->n_slots * sizeof *e->heap);
    if (!e->heap) {
        free(e);
        set_err(err, errlen, "sim: out of memory");
        return NULL;
    }
    e->link.ops = &sim_ops;
    memcpy(e->link.mac, mac, 6);
    e->link.mtu = SIM_MTU;
    e->link.caps = PN_LINK_OWN_IP;
    e->link.pcap_fd = -1;
    e->w = w;
    w->eps[w->n_eps++] = e;
    return &e->link;
}
