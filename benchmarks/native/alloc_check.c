/*
 * alloc_check.c -- the core and the sim link allocate nothing per message: two stacks on
 * one link, a handshake, then pn_bench_pingpong() (bench_loop.c) for N round trips while
 * every malloc/calloc/realloc/free is counted (the linker wraps them). Prints the counts
 * and the round-trip figures; exits 1 if the loop allocated or freed anything.
 *
 *   pipe        a fixed ring defined here (the core alone)
 *   sim         the sim link, no faults (its frame pool, link_sim.c)
 *   sim-faults  the sim link with every fault it has: jitter, reordering, duplicates,
 *               loss, corruption, a bandwidth queue, a scripted drop and a pcap
 *               (/dev/null), so retransmission and out-of-order paths run too
 *
 *   make -C benchmarks/native && benchmarks/native/build/alloc_check [N] [pipe|sim|sim-faults]
 *   valgrind --tool=callgrind benchmarks/native/build/alloc_check 20000   (instructions)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pncore.h"

static unsigned long n_alloc, n_free;
void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n) { n_alloc++; return __real_malloc(n); }
void *__wrap_calloc(size_t a, size_t b) { n_alloc++; return __real_calloc(a, b); }
void *__wrap_realloc(void *p, size_t n) { n_alloc++; return __real_realloc(p, n); }
void __wrap_free(void *p) { if (p) n_free++; __real_free(p); }

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- a pipe link: two ends, each a fixed ring of frame slots; nothing allocated after
 * setup, and no fault machinery: the core's own figure. */
#define PIPE_SLOTS 256
#define PIPE_FRAME 2048
typedef struct pipe_end {
    pn_link link;                      /* first: the stack sees a pn_link * */
    struct pipe_end *peer;
    uint8_t buf[PIPE_SLOTS][PIPE_FRAME];
    uint32_t len[PIPE_SLOTS];
    uint32_t head, tail;               /* frames waiting to be received by this end */
} pipe_end;

static int pipe_rx(pn_link *l, uint64_t now, pn_rx_frame *f, int max)
{
    (void)now;
    pipe_end *e = (pipe_end *)l;
    int n = 0;
    while (n < max && e->head != e->tail) {
        uint32_t i = e->head++ % PIPE_SLOTS;
        f[n].data = e->buf[i];
        f[n].len = e->len[i];
        f[n].flags = PN_RX_CSUM_OK;
        f[n].handle = i;
        f[n].hw_ts_ns = 0;
        n++;
    }
    return n;
}
static void pipe_release(pn_link *l, const pn_rx_frame *f, int n) { (void)l; (void)f; (void)n; }
static uint8_t *pipe_tx_buf(pn_link *l, uint32_t *cap)
{
    pipe_end *p = ((pipe_end *)l)->peer;
    if (p->tail - p->head >= PIPE_SLOTS - 64)  /* keep the slots a burst may still hold */
        return NULL;
    *cap = PIPE_FRAME;
    return p->buf[p->tail % PIPE_SLOTS];
}
static int pipe_tx_send(pn_link *l, uint8_t *buf, uint32_t len)
{
    (void)buf;
    pipe_end *p = ((pipe_end *)l)->peer;
    p->len[p->tail % PIPE_SLOTS] = len;
    p->tail++;
    return 0;
}
static void pipe_flush(pn_link *l) { (void)l; }
static int pipe_flow(pn_link *l, const pn_flow *f) { (void)l; (void)f; return 0; }
static void pipe_destroy(pn_link *l) { (void)l; }
static const pn_link_ops pipe_ops = {
    .name = "pipe", .rx_burst = pipe_rx, .rx_release = pipe_release, .tx_buf = pipe_tx_buf,
    .tx_send = pipe_tx_send, .tx_flush = pipe_flush, .flow_add = pipe_flow,
    .flow_del = pipe_flow, .destroy = pipe_destroy,
};
static pipe_end pipe_a, pipe_b;

static pn_link *pipe_link(pipe_end *e, pipe_end *peer, uint8_t last)
{
    memset(e, 0, sizeof *e);
    e->peer = peer;
    e->link.ops = &pipe_ops;
    uint8_t mac[6] = {2, 0, 0, 0, 0, last};
    memcpy(e->link.mac, mac, 6);
    e->link.mtu = 1500;
    e->link.caps = PN_LINK_RX_CSUM;
    e->link.pcap_fd = -1;
    return &e->link;
}

static pn_stack *host(pn_sim_wire *w, uint32_t ip, uint8_t last)
{
    char err[160];
    uint8_t mac[6] = {2, 0, 0, 0, 0, last};
    pn_link *l = w ? pn_sim_link_create(w, mac, err, sizeof err)
                   : pipe_link(last == 1 ? &pipe_a : &pipe_b, last == 1 ? &pipe_b : &pipe_a, last);
    if (!l) { fprintf(stderr, "link: %s\n", err); exit(2); }
    pn_config cfg;
    pn_config_default(&cfg);
    cfg.local_ip = ip;
    cfg.netmask = 0xffffff00u;
    cfg.max_conn_cnt = 4;
    pn_stack *s = NULL;
    if (pn_stack_create(&s, &cfg, l, err, sizeof err) < 0) { fprintf(stderr, "stack: %s\n", err); exit(2); }
    return s;
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    uint64_t count = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
    const char *mode = argc > 2 ? argv[2] : "pipe";
    int faults = strcmp(mode, "sim-faults") == 0;
    int use_sim = faults || strcmp(mode, "sim") == 0;
    if (!use_sim && strcmp(mode, "pipe") != 0) {
        fprintf(stderr, "usage: alloc_check [N] [pipe|sim|sim-faults]\n");
        return 2;
    }
    char err[160];
    pn_sim_params p;
    pn_sim_params_default(&p);
    p.delay_ns = 0;
    p.jitter_ns = 0;
    if (faults) {  /* virtual delays on a wall clock: microseconds, so N stays quick */
        p.seed = 42;
        p.jitter_ns = 2000;
        p.reorder = 0.05;
        p.reorder_delay_ns = 20000;
        p.duplicate = 0.05;
        p.loss = 0.0002;
        p.corrupt = 0.0002;
        p.bandwidth_bps = 10000000000ull;
        p.queue_frames = 1024;
    }
    pn_sim_wire *w = NULL;
    if (use_sim) {
        w = pn_sim_wire_create(&p, err, sizeof err);
        if (!w) { fprintf(stderr, "wire: %s\n", err); return 2; }
        if (faults && pn_sim_wire_pcap(w, "/dev/null", err, sizeof err) < 0) {
            fprintf(stderr, "pcap: %s\n", err);
            return 2;
        }
    }
    const uint32_t a_ip = 0x0a000001u, b_ip = 0x0a000002u;
    pn_stack *a = host(w, a_ip, 1), *b = host(w, b_ip, 2);
    if (!use_sim) {  /* no ARP over the pipe */
        pn_stack_add_neighbour(a, b_ip, pipe_b.link.mac);
        pn_stack_add_neighbour(b, a_ip, pipe_a.link.mac);
    }
    pn_listen(b, 7001);
    uint32_t conn = 0;
    pn_event ev[64];
    uint64_t t = now_ns();
    if (pn_connect(a, b_ip, 7001, 0, &conn) < 0) { fprintf(stderr, "connect failed\n"); return 2; }
    int up = 0;
    for (int i = 0; i < 1000 && !up; i++) {
        t = now_ns();
        pn_poll(b, t, ev, 64);
        int n = pn_poll(a, t, ev, 64);
        for (int k = 0; k < n; k++)
            up |= ev[k].type == PN_EV_CONNECTION_ESTABLISHED;
    }
    if (!up) { fprintf(stderr, "no handshake\n"); return 2; }

    int64_t *samples = malloc(count * sizeof *samples);
    pn_bench_params bp;
    memset(&bp, 0, sizeof bp);
    bp.conn_id = conn;
    bp.size = 64;
    bp.warmup = 1000;
    bp.count = count;
    bp.timeout_ns = 1000000000ull;
    bp.echo_peer = b;
    pn_bench_result res;
    if (faults) {  /* drop the 100th frame from now on carrying TCP ACK|PSH (data) */
        const uint8_t match[1] = {0x18}, mask[1] = {0xff};
        pn_sim_wire_drop_nth(w, 100, 14 + 20 + 13, match, mask, 1);
    }
    unsigned long before_a = n_alloc, before_f = n_free;
    int rc = pn_bench_pingpong(a, &bp, samples, &res);
    unsigned long loop_a = n_alloc - before_a, loop_f = n_free - before_f;
    if (rc < 0) { fprintf(stderr, "loop: %s\n", pn_strerror(rc)); return 2; }
    qsort(samples, res.done, sizeof *samples, cmp);
    double per = (double)loop_a / (double)(res.done + bp.warmup);
    printf("link %s: round trips %llu (+%llu warm-up): %lu allocations, %lu frees during the loop"
           " (%.2f per round trip)\n",
           mode, (unsigned long long)res.done,
           (unsigned long long)bp.warmup, loop_a, loop_f, per);
    printf("full RTT ns: min %lld p50 %lld p99 %lld max %lld (cold %lld); polls %llu\n",
           (long long)samples[0], (long long)samples[res.done / 2],
           (long long)samples[res.done * 99 / 100], (long long)samples[res.done - 1],
           (long long)res.cold_ns, (unsigned long long)res.polls);
    if (w) {
        pn_sim_stats st;
        pn_sim_wire_stats(w, &st);
        printf("wire: sent %llu delivered %llu dropped %llu duplicated %llu reordered %llu "
               "corrupted %llu queue_drops %llu\n",
               (unsigned long long)st.sent, (unsigned long long)st.delivered,
               (unsigned long long)st.dropped, (unsigned long long)st.duplicated,
               (unsigned long long)st.reordered, (unsigned long long)st.corrupted,
               (unsigned long long)st.queue_drops);
    }
    free(samples);
    pn_stack_destroy(a);
    pn_stack_destroy(b);
    if (w)
        pn_sim_wire_destroy(w);
    /* Neither the core nor the sim link may allocate per message. */
    return loop_a || loop_f ? 1 : 0;
}
