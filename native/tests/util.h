/* util.h -- a simulated world for the C tests: stacks on one sim wire, a virtual clock
 * that jumps to the next frame arrival or timer, and a byte-exact stream application. */
#ifndef PN_TEST_UTIL_H
#define PN_TEST_UTIL_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pncore.h"

#define MAX_NODES 8
#define EV_MAX 64
#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

typedef struct stream {   /* one connection's application state */
    uint8_t used, established, fin_seen, closed, reset, timeout, refused;
    uint32_t conn;
    uint64_t tx_seed, rx_seed;
    uint64_t tx_total, tx_sent;
    uint64_t rx_expect, rx_consumed, rx_seen, rx_bad;
    uint32_t more_sendable, user_timeouts;
    uint32_t kept;         /* what the last DATA event left unconsumed (pn_keep) */
    uint8_t partial;       /* leave some bytes unconsumed now and then */
    uint8_t keep_all;      /* consume nothing */
    uint8_t send_fin_when_done;
    uint8_t fin_sent;
} stream;

struct world;
typedef struct node {
    struct world *w;
    pn_stack *s;
    pn_link *l;
    pn_config cfg;
    uint8_t mac[6];
    uint32_t ip;
    pn_event ev[EV_MAX];
    uint32_t counts[16];
    stream *streams;       /* indexed by conn_id */
    uint32_t nstreams;
    uint64_t default_tx;   /* bytes each accepted connection sends */
    uint64_t default_rx;   /* bytes each accepted connection expects (0 = unknown) */
    uint8_t partial;
    uint8_t auto_fin;
    void (*hook)(struct node *n, pn_event *e);
} node;

typedef struct world {
    pn_sim_wire *wire;
    node nodes[MAX_NODES];
    int nn;
    uint64_t now;
    uint64_t polls;
    pn_link *raw[4];       /* raw endpoints: frames to them are drained and counted */
    int nraw;
    uint64_t raw_rx;
    void (*raw_hook)(struct world *w, const uint8_t *f, uint32_t len);
    bool fresh_event_arrays;   /* each pn_poll() gets a new array of garbage, freed after */
    void *ctx;
} world;

extern int h_pass, h_fail;

void world_init(world *w, const pn_sim_params *p);
node *world_add(world *w, const pn_config *cfg, uint32_t ip, uint8_t macbyte);
/* When set, world_add() gives the stack wrap_link(sim link) instead (e.g. a flaky link). */
extern pn_link *(*wrap_link)(pn_link *inner);
void world_free(world *w);
/* The usual two nodes: a client at PAIR_CIP and a server at PAIR_SIP with configs cc / sc
 * (NULL: cfg_for's) on a wire with params p (NULL: the defaults); world_pair also has the
 * server listen on port 80. */
#define PAIR_CIP IP(10, 0, 0, 1)
#define PAIR_SIP IP(10, 0, 0, 2)
void world_two(world *w, const pn_sim_params *p, const pn_config *cc, const pn_config *sc,
               node **cl, node **sv);
void world_pair(world *w, const pn_sim_params *p, const pn_config *cc, const pn_config *sc,
                node **cl, node **sv);
pn_link *world_add_raw(world *w, uint8_t macbyte);
/* Run until done(w) or the virtual clock passes `limit_ns` from now. Returns done(). */
bool world_run(world *w, uint64_t limit_ns, bool (*done)(world *w, void *ctx), void *ctx);
void gen_bytes(uint64_t seed, uint64_t off, uint8_t *dst, uint32_t n);
void stream_pump(node *n, stream *st);
stream *node_stream(node *n, uint32_t conn);
void cfg_for(pn_config *c, uint32_t ip);
bool all_streams_done(world *w, void *ctx);
/* world_pair's configs for a bulk stream: MSS 1460, a 1 MB window (scaled), NewReno. */
void cfg_bulk_pair(pn_config *cl, pn_config *sv);
/* A world_run() condition: a stream of node 1 (world_pair's server) has received at
 * least *(uint64_t *)ctx bytes. */
bool server_got(world *w, void *ctx);
double wall_s(void);
double cpu_s(void);   /* this process's CPU time: steadier than wall time on a busy box */
#endif

/* A raw TCP/IPv4 frame with correct checksums (for injecting segments). */
typedef struct raw_seg {
    const uint8_t *src_mac, *dst_mac;
    uint32_t src_ip, dst_ip;
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    uint16_t wnd;
    const uint8_t *opts;
    uint32_t optlen;       /* a multiple of 4 */
    const uint8_t *payload;
    uint32_t plen;
} raw_seg;
uint32_t build_tcp_frame(uint8_t *f, const raw_seg *r);
/* Put a frame on the wire from a raw endpoint. */
void raw_send(pn_link *raw, const uint8_t *f, uint32_t len);
stream *client_open(node *cl, uint32_t sip, uint16_t port, uint64_t tx, uint64_t rx);
/* The same from local port `lport` (0: an ephemeral one). */
stream *client_open_from(node *cl, uint16_t lport, uint32_t sip, uint16_t port, uint64_t tx,
                         uint64_t rx);
