/* rss.h -- the Toeplitz hash NICs use for receive-side scaling (RSS), and the RX queue it
 * gives a flow's replies: a client shard picks ports that come back to its own queue. */
#ifndef PN_RSS_H
#define PN_RSS_H

#include <stddef.h>
#include <stdint.h>

#include "pn_link.h"

/* The hash of in (the key as the NIC holds it); 0 when the key is too short for it. */
uint32_t pn_rss_toeplitz(const uint8_t *key, size_t key_len, const uint8_t *in, size_t len);
/* A TCP/IPv4 packet's hash, from its addresses and ports in host order. */
uint32_t pn_rss_tcp4(const uint8_t *key, size_t key_len, uint32_t src_ip, uint32_t dst_ip,
                     uint16_t src_port, uint16_t dst_port);
/* A NIC's receive-side scaling: its Toeplitz key and indirection table (RX queue by hash). */
typedef struct pn_rss {
    uint8_t key[64];
    uint32_t key_len;
    uint32_t *indir;
    uint32_t indir_size;
} pn_rss;
/* The RX queue the NIC gives the replies of our outgoing connection f. */
uint32_t pn_rss_queue(const pn_rss *r, const pn_flow *f);

#endif
