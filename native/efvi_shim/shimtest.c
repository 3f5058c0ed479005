/*
 * shimtest.c -- the ef_vi look-alike keeps the documented rules it claims to keep
 * (docs/efvi-link.md). Runs on `lo` (root: AF_PACKET), inside a private namespace in the
 * tests. Prints "ok NAME" per check and exits non-zero on the first failure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_ether.h>
#include <linux/if_packet.h>

#include "efvi_shim.h"
#include <etherfabric/base.h>
#include <etherfabric/capabilities.h>
#include <etherfabric/ef_vi.h>
#include <etherfabric/memreg.h>
#include <etherfabric/pd.h>
#include <etherfabric/vi.h>

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "shimtest: %s:%d: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

static ef_driver_handle dh;
static ef_pd pd;
static ef_vi vi;
static ef_memreg mr;
static uint8_t *mem;
#define NBUF 64u

static void ok(const char *name) { printf("ok %s\n", name); }

static void send_raw(const uint8_t *frame, size_t len)
{
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    CHECK(fd >= 0);
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = (int)if_nametoindex("lo");
    sll.sll_halen = 6;
    CHECK(sendto(fd, frame, len, 0, (struct sockaddr *)&sll, sizeof sll) == (ssize_t)len);
    close(fd);
}

static int poll_for(ef_event *evs, int want, int max)
{
    int got = 0;
    for (int spin = 0; spin < 200000 && got < want; spin++) {
        int n = ef_eventq_poll(&vi, evs + got, max - got);
        CHECK(n >= 0);
        got += n;
    }
    return got;
}

int main(void)
{
    CHECK(ef_driver_open(&dh) == 0);
    CHECK(ef_pd_alloc_by_name(&pd, dh, "no-such-if0", EF_PD_DEFAULT) == -ENODEV);
    CHECK(ef_pd_alloc_by_name(&pd, dh, "lo", EF_PD_DEFAULT) == 0);
    ok("pd");

    mem = mmap(NULL, NBUF * 2048, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mem != MAP_FAILED);
    uint64_t before = efvi_shim_stats_get()->violations;
    CHECK(ef_memreg_alloc(&mr, dh, &pd, dh, mem + 64, 2048) == -EINVAL);  /* not page-aligned */
    CHECK(ef_memreg_alloc(&mr, dh, &pd, dh, mem, 3000) == -EINVAL);       /* not n x 2048 */
    CHECK(efvi_shim_stats_get()->violations == before + 2);
    CHECK(ef_memreg_alloc(&mr, dh, &pd, dh, mem, NBUF * 2048) == 0);
    /* DMA addresses are contiguous within a page, not across pages. */
    CHECK(ef_memreg_dma_addr(&mr, 2048) == ef_memreg_dma_addr(&mr, 0) + 2048);
    CHECK(ef_memreg_dma_addr(&mr, 4096) != ef_memreg_dma_addr(&mr, 0) + 4096);
    ok("memreg");

    unsigned long v = 1;
    setenv("EFVI_SHIM_CTPIO", "0", 1);
    CHECK(ef_vi_capabilities_get(dh, 1, EF_VI_CAP_CTPIO, &v) == 0 && v == 0);
    CHECK(ef_vi_capabilities_get(dh, 1, EF_VI_CAP_PIO, &v) == -EOPNOTSUPP);
    CHECK(ef_vi_alloc_from_pd(&vi, dh, &pd, dh, -1, 8192, -1, NULL, -1, EF_VI_FLAGS_DEFAULT) ==
          -EINVAL);  /* rings hold at most 4096 slots */
    CHECK(ef_vi_alloc_from_pd(&vi, dh, &pd, dh, -1, -1, -1, NULL, -1, EF_VI_TX_CTPIO) ==
          -EOPNOTSUPP);
    CHECK(ef_vi_alloc_from_pd(&vi, dh, &pd, dh, -1, 100, 513, NULL, -1,
                              EF_VI_FLAGS_DEFAULT) >= 0);
    CHECK(ef_vi_receive_capacity(&vi) == 511 && ef_vi_transmit_capacity(&vi) == 1023);
    CHECK(ef_vi_receive_prefix_len(&vi) == 14 && ef_vi_receive_buffer_len(&vi) == 1792);
    ok("vi");

    /* Receive descriptors: only multiples of 8 reach the NIC. */
    for (uint32_t i = 0; i < 12; i++)
        CHECK(ef_vi_receive_init(&vi, ef_memreg_dma_addr(&mr, i * 2048), (int)i) == 0);
    ef_vi_receive_push(&vi);
    CHECK(ef_vi_receive_fill_level(&vi) == 12);
    before = efvi_shim_stats_get()->violations;
    CHECK(ef_vi_receive_init(&vi, ef_memreg_dma_addr(&mr, 0) + 3072, 99) == -EINVAL);
    CHECK(efvi_shim_stats_get()->violations == before + 1);  /* crosses a page */
    ok("rx-ring");

    /* Filters: a MAC filter brings frames to that MAC; a second identical unicast filter
     * is refused (-EEXIST); cookies delete. */
    static const uint8_t dmac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    ef_filter_spec fs;
    ef_filter_cookie ck, ck2;
    ef_filter_spec_init(&fs, EF_FILTER_FLAG_NONE);
    CHECK(ef_filter_spec_set_eth_local(&fs, EF_FILTER_VLAN_ID_ANY, dmac) == 0);
    CHECK(ef_filter_spec_set_ip4_local(&fs, IPPROTO_TCP, htonl(0x7f000001), htons(80)) ==
          -EPROTONOSUPPORT);
    CHECK(ef_vi_filter_add(&vi, dh, &fs, &ck) == 0);
    ef_filter_spec tcp;
    ef_filter_spec_init(&tcp, EF_FILTER_FLAG_NONE);
    CHECK(ef_filter_spec_set_ip4_full(&tcp, IPPROTO_TCP, htonl(0x0a000001), htons(1000),
                                      htonl(0x0a000002), htons(80)) == 0);
    CHECK(ef_vi_filter_add(&vi, dh, &tcp, &ck2) == 0);
    CHECK(ef_vi_filter_add(&vi, dh, &tcp, NULL) == -EEXIST);
    CHECK(ef_vi_filter_del(&vi, dh, &ck2) == 0);
    ok("filters");

    /* A 1100-byte frame in 512-byte buffers: SOP+CONT, CONT, then the last, with
     * EF_EVENT_RX_BYTES counting prefix + frame cumulatively. */
    ef_vi_receive_set_buffer_len(&vi, 512);
    uint8_t frame[1100];
    memset(frame, 0xab, sizeof frame);
    memcpy(frame, dmac, 6);
    memset(frame + 6, 0x02, 6);
    frame[12] = 0x88;
    frame[13] = 0xb5;  /* local experimental ethertype */
    send_raw(frame, sizeof frame);
    ef_event evs[16];
    int n = poll_for(evs, 3, 16);
    CHECK(n == 3);
    CHECK(EF_EVENT_TYPE(evs[0]) == EF_EVENT_TYPE_RX && EF_EVENT_RX_SOP(evs[0]) &&
          EF_EVENT_RX_CONT(evs[0]) && EF_EVENT_RX_BYTES(evs[0]) == 512);
    CHECK(EF_EVENT_RX_CONT(evs[1]) && !EF_EVENT_RX_SOP(evs[1]));
    CHECK(!EF_EVENT_RX_CONT(evs[2]) && EF_EVENT_RX_BYTES(evs[2]) == 14 + 1100);
    CHECK(EF_EVENT_RX_RQ_ID(evs[0]) == 0 && EF_EVENT_RX_RQ_ID(evs[2]) == 2);
    CHECK(memcmp(mem + 14, frame, 512 - 14) == 0);  /* buffer 0: prefix, then the frame */
    ok("rx-scatter");

    /* Transmit: completions arrive on a later poll and unbundle to the request ids. */
    before = efvi_shim_stats_get()->violations;
    ef_vi_transmit_push(&vi);  /* nothing initialised: a violation */
    CHECK(efvi_shim_stats_get()->violations == before + 1);
    for (int i = 0; i < 3; i++) {
        memcpy(mem + (size_t)(40 + i) * 2048, frame, 60);
        CHECK(ef_vi_transmit_init(&vi, ef_memreg_dma_addr(&mr, (size_t)(40 + i) * 2048), 60,
                                  40 + i) == 0);
    }
    ef_vi_transmit_push(&vi);
    CHECK(ef_vi_transmit_fill_level(&vi) == 3);
    n = poll_for(evs, 1, 16);
    int tx = -1;
    for (int i = 0; i < n; i++)
        if (EF_EVENT_TYPE(evs[i]) == EF_EVENT_TYPE_TX)
            tx = i;
    CHECK(tx >= 0);
    ef_request_id ids[EF_VI_TRANSMIT_BATCH];
    CHECK(ef_vi_transmit_unbundle(&vi, &evs[tx], ids) == 3);
    CHECK(ids[0] == 40 && ids[2] == 42 && ef_vi_transmit_fill_level(&vi) == 0);
    CHECK(ef_eventq_poll(&vi, evs, 1) == -EINVAL);  /* below EF_VI_EVENT_POLL_MIN_EVS */
    ok("tx");

    CHECK(ef_vi_free(&vi, dh) == 0);
    CHECK(ef_memreg_free(&mr, dh) == 0);
    CHECK(ef_pd_free(&pd, dh) == 0);
    CHECK(ef_driver_close(dh) == 0);
    ok("free");
    return 0;
}
