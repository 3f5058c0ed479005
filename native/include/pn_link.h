/*
 * pn_link.h -- for link implementers (native/src/link_*.c): the one interface every link
 * implements (struct pn_link and its ops), the frames and flows it passes to the stack.
 */
#ifndef PN_LINK_H
#define PN_LINK_H

#include "pn_base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ links */

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
    /* Optional (sharding): 1 when the replies of the outgoing connection f reach this
     * link -- not another shard's -- 0 when not, < 0 when the link cannot tell (err says
     * why). NULL: every local port fits. */
    int (*port_fits)(pn_link *l, const pn_flow *f);
    /* Optional (sharding): 1 and ip's MAC when the link knows it another way than ARP
     * replies, which reach one shard only; 0 when not (yet). Asked when an address is
     * first resolved and at each ARP retry. */
    int (*neigh_lookup)(pn_link *l, uint32_t ip, uint8_t mac[6]);
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

#ifdef __cplusplus
}
#endif
#endif /* PN_LINK_H */
