/* pn_internal.h -- the stack's private structures, shared by the core's .c files. */
#ifndef PN_INTERNAL_H
#define PN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pn_link.h"
#include "pn_links.h"
#include "pn_stack.h"

#define PN_MAX_LISTEN 32
#define PN_MAX_OOO 32         /* out-of-order ranges a connection can hold (max_ooo_segs <= this) */
#define PN_RX_BURST 64
#define PN_NEIGH_CNT 64
#define PN_MSL_NS (30ull * 1000000000ull)   /* RFC 9293 3.4.2: MSL (Linux uses 60 s for 2*MSL) */
#define PN_TW_NS (2 * PN_MSL_NS)
/* Invariant checks that abort in debug builds (-DPN_DEBUG); release builds repair and
 * count (pn_stats.PnInvariantRepairs) instead. */
#ifdef PN_DEBUG
#include <assert.h>
#define PN_DEBUG_ASSERT(cond) assert(cond)
#else
#define PN_DEBUG_ASSERT(cond) ((void)0)
#endif

#define PN_INIT_RTO_US 1000000u             /* RFC 6298 2.1: initial RTO 1 s */
#define PN_QUICK_ACK_BYTES 65536u           /* ACKed every second segment (cfg.ack_every) */
#define PN_SYN_LOST_RTO_US 3000000u         /* RFC 6298 5.7: after a lost SYN, 3 s */
#define PN_CHALLENGE_ACK_LIMIT 1000u        /* RFC 5961 7: per second, as Linux */
#define PN_COOKIE_VALID_NS (128ull * 1000000000ull)   /* two 64 s cookie periods */
#define PN_NONE32 0xffffffffu

/* seq arithmetic, RFC 9293 3.4 (modulo 2^32) */
static inline bool seq_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline bool seq_le(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }
static inline bool seq_gt(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }
static inline bool seq_ge(uint32_t a, uint32_t b) { return (int32_t)(a - b) >= 0; }
static inline uint32_t seq_max(uint32_t a, uint32_t b) { return seq_gt(a, b) ? a : b; }
static inline uint32_t seq_min(uint32_t a, uint32_t b) { return seq_lt(a, b) ? a : b; }

/* ------------------------------------------------------------------ timers (a binary heap) */
enum { PN_T_RTX = 1, PN_T_DELACK, PN_T_USER, PN_T_ARP, PN_T_KEEPALIVE };

typedef struct pn_timer {
    uint64_t when;
    uint32_t heap_idx;   /* PN_NONE32 when not armed */
    uint32_t owner;      /* connection index or neighbour index */
    uint16_t kind;       /* PN_T_* */
    uint16_t sub;        /* user timer id */
} pn_timer;

/* ------------------------------------------------------------------ connections */
typedef struct pn_sseg {    /* one send buffer: one segment's payload */
    uint32_t seq;
    uint16_t len;
    uint16_t flags;          /* PN_SSEG_* */
    uint32_t xmit_us;        /* when it last went out (low 32 bits of µs): RACK's clock */
} pn_sseg;
enum {
    PN_SSEG_SACKED = 1,      /* the peer holds it (RFC 2018 scoreboard) */
    PN_SSEG_RTX = 2,         /* resent as a hole in this recovery (tcp_sack.c) */
};

typedef struct pn_conn {
    uint32_t idx;
    uint8_t state;           /* PN_TCP_* */
    uint8_t in_use;          /* 0 free, 1 live, 2 freed (slot held until events drain) */
    uint8_t active;          /* we opened it (owns a link flow) */
    uint8_t in_ht;           /* listed in the demux hash */
    uint8_t dst_mac[6];
    uint32_t remote_ip, nexthop;
    uint16_t remote_port, local_port;
    uint32_t next_free;

    /* send side */
    uint32_t iss, snd_una, snd_nxt, snd_max, snd_wnd, snd_wl1, snd_wl2, max_snd_wnd;
    uint32_t data_end;       /* seq one past the last byte queued */
    uint32_t mss;            /* payload bytes per segment we send */
    uint32_t rcv_mss;        /* the peer's segment size, for delayed-ACK counting */
    uint32_t sb_head, sb_cnt, sb_nxt_off;  /* ring of send buffers; sb_nxt_off = buffers from head to snd_nxt's */
    pn_sseg *segs;
    uint8_t *sbuf;
    uint8_t snd_wscale, rcv_wscale, ws_ok, ts_ok, sack_ok;
    uint8_t fin_queued, more_hold, want_more_sendable, persist, pshift;
    uint32_t syn_opts_peer_mss;

    /* receive side */
    uint32_t irs, rcv_nxt, rcv_adv;
    uint8_t *rbuf;
    uint32_t rlen;           /* in-order bytes held at rbuf[0..rlen) */
    uint32_t ooo_n;
    struct { uint32_t s, e; } ooo[PN_MAX_OOO];
    uint8_t fin_rcvd, fin_ooo, fin_delivered;
    uint8_t fin_defer, tw_defer;   /* FIN event held until the DATA before it is handled */
    uint32_t fin_ooo_seq;
    uint32_t ts_recent, last_ack_sent, ts_offset;
    uint64_t ts_recent_ns;
    uint64_t oow_ack_ns;     /* last ACK sent for an out-of-window bare ACK */
    uint32_t delack_bytes;   /* in-order bytes not yet ACKed */
    uint32_t quick_acks;     /* bytes still ACKed every second segment (cfg.ack_every) */
    uint8_t ack_pending;     /* queued on the end-of-burst ACK list */
    uint8_t ack_lost;        /* an ACK found the TX ring full: resend at the next flush */
    uint8_t half_open;       /* passive, SYN-RECEIVED: counted in s->half_open */
    uint32_t ooo_bytes;      /* bytes in the out-of-order ranges */
    uint32_t ooo_last;       /* seq of the latest out-of-order segment kept (SACK) */
    uint64_t zw_since;       /* when the peer's window closed with data waiting (persist) */

    /* RTT (RFC 6298) */
    uint32_t srtt_us, rttvar_us, rto_us;
    uint8_t rtt_valid, rtt_timing;
    uint32_t rtt_seq;
    uint64_t rtt_ts;
    uint32_t retries;
    uint8_t backoff;         /* RTO doublings since the last new ACK (RFC 6298 5.5) */

    /* congestion control (tcp_cc.c) */
    uint32_t cwnd, ssthresh, recover, dupacks, ca_acc;
    /* SACK recovery's sending budget, Proportional Rate Reduction (RFC 6937) */
    uint32_t prr_delivered, prr_out, recover_fs;
    uint32_t prr_budget;     /* bytes of new data output() may still send on this ACK */
    uint32_t delivered_now;  /* bytes this ACK newly acknowledged or SACKed */
    uint32_t rack_xmit_us;   /* RACK (RFC 8985): the latest send time among delivered */
    uint8_t rack_valid;      /*   segments; a segment sent well before it is lost */
    uint8_t tlp_armed;       /* t_rtx is the tail loss probe's timer (RFC 8985 7) */
    uint8_t tlp_out;         /* a probe went and no ACK has advanced since */
    uint8_t in_recovery;
    double cubic_wmax, cubic_k, cubic_west, cubic_cwnd_epoch;
    uint64_t cubic_epoch_ns;
    uint64_t retransmits;

    /* events */
    uint32_t qrefs;          /* events in the queue naming this connection */
    uint32_t data_ev_pos;    /* queue slot (position & (evq_cap - 1)) of a pending DATA/FIN event */
    uint8_t data_ev_live, ms_ev_live;

    pn_timer t_rtx, t_delack;
    pn_timer *t_user;

    /* keepalive (RFC 1122 4.2.3.6; tcp_timer.c) */
    pn_timer t_ka;
    uint64_t ka_rx_ns;       /* when the peer last sent a segment */
    uint32_t ka_probes;      /* probes sent since then, unanswered */
} pn_conn;

typedef struct pn_tw {       /* a TIME_WAIT entry (time_wait.c) */
    uint32_t remote_ip;
    uint16_t remote_port, local_port;
    uint32_t snd_nxt, rcv_nxt, ts_recent, ts_offset;
    uint64_t oow_ack_ns;     /* last rate-limited reply (pn_oow_allowed) */
    uint8_t ts_ok, in_use, snd_wscale, rcv_wscale, active;
    uint8_t dst_mac[6];
    uint64_t expire;
    uint32_t prev, next;     /* age list, oldest first */
} pn_tw;

typedef struct pn_neigh {
    uint32_t ip;
    uint8_t mac[6];
    uint8_t state;           /* 0 free, 1 incomplete, 2 reachable, 3 static */
    uint8_t tries;
    uint64_t used;
    pn_timer t;
} pn_neigh;

/* A DATA/FIN event handed out by the last poll: what the next poll consumes of it. */
typedef struct pn_shadow { uint32_t conn, len, remaining; uint8_t fin; } pn_shadow;

struct pn_stack {
    pn_config cfg;
    pn_link *link;
    void *arena;
    size_t arena_size;
    uint64_t now;
    uint8_t mac[6];

    pn_conn *conns;
    uint32_t conn_free;      /* free list head */
    uint32_t conn_live;
    uint32_t zombies;        /* slots freed but not yet back on the free list */
    uint32_t sbuf_size;      /* bytes per send buffer (pn_config.send_buf_size) */
    uint32_t mss_cap;        /* send MSS cap from the buffer size and MTU */

    uint32_t *ht;            /* demux: slot -> PN_NONE32 | conn idx | 0x80000000|tw idx */
    uint32_t ht_mask;

    pn_tw *tw;
    uint32_t tw_free, tw_old, tw_new, tw_used;

    uint16_t listen[PN_MAX_LISTEN];
    uint32_t listen_n;

    pn_neigh neigh[PN_NEIGH_CNT];

    pn_timer **heap;
    uint32_t heap_n;

    pn_event *evq;
    uint32_t *evq_conn;      /* parallel: connection index the event names */
    uint32_t evq_cap, ev_head, ev_tail;   /* cap a power of two; head/tail free-running positions */

    pn_shadow *last;         /* DATA/FIN events handed out by the previous poll */
    uint32_t last_n;

    uint32_t *ackq;
    uint32_t ackq_n;
    uint32_t *finq;          /* connections with a deferred FIN event */
    uint32_t finq_n;

    pn_accept_fn accept_fn;
    void *accept_ctx;
    pn_stats st;
    uint16_t ip_id, eph_next;
    uint64_t chal_sec;
    uint32_t chal_cnt;
    uint32_t half_open;      /* passive connections in SYN-RECEIVED */
    uint32_t syn_backlog;    /* max_syn_backlog in force */
    uint32_t end_reason;     /* PN_REASON_* for the next pn_conn_free() event */
    uint64_t cookie_ns;      /* when the last SYN cookie was sent (0 = never) */
    uint64_t isn_key[2];
    uint32_t isn_bias;   /* tests only (0 otherwise): added to every ISN, to run connections
                          * across the 2^32 sequence wrap */
};

/* The k-th segment of c's send ring (0: the oldest not yet acknowledged). */
static inline pn_sseg *pn_seg_at(const pn_stack *s, const pn_conn *c, uint32_t k)
{
    return &c->segs[(c->sb_head + k) % s->cfg.conn_send_buf_cnt];
}

/* ------------------------------------------------------------------ internal API */
/* csum.c */
uint32_t pn_csum_partial(const void *data, size_t len, uint32_t sum);
uint16_t pn_csum_fold(uint32_t sum);
uint32_t pn_csum_copy(void *dst, const void *src, size_t len, uint32_t sum);
uint32_t pn_csum_pseudo(uint32_t src_be_ip, uint32_t dst_be_ip, uint8_t proto, uint16_t len);
void pn_siphash_key(uint64_t out[2]);
uint64_t pn_siphash(const uint64_t key[2], const void *data, size_t len);

/* link.c */
int pn_link_rx(pn_link *l, uint64_t now, pn_rx_frame *f, int max);
uint8_t *pn_link_txbuf(pn_link *l, uint32_t *cap);
int pn_link_tx(pn_link *l, uint64_t now, uint8_t *buf, uint32_t len);
/* pcap.c */
int pn_pcap_open(const char *path, char *err, size_t errlen);
void pn_pcap_write(int fd, uint64_t ts_ns, const uint8_t *data, uint32_t len);

/* stack.c */
pn_conn *pn_conn_get(const pn_stack *s, uint32_t id);
int pn_ev_push(pn_stack *s, pn_conn *c, uint32_t type);
void pn_ev_data(pn_stack *s, pn_conn *c);
void pn_timer_set(pn_stack *s, pn_timer *t, uint64_t when);
void pn_timer_del(pn_stack *s, pn_timer *t);
uint32_t pn_ht_find(const pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport);
void pn_ht_add(pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport, uint32_t val);
void pn_ht_del(pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport);
bool pn_is_listening(const pn_stack *s, uint16_t port);
bool pn_challenge_ack_allowed(pn_stack *s);
/* Build Ethernet+IPv4 headers into a fresh tx buffer; returns a pointer to the L4 header
 * or NULL (no buffer). *frame receives the frame start. */
uint8_t *pn_tx_begin(pn_stack *s, const uint8_t dst_mac[6], uint32_t dst_ip, uint8_t proto,
                     uint32_t l4len, uint8_t **frame);
void pn_tx_end(pn_stack *s, uint8_t *frame, uint32_t l4len);

/* neigh.c */
void pn_arp_rx(pn_stack *s, const uint8_t *frame, uint32_t len);
void pn_icmp_rx(pn_stack *s, const uint8_t *eth_src, const uint8_t *ip, uint32_t iplen,
                      uint32_t src_ip, const uint8_t *l4, uint32_t l4len, bool csum_ok);
int pn_arp_resolve(pn_stack *s, uint32_t ip, uint8_t mac[6]);  /* 1 known, 0 pending, <0 */
void pn_arp_timer(pn_stack *s, pn_neigh *n);
int pn_arp_add_static(pn_stack *s, uint32_t ip, const uint8_t mac[6]);

/* tcp_conn.c */
pn_conn *pn_conn_alloc(pn_stack *s);
void pn_conn_init(pn_stack *s, pn_conn *c, uint32_t rip, uint16_t rport, uint16_t lport);
void pn_conn_free(pn_stack *s, pn_conn *c, uint32_t ev);
void pn_conn_to_time_wait(pn_stack *s, pn_conn *c);
void pn_conn_closed(pn_stack *s, pn_conn *c);
void pn_fin_deferred(pn_stack *s);
void pn_conn_arp_done(pn_stack *s, uint32_t ip, const uint8_t *mac);
void pn_conn_arp_failed(pn_stack *s, uint32_t ip);
uint32_t pn_isn(pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport);
uint32_t pn_ts_offset(const pn_stack *s, uint32_t rip);
/* Whether a reply to an out-of-window segment may go now (oow_rate_limit_ms since *last,
 * which it then updates); counts into *skipped when not. */
bool pn_oow_allowed(pn_stack *s, uint64_t *last, uint64_t *skipped);
void pn_apply_remaining(pn_stack *s, pn_conn *c, uint32_t delivered, uint32_t remaining);

/* tcp_in.c */
typedef struct pn_tcp_seg pn_tcp_seg;
void pn_tcp_rx(pn_stack *s, const uint8_t *eth_src, uint32_t src_ip, const uint8_t *tcp,
               uint32_t tcplen);
void pn_tcp_flush_acks(pn_stack *s);
/* A segment for a connection in a synchronized state (SYN-RECEIVED onwards). */
void pn_tcp_sync_rx(pn_stack *s, pn_conn *c, const pn_tcp_seg *t);

/* tcp_open.c: a segment to a listener (isn_floor: a TIME_WAIT reopen's, or NULL), to a
 * SYN-SENT connection; the step to ESTABLISHED; a RST answering a stray segment. */
void pn_tcp_listen_rx(pn_stack *s, const uint8_t *mac, uint32_t ip, const pn_tcp_seg *t,
                      const uint32_t *isn_floor);
void pn_tcp_syn_sent_rx(pn_stack *s, pn_conn *c, const uint8_t *mac, const pn_tcp_seg *t);
void pn_tcp_established(pn_stack *s, pn_conn *c, const pn_tcp_seg *t);
void pn_tcp_reply_rst(pn_stack *s, const uint8_t *mac, uint32_t ip, const pn_tcp_seg *t);

/* tcp_sack.c */
typedef struct pn_tcp_out pn_tcp_out;
/* Our out-of-order ranges as SACK blocks in an ACK we send (c->sack_ok, c->ooo_n). */
void pn_sack_blocks(const pn_conn *c, pn_tcp_out *o);
/* The peer's SACK blocks onto the scoreboard. */
void pn_sack_mark(pn_stack *s, pn_conn *c, const pn_tcp_seg *t);
/* RFC 6675 IsLost(HighACK + 1): the head is unSACKed with three SACKed segments above,
 * or RACK says so (sent well before a segment the peer has). */
bool pn_sack_head_lost(pn_stack *s, const pn_conn *c);
/* RACK: a delivered segment's send time (cumulatively acknowledged or SACKed). */
void pn_rack_delivered(pn_conn *c, const pn_sseg *g);
/* The tail loss probe: one new segment, or the last one again (RFC 8985 7.3). */
void pn_tlp_probe(pn_stack *s, pn_conn *c);
/* Entering SACK recovery: PRR's counts start (RFC 6937 3). */
void pn_prr_start(pn_conn *c);
/* On an ACK in SACK recovery (RFC 6675 5, RFC 6937): resend the lost holes within PRR's
 * budget for this ACK (head_lost: the head is lost and goes at once, if not resent
 * yet); output() then sends new data with what is left (c->prr_budget). */
void pn_sack_recover(pn_stack *s, pn_conn *c, bool head_lost);
/* Clear PN_SSEG_* bits from every segment held. */
void pn_sack_reset(pn_stack *s, pn_conn *c, uint16_t clear);

/* tcp_out.c */
int pn_tcp_send_syn(pn_stack *s, pn_conn *c);
/* Resend the k-th held segment whole. */
int pn_tcp_retransmit_seg(pn_stack *s, pn_conn *c, uint32_t k);
void pn_tcp_output(pn_stack *s, pn_conn *c);
void pn_tcp_output_force(pn_stack *s, pn_conn *c);
int pn_tcp_send_probe(pn_stack *s, pn_conn *c);
int pn_tcp_send_keepalive(pn_stack *s, pn_conn *c);
uint32_t pn_tcp_ack_seq(const pn_conn *c);
int pn_tcp_send_ctl(pn_stack *s, pn_conn *c, uint8_t flags);
void pn_tcp_send_ack(pn_stack *s, pn_conn *c);
int pn_tcp_retransmit_head(pn_stack *s, pn_conn *c, bool advance);
void pn_tcp_send_rst_reply(pn_stack *s, const uint8_t *dst_mac, uint32_t dst_ip,
                           uint16_t dport, uint16_t sport, uint32_t seq, uint32_t ack,
                           uint8_t flags);
void pn_tcp_send_raw(pn_stack *s, const uint8_t *dst_mac, uint32_t dst_ip, uint16_t lport,
                     uint16_t rport, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t wnd,
                     int ts, uint32_t tsval, uint32_t tsecr);
uint32_t pn_rcv_window(pn_stack *s, pn_conn *c, bool update);
void pn_tcp_send_cookie_synack(pn_stack *s, const uint8_t *dst_mac, uint32_t dst_ip,
                               uint16_t lport, uint16_t rport, uint32_t cookie, uint32_t ack,
                               const pn_tcp_seg *syn);
uint32_t pn_ts_now(const pn_stack *s, uint32_t offset);

/* tcp_timer.c */
void pn_tcp_timer(pn_stack *s, pn_conn *c, pn_timer *t);
void pn_rtx_arm(pn_stack *s, pn_conn *c);
void pn_rtt_sample(pn_stack *s, pn_conn *c, uint64_t rtt_us);

/* tcp_cc.c */
void pn_cc_init(pn_stack *s, pn_conn *c);
void pn_cc_on_ack(pn_stack *s, pn_conn *c, uint32_t acked);
void pn_cc_on_fast_retransmit(pn_stack *s, pn_conn *c);
void pn_cc_on_partial_ack(pn_stack *s, pn_conn *c, uint32_t acked);
void pn_cc_on_dupack_in_recovery(pn_stack *s, pn_conn *c);
void pn_cc_on_recovery_exit(pn_stack *s, pn_conn *c);
void pn_cc_on_rto(pn_stack *s, pn_conn *c);

/* tcp_cookie.c */
uint32_t pn_cookie_make(const pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport,
                        uint32_t peer_isn, uint16_t peer_mss);
uint16_t pn_cookie_check(const pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport,
                         uint32_t peer_isn, uint32_t cookie);
uint32_t pn_cookie_tsval(uint32_t ts_now, bool peer_ws, uint8_t ws);
int pn_cookie_ts_decode(uint32_t ts_now, uint32_t tsecr);

/* time_wait.c */
void pn_tw_enter(pn_stack *s, const pn_conn *c);
/* 1: a SYN that reopens the entry's 4-tuple goes on to the listener, which must start
 * the new connection's ISN at *isn_floor or above (the entry is gone). */
int pn_tw_rx(pn_stack *s, uint32_t twi, const uint8_t *eth_src, uint32_t src_ip,
             const pn_tcp_seg *t, uint32_t *isn_floor);
/* A connection reopening a 4-tuple from TIME_WAIT starts its ISN at `floor` or above. */
void pn_conn_isn_at_least(pn_conn *c, uint32_t floor);
void pn_tw_expire(pn_stack *s);
void pn_tw_kill(pn_stack *s, uint32_t twi);

static inline uint32_t pn_conn_flight(const pn_conn *c) { return c->snd_max - c->snd_una; }

#endif
