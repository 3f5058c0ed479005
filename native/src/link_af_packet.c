/*
 * link_af_packet.c -- the af_packet link: any Linux interface, PACKET_MMAP rings, no
 * library beyond libc.
 *
 * One AF_PACKET socket bound to the interface (ETH_P_ALL) carries a TPACKET_V2 RX ring
 * and a TX ring in one mapping. V2, not V3: a V3 block reaches user space only when it
 * fills or its retire timer (milliseconds) fires, which a busy-poller cannot wait for;
 * V2 hands over each frame as soon as the kernel writes it.
 *
 *   rx_burst    reads frames whose status has TP_STATUS_USER, in ring order, stopping at
 *               one the stack still holds (frames may be released in any order).
 *   rx_release  gives a frame back to the kernel (status = TP_STATUS_KERNEL).
 *   tx_buf      the next TX frame whose status is TP_STATUS_AVAILABLE.
 *   tx_send     marks it TP_STATUS_SEND_REQUEST.
 *   tx_flush    sendto(MSG_DONTWAIT) makes the kernel send every requested frame.
 *
 * The socket has PACKET_IGNORE_OUTGOING (we do not see our own frames), PACKET_QDISC_BYPASS
 * (no qdisc on the way out) and PACKET_LOSS (a malformed TX frame is skipped, never wedges
 * the ring). Frames the kernel marks TP_STATUS_CSUMNOTREADY (CHECKSUM_PARTIAL over veth)
 * reach the stack with PN_RX_CSUM_PARTIAL; unsegmented GSO frames, frames longer than a ring
 * frame and VLAN-tagged frames are dropped and counted (pn_real_link_stats_get()), and
 * the first such drop leaves the fix in link->err. Packet sockets see frames after GRO, so
 * creation refuses an interface with GRO or LRO on (saying how to turn them off); on a
 * veth the sender is the peer, whose TSO/GSO must be off (tests/netns does that).
 *
 * Shared-address mode (own_ip 0): the kernel sees every frame a packet socket sees, and
 * would answer our connections' segments with RSTs. So flow_add holds the local port with
 * a kernel socket (real_link.h) and puts the flow in the map of a tc ingress filter
 * (pn_tc_hide in native/bpf/pn_xdp.c, attached by link_af_xdp.c's helpers) that drops the
 * flow's frames after packet sockets have had them and before the kernel's IP stack does.
 * That needs libbpf at build time; without it, flow_add fails in this mode and says so
 * (ARP and ICMP still work), and own_ip = 1 (an address the kernel does not have) remains.
 * With own_ip the same filter drops every IPv4 frame to that address, which the kernel
 * would otherwise route (or drop as not its own) at a cost per frame -- on veth, paid by
 * the sender's CPU; without the filter that mode works as before, only slower.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>

#include "real_link.h"

#ifndef TP_STATUS_GSO_TCP
#define TP_STATUS_GSO_TCP (1 << 8)
#endif

#define WHO "af_packet"
#define DEFAULT_RING_FRAMES 1024u
#define MAX_RING_FRAMES 65536u
/* Where a TX frame's data starts: the kernel's default without PACKET_TX_HAS_OFF. */
#define TX_DATA_OFF ((uint32_t)TPACKET_ALIGN(sizeof(struct tpacket2_hdr)))
/* Where an RX frame's data starts at the latest (tp_mac; Ethernet header + alignment). */
#define RX_DATA_OFF_MAX ((uint32_t)TPACKET_ALIGN(TPACKET2_HDRLEN + 16))

typedef struct af_packet_link {
    pn_real_link rl;
    int fd;
    int ifindex;
    uint8_t *map;
    size_t map_len;
    uint8_t *rx_ring, *tx_ring;
    uint32_t frames;      /* per ring, a power of two */
    uint32_t frame_size;
    uint32_t rx_head;     /* next RX frame to look at */
    uint32_t tx_head;     /* next TX frame to hand out */
    uint32_t tx_queued;   /* frames requested since the last successful kick */
    uint8_t *rx_held;     /* [frames]: 1 while the stack holds the frame */
    uint8_t own_ip;
    uint32_t queue, shards;  /* shards > 1: this socket is member `queue` of the fanout */
    pn_port_resv ports;
    pn_tc_hide *hide;     /* keeps our flows (shared address) or own address's frames
                             from the kernel's IP stack */
    char hide_err[160];   /* why there is no hide (said at flow_add) */
} af_packet_link;

static inline struct tpacket2_hdr *rx_frame(af_packet_link *a, uint32_t i)
{
    return (struct tpacket2_hdr *)(a->rx_ring + (size_t)i * a->frame_size);
}

static inline struct tpacket2_hdr *tx_frame(af_packet_link *a, uint32_t i)
{
    return (struct tpacket2_hdr *)(a->tx_ring + (size_t)i * a->frame_size);
}

static inline uint32_t status_load(struct tpacket2_hdr *h)
{
    return __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
}

static inline void status_store(struct tpacket2_hdr *h, uint32_t v)
{
    __atomic_store_n(&h->tp_status, v, __ATOMIC_RELEASE);
}

static int ap_rx_burst(pn_link *l, uint64_t now_ns, pn_rx_frame *frames, int max)
{
    (void)now_ns;
    af_packet_link *a = (af_packet_link *)l;
    pn_real_link_stats *st = &a->rl.stats;
    int n = 0;
    uint32_t mask = a->frames - 1;
    while (n < max) {
        uint32_t i = a->rx_head;
        if (a->rx_held[i])
            break;
        struct tpacket2_hdr *h = rx_frame(a, i);
        uint32_t status = status_load(h);
        if (!(status & TP_STATUS_USER))
            break;
        a->rx_head = (i + 1) & mask;
        /* TP_STATUS_LOSING: the kernel dropped frames for want of ring space; its count
         * comes from PACKET_STATISTICS when the stats are asked for. */
        if (status & TP_STATUS_GSO_TCP) {
            st->rx_drop_gso++;
            pn_rl_note_gso_drop(l, WHO, h->tp_len);
            status_store(h, TP_STATUS_KERNEL);
            continue;
        }
        if (h->tp_snaplen < h->tp_len || (status & TP_STATUS_COPY) ||
            h->tp_mac + h->tp_snaplen > a->frame_size) {
            st->rx_drop_oversize++;
            pn_rl_note_gso_drop(l, WHO, h->tp_len);
            status_store(h, TP_STATUS_KERNEL);
            continue;
        }
        if (status & TP_STATUS_VLAN_VALID) {
            st->rx_drop_vlan++;
            status_store(h, TP_STATUS_KERNEL);
            continue;
        }
        pn_rx_frame *f = &frames[n++];
        f->data = (const uint8_t *)h + h->tp_mac;
        f->len = h->tp_snaplen;
        f->flags = (status & TP_STATUS_CSUMNOTREADY) ? PN_RX_CSUM_PARTIAL : 0;
        f->handle = i;
        f->hw_ts_ns = 0;
        a->rx_held[i] = 1;
        st->rx_frames++;
        st->rx_bytes += h->tp_snaplen;
    }
    return n;
}

static void ap_rx_release(pn_link *l, const pn_rx_frame *frames, int n)
{
    af_packet_link *a = (af_packet_link *)l;
    for (int k = 0; k < n; k++) {
        uint32_t i = (uint32_t)frames[k].handle;
        if (i >= a->frames || !a->rx_held[i])
            continue;
        a->rx_held[i] = 0;
        status_store(rx_frame(a, i), TP_STATUS_KERNEL);
    }
}

static void ap_tx_flush(pn_link *l);

static uint8_t *ap_tx_buf(pn_link *l, uint32_t *cap)
{
    af_packet_link *a = (af_packet_link *)l;
    struct tpacket2_hdr *h = tx_frame(a, a->tx_head);
    uint32_t status = status_load(h);
    if (status == TP_STATUS_WRONG_FORMAT) {
        /* With PACKET_LOSS the kernel skips such a frame; give it back. */
        a->rl.stats.tx_errors++;
        status_store(h, TP_STATUS_AVAILABLE);
        status = TP_STATUS_AVAILABLE;
    }
    if (status != TP_STATUS_AVAILABLE && a->tx_queued > 0) {
        /* The ring wrapped onto frames not yet kicked: send them, then look again. */
        ap_tx_flush(l);
        status = status_load(h);
    }
    if (status != TP_STATUS_AVAILABLE) {
        a->rl.stats.tx_ring_full++;
        return NULL;
    }
    *cap = a->frame_size - TX_DATA_OFF;
    return (uint8_t *)h + TX_DATA_OFF;
}

static int ap_tx_send(pn_link *l, uint8_t *buf, uint32_t len)
{
    af_packet_link *a = (af_packet_link *)l;
    struct tpacket2_hdr *h = tx_frame(a, a->tx_head);
    if (buf != (uint8_t *)h + TX_DATA_OFF || len > a->frame_size - TX_DATA_OFF || len < 14) {
        pn_rl_errf(a->rl.link.err, sizeof a->rl.link.err, WHO,
                   "tx_send: not the buffer of the last tx_buf() or bad length %u", len);
        return PN_EINVAL;
    }
    h->tp_len = len;
    status_store(h, TP_STATUS_SEND_REQUEST);
    a->tx_head = (a->tx_head + 1) & (a->frames - 1);
    a->tx_queued++;
    a->rl.stats.tx_frames++;
    a->rl.stats.tx_bytes += len;
    return PN_OK;
}

static void ap_tx_flush(pn_link *l)
{
    af_packet_link *a = (af_packet_link *)l;
    if (a->tx_queued == 0)
        return;
    for (int tries = 0; tries < 4; tries++) {
        ssize_t r = sendto(a->fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
        if (r >= 0) {
            a->tx_queued = 0;
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == ENOBUFS || errno == EBUSY) {
            a->rl.stats.tx_kick_retries++;  /* frames stay requested: next flush */
            return;
        }
        a->rl.stats.tx_errors++;
        pn_rl_errf(a->rl.link.err, sizeof a->rl.link.err, WHO, "sendto: %s", strerror(errno));
        a->tx_queued = 0;
        return;
    }
}

static int ap_flow_add(pn_link *l, const pn_flow *f)
{
    af_packet_link *a = (af_packet_link *)l;
    if (a->own_ip)
        return PN_OK;
    if (a->hide == NULL) {
        pn_rl_errf(a->rl.link.err, sizeof a->rl.link.err, WHO,
                   "sharing the kernel's address needs the tc filter, which is missing (%s); "
                   "give the stack an address of its own (own_ip)", a->hide_err);
        return PN_ELINK;
    }
    int rc = pn_rl_port_hold(&a->ports, f->local_ip, f->local_port, a->rl.link.err,
                             sizeof a->rl.link.err);
    if (rc < 0)
        return rc;
    if (pn_rl_tc_hide_flow(a->hide, f, 1) < 0) {
        pn_rl_port_release(&a->ports, f->local_port);
        pn_rl_errf(a->rl.link.err, sizeof a->rl.link.err, WHO,
                   "adding the flow to the tc filter's map failed");
        return PN_ELINK;
    }
    return PN_OK;
}

static int ap_flow_del(pn_link *l, const pn_flow *f)
{
    af_packet_link *a = (af_packet_link *)l;
    if (a->own_ip || a->hide == NULL)
        return PN_OK;
    pn_rl_tc_hide_flow(a->hide, f, 0);
    pn_rl_port_release(&a->ports, f->local_port);
    return PN_OK;
}

static void ap_refresh_stats(pn_real_link *rl)
{
    af_packet_link *a = (af_packet_link *)rl;
    struct tpacket_stats ts;
    socklen_t len = sizeof ts;
    if (getsockopt(a->fd, SOL_PACKET, PACKET_STATISTICS, &ts, &len) == 0)
        rl->stats.rx_kernel_drops += ts.tp_drops;  /* the kernel resets them on read */
    rl->stats.ports_reserved = a->ports.count;
    if (a->hide != NULL)
        rl->stats.tc_hidden = pn_rl_tc_hidden(a->hide);
}

static void ap_destroy(pn_link *l)
{
    af_packet_link *a = (af_packet_link *)l;
    if (a == NULL)
        return;
    if (a->map != NULL && a->map != MAP_FAILED)
        munmap(a->map, a->map_len);
    if (a->fd >= 0)
        close(a->fd);
    pn_rl_tc_hide_close(a->hide);
    pn_rl_ports_free(&a->ports);
    free(a->rx_held);
    free(a);
}

/* Sharding: the fanout program (set_fanout_program) gives a TCP frame to the member
 * port_member() names -- the same both ways, so a client shard's connection fits when it
 * names the shard. The ports' sum is mixed (multiplied, the high half taken) because
 * Linux gives connect() even ports only: the plain sum would put every connection to an
 * even port on one shard. */
#define PORT_MIX 0x9e3779b1u
static uint32_t port_member(uint16_t a, uint16_t b, uint32_t shards)
{
    return (((uint32_t)a + b) * PORT_MIX >> 16) % shards;
}

static int ap_neigh_lookup(pn_link *l, uint32_t ip, uint8_t mac[6])
{
    af_packet_link *a = (af_packet_link *)l;
    return a->shards > 1 && pn_rl_neigh_lookup(a->ifindex, ip, mac);
}

static int ap_port_fits(pn_link *l, const pn_flow *f)
{
    af_packet_link *a = (af_packet_link *)l;
    return a->shards <= 1 || port_member(f->local_port, f->remote_port, a->shards) == a->queue;
}

static const pn_link_ops af_packet_ops = {
    .name = "af_packet",
    .rx_burst = ap_rx_burst,
    .rx_release = ap_rx_release,
    .tx_buf = ap_tx_buf,
    .tx_send = ap_tx_send,
    .tx_flush = ap_tx_flush,
    .flow_add = ap_flow_add,
    .flow_del = ap_flow_del,
    .destroy = ap_destroy,
    .port_fits = ap_port_fits,
    .neigh_lookup = ap_neigh_lookup,
};

static int setopt(af_packet_link *a, int opt, const void *v, socklen_t len, const char *name,
                  char *err, size_t errlen)
{
    if (setsockopt(a->fd, SOL_PACKET, opt, v, len) < 0) {
        pn_rl_errf(err, errlen, WHO, "setsockopt(%s): %s", name, strerror(errno));
        return PN_ELINK;
    }
    return PN_OK;
}

/* The fanout group's classic BPF program: an IPv4 TCP frame (not a fragment) goes to
 * member port_member(source port, destination port) -- a server's flows spread by the
 * client's port, and a client shard picks its ports to come back to itself
 * (ap_port_fits) -- and anything else (ARP, ICMP) to member 0. Offsets are from the
 * network header (SKF_NET_OFF), wherever the frame's data starts. */
static int set_fanout_program(af_packet_link *a, uint32_t shards, char *err, size_t errlen)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, (uint32_t)SKF_AD_OFF + SKF_AD_PROTOCOL),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, 14),
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, (uint32_t)SKF_NET_OFF + 9),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_TCP, 0, 12),
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, (uint32_t)SKF_NET_OFF + 6),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 10, 0),          /* fragment offset */
        BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, (uint32_t)SKF_NET_OFF),    /* X = IP header length */
        BPF_STMT(BPF_LD | BPF_H | BPF_IND, (uint32_t)SKF_NET_OFF),     /* source port */
        BPF_STMT(BPF_ST, 0),
        BPF_STMT(BPF_LD | BPF_H | BPF_IND, (uint32_t)SKF_NET_OFF + 2), /* destination port */
        BPF_STMT(BPF_LDX | BPF_W | BPF_MEM, 0),
        BPF_STMT(BPF_ALU | BPF_ADD | BPF_X, 0),
        BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, PORT_MIX),
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, shards),
        BPF_STMT(BPF_RET | BPF_A, 0),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    struct sock_fprog fp = {.len = sizeof code / sizeof code[0], .filter = code};
    return setopt(a, PACKET_FANOUT_DATA, &fp, sizeof fp, "PACKET_FANOUT_DATA", err, errlen);
}

pn_link *pn_af_packet_link_create(const pn_real_link_params *p, char *err, size_t errlen)
{
    if (p == NULL) {
        pn_rl_errf(err, errlen, WHO, "no parameters");
        return NULL;
    }
    pn_if_facts ifc;
    if (pn_rl_if_facts(p->ifname, WHO, &ifc, err, errlen) < 0)
        return NULL;
    if (ifc.merges) {
        pn_rl_merge_error(&ifc, p->ifname, WHO, err, errlen);
        return NULL;
    }
    uint32_t frame_size = p->frame_size;
    if (frame_size == 0)   /* the smallest that carries the interface's MTU */
        for (frame_size = 2048; frame_size < 65536 && ifc.mtu + 14 + RX_DATA_OFF_MAX > frame_size;)
            frame_size <<= 1;
    if (frame_size < 2048 || frame_size > 65536 || (frame_size & (frame_size - 1))) {
        pn_rl_errf(err, errlen, WHO, "frame_size %u: must be a power of two in 2048..65536",
                   frame_size);
        return NULL;
    }
    if (ifc.mtu + 14 + RX_DATA_OFF_MAX > frame_size) {
        pn_rl_errf(err, errlen, WHO,
                   "interface '%s' has MTU %u: frame_size %u is too small (needs %u; use a "
                   "larger power of two)", p->ifname, ifc.mtu, frame_size,
                   ifc.mtu + 14 + RX_DATA_OFF_MAX);
        return NULL;
    }
    uint32_t frames = p->ring_frames ? p->ring_frames : DEFAULT_RING_FRAMES;
    uint32_t pow2 = 16;
    while (pow2 < frames && pow2 < MAX_RING_FRAMES)
        pow2 <<= 1;
    frames = pow2;

    af_packet_link *a = calloc(1, sizeof *a);
    if (a == NULL) {
        pn_rl_errf(err, errlen, WHO, "out of memory");
        return NULL;
    }
    a->fd = -1;
    a->ifindex = ifc.ifindex;
    a->frames = frames;
    a->frame_size = frame_size;
    a->own_ip = p->own_ip ? 1 : 0;
    a->rl.link.ops = &af_packet_ops;
    a->rl.link.pcap_fd = -1;
    memcpy(a->rl.link.mac, ifc.mac, 6);
    a->rl.link.mtu = (uint16_t)(ifc.mtu > 65535 ? 65535 : ifc.mtu);
    a->rl.link.caps = a->own_ip ? PN_LINK_OWN_IP : 0;
    a->rl.refresh_stats = ap_refresh_stats;
    a->rx_held = calloc(frames, 1);
    if (a->rx_held == NULL) {
        pn_rl_errf(err, errlen, WHO, "out of memory");
        goto fail;
    }
    if (!a->own_ip && pn_rl_ports_init(&a->ports, WHO, err, errlen) < 0)
        goto fail;
    a->ports.reuseport = p->shards > 1;

    /* Protocol 0 until the rings exist: nothing queues up before then. */
    a->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (a->fd < 0) {
        if (errno == EPERM || errno == EACCES)
            pn_rl_errf(err, errlen, WHO,
                       "socket(AF_PACKET) needs CAP_NET_RAW: run as root or grant the "
                       "capability (setcap cap_net_raw+ep, or a user namespace)");
        else
            pn_rl_errf(err, errlen, WHO, "socket(AF_PACKET): %s", strerror(errno));
        goto fail;
    }
    int v = TPACKET_V2;
    if (setopt(a, PACKET_VERSION, &v, sizeof v, "PACKET_VERSION", err, errlen) < 0)
        goto fail;
    v = 1;
    if (setopt(a, PACKET_LOSS, &v, sizeof v, "PACKET_LOSS", err, errlen) < 0)
        goto fail;
    if (setopt(a, PACKET_IGNORE_OUTGOING, &v, sizeof v, "PACKET_IGNORE_OUTGOING", err,
               errlen) < 0)
        goto fail;
    /* Best effort: without it frames go through the qdisc, which is only slower. */
    (void)setsockopt(a->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &v, sizeof v);

    uint32_t block = frame_size > 4096 ? frame_size : 4096;
    struct tpacket_req req = {
        .tp_block_size = block,
        .tp_block_nr = frames / (block / frame_size),
        .tp_frame_size = frame_size,
        .tp_frame_nr = frames,
    };
    if (setopt(a, PACKET_RX_RING, &req, sizeof req, "PACKET_RX_RING", err, errlen) < 0)
        goto fail;
    if (setopt(a, PACKET_TX_RING, &req, sizeof req, "PACKET_TX_RING", err, errlen) < 0)
        goto fail;
    size_t ring_len = (size_t)req.tp_block_size * req.tp_block_nr;
    a->map_len = 2 * ring_len;
    a->map = mmap(NULL, a->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, a->fd, 0);
    if (a->map == MAP_FAILED) {
        a->map = NULL;
        pn_rl_errf(err, errlen, WHO, "mmap of the rings (%zu bytes): %s", a->map_len,
                   strerror(errno));
        goto fail;
    }
    a->rx_ring = a->map;
    a->tx_ring = a->map + ring_len;

    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = ifc.ifindex;
    if (bind(a->fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        pn_rl_errf(err, errlen, WHO, "bind to '%s': %s", p->ifname, strerror(errno));
        goto fail;
    }
    a->queue = p->queue;
    a->shards = p->shards;
    if (p->shards > 1) {
        /* sharding: the shards' sockets on this interface form one fanout group (its id:
         * the interface's index) -- in any process, as fanout groups span them -- and the
         * group's program hands each flow's frames to one of them */
        int fanout = (int)((uint32_t)(ifc.ifindex & 0xffff) | (PACKET_FANOUT_CBPF << 16));
        if (setopt(a, PACKET_FANOUT, &fanout, sizeof fanout, "PACKET_FANOUT", err,
                   errlen) < 0 || set_fanout_program(a, p->shards, err, errlen) < 0)
            goto fail;
    }
    /* Without it the link still carries ARP and ICMP; flow_add says what is missing in
     * shared-address mode. With an own address it saves the kernel routing (or
     * dropping) each of the stack's frames, and is not needed. */
    a->hide = pn_rl_tc_hide_open(ifc.ifindex, WHO, a->hide_err, sizeof a->hide_err);
    if (a->hide != NULL && a->own_ip && p->local_ip != 0 &&
        pn_rl_tc_hide_own_ip(a->hide, p->local_ip) < 0) {
        pn_rl_tc_hide_close(a->hide);
        a->hide = NULL;
    }
    return &a->rl.link;

fail:
    ap_destroy(&a->rl.link);
    return NULL;
}
