/*
 * pn_stack.h -- the stack's API, for whoever runs a stack: configure and create it on a
 * link, poll it for a batch of events, open, send on and close connections, read its
 * counters.
 *
 * The stack is a re-creation of efvitcp: busy-polled, single-threaded, no allocation after
 * pn_stack_create(), no blocking call, time passed in. It moves raw Ethernet frames
 * through a link (pn_links.h opens one) and knows nothing of which one. Data flows one
 * way: link -> stack -> a batch of events returned by pn_poll() -> the caller dispatches
 * them. Nothing here knows about Python.
 */
#ifndef PN_STACK_H
#define PN_STACK_H

#include "pn_base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ config */

enum { PN_CC_NONE = 0, PN_CC_NEWRENO = 1, PN_CC_CUBIC = 2 };

/* Every efvitcp knob, named as efvitcp names it, plus addressing.
 * pn_config_default() fills efvitcp's example values. */
typedef struct pn_config {
    uint32_t conn_send_buf_cnt;      /* 512: send buffers per connection */
    uint8_t send_buf_1k;             /* 1: 1024-byte send buffers (MSS <= 960); 0: 2048 */
    uint32_t conn_recv_buf_size;     /* 40960: per-connection receive buffer (caps the window) */
    uint32_t max_conn_cnt;           /* 200 */
    uint32_t max_time_wait_conn_cnt; /* 100, not counted in max_conn_cnt */
    uint32_t recv_buf_cnt;           /* 512: link receive frame buffers (<= 4095 on ef_vi) */
    uint32_t syn_retries;            /* 3 */
    uint32_t tcp_retries;            /* 10 */
    uint32_t delayed_ack_ms;         /* 10; 0 = ACK immediately */
    uint32_t min_rto_ms;             /* 100 */
    uint32_t max_rto_ms;             /* 30000 */
    uint8_t window_scale;            /* 0 */
    uint8_t timestamps;              /* 0 */
    uint8_t congestion_control;      /* PN_CC_* */
    uint32_t user_timer_cnt;         /* 1: timer ids 0..user_timer_cnt-1 */

    /* addressing */
    uint32_t local_ip;               /* the stack's IPv4 address */
    uint32_t netmask;                /* e.g. 0xffffff00 */
    uint32_t gateway_ip;             /* 0 = none: off-subnet destinations fail with PN_ENOROUTE */
    uint16_t mtu;                    /* IP MTU, 1500 */
    uint8_t verify_checksums;        /* 1: verify IP/TCP checksums the link did not verify */
    uint32_t arp_retries;            /* 3 */
    uint32_t arp_timeout_ms;         /* 200 per try */
    uint32_t max_events;             /* event queue capacity; 0 = derived from max_conn_cnt */
    uint64_t isn_secret[2];          /* RFC 6528 key; all zero = drawn from getrandom() */

    /* hostile peers (additive; pn_config_default() fills the defaults) */
    uint32_t max_syn_backlog;        /* half-open (SYN-RECEIVED) connections a stack holds;
                                        0 = max_conn_cnt / 2 (at least 1). Never more than
                                        max_conn_cnt: half-opens cannot take the table */
    uint8_t syn_cookies;             /* PN_SYN_COOKIES_*: 1 (default) when the half-open
                                        pool is full; 0 never (drop); 2 always. A full
                                        connection table drops the SYN either way: the
                                        cookie's connection would have no slot */
    uint32_t max_ooo_segs;           /* out-of-order ranges held per connection; 8, <= 32 */
    uint32_t max_ooo_bytes;          /* out-of-order bytes held per connection;
                                        0 = conn_recv_buf_size */
    uint32_t zero_window_timeout_ms; /* close a connection whose peer keeps a zero window
                                        (while we have data) this long; 0 = never (efvitcp) */
    uint32_t max_conns_per_source;   /* per listener and remote address, half-open and
                                        established; 0 = no limit */
    uint32_t challenge_ack_limit;    /* RFC 5961 7: challenge ACKs per second per stack,
                                        randomised in [limit/2, 3*limit/2) as Linux; 1000 */
    uint32_t oow_rate_limit_ms;      /* at most one reply a connection (or TIME_WAIT entry)
                                        per this many ms to out-of-window segments: PAWS
                                        rejects, duplicate SYNs in SYN-RECEIVED, TIME_WAIT
                                        SYNs and data (Linux's tcp_invalid_ratelimit);
                                        500; 0 = no limit */
    uint32_t fin_timeout_ms;         /* a connection in FIN_WAIT_2 whose peer never sends
                                        its FIN ends after this long (RST, event
                                        CONNECTION_TIMEOUT, PN_REASON_FIN_WAIT_2; Linux's
                                        tcp_fin_timeout); 60000; 0 = never */
    uint32_t keepalive_idle_ms;      /* RFC 1122 4.2.3.6: probe a connection the peer has
                                        been silent on this long; 0 (default) = off,
                                        as Linux without SO_KEEPALIVE (its idle: 7200 s) */
    uint32_t keepalive_intvl_ms;     /* between unanswered probes; 75000 as Linux */
    uint32_t keepalive_cnt;          /* unanswered probes that end the connection
                                        (PN_REASON_KEEPALIVE); 9 as Linux */
    uint32_t send_buf_size;          /* bytes per send buffer, a multiple of 64 in
                                        1024..65536; the MSS we send is at most this - 64
                                        (and the MTU - 40); 0 (default) = send_buf_1k's */
    uint8_t sack;                    /* 1: offer and accept SACK (RFC 2018) and recover
                                        losses with it (RFC 6675); 0 (default, efvitcp) */
    uint8_t ack_every;               /* full in-order segments an ACK may wait for, 1..64:
                                        2 (default) is RFC 5681 4.2's "at least every
                                        second"; more halves a bulk sender's ACK load
                                        (stretch ACKs, as Linux's GRO makes). A
                                        connection's first 64 KB, and 64 KB after each
                                        hole is filled, are ACKed every second segment
                                        still, so a small sender window never waits out
                                        the delayed-ACK timer */
} pn_config;

enum { PN_SYN_COOKIES_NEVER = 0, PN_SYN_COOKIES_WHEN_FULL = 1, PN_SYN_COOKIES_ALWAYS = 2 };

void pn_config_default(pn_config *cfg);

/* ------------------------------------------------------------------ stack */

/* Bytes of the one arena a stack with this config allocates (the footprint). */
size_t pn_stack_footprint(const pn_config *cfg);
/* The stack takes no ownership of the link; destroy the stack first. */
int pn_stack_create(pn_stack **out, const pn_config *cfg, pn_link *link,
                    char *err, size_t errlen);
void pn_stack_destroy(pn_stack *s);
size_t pn_stack_memory(const pn_stack *s);

/* Static neighbour entry (optional: unknown neighbours are resolved with ARP). */
int pn_stack_add_neighbour(pn_stack *s, uint32_t ip, const uint8_t mac[6]);

/* Decides on each new connection (efvitcp's allowNewConnection); NULL accepts all.
 * Called from inside pn_poll(). Return nonzero to accept. */
typedef int (*pn_accept_fn)(void *ctx, uint32_t remote_ip, uint16_t remote_port);
void pn_stack_set_accept(pn_stack *s, pn_accept_fn fn, void *ctx);

/* ------------------------------------------------------------------ events */

enum {
    PN_EV_CONNECTION_REFUSED = 1,   /* active open got RST; conn slot freed */
    PN_EV_CONNECTION_ESTABLISHED,   /* handshake done (active or passive) */
    PN_EV_CONNECTION_TIMEOUT,       /* SYN or data retries exhausted; slot freed */
    PN_EV_CONNECTION_RESET,         /* valid RST received; slot freed */
    PN_EV_CONNECTION_CLOSED,        /* four-way close complete; slot freed */
    PN_EV_FIN,                      /* peer sent FIN; data/len = last unconsumed bytes */
    PN_EV_DATA,                     /* data/len = all in-order bytes held, unconsumed first */
    PN_EV_MORE_SENDABLE,            /* acked data freed send buffers */
    PN_EV_USER_TIMEOUT,             /* timer_id expired */
    PN_EV_ARP_FAILED,               /* connect could not resolve the next hop; slot freed */
};

typedef struct pn_event {
    uint32_t type;       /* PN_EV_* */
    uint32_t conn_id;
    const uint8_t *data; /* PN_EV_DATA / PN_EV_FIN: into the connection's receive buffer */
    uint32_t len;        /* DATA/FIN: all of it is consumed unless pn_keep() says otherwise */
    uint32_t timer_id;   /* PN_EV_USER_TIMEOUT */
    uint32_t remote_ip;  /* ESTABLISHED: the peer */
    uint16_t remote_port;
    uint16_t local_port;
    uint32_t reason;     /* TIMEOUT/RESET/REFUSED: why the connection ended (PN_REASON_*) */
} pn_event;

/* Why a connection ended (pn_event.reason; additive). */
enum {
    PN_REASON_NONE = 0,
    PN_REASON_SYN_RETRIES,        /* syn_retries SYNs unanswered */
    PN_REASON_RETRIES,            /* tcp_retries retransmissions unacknowledged (never ACKs) */
    PN_REASON_PROBES,             /* tcp_retries zero-window probes unanswered */
    PN_REASON_ZERO_WINDOW,        /* the peer's window stayed zero zero_window_timeout_ms */
    PN_REASON_RESET,              /* the peer sent an acceptable RST */
    PN_REASON_FIN_WAIT_2,         /* no FIN from the peer within fin_timeout_ms */
    PN_REASON_KEEPALIVE,          /* keepalive_cnt keepalive probes unanswered */
};
const char *pn_reason_str(uint32_t reason);

/*
 * Drive everything: consume the previous batch's DATA/FIN bytes (but what pn_keep() kept),
 * receive a burst,
 * run timers, flush transmit, and fill up to max events.  Returns the event count (events
 * that did not fit stay queued for the next call) or < 0 on a link error.
 * now_ns: monotonic nanoseconds; 0 = read CLOCK_MONOTONIC.
 * The events array and every data pointer in it stay valid until the next pn_poll(); a
 * connection freed in this batch keeps its conn_id until then (ids are reused like fds).
 * Calls made between polls (pn_connect,
 * pn_send, timers) run at the time of the last pn_poll(): poll once before the first.
 */
int pn_poll(pn_stack *s, uint64_t now_ns, pn_event *events, int max);

/* After a DATA event of the last pn_poll(): its last `remaining` bytes stay unconsumed and
 * come first in the connection's next DATA event (the rest is consumed by the next
 * pn_poll()). Without a call everything is consumed; a later call replaces an earlier
 * one; remaining > len counts as len (nothing consumed).
 * Ignored for FIN events (their bytes are the last). 0, or PN_EINVAL when the last
 * pn_poll() handed out no DATA/FIN event of conn_id. */
int pn_keep(pn_stack *s, uint32_t conn_id, uint32_t remaining);

/* Earliest virtual time at which the stack has a timer due, UINT64_MAX if none; the time of
 * the last pn_poll() while events are still queued for the next one (poll again now). */
uint64_t pn_stack_next_timer(const pn_stack *s);

/* ------------------------------------------------------------------ connections */

/* Active open. 0 means only that the SYN (or the ARP request for the next hop) went out.
 * local_port 0 picks an ephemeral port -- on a shard's link, one whose replies reach this
 * shard; PN_ELINK (the link's err says why) when local_port's would not, or when the
 * link cannot tell. */
int pn_connect(pn_stack *s, uint32_t remote_ip, uint16_t remote_port, uint16_t local_port,
               uint32_t *conn_id);
/* Passive open on local_ip:port (one stack may listen on several ports). */
int pn_listen(pn_stack *s, uint16_t port);
int pn_unlisten(pn_stack *s, uint16_t port);

typedef struct pn_iovec {
    const void *base;
    uint32_t len;
} pn_iovec;

/* Bytes accepted (copied into send buffers, sent when window allows), or < 0.
 * more != 0 holds back a trailing partial segment until more data or a send without more. */
int32_t pn_send(pn_stack *s, uint32_t conn_id, const void *data, uint32_t len, int more);
int32_t pn_sendv(pn_stack *s, uint32_t conn_id, const pn_iovec *iov, int iovcnt, int more);
int32_t pn_sendable(const pn_stack *s, uint32_t conn_id);
int32_t pn_immediately_sendable(const pn_stack *s, uint32_t conn_id);
int pn_send_fin(pn_stack *s, uint32_t conn_id);
/* Abort: send RST and free the slot (no further events for it). */
int pn_close(pn_stack *s, uint32_t conn_id);
/* duration_ms 0 deletes; up to 65000. */
int pn_set_user_timer(pn_stack *s, uint32_t conn_id, uint32_t timer_id, uint32_t duration_ms);

enum {
    PN_TCP_CLOSED = 0, PN_TCP_LISTEN, PN_TCP_SYN_SENT, PN_TCP_SYN_RECEIVED, PN_TCP_ESTABLISHED,
    PN_TCP_FIN_WAIT_1, PN_TCP_FIN_WAIT_2, PN_TCP_CLOSE_WAIT, PN_TCP_CLOSING, PN_TCP_LAST_ACK,
    PN_TCP_TIME_WAIT, PN_TCP_ARP_WAIT,
};

typedef struct pn_conn_info {
    uint32_t state;      /* PN_TCP_* */
    uint32_t remote_ip;
    uint16_t remote_port, local_port;
    uint32_t snd_una, snd_nxt, rcv_nxt;
    uint32_t snd_wnd, rcv_wnd;
    uint32_t cwnd, ssthresh;
    uint32_t srtt_us, rttvar_us, rto_ms;
    uint32_t mss;
    uint64_t retransmits;
    uint32_t irs;        /* the peer's initial sequence number (its SYN's) */
    uint32_t options;    /* PN_OPT_*: what the handshake negotiated (Linux's tcpi_options) */
} pn_conn_info;
enum { PN_OPT_TIMESTAMPS = 1, PN_OPT_SACK = 2, PN_OPT_WSCALE = 4 };
int pn_conn_info_get(const pn_stack *s, uint32_t conn_id, pn_conn_info *out);

/* ------------------------------------------------------------------ counters */

/* Named after the kernel's nstat counters where one exists. */
typedef struct pn_stats {
    uint64_t frames_in, frames_out;
    uint64_t drop_bad_csum, drop_malformed, drop_not_ours, drop_no_buffer;
    uint64_t TcpInSegs, TcpOutSegs, TcpRetransSegs, TcpActiveOpens, TcpPassiveOpens;
    uint64_t TcpAttemptFails, TcpEstabResets, TcpInErrs, TcpOutRsts;
    uint64_t TcpExtTCPChallengeACK, TcpExtTCPFastRetrans, TcpExtTCPTimeouts;
    uint64_t TcpExtTW, TcpExtListenOverflows, TcpExtPAWSEstabRejected;
    uint64_t ArpRequestsOut, ArpRepliesOut, ArpIn, IcmpEchoReplies;
    /* hostile peers (additive) */
    uint64_t TcpExtSyncookiesSent, TcpExtSyncookiesRecv, TcpExtSyncookiesFailed;
    uint64_t TcpExtTCPReqQFullDoCookies, TcpExtTCPReqQFullDrop, TcpExtListenDrops;
    uint64_t TcpExtTCPACKSkippedChallenge;   /* challenge ACKs the RFC 5961 7 limit held */
    uint64_t TcpExtTCPOFOQueue, TcpExtTCPOFODrop;
    uint64_t TcpExtTCPAbortOnTimeout;        /* ended by tcp_retries / zero_window_timeout */
    uint64_t TcpInRsts;                      /* RSTs received (no kernel counter) */
    uint64_t PnZeroWindowAborts;             /* ended by zero_window_timeout_ms (ours) */
    uint64_t PnPerSourceDrops;               /* SYNs over max_conns_per_source (ours) */
    uint64_t TcpExtTWRecycled;               /* TIME_WAIT reopened by a newer SYN (RFC 6191) */
    uint64_t PnNotOursDrops;                 /* segments for no flow of ours on a shared
                                                address: the kernel's, left unanswered */
    uint64_t PnAckRetries;                   /* ACKs that found the TX ring full, resent
                                                at the next poll */
    uint64_t PnInvariantRepairs;             /* a broken internal invariant found and
                                                repaired (a bug: report it) */
    uint64_t TcpExtTCPACKSkippedPAWS, TcpExtTCPACKSkippedSynRecv;   /* replies held back */
    uint64_t TcpExtTCPACKSkippedSeq, TcpExtTCPACKSkippedTimeWait;   /* by oow_rate_limit_ms */
    uint64_t PnFinWait2Timeouts;             /* ended in FIN_WAIT_2 by fin_timeout_ms */
    uint64_t TcpExtTCPKeepAlive;             /* keepalive probes sent */
    uint64_t PnKeepaliveTimeouts;            /* ended by keepalive_cnt unanswered probes */
    uint64_t TcpExtTCPSackRecovery;          /* loss recoveries led by SACK (RFC 6675) */
    uint64_t PnSackHoleRetrans;              /* holes the SACK scoreboard resent (ours) */
    uint64_t TcpExtTCPLossProbes;            /* tail loss probes sent (RFC 8985 7) */
} pn_stats;
/* The pn_stats field names in order, NULL-terminated (for printing, additive). */
extern const char *const pn_stats_names[];
void pn_stack_stats(const pn_stack *s, pn_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* PN_STACK_H */
