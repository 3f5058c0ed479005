/* csum.c -- the Internet checksum (RFC 1071) and SipHash-2-4 for RFC 6528 ISNs. */
#include <sys/random.h>

#include "pn_internal.h"

/* RFC 1071 2(B): the ones'-complement sum is byte-order independent, so words are summed
 * in native order and the folded result is stored back with memcpy. */
uint32_t pn_csum_partial(const void *data, size_t len, uint32_t sum)
{
    const uint8_t *p = data;
    uint64_t acc = sum;
    while (len >= 8) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + 4, 4);
        acc += (uint64_t)a + b;
        p += 8;
        len -= 8;
    }
    if (len >= 4) {
        uint32_t a;
        memcpy(&a, p, 4);
        acc += a;
        p += 4;
        len -= 4;
    }
    if (len >= 2) {
        uint16_t a;
        memcpy(&a, p, 2);
        acc += a;
        p += 2;
        len -= 2;
    }
    if (len) {   /* odd trailing byte, padded with zero (RFC 1071 4.1) */
        uint8_t b[2] = {p[0], 0};
        uint16_t a;
        memcpy(&a, b, 2);
        acc += a;
    }
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    return (uint32_t)acc;
}

/* Returns the complemented 16-bit checksum in native order: memcpy it into the header. */
uint16_t pn_csum_fold(uint32_t sum)
{
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Copy and sum in one pass over the payload (the one copy into the frame). */
uint32_t pn_csum_copy(void *dst, const void *src, size_t len, uint32_t sum)
{
    memcpy(dst, src, len);
    return pn_csum_partial(dst, len, sum);
}

/* The TCP/UDP pseudo-header (RFC 9293 3.1); ips in host order. */
uint32_t pn_csum_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len)
{
    uint8_t ph[12];
    ph[0] = (uint8_t)(src >> 24); ph[1] = (uint8_t)(src >> 16);
    ph[2] = (uint8_t)(src >> 8); ph[3] = (uint8_t)src;
    ph[4] = (uint8_t)(dst >> 24); ph[5] = (uint8_t)(dst >> 16);
    ph[6] = (uint8_t)(dst >> 8); ph[7] = (uint8_t)dst;
    ph[8] = 0; ph[9] = proto;
    ph[10] = (uint8_t)(len >> 8); ph[11] = (uint8_t)len;
    return pn_csum_partial(ph, 12, 0);
}

/* ---- SipHash-2-4 (Aumasson & Bernstein), the keyed PRF RFC 6528 3 asks for. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                       \
    do {                                                               \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);      \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                         \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                         \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);      \
    } while (0)

uint64_t pn_siphash(const uint64_t key[2], const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t v0 = 0x736f6d6570736575ull ^ key[0], v1 = 0x646f72616e646f6dull ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ key[0], v3 = 0x7465646279746573ull ^ key[1];
    uint64_t b = (uint64_t)len << 56;
    size_t i;
    for (i = 0; i + 8 <= len; i += 8) {
        uint64_t m = 0;
        for (int j = 7; j >= 0; j--)
            m = m << 8 | p[i + (size_t)j];
        v3 ^= m;
        SIPROUND; SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < len; j++)
        b |= (uint64_t)p[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND; SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND; SIPROUND; SIPROUND; SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

void pn_siphash_key(uint64_t out[2])
{
    /* getrandom() on a fresh boot may block only before the pool is initialised; flags 0
     * with a 16-byte request does not block afterwards. Called at create time only. */
    if (getrandom(out, 16, GRND_NONBLOCK) != 16) {
        uint64_t x = (uint64_t)(uintptr_t)out ^ 0x9e3779b97f4a7c15ull;
        out[0] = x * 0xbf58476d1ce4e5b9ull;
        out[1] = (x ^ (x >> 31)) * 0x94d049bb133111ebull;
    }
}
