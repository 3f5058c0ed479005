/* rss.c -- the Toeplitz hash (see rss.h; sharding: docs/sharding.md). */
#include "rss.h"

uint32_t pn_rss_toeplitz(const uint8_t *key, size_t key_len, const uint8_t *in, size_t len)
{
    /* For each set input bit i (most significant first) XOR in the 32 key bits from bit i
     * on: `window` holds them, shifting one key bit in per input bit. */
    if (key_len < 4 || len * 8 + 32 > key_len * 8)
        return 0;
    uint32_t window = (uint32_t)key[0] << 24 | (uint32_t)key[1] << 16 |
                      (uint32_t)key[2] << 8 | key[3];
    uint32_t hash = 0;
    for (size_t i = 0; i < len; i++)
        for (int b = 7; b >= 0; b--) {
            if (in[i] >> b & 1)
                hash ^= window;
            size_t next = (i * 8 + (size_t)(7 - b)) + 32;   /* the key bit shifted in */
            window = window << 1 | (uint32_t)(key[next / 8] >> (7 - next % 8) & 1);
        }
    return hash;
}

uint32_t pn_rss_tcp4(const uint8_t *key, size_t key_len, uint32_t src_ip, uint32_t dst_ip,
                     uint16_t src_port, uint16_t dst_port)
{
    /* the input as on the wire: source address, destination address, source port,
     * destination port, each in network order */
    uint8_t in[12] = {
        (uint8_t)(src_ip >> 24), (uint8_t)(src_ip >> 16), (uint8_t)(src_ip >> 8),
        (uint8_t)src_ip,         (uint8_t)(dst_ip >> 24), (uint8_t)(dst_ip >> 16),
        (uint8_t)(dst_ip >> 8),  (uint8_t)dst_ip,         (uint8_t)(src_port >> 8),
        (uint8_t)src_port,       (uint8_t)(dst_port >> 8), (uint8_t)dst_port,
    };
    return pn_rss_toeplitz(key, key_len, in, sizeof in);
}

uint32_t pn_rss_queue(const pn_rss *r, const pn_flow *f)
{
    /* the reply's tuple: from the remote end to us */
    uint32_t h = pn_rss_tcp4(r->key, r->key_len, f->remote_ip, f->local_ip, f->remote_port,
                             f->local_port);
    return r->indir[h % r->indir_size];
}
