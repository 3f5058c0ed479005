/*
 * udptest.c -- UDP through the efvi link without the stack (pn_efvi_link_udp_filter): ef_vi
 * ip4_local UDP filters for a unicast port and a multicast group:port bring exactly those
 * datagrams out of rx_burst. Runs on the look-alike in namespace a; the tests send from b.
 *
 *   udptest IF OWN_IP GROUP SECONDS    -> "ready", then
 *                                         "udp unicast=N multicast=M unfiltered=K"
 * Ports: 6500 unicast (filtered), 6501 on GROUP (filtered), 6502 unicast (no filter).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pncore.h"

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    struct in_addr own, group;
    if (inet_pton(AF_INET, argv[2], &own) != 1 || inet_pton(AF_INET, argv[3], &group) != 1)
        return 2;
    char err[256];
    pn_real_link_params p;
    memset(&p, 0, sizeof p);
    p.ifname = argv[1];
    p.own_ip = 1;
    pn_link *l = pn_efvi_link_create(&p, err, sizeof err);
    if (l == NULL) {
        fprintf(stderr, "udptest: %s\n", err);
        return 1;
    }
    if (pn_efvi_link_udp_filter(l, ntohl(own.s_addr), 6500, 1) < 0 ||
        pn_efvi_link_udp_filter(l, ntohl(group.s_addr), 6501, 1) < 0 ||
        pn_efvi_link_udp_filter(l, ntohl(own.s_addr), 6500, 1) < 0) {  /* idempotent */
        fprintf(stderr, "udptest: filter: %s\n", l->err);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    unsigned uni = 0, multi = 0, other = 0;
    uint64_t end = now_ns() + (uint64_t)atoi(argv[4]) * 1000000000ull;
    pn_rx_frame fr[32];
    int grace = 0;
    while (now_ns() < end) {
        if (!grace && uni >= 10 && multi >= 10) {  /* all came: a little longer, then stop */
            grace = 1;
            end = now_ns() + 200000000ull;
        }
        int n = l->ops->rx_burst(l, now_ns(), fr, 32);
        for (int i = 0; i < n; i++) {
            const uint8_t *f = fr[i].data;
            if (fr[i].len < 42 || f[12] != 0x08 || f[13] != 0 || f[23] != 17)
                continue;
            unsigned ihl = (f[14] & 15u) * 4u;
            unsigned dport = (unsigned)(f[14 + ihl + 2] << 8 | f[14 + ihl + 3]);
            if (dport == 6500)
                uni++;
            else if (dport == 6501)
                multi++;
            else
                other++;
        }
        if (n > 0)
            l->ops->rx_release(l, fr, n);
    }
    pn_efvi_link_udp_filter(l, ntohl(group.s_addr), 6501, 0);
    pn_efvi_link_info ei;
    pn_efvi_link_info_get(l, &ei);
    printf("udp unicast=%u multicast=%u unfiltered=%u filters=%u\n", uni, multi, other,
           ei.filters);
    pn_link_destroy(l);
    return 0;
}
