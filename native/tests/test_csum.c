/* test_csum.c -- the Internet checksum (RFC 1071) against a plain 16-bit-word reference:
 * every length up to 3000 bytes, every alignment, any starting sum, and pn_csum_copy's
 * copy. */
#include "pn_internal.h"
#include "util.h"

/* RFC 1071's definition, one 16-bit word at a time (native order, like the core). */
static uint16_t reference(const uint8_t *p, size_t len, uint32_t sum)
{
    uint64_t acc = (sum & 0xffff) + (sum >> 16);
    for (size_t i = 0; i + 1 < len; i += 2) {
        uint16_t w;
        memcpy(&w, p + i, 2);
        acc += w;
    }
    if (len & 1) {
        uint8_t b[2] = {p[len - 1], 0};
        uint16_t w;
        memcpy(&w, b, 2);
        acc += w;
    }
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

static void test_the_sum_matches_the_reference(void)
{
    static uint8_t buf[3000 + 8], copy[3000 + 8];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < sizeof buf; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    memset(buf + 100, 0xff, 200);   /* runs of all-ones words: the carries pile up */
    int bad = 0;
    for (size_t len = 0; len <= 3000 && bad < 5; len++)
        for (size_t off = 0; off < 8; off++) {
            uint32_t start = (uint32_t)(len * 2654435761u);
            uint16_t want = reference(buf + off, len, start);
            uint16_t got = pn_csum_fold(pn_csum_partial(buf + off, len, start));
            uint16_t copied = pn_csum_fold(pn_csum_copy(copy + (7 - off), buf + off, len, start));
            if (got != want || copied != want || memcmp(copy + (7 - off), buf + off, len)) {
                printf("  len %zu off %zu: want %04x got %04x copy %04x\n", len, off, want,
                       got, copied);
                bad++;
            }
        }
    CHECK_EQ(bad, 0);
}

int main(void)
{
    RUN(test_the_sum_matches_the_reference);
    HARNESS_DONE();
}
