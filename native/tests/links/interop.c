/*
 * interop.c -- our TCP stack on a real link against the Linux kernel's TCP.
 *
 * Client (--connect): connects to the kernel's echo server, sends --bytes of a seeded byte
 * stream, reads the echo, and checks it. Server (--listen): echoes what one kernel client
 * sends until it closes. Either way it prints one line,
 *   result sent=N received=N sha256_sent=HEX sha256_received=HEX ms=T retransmits=R
 * for the test to compare with the kernel side's own digests. Exits 0 when the transfer
 * completed, 1 otherwise (the reason on stderr).
 *
 *   interop --link af_packet|af_xdp|efvi [--mode auto|native|generic] --if IF --ip IP
 *           [--prefix 24] [--own] (--connect PEER | --listen) --port P --bytes N
 *           [--pcap FILE] [--timeout S] [--pingpong MSG] [--sack]
 *
 * --pingpong MSG (client): send the stream MSG bytes at a time, each only once the last
 * came back whole, and print the round trips' percentiles ("rtt_us p50=.. p99=..").
 *
 * --sack: offer SACK (RFC 2018) with a 1 MB window, scaled; the result line then also
 * says whether it was negotiated and how the SACK recovery went.
 *
 * --own: the stack owns IP (the kernel does not have it): own_ip mode. Without it the stack
 * shares the kernel's address (af_xdp shared-address mode).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pncore.h"

/* ------------------------------------------------------------------ sha256 (FIPS 180-4) */

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    uint32_t n;
} sha256;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(sha256 *s, const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
    uint32_t e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] +
                      w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
    s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

static void sha_init(sha256 *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->len = 0;
    s->n = 0;
}

static void sha_update(sha256 *s, const uint8_t *p, size_t n)
{
    s->len += n;
    while (n > 0) {
        uint32_t take = 64 - s->n;
        if (take > n)
            take = (uint32_t)n;
        memcpy(s->buf + s->n, p, take);
        s->n += take;
        p += take;
        n -= take;
        if (s->n == 64) {
            sha_block(s, s->buf);
            s->n = 0;
        }
    }
}

static void sha_hex(sha256 *s, char out[65])
{
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80;
    sha_update(s, &pad, 1);
    pad = 0;
    while (s->n != 56)
        sha_update(s, &pad, 1);
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha_update(s, lenb, 8);
    for (int i = 0; i < 8; i++)
        snprintf(out + 8 * i, 9, "%08x", s->h[i]);
}

/* ------------------------------------------------------------------ the run */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The byte stream the client sends: xorshift64 from a fixed seed (the kernel side checks
 * only digests, so any stream does; this one has no short period). */
static void fill_stream(uint8_t *p, size_t n)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

static uint32_t parse_ip(const char *s)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1) {
        fprintf(stderr, "interop: bad address %s\n", s);
        exit(2);
    }
    return ntohl(a.s_addr);
}

static const char *ev_name(uint32_t t)
{
    static const char *names[] = {"?", "REFUSED", "ESTABLISHED", "TIMEOUT", "RESET", "CLOSED",
                                  "FIN", "DATA", "MORE_SENDABLE", "USER_TIMEOUT", "ARP_FAILED"};
    return t < sizeof names / sizeof names[0] ? names[t] : "?";
}

int main(int argc, char **argv)
{
    const char *kind = NULL, *ifname = NULL, *pcap = NULL, *mode_s = "auto";
    uint32_t ip = 0, peer = 0, prefix = 24, timeout_s = 60;
    uint16_t port = 0;
    size_t nbytes = 0;
    int own = 0, listen_mode = 0, sack = 0;
    uint32_t msg = 0;
    static const struct option opts[] = {
        {"link", required_argument, 0, 'L'},   {"mode", required_argument, 0, 'm'},
        {"if", required_argument, 0, 'i'},     {"ip", required_argument, 0, 'a'},
        {"prefix", required_argument, 0, 'p'}, {"own", no_argument, 0, 'o'},
        {"connect", required_argument, 0, 'c'}, {"listen", no_argument, 0, 'l'},
        {"port", required_argument, 0, 'P'},   {"bytes", required_argument, 0, 'n'},
        {"pcap", required_argument, 0, 'w'},   {"timeout", required_argument, 0, 't'},
        {"pingpong", required_argument, 0, 'g'}, {"sack", no_argument, 0, 'k'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'L': kind = optarg; break;
        case 'm': mode_s = optarg; break;
        case 'i': ifname = optarg; break;
        case 'a': ip = parse_ip(optarg); break;
        case 'p': prefix = (uint32_t)atoi(optarg); break;
        case 'o': own = 1; break;
        case 'c': peer = parse_ip(optarg); break;
        case 'l': listen_mode = 1; break;
        case 'P': port = (uint16_t)atoi(optarg); break;
        case 'n': nbytes = (size_t)strtoull(optarg, NULL, 10); break;
        case 'w': pcap = optarg; break;
        case 't': timeout_s = (uint32_t)atoi(optarg); break;
        case 'g': msg = (uint32_t)atoi(optarg); break;
        case 'k': sack = 1; break;
        default: return 2;
        }
    }
    if (!kind || !ifname || !ip || !port || (!peer && !listen_mode) || prefix > 32) {
        fprintf(stderr, "usage: see the comment at the top of interop.c\n");
        return 2;
    }
    char err[256];
    pn_real_link_params lp;
    memset(&lp, 0, sizeof lp);
    lp.ifname = ifname;
    lp.own_ip = (uint8_t)own;
    lp.local_ip = ip;
    lp.mode = strcmp(mode_s, "native") == 0    ? PN_XDP_MODE_NATIVE
              : strcmp(mode_s, "generic") == 0 ? PN_XDP_MODE_GENERIC
                                               : PN_XDP_MODE_AUTO;
    pn_link *link = strcmp(kind, "af_xdp") == 0 ? pn_af_xdp_link_create(&lp, err, sizeof err)
                    : strcmp(kind, "efvi") == 0 ? pn_efvi_link_create(&lp, err, sizeof err)
                                                : pn_af_packet_link_create(&lp, err, sizeof err);
    if (!link) {
        fprintf(stderr, "interop: %s\n", err);
        return 1;
    }
    if (pcap && pn_link_pcap(link, pcap, err, sizeof err) < 0) {
        fprintf(stderr, "interop: %s\n", err);
        return 1;
    }
    pn_config cfg;
    pn_config_default(&cfg);
    cfg.local_ip = ip;
    cfg.netmask = prefix ? ~0u << (32 - prefix) : 0;
    cfg.mtu = link->mtu;
    if (sack) {
        cfg.sack = 1;
        cfg.window_scale = 1;
        cfg.conn_recv_buf_size = 1u << 20;
        cfg.congestion_control = PN_CC_NEWRENO;
    }
    pn_stack *s = NULL;
    int rc = pn_stack_create(&s, &cfg, link, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "interop: stack: %s\n", err);
        return 1;
    }

    uint8_t *out = malloc(nbytes ? nbytes : 1);   /* client: the stream; server: echo queue */
    if (!out)
        return 1;
    if (!listen_mode)
        fill_stream(out, nbytes);
    sha256 h_sent, h_recv;
    sha_init(&h_sent);
    sha_init(&h_recv);
    size_t sent = 0, received = 0, queued = 0;  /* server: queued = bytes waiting to echo */
    uint32_t conn = UINT32_MAX;
    int established = 0, fin_in = 0, fin_out = 0, done = 0, failed = 0;
    uint64_t retrans = 0;
    uint32_t options = 0;
    size_t nmsg = msg ? (nbytes + msg - 1) / msg : 0, msgs_done = 0;
    uint64_t *rtts = calloc(nmsg ? nmsg : 1, sizeof *rtts), t_msg = 0;
    size_t msg_end = 0;
    if (!rtts)
        return 1;

    if (listen_mode) {
        rc = pn_listen(s, port);
    } else {
        rc = pn_connect(s, peer, port, 0, &conn);
    }
    if (rc < 0) {
        fprintf(stderr, "interop: %s: %s (%s)\n", listen_mode ? "listen" : "connect",
                pn_strerror(rc), link->err);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)timeout_s * 1000000000u;
    pn_event ev[64];
    while (!done && now_ns() < deadline) {
        int n = pn_poll(s, 0, ev, 64);
        if (n < 0) {
            fprintf(stderr, "interop: poll: %s (%s)\n", pn_strerror(n), link->err);
            failed = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            pn_event *e = &ev[i];
            switch (e->type) {
            case PN_EV_CONNECTION_ESTABLISHED:
                if (conn == UINT32_MAX || e->conn_id == conn) {
                    conn = e->conn_id;
                    established = 1;
                }
                break;
            case PN_EV_DATA:
            case PN_EV_FIN:
                if (e->conn_id != conn)
                    break;
                sha_update(&h_recv, e->data, e->len);
                received += e->len;
                if (msg && received == sent && msgs_done < nmsg)
                    rtts[msgs_done++] = now_ns() - t_msg;
                if (listen_mode) {
                    if (queued + e->len > nbytes) {
                        fprintf(stderr, "interop: more than --bytes received\n");
                        failed = done = 1;
                        break;
                    }
                    memcpy(out + queued, e->data, e->len);
                    queued += e->len;
                }
                if (e->type == PN_EV_FIN)
                    fin_in = 1;
                break;
            case PN_EV_CONNECTION_CLOSED:
                if (e->conn_id == conn)
                    done = 1;
                break;
            case PN_EV_MORE_SENDABLE:
            case PN_EV_USER_TIMEOUT:
                break;
            default:
                if (e->conn_id == conn || !listen_mode) {
                    fprintf(stderr, "interop: event %s\n", ev_name(e->type));
                    failed = done = 1;
                }
                break;
            }
        }
        if (!established || done)
            continue;
        size_t want = listen_mode ? queued : nbytes;
        if (msg && !listen_mode) {
            /* One message in flight: the next goes once the last came back whole. */
            if (sent == msg_end && received == sent && sent < nbytes) {
                msg_end = sent + msg < nbytes ? sent + msg : nbytes;
                t_msg = now_ns();
            }
            want = msg_end;
        }
        while (sent < want) {
            int32_t room = pn_sendable(s, conn);
            if (room <= 0)
                break;
            size_t k = want - sent;
            if (k > (size_t)room)
                k = (size_t)room;
            int32_t acc = pn_send(s, conn, out + sent, (uint32_t)k, 0);
            if (acc <= 0)
                break;
            sha_update(&h_sent, out + sent, (size_t)acc);
            sent += (size_t)acc;
        }
        int finish = listen_mode ? (fin_in && sent == queued) : (received >= nbytes);
        if (finish && !fin_out) {
            pn_conn_info ci;
            if (pn_conn_info_get(s, conn, &ci) == 0) {
                retrans = ci.retransmits;
                options = ci.options;
            }
            pn_send_fin(s, conn);
            fin_out = 1;
        }
    }
    double ms = (now_ns() - t0) / 1e6;
    char hs[65], hr[65];
    sha_hex(&h_sent, hs);
    sha_hex(&h_recv, hr);
    pn_stats st;
    pn_stack_stats(s, &st);
    printf("result sent=%zu received=%zu sha256_sent=%s sha256_received=%s ms=%.1f "
           "retransmits=%llu tcp_retrans_segs=%llu sack=%d sack_recoveries=%llu "
           "sack_holes=%llu timeouts=%llu\n", sent, received, hs, hr, ms,
           (unsigned long long)retrans, (unsigned long long)st.TcpRetransSegs,
           (options & PN_OPT_SACK) != 0, (unsigned long long)st.TcpExtTCPSackRecovery,
           (unsigned long long)st.PnSackHoleRetrans, (unsigned long long)st.TcpExtTCPTimeouts);
    if (msg && msgs_done > 0) {
        for (size_t i = 1; i < msgs_done; i++) {  /* insertion sort: a few thousand */
            uint64_t v = rtts[i];
            size_t j = i;
            for (; j > 0 && rtts[j - 1] > v; j--)
                rtts[j] = rtts[j - 1];
            rtts[j] = v;
        }
        printf("rtt_us n=%zu p50=%.1f p90=%.1f p99=%.1f max=%.1f\n", msgs_done,
               rtts[msgs_done / 2] / 1e3, rtts[msgs_done * 9 / 10] / 1e3,
               rtts[msgs_done * 99 / 100] / 1e3, rtts[msgs_done - 1] / 1e3);
    }
    free(rtts);
    if (!done)
        fprintf(stderr, "interop: no close within %u s (established=%d sent=%zu received=%zu "
                "fin_in=%d)\n", timeout_s, established, sent, received, fin_in);
    pn_efvi_link_info ei;
    if (pn_efvi_link_info_get(link, &ei) == 0)  /* efvi: what the link did */
        printf("efvi ctpio=%u rx_timestamps=%u prefix=%u filters=%u tx_ctpio_ok=%llu "
               "arp_from_kernel=%llu csum_discards=%llu rx_ts_missing=%llu\n", ei.ctpio,
               ei.rx_timestamps, ei.rx_prefix_len, ei.filters,
               (unsigned long long)ei.tx_ctpio_ok, (unsigned long long)ei.arp_from_kernel,
               (unsigned long long)ei.rx_discard[0], (unsigned long long)ei.rx_ts_missing);
    pn_stack_destroy(s);
    pn_link_destroy(link);
    free(out);
    int ok = done && !failed && (listen_mode ? sent == received : received == nbytes);
    return ok ? 0 : 1;
}
