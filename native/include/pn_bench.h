/*
 * pn_bench.h -- `pollnet bench`'s native loops (native/src/bench_loop.c), written on the
 * stack's API only.
 */
#ifndef PN_BENCH_H
#define PN_BENCH_H

#include "pn_link.h"
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

/* --- raw frames: a link's capacity without TCP (native/src/bench_raw.c) --- */

typedef struct pn_bench_raw_params {
    uint32_t frame_len;      /* bytes per frame, Ethernet header included (<= mtu + 14) */
    uint8_t dst_mac[6];      /* the sink link's MAC */
    uint16_t port;           /* UDP port at both ends */
    uint32_t src_ip, dst_ip; /* host order */
    uint64_t duration_ns;    /* how long to send */
    uint64_t first_seq;      /* the first frame's number (each frame carries its own) */
} pn_bench_raw_params;

typedef struct pn_bench_raw_result {
    uint32_t frame_len;
    int error;               /* 0, or why the loop stopped early (PN_E*) */
    uint64_t frames, bytes;  /* sent, or received, whole frames */
    uint64_t first_ns, last_ns;    /* CLOCK_MONOTONIC at the first and the last frame */
    uint64_t first_seq, last_seq;  /* sink: the numbers the first and last frame carried */
    uint64_t tx_ring_full;   /* sender: times tx_buf found the transmit ring full */
} pn_bench_raw_result;

#define PN_BENCH_RAW_SIZES 4

typedef struct pn_bench_raw_sink_result {
    pn_bench_raw_result size[PN_BENCH_RAW_SIZES];  /* one per frame size, as they arrive */
    uint64_t other_frames;   /* ours, but of a fifth size */
    int error;
} pn_bench_raw_sink_result;

/* Send frame_len-byte UDP frames to dst_mac/dst_ip as fast as the link takes them for
 * duration_ns, flushing once per batch of 32; 0, or PN_EINVAL (frame_len outside
 * 58..mtu+14 or beyond the link's buffers) or PN_ELINK (also left in out->error). */
int pn_bench_raw_send(pn_link *l, const pn_bench_raw_params *p, pn_bench_raw_result *out);

/* Count the UDP frames to `port` the link receives, for max_ns; adds to *out (zero it
 * before the first call), so a caller may return to check for signals and call again. */
int pn_bench_raw_sink(pn_link *l, uint16_t port, uint64_t max_ns,
                      pn_bench_raw_sink_result *out);

#ifdef __cplusplus
}
#endif
#endif /* PN_BENCH_H */
