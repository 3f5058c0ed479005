/*
 * pn_links.h -- the links an application opens a stack on: the sim wire (an in-process
 * wire with a virtual clock and seeded faults) and the real links (af_packet, af_xdp,
 * efvi), with their counters and the kernel route lookups they use.
 */
#ifndef PN_LINKS_H
#define PN_LINKS_H

#include "pn_base.h"

#ifdef __cplusplus
extern "C" {
#endif

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
    uint32_t ring_frames;    /* frames per ring; 0 = the link's default (af_xdp and
                                af_packet 1024, rounded up to a power of two; efvi 504) */
    uint32_t frame_size;     /* bytes per ring frame; 0 = the smallest that carries the
                                interface's MTU (2048 at 1500) */
    uint8_t mode;            /* PN_XDP_MODE_* (af_xdp only) */
    uint8_t own_ip;          /* 1: the stack owns local_ip, the kernel does not have it */
    uint32_t local_ip;       /* own_ip: that address -- af_xdp: every frame to it and ARP
                                for it go to the stack (0 = learnt at the first flow_add);
                                af_packet: the kernel's IP stack is kept from its frames */
    uint32_t shards;         /* > 1 = this link is one of that many on the interface.
                                af_xdp: each reads one RX queue through one XDP program
                                (its XSKMAP indexed by queue): RSS spreading flows over
                                the queues is then expected, not refused. af_packet: the
                                sockets form a PACKET_FANOUT group, flows split by hash */
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
    uint64_t tc_hidden;          /* af_packet: frames its tc filter kept from the kernel's
                                    IP stack (shared address: the flows'; own: all to it) */
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

#ifdef __cplusplus
}
#endif
#endif /* PN_LINKS_H */
