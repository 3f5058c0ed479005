/*
 * pn_xdp.c -- the XDP program of pollnet's af_xdp link.
 *
 * Steers to the AF_XDP socket of the receiving queue only the frames that belong to the
 * user-space stack, and passes everything else to the kernel (SSH, ARP, the kernel's own
 * sockets keep working):
 *
 *   - IPv4/TCP whose (dst ip, src ip, dst port, src port) is in `pn_flows` (a connection),
 *     or whose (dst ip, dst port) is there with a zero remote half (a listener);
 *   - when cfg.own_ip is set (the stack owns an address the kernel does not have): every
 *     IPv4 frame to that address and every ARP frame whose target is that address;
 *   - when it is not (the stack shares the kernel's address): ARP replies from an address
 *     in `pn_arp_wait`, which the link fills when the stack sends an ARP request (the
 *     kernel did not ask, so it misses nothing).
 *
 * pn_tc_hide, af_packet's tc ingress filter, runs after packet sockets have seen a frame
 * and drops, before the kernel's IP stack: a flow's frames in `pn_flows` (the stacks
 * share the kernel's address), and every IPv4 frame to cfg.own_ip (an address of their
 * own, which the kernel would route or drop at a cost per frame).
 *
 * Keys and cfg.own_ip are in network byte order, exactly as the bytes sit in the frame.
 * Built by native/build_links.py with `clang -O2 -g -target bpf` and embedded in the link.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct pn_flow_key {
    __u32 local_ip;
    __u32 remote_ip;
    __u16 local_port;
    __u16 remote_port;
};

struct pn_xdp_cfg {
    __u32 own_ip;       /* 0: shared address, steer flows only */
    __u32 pad;
};

enum { PN_XDP_PASS = 0, PN_XDP_FLOW = 1, PN_XDP_OWN = 2, PN_XDP_ARP = 3, PN_XDP_NSTATS = 4 };

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u32);
} pn_xsks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct pn_flow_key);
    __type(value, __u32);
} pn_flows SEC(".maps");

/* Shared-address mode: addresses the stack has just sent an ARP request for (network
 * byte order). Their ARP replies go to the stack: the kernel did not ask. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, __u32);
} pn_arp_wait SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct pn_xdp_cfg);
} pn_cfg SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, PN_XDP_NSTATS);
    __type(key, __u32);
    __type(value, __u64);
} pn_stats SEC(".maps");

/* ARP for IPv4 over Ethernet: fixed 28 bytes. */
struct pn_arp {
    __be16 htype, ptype;
    __u8 hlen, plen;
    __be16 oper;
    __u8 sha[6];
    __u8 spa[4];
    __u8 tha[6];
    __u8 tpa[4];
} __attribute__((packed));

static __always_inline int count(__u32 what, int action)
{
    __u64 *c = bpf_map_lookup_elem(&pn_stats, &what);
    if (c)
        *c += 1;
    return action;
}

static __always_inline int to_xsk(struct xdp_md *ctx, __u32 what)
{
    count(what, 0);
    /* No socket registered for this queue: the frame goes to the kernel. */
    return bpf_redirect_map(&pn_xsks, ctx->rx_queue_index, XDP_PASS);
}

/* 1 when ip (its header checked against end) is TCP of a flow in pn_flows. */
static __always_inline int tcp_flow_match(struct iphdr *ip, void *end)
{
    /* Only the first (or only) fragment carries the ports. */
    if (ip->protocol != IPPROTO_TCP || (ip->frag_off & bpf_htons(0x1fff)) != 0)
        return 0;
    struct tcphdr *tcp = (void *)ip + ip->ihl * 4;
    if ((void *)tcp + 4 > end)
        return 0;
    struct pn_flow_key key = {
        .local_ip = ip->daddr,
        .remote_ip = ip->saddr,
        .local_port = tcp->dest,
        .remote_port = tcp->source,
    };
    if (bpf_map_lookup_elem(&pn_flows, &key))
        return 1;
    key.remote_ip = 0;
    key.remote_port = 0;
    return bpf_map_lookup_elem(&pn_flows, &key) != 0;
}

SEC("xdp")
int pn_xdp_steer(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    __u32 zero = 0;

    if ((void *)(eth + 1) > end)
        return count(PN_XDP_PASS, XDP_PASS);

    struct pn_xdp_cfg *cfg = bpf_map_lookup_elem(&pn_cfg, &zero);
    __u32 own_ip = cfg ? cfg->own_ip : 0;

    if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
        struct pn_arp *arp = (void *)(eth + 1);
        if ((void *)(arp + 1) > end || arp->ptype != bpf_htons(ETH_P_IP))
            return count(PN_XDP_PASS, XDP_PASS);
        __u32 tpa, spa;
        __builtin_memcpy(&tpa, arp->tpa, 4);
        __builtin_memcpy(&spa, arp->spa, 4);
        if (own_ip != 0 && tpa == own_ip)
            return to_xsk(ctx, PN_XDP_OWN);
        if (own_ip == 0 && arp->oper == bpf_htons(2) && bpf_map_lookup_elem(&pn_arp_wait, &spa))
            return to_xsk(ctx, PN_XDP_ARP);
        return count(PN_XDP_PASS, XDP_PASS);
    }
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return count(PN_XDP_PASS, XDP_PASS);

    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
        return count(PN_XDP_PASS, XDP_PASS);
    if (own_ip != 0 && ip->daddr == own_ip)
        return to_xsk(ctx, PN_XDP_OWN);
    if (tcp_flow_match(ip, end))
        return to_xsk(ctx, PN_XDP_FLOW);
    return count(PN_XDP_PASS, XDP_PASS);
}

/*
 * af_packet in shared-address mode: a tc ingress filter (tcx) that hides our flows from
 * the kernel's IP stack. Packet sockets see a frame before tc ingress, so the stack still
 * gets it; the kernel never does, and so never answers our peers with RSTs.
 */
SEC("tc")
int pn_tc_hide(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
        return TC_ACT_OK;
    if (tcp_flow_match(ip, end)) {
        count(PN_XDP_FLOW, 0);
        return TC_ACT_SHOT;
    }
    /* an address of the stack's own: the kernel would only route (or drop) its frames */
    __u32 zero = 0;
    struct pn_xdp_cfg *cfg = bpf_map_lookup_elem(&pn_cfg, &zero);
    if (cfg && cfg->own_ip && ip->daddr == cfg->own_ip) {
        count(PN_XDP_OWN, 0);
        return TC_ACT_SHOT;
    }
    return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
