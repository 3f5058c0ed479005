/*
 * pn_bench.h -- `pollnet bench`'s native loops (native/src/bench_loop.c), written on the
 * stack's API only.
 */
#ifndef PN_BENCH_H
#define PN_BENCH_H

#include "pn_stack.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Owned by the bench; additive. */

typedef struct pn_bench_params {
    uint32_t conn_id;        /* an established connection of the stack */
    uint32_t size;           /* bytes per message (<= 65536 when payload is NULL) */
    uint64_t warmup;         /* round trips before the first sample (the first is "cold") */
    uint64_t count;          /* samples wanted; the samples array holds at least this many */
    uint64_t duration_ns;    /* 0 = none; else stop once the measured part lasted this long */
    uint64_t interval_ns;    /* 0 = back to back; else start one round trip per interval */
    uint64_t timeout_ns;     /* 0 = none; a round trip longer than this ends with PN_EAGAIN */
    pn_stack *echo_peer;     /* NULL, or a stack on the same sim wire polled in this thread
                                that echoes what it receives (the sim link's peer) */
    const uint8_t *payload;  /* NULL = zeros; else `size` bytes sent each round trip */
} pn_bench_params;

typedef struct pn_bench_result {
    uint64_t done;           /* samples written (round-trip ns, after the warm-up) */
    int64_t cold_ns;         /* the very first round trip */
    uint64_t start_ns;       /* CLOCK_MONOTONIC at the first measured send */
    uint64_t end_ns;         /* and at the last measured receive */
    uint64_t polls;          /* pn_poll calls while waiting for echoes */
    int error;               /* 0, or why the loop stopped early (PN_E*, link error) */
} pn_bench_result;

/* Ping-pong on conn_id: send size bytes, poll until size bytes came back, record the
 * round trip; 0 or the error also left in out->error. */
int pn_bench_pingpong(pn_stack *s, const pn_bench_params *p, int64_t *samples,
                      pn_bench_result *out);

typedef struct pn_bench_echo_result {
    uint64_t opened, ended, bytes, polls;
} pn_bench_echo_result;

/* Echo server loop: echo every byte, answer FIN with FIN; returns 0 once at least one
 * connection was served and all have ended, PN_EAGAIN after max_ns (0 = no limit). */
int pn_bench_echo(pn_stack *s, uint64_t max_ns, pn_bench_echo_result *out);

/* Nanoseconds `polls` calls of pn_poll(s, now_ns, ...) took (idle-poll cost). */
uint64_t pn_bench_idle_poll(pn_stack *s, uint64_t polls, uint64_t now_ns);

#ifdef __cplusplus
}
#endif
#endif /* PN_BENCH_H */
