/*
 * bench_loop.c -- `pollnet bench`'s native loops: a ping-pong client, an echo server and an
 * idle-poll timer, wholly in C on the core's public API (pn_poll, pn_send). No Python runs
 * per message; the caller owns the sample array. These show the stack's own floor apart
 * from the cost of the Python API above it.
 *
 * Written against pncore.h only: nothing here knows the stack's insides.
 */
#include <string.h>
#include <time.h>

#include "pn_bench.h"

#define BENCH_EVENTS 64

static inline uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Echo every DATA event of one batch on its own connection; FIN is answered with FIN.
 * Counts connections opened and ended. Returns < 0 on a link error. */
static int echo_batch(pn_stack *s, uint64_t now, pn_event *ev, int max,
                      uint64_t *opened, uint64_t *ended, uint64_t *bytes)
{
    int n = pn_poll(s, now, ev, max);
    for (int i = 0; i < n; i++) {
        pn_event *e = &ev[i];
        switch (e->type) {
        case PN_EV_DATA: {
            int32_t sent = pn_send(s, e->conn_id, e->data, e->len, 0);
            if (sent < 0)
                sent = (int32_t)e->len;  /* the connection is gone: drop the bytes */
            if ((uint32_t)sent < e->len)
                pn_keep(s, e->conn_id, e->len - (uint32_t)sent);
            *bytes += (uint64_t)sent;
            break;
        }
        case PN_EV_FIN:
            if (e->len) {
                int32_t sent = pn_send(s, e->conn_id, e->data, e->len, 0);
                *bytes += sent > 0 ? (uint64_t)sent : 0;
            }
            pn_send_fin(s, e->conn_id);
            break;
        case PN_EV_CONNECTION_ESTABLISHED:
            (*opened)++;
            break;
        case PN_EV_CONNECTION_CLOSED:
        case PN_EV_CONNECTION_RESET:
        case PN_EV_CONNECTION_TIMEOUT:
            (*ended)++;
            break;
        default:
            break;
        }
    }
    return n;
}

int pn_bench_pingpong(pn_stack *s, const pn_bench_params *p, int64_t *samples,
                      pn_bench_result *out)
{
    pn_event ev[BENCH_EVENTS];
    pn_event peer_ev[BENCH_EVENTS];
    static const uint8_t zeros[65536];
    uint64_t peer_opened = 0, peer_ended = 0, peer_bytes = 0;

    memset(out, 0, sizeof(*out));
    if (!s || !p || !samples || p->size == 0 || p->count == 0)
        return out->error = PN_EINVAL;
    if (!p->payload && p->size > sizeof(zeros))
        return out->error = PN_EINVAL;
    const uint8_t *msg = p->payload ? p->payload : zeros;
    uint64_t total = p->warmup + p->count;
    uint64_t next_send = 0;
    uint64_t measure_end = 0;

    for (uint64_t i = 0; i < total; i++) {
        if (p->interval_ns) {
            uint64_t now = mono_ns();
            if (next_send == 0)
                next_send = now;
            while (now < next_send) {  /* keep the stack polled while pacing */
                int n = pn_poll(s, now, ev, BENCH_EVENTS);
                if (n < 0)
                    return out->error = n;
                now = mono_ns();
            }
            next_send += p->interval_ns;
        }
        uint64_t t0 = mono_ns();
        if (i == p->warmup) {
            out->start_ns = t0;
            if (p->duration_ns)
                measure_end = t0 + p->duration_ns;
        }
        uint32_t off = 0;
        while (off < p->size) {
            int32_t sent = pn_send(s, p->conn_id, msg + off, p->size - off, 0);
            if (sent < 0)
                return out->error = sent;
            off += (uint32_t)sent;
            if (off < p->size) {  /* send buffers full: let acks in */
                int n = pn_poll(s, 0, ev, BENCH_EVENTS);
                if (n < 0)
                    return out->error = n;
            }
        }
        uint64_t got = 0;
        uint64_t now = t0;
        while (got < p->size) {
            if (p->echo_peer) {
                int n = echo_batch(p->echo_peer, now, peer_ev, BENCH_EVENTS,
                                   &peer_opened, &peer_ended, &peer_bytes);
                if (n < 0)
                    return out->error = n;
            }
            int n = pn_poll(s, p->echo_peer ? now : 0, ev, BENCH_EVENTS);
            out->polls++;
            if (n < 0)
                return out->error = n;
            for (int k = 0; k < n; k++) {
                const pn_event *e = &ev[k];
                if (e->conn_id != p->conn_id)
                    continue;
                if (e->type == PN_EV_DATA) {
                    got += e->len;  /* all consumed: remaining stays 0 */
                } else if (e->type == PN_EV_CONNECTION_RESET ||
                           e->type == PN_EV_CONNECTION_CLOSED ||
                           e->type == PN_EV_CONNECTION_TIMEOUT || e->type == PN_EV_FIN) {
                    out->end_ns = mono_ns();
                    return out->error = PN_EBADCONN;
                }
            }
            now = mono_ns();
            if (p->timeout_ns && now - t0 > p->timeout_ns) {
                out->end_ns = now;
                return out->error = PN_EAGAIN;
            }
        }
        int64_t rtt = (int64_t)(now - t0);
        if (i == 0)
            out->cold_ns = rtt;
        if (i >= p->warmup) {
            samples[out->done++] = rtt;
            out->end_ns = now;
            if (measure_end && now >= measure_end)
                break;
        }
    }
    return 0;
}

int pn_bench_echo(pn_stack *s, uint64_t max_ns, pn_bench_echo_result *out)
{
    pn_event ev[BENCH_EVENTS];
    memset(out, 0, sizeof(*out));
    if (!s)
        return PN_EINVAL;
    uint64_t start = mono_ns();
    uint64_t deadline = max_ns ? start + max_ns : UINT64_MAX;
    uint64_t spin = 0;
    for (;;) {
        int n = echo_batch(s, 0, ev, BENCH_EVENTS, &out->opened, &out->ended, &out->bytes);
        out->polls++;
        if (n < 0)
            return n;
        /* Served a session and every connection has ended: done. */
        if (out->opened && out->ended >= out->opened)
            return 0;
        if ((++spin & 1023) == 0 && mono_ns() >= deadline)
            return PN_EAGAIN;
    }
}

uint64_t pn_bench_idle_poll(pn_stack *s, uint64_t polls, uint64_t now_ns)
{
    pn_event ev[BENCH_EVENTS];
    uint64_t t0 = mono_ns();
    for (uint64_t i = 0; i < polls; i++)
        (void)pn_poll(s, now_ns, ev, BENCH_EVENTS);
    return mono_ns() - t0;
}
