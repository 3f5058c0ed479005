/*
 * pncore.h -- the one public header of pollnet's native TCP/IPv4 stack.
 *
 * The stack is a re-creation of efvitcp: busy-polled, single-threaded, no allocation after
 * pn_stack_create(), no blocking call, time passed in. It moves raw Ethernet frames
 * through a *link* (sim, af_packet, af_xdp, efvi) and knows nothing of which one.
 *
 * Data flows one way: link -> stack -> a batch of events returned by pn_poll() -> the
 * caller dispatches them.  Everything here is plain C; nothing knows about Python.
 *
 * Byte order: IPv4 addresses and ports cross this API in HOST byte order
 * (10.0.0.1 == 0x0a000001); MAC addresses are 6 bytes as on the wire.
 */
#ifndef PNCORE_H
#define PNCORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ errors */

/* Every call that can fail returns a negative PN_E* code; pn_strerror() names it.
 * Stack- and link-creation calls also fill a caller-provided message buffer. */
enum {
    PN_OK = 0,
    PN_EINVAL = -1,     /* bad argument or config value */
    PN_ENOMEM = -2,     /* arena could not be allocated (only at create time) */
    PN_ENOCONN = -3,    /* connection table full (max_conn_cnt) */
    PN_EBADCONN = -4,   /* conn_id does not name a live connection */
    PN_ESTATE = -5,     /* not allowed in the connection's current state */
    PN_EPORT = -6,      /* no local port available / port already in use */
    PN_ELINK = -7,      /* the link failed (its message says why) */
    PN_ENOROUTE = -8,   /* destination not reachable from this stack's subnet/gateway */
    PN_EAGAIN = -9,     /* try again later (e.g. link transmit ring full) */
    PN_ETIMER = -10,    /* timer id >= user_timer_cnt or duration > 65000 ms */
};
const char *pn_strerror(int err);

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
} pn_config;

enum { PN_SYN_COOKIES_NEVER = 0, PN_SYN_COOKIES_WHEN_FULL = 1, PN_SYN_COOKIES_ALWAYS = 2 };

void pn_config_default(pn_config *cfg);

/* ------------------------------------------------------------------ links */

typedef struct pn_link pn_link;

/* A received frame, owned by the link until handed back with rx_release(). */
typedef struct pn_rx_frame {
    const uint8_t *data;
    uint32_t len;
    uint32_t flags;     /* PN_RX_* */
    uint64_t handle;    /* link-private: which buffer to give back */
    uint64_t hw_ts_ns;  /* hardware receive timestamp, 0 when the link has none */
} pn_rx_frame;

enum {
    PN_RX_CSUM_OK = 1,       /* the NIC/link verified IP and L4 checksums */
    PN_RX_CSUM_PARTIAL = 2,  /* L4 checksum holds only the pseudo-header sum (kernel
                                CHECKSUM_PARTIAL over veth): the payload is trusted */
};

/* A flow the stack wants steered to it (an ef_vi filter, an XDP map entry).
 * remote_ip == 0 && remote_port == 0 means a listener on local_ip:local_port. */
typedef struct pn_flow {
    uint32_t local_ip, remote_ip;
    uint16_t local_port, remote_port;
} pn_flow;

/* The one interface every link implements (one C file per link). */
typedef struct pn_link_ops {
    const char *name;
    /* Up to max frames received by now_ns; count (0 = none) or < 0 on a fatal error. */
    int (*rx_burst)(pn_link *l, uint64_t now_ns, pn_rx_frame *frames, int max);
    void (*rx_release)(pn_link *l, const pn_rx_frame *frames, int n);
    /* A buffer for one outgoing frame of up to *cap bytes, or NULL when the ring is full. */
    uint8_t *(*tx_buf)(pn_link *l, uint32_t *cap);
    /* Queue the frame written into the last tx_buf() buffer; 0 or < 0. */
    int (*tx_send)(pn_link *l, uint8_t *buf, uint32_t len);
    /* Push queued frames out (doorbell / sendto kick); called once per poll and send call. */
    void (*tx_flush)(pn_link *l);
    int (*flow_add)(pn_link *l, const pn_flow *f);
    int (*flow_del)(pn_link *l, const pn_flow *f);
    void (*destroy)(pn_link *l);
} pn_link_ops;

enum {
    PN_LINK_RX_CSUM = 1,     /* every received frame's checksums were verified by the link */
    PN_LINK_OWN_IP = 2,      /* the stack owns an address the kernel does not: answer ARP/ICMP */
};

struct pn_link {
    const pn_link_ops *ops;
    uint8_t mac[6];
    uint16_t mtu;
    uint32_t caps;           /* PN_LINK_* */
    int pcap_fd;             /* >= 0: every frame in and out is recorded (see pn_link_pcap) */
    char err[160];           /* last error, for messages */
};

void pn_link_destroy(pn_link *l);
/* Record every frame this link sends and receives to a pcap file (Ethernet link type). */
int pn_link_pcap(pn_link *l, const char *path, char *err, size_t errlen);

/* --- the sim link: an in-process wire with a virtual clock and seeded faults --- */

typedef struct pn_sim_wire pn_sim_wire;

typedef struct pn_sim_params {
    uint64_t seed;
    double loss;             /* probability a frame is dropped */
    double duplicate;        /* probability a frame is delivered twice */
    double reorder;          /* probability a frame is held back by reorder_delay_ns */
    double corrupt;          /* probability one random bit of the frame is flipped */
    uint64_t delay_ns;       /* one-way propagation delay */
    uint64_t jitter_ns;      /* uniform extra delay in [0, jitter_ns] */
    uint64_t reorder_delay_ns;
    uint64_t bandwidth_bps;  /* 0 = unlimited; otherwise frames queue and serialise */
    uint32_t queue_frames;   /* frames the wire holds in flight before tail drop (0 = 65536) */
} pn_sim_params;

void pn_sim_params_default(pn_sim_params *p);
pn_sim_wire *pn_sim_wire_create(const pn_sim_params *p, char *err, size_t errlen);
void pn_sim_wire_destroy(pn_sim_wire *w);
/* Record every frame put on the wire (one pcap per wire). */
int pn_sim_wire_pcap(pn_sim_wire *w, const char *path, char *err, size_t errlen);
/* Scripted drop: drop the nth (1-based) frame from now on whose bytes at `offset`
 * match `match[0..len)` under `mask` (mask NULL = exact). Returns a rule id >= 0. */
int pn_sim_wire_drop_nth(pn_sim_wire *w, uint32_t nth, uint32_t offset,
                         const uint8_t *match, const uint8_t *mask, uint32_t len);
/* Earliest virtual time at which a frame in flight arrives, UINT64_MAX if none. */
uint64_t pn_sim_wire_next_arrival(const pn_sim_wire *w);

typedef struct pn_sim_stats {
    uint64_t sent, delivered, dropped, duplicated, reordered, corrupted, queue_drops;
} pn_sim_stats;
void pn_sim_wire_stats(const pn_sim_wire *w, pn_sim_stats *out);

/* One endpoint (a NIC) on the wire; frames go to the endpoint whose MAC matches
 * (broadcast to all others). */
pn_link *pn_sim_link_create(pn_sim_wire *w, const uint8_t mac[6], char *err, size_t errlen);

/* --- real links (native/src/link_af_packet.c, link_af_xdp.c, link_efvi.c) --- */

typedef struct pn_real_link_params {
    const char *ifname;
    uint32_t queue;          /* RX queue to bind (af_xdp, efvi) */
    uint32_t ring_frames;    /* frames per ring; 0 = from recv_buf_cnt */
    uint32_t frame_size;     /* 0 = 2048 */
    uint8_t mode;            /* PN_XDP_MODE_* (af_xdp only) */
    uint8_t own_ip;          /* 1: the stack owns local_ip, the kernel does not have it */
    uint32_t local_ip;       /* af_xdp + own_ip: that address (every frame to it and ARP
                                for it go to the stack); 0 = learnt at the first flow_add */
} pn_real_link_params;

enum { PN_XDP_MODE_AUTO = 0, PN_XDP_MODE_NATIVE = 1, PN_XDP_MODE_GENERIC = 2,
       PN_XDP_MODE_ZEROCOPY = 3 };

/* Each returns NULL and fills err when the link cannot run here (naming why and the fix). */
pn_link *pn_af_packet_link_create(const pn_real_link_params *p, char *err, size_t errlen);
pn_link *pn_af_xdp_link_create(const pn_real_link_params *p, char *err, size_t errlen);
/* AMD/Solarflare ef_vi (native/src/link_efvi.c). Without Onload at build time this fails,
 * saying why (pn_efvi_build_info()). queue/mode are unused; frame_size must be 0 or 2048;
 * ring_frames = RX buffers (8..4095, default 504). */
pn_link *pn_efvi_link_create(const pn_real_link_params *p, char *err, size_t errlen);
/* What this build's efvi link runs on: "AMD Onload ef_vi (...)", "efvi_shim (...)" or
 * "not built: <why>". */
const char *pn_efvi_build_info(void);

enum { PN_EFVI_DISCARD_KINDS = 8 };  /* EF_EVENT_RX_DISCARD_* subtypes counted */
typedef struct pn_efvi_link_info {
    uint8_t ctpio;               /* 1: sends use CTPIO (ef_vi_capabilities_get said so) */
    uint8_t rx_timestamps;       /* 1: EF_VI_RX_TIMESTAMPS: pn_rx_frame.hw_ts_ns is set */
    uint32_t rx_prefix_len, rx_buffer_len;
    uint32_t rx_bufs, tx_bufs, rx_ring_capacity, tx_ring_capacity, rx_fill_level;
    uint32_t filters;            /* flow filters installed now */
    uint64_t rx_discard[PN_EFVI_DISCARD_KINDS];  /* by EF_EVENT_RX_DISCARD_* subtype */
    uint64_t tx_ctpio_ok;        /* completions the NIC flagged EF_EVENT_FLAG_CTPIO */
    uint64_t rx_runts, rx_ts_missing, rx_bad_ids, tx_bad_ids, rx_post_errors, other_events;
    uint64_t arp_from_kernel;    /* ARP replies built from the kernel's neighbour table */
    uint64_t arp_probe_errors, arp_lookups_dropped, filter_del_errors;
} pn_efvi_link_info;
/* PN_EINVAL when l is not an efvi link. */
int pn_efvi_link_info_get(pn_link *l, pn_efvi_link_info *out);
/* UDP through the efvi link without the stack (pollnet.tools): add (add = 1) or remove an
 * ef_vi filter steering UDP to local_ip:port to this link; local_ip may be a multicast
 * group (join it with a kernel socket too, for IGMP). The frames come out of rx_burst like
 * any other. PN_EINVAL when l is not an efvi link. */
int pn_efvi_link_udp_filter(pn_link *l, uint32_t local_ip, uint16_t port, int add);

/* Counters of a real link (af_packet, af_xdp, efvi); PN_EINVAL for any other link. */
typedef struct pn_real_link_stats {
    uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes;
    uint64_t rx_drop_oversize;   /* truncated: longer than a ring frame */
    uint64_t rx_drop_gso;        /* unsegmented GSO frames (TP_STATUS_GSO_TCP) */
    uint64_t rx_drop_vlan;       /* VLAN-tagged frames (the stack is untagged) */
    uint64_t rx_kernel_drops;    /* frames the kernel dropped for want of ring space */
    uint64_t tx_ring_full;       /* tx_buf() found no free buffer */
    uint64_t tx_kick_retries;    /* sendto kicks to retry (EAGAIN/EBUSY/ENOBUFS) */
    uint64_t tx_errors;          /* frames the kernel refused */
    uint64_t xdp_pass, xdp_to_flow, xdp_to_own;  /* af_xdp: the XDP program's verdicts
                                                    (to_own: own_ip frames, ARP replies) */
    uint64_t tc_hidden;          /* af_packet, shared address: flow frames kept from the
                                    kernel by its tc filter */
    uint64_t rx_fill_deferred;   /* af_xdp: returns that found the fill ring full (the
                                    frames waited and went in later, none lost) */
    uint64_t rx_fill_lost;       /* af_xdp: frames lost returning to the fill ring (0
                                    unless the link's invariant breaks) */
    uint32_t xdp_mode;           /* af_xdp: PN_XDP_MODE_NATIVE/GENERIC/ZEROCOPY in force */
    uint32_t ports_reserved;     /* shared-address mode: kernel sockets holding our ports */
} pn_real_link_stats;
int pn_real_link_stats_get(pn_link *l, pn_real_link_stats *out);

/* Detach the XDP program of every af_xdp link still open in this process (also done at
 * exit). For a signal handler that is about to end the process. */
void pn_real_links_detach_all(void);

/* The kernel's route to a destination (rtnetlink), in this network namespace. */
typedef struct pn_route {
    uint32_t dst;            /* as asked */
    uint32_t gateway;        /* 0: dst is on-link */
    uint32_t next_hop;       /* gateway, or dst when on-link: the address to ARP for */
    uint32_t src;            /* the kernel's preferred source address */
    uint8_t src_prefix_len;  /* prefix length of src on the interface (24 for a /24) */
    uint8_t has_mac;         /* 1: the kernel's neighbour table knows next_hop's MAC */
    uint8_t mac[6];
    int ifindex;
    char ifname[16];
} pn_route;
/* 0, PN_ENOROUTE (no route) or PN_ELINK (netlink failed); err says why. */
int pn_route_lookup(uint32_t dst, pn_route *out, char *err, size_t errlen);
/* Ask the kernel to resolve ip on ifindex (it sends an ARP probe); poll pn_route_lookup() for the
 * MAC. For shared-address mode, where ARP replies go to the kernel, not to the stack. */
int pn_route_neigh_probe(uint32_t ip, int ifindex, char *err, size_t errlen);

/* ------------------------------------------------------------------ stack */

typedef struct pn_stack pn_stack;

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
 * local_port 0 picks an ephemeral port. */
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
} pn_conn_info;
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
} pn_stats;
/* The pn_stats field names in order, NULL-terminated (for printing, additive). */
extern const char *const pn_stats_names[];
void pn_stack_stats(const pn_stack *s, pn_stats *out);

/* ------------------------------------------------------------------ bench
 * `pollnet bench`'s native loops (native/src/bench_loop.c), written on the API above only.
 * Owned by the bench; additive. */

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
#endif /* PNCORE_H */
