/*
 * real_link.h -- what the real links (link_af_packet.c, link_af_xdp.c) share; internal.
 * Implemented in netlink.c, which the core build always compiles.
 */
#ifndef PN_REAL_LINK_H
#define PN_REAL_LINK_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "pn_link.h"
#include "pn_links.h"
#include "rss.h"

/* The head of every real link's private struct. */
typedef struct pn_real_link {
    pn_link link;                          /* first: a pn_link * is a pn_real_link * */
    pn_real_link_stats stats;
    void (*refresh_stats)(struct pn_real_link *rl);  /* NULL or pulls kernel counters in */
} pn_real_link;

/* Writes "who: message" into err (and never overflows it). */
void pn_rl_errf(char *err, size_t errlen, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Facts about an interface in this network namespace. */
typedef struct pn_if_facts {
    int ifindex;
    uint8_t mac[6];
    uint32_t mtu;
    int up;
    int veth;         /* the veth driver */
    int merges;       /* GRO or LRO is on: the kernel merges received TCP segments */
} pn_if_facts;
/* af_xdp reads one RX queue: 1 (and the queue count) when received flows may be spread
 * over others (several queues, RSS not pointed at `queue` or unreadable, no ntuple
 * filters the user could steer with); 0 when they all land on it, or nothing says. */
int pn_rl_rx_spread(const char *ifname, uint32_t queue, uint32_t *nqueues);
/* The error for a link that sees frames after GRO/LRO (af_packet, generic XDP). */
void pn_rl_merge_error(const pn_if_facts *ifc, const char *ifname, const char *who,
                       char *err, size_t errlen);
/* Once: puts in l->err why frames were dropped as merged/oversized, with the fix. */
void pn_rl_note_gso_drop(pn_link *l, const char *who, uint32_t len);
/* 0 for an up Ethernet interface, or < 0 with err naming the interface and the fix. */
int pn_rl_if_facts(const char *ifname, const char *who, pn_if_facts *out, char *err,
                   size_t errlen);

/* Shared-address mode: a kernel TCP socket bound to ip:port holds each port the stack uses,
 * so the kernel never hands it out; one socket per port, counted per flow. The sockets
 * are made in the network namespace the link was created in, whichever namespace the
 * thread calling flow_add is in (one process may run stacks in several). */
typedef struct pn_port_resv {
    int32_t *fd;        /* [65536], -1 = none */
    uint16_t *refs;     /* [65536] */
    uint32_t count;     /* ports held */
    int ns_fd;          /* the link's network namespace, or -1 */
    uint64_t ns_ino;    /* its inode, to tell whether the caller is in it */
    int reuseport;      /* a shard's: SO_REUSEPORT, so the shards (any process) share ports */
} pn_port_resv;
int pn_rl_ports_init(pn_port_resv *r, const char *who, char *err, size_t errlen);
/* 0, or PN_EPORT when the kernel has the port (err says which). */
int pn_rl_port_hold(pn_port_resv *r, uint32_t ip, uint16_t port, char *err, size_t errlen);
void pn_rl_port_release(pn_port_resv *r, uint16_t port);
void pn_rl_ports_free(pn_port_resv *r);

/* The NIC's RSS key and table (rss.h) as ETHTOOL_GRSSH reports them: 0,
 * or -1 with err saying why the queue of a flow cannot be told (veth: no RSS). */
int pn_rl_rss_read(const char *ifname, pn_rss *out, char *err, size_t errlen);

/* A shard's neighbour_lookup: ip's MAC from the kernel's neighbour table (1), or 0 after
 * asking the kernel to resolve it. ARP replies reach one shard only (the fanout's member
 * 0, or the RX queue's socket); the kernel, with an address on the interface, resolves
 * for all of them. The table is the calling thread's network namespace's. */
int pn_rl_neigh_lookup(int ifindex, uint32_t ip, uint8_t mac[6]);

/* af_packet sharing the kernel's address: a tc ingress filter that hides the stack's flows
 * from the kernel (link_af_xdp.c: it needs libbpf and the embedded BPF object). open
 * returns NULL with err when this build or kernel cannot. */
typedef struct pn_tc_hide pn_tc_hide;
pn_tc_hide *pn_rl_tc_hide_open(int ifindex, const char *who, char *err, size_t errlen);
int pn_rl_tc_hide_flow(pn_tc_hide *h, const pn_flow *f, int add);
/* Own-address mode: every IPv4 frame to ip (host order) is dropped there too. */
int pn_rl_tc_hide_own_ip(pn_tc_hide *h, uint32_t ip);
uint64_t pn_rl_tc_hidden(pn_tc_hide *h);  /* frames hidden so far */
void pn_rl_tc_hide_close(pn_tc_hide *h);

#endif /* PN_REAL_LINK_H */
