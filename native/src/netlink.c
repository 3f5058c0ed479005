/*
 * netlink.c -- routes and neighbours through rtnetlink, and what the real links share
 * (interface facts, error messages, shared-address port reservations, their counters).
 * Over five hundred lines, one concern: what the real links ask the kernel.
 *
 * Nothing here is on a hot path: route lookups happen before a connect, reservations in
 * flow_add/flow_del, interface facts at link creation.
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
#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/ethtool.h>
#include <linux/neighbour.h>
#include <linux/sockios.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "real_link.h"

/* ------------------------------------------------------------------ messages */

void pn_rl_errf(char *err, size_t errlen, const char *who, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    int n = snprintf(err, errlen, "%s: ", who);
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static void ip_str(uint32_t ip, char buf[16])
{
    snprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

/* ------------------------------------------------------------------ interfaces */

int pn_rl_if_facts(const char *ifname, const char *who, pn_if_facts *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (ifname == NULL || ifname[0] == '\0' || strlen(ifname) >= IFNAMSIZ) {
        pn_rl_errf(err, errlen, who, "interface name '%s' is empty or longer than %d bytes",
                   ifname ? ifname : "", IFNAMSIZ - 1);
        return PN_EINVAL;
    }
    out->ifindex = (int)if_nametoindex(ifname);
    if (out->ifindex == 0) {
        pn_rl_errf(err, errlen, who,
                   "no interface '%s' in this network namespace (see `ip link`)", ifname);
        return PN_EINVAL;
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        pn_rl_errf(err, errlen, who, "socket(AF_INET): %s", strerror(errno));
        return PN_ELINK;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, ifname, strlen(ifname));
    int rc = PN_OK;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
        pn_rl_errf(err, errlen, who, "SIOCGIFHWADDR on '%s': %s", ifname, strerror(errno));
        rc = PN_ELINK;
        goto out;
    }
    if (ifr.ifr_hwaddr.sa_family != 1 /* ARPHRD_ETHER */) {
        pn_rl_errf(err, errlen, who, "'%s' is not an Ethernet interface (hardware type %u)",
                   ifname, (unsigned)ifr.ifr_hwaddr.sa_family);
        rc = PN_EINVAL;
        goto out;
    }
    memcpy(out->mac, ifr.ifr_hwaddr.sa_data, 6);
    if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) {
        pn_rl_errf(err, errlen, who, "SIOCGIFMTU on '%s': %s", ifname, strerror(errno));
        rc = PN_ELINK;
        goto out;
    }
    out->mtu = (uint32_t)ifr.ifr_mtu;
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
        pn_rl_errf(err, errlen, who, "SIOCGIFFLAGS on '%s': %s", ifname, strerror(errno));
        rc = PN_ELINK;
        goto out;
    }
    out->up = (ifr.ifr_flags & IFF_UP) != 0;
    if (!out->up) {  /* no link can run on it: say so before anything is allocated */
        pn_rl_errf(err, errlen, who, "interface '%s' is down (ip link set dev %s up)", ifname,
                   ifname);
        rc = PN_EINVAL;
        goto out;
    }
    /* Offloads that matter to a link below GRO (best effort: a driver may not say). */
    struct ethtool_drvinfo di;
    memset(&di, 0, sizeof di);
    di.cmd = ETHTOOL_GDRVINFO;
    ifr.ifr_data = (char *)&di;
    if (ioctl(fd, SIOCETHTOOL, &ifr) == 0)
        out->veth = strcmp(di.driver, "veth") == 0;
    struct ethtool_value ev = {.cmd = ETHTOOL_GGRO, .data = 0};
    ifr.ifr_data = (char *)&ev;
    if (ioctl(fd, SIOCETHTOOL, &ifr) == 0 && ev.data)
        out->merges = 1;
    ev.cmd = ETHTOOL_GFLAGS;
    ev.data = 0;
    if (ioctl(fd, SIOCETHTOOL, &ifr) == 0 && (ev.data & ETH_FLAG_LRO))
        out->merges = 1;
out:
    close(fd);
    return rc;
}

static int ethtool_ioctl(int fd, const char *ifname, void *data)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, ifname, strnlen(ifname, IFNAMSIZ - 1));
    ifr.ifr_data = data;
    return ioctl(fd, SIOCETHTOOL, &ifr);
}

int pn_rl_rx_spread(const char *ifname, uint32_t queue, uint32_t *nqueues)
{
    *nqueues = 1;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int spread = 0;
    struct ethtool_channels ch;
    memset(&ch, 0, sizeof ch);
    ch.cmd = ETHTOOL_GCHANNELS;
    if (ethtool_ioctl(fd, ifname, &ch) == 0)
        *nqueues = ch.rx_count + ch.combined_count;
    if (*nqueues <= 1)
        goto out;
    struct ethtool_value ev = {.cmd = ETHTOOL_GFLAGS, .data = 0};
    if (ethtool_ioctl(fd, ifname, &ev) == 0 && (ev.data & ETH_FLAG_NTUPLE))
        goto out;  /* the user can steer our flows to the queue */
    spread = 1;
    struct ethtool_rxfh_indir q = {.cmd = ETHTOOL_GRXFHINDIR, .size = 0};
    if (ethtool_ioctl(fd, ifname, &q) == 0 && q.size > 0 && q.size <= 65536) {
        struct ethtool_rxfh_indir *t = calloc(1, sizeof *t + q.size * sizeof(uint32_t));
        if (t != NULL) {
            t->cmd = ETHTOOL_GRXFHINDIR;
            t->size = q.size;
            if (ethtool_ioctl(fd, ifname, t) == 0) {
                spread = 0;
                for (uint32_t i = 0; i < t->size; i++)
                    if (t->ring_index[i] != queue)
                        spread = 1;
            }
            free(t);
        }
    }
out:
    close(fd);
    return spread;
}

#define PN_RSS_HASH_TOP 1u   /* ETH_RSS_HASH_TOP: bit 0 of hfunc (the kernel's ethtool.h) */

int pn_rl_rss_read(const char *ifname, pn_rss *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(): %s", strerror(errno));
        return -1;
    }
    struct ethtool_rxfh q = {.cmd = ETHTOOL_GRSSH};
    struct ethtool_rxfh *t = NULL;
    int rc = -1;
    if (ethtool_ioctl(fd, ifname, &q) != 0) {
        snprintf(err, errlen, "no RSS key or table from its driver: %s", strerror(errno));
        goto out;
    }
    if (q.indir_size == 0 || q.indir_size > 65536 || q.key_size < 16 ||
        q.key_size > sizeof out->key) {
        snprintf(err, errlen, "an RSS table of %u, key of %u bytes", q.indir_size,
                 q.key_size);
        goto out;
    }
    t = calloc(1, sizeof *t + q.indir_size * sizeof(uint32_t) + q.key_size);
    out->indir = calloc(q.indir_size, sizeof *out->indir);
    if (t == NULL || out->indir == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    *t = q;
    if (ethtool_ioctl(fd, ifname, t) != 0) {
        snprintf(err, errlen, "ETHTOOL_GRSSH: %s", strerror(errno));
        goto out;
    }
    if (t->hfunc != 0 && !(t->hfunc & PN_RSS_HASH_TOP)) {
        snprintf(err, errlen, "RSS hash not Toeplitz: ethtool -X IF hfunc toeplitz");
        goto out;
    }
    memcpy(out->indir, t->rss_config, q.indir_size * sizeof(uint32_t));
    memcpy(out->key, (uint8_t *)(t->rss_config + q.indir_size), q.key_size);
    out->indir_size = q.indir_size;
    out->key_len = q.key_size;
    rc = 0;
out:
    if (rc < 0) {
        free(out->indir);
        out->indir = NULL;
    }
    free(t);
    close(fd);
    return rc;
}

void pn_rl_merge_error(const pn_if_facts *ifc, const char *ifname, const char *who,
                       char *err, size_t errlen)
{
    (void)ifc;
    pn_rl_errf(err, errlen, who,
               "'%s' has GRO or LRO on: the kernel would hand this link TCP segments merged "
               "past the MTU, which the stack cannot take; turn them off first "
               "(ethtool -K %s gro off lro off)", ifname, ifname);
}

void pn_rl_note_gso_drop(pn_link *l, const char *who, uint32_t len)
{
    if (l->err[0] != '\0')
        return;
    pn_rl_errf(l->err, sizeof l->err, who,
               "dropped a %u-byte merged (GSO/GRO) frame: turn off TSO/GSO on the sender "
               "(a veth peer: ethtool -K PEER tso off gso off) or GRO here", len);
}

/* ------------------------------------------------------------------ port reservations */

static uint64_t netns_ino(void)
{
    struct stat st;
    return stat("/proc/thread-self/ns/net", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

int pn_rl_ports_init(pn_port_resv *r, const char *who, char *err, size_t errlen)
{
    r->count = 0;
    r->ns_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    r->ns_ino = netns_ino();
    r->fd = malloc(65536 * sizeof *r->fd);
    r->refs = calloc(65536, sizeof *r->refs);
    if (r->fd == NULL || r->refs == NULL) {
        free(r->fd);
        free(r->refs);
        r->fd = NULL;
        r->refs = NULL;
        if (r->ns_fd >= 0)
            close(r->ns_fd);
        r->ns_fd = -1;
        pn_rl_errf(err, errlen, who, "out of memory for the port table");
        return PN_ENOMEM;
    }
    for (int i = 0; i < 65536; i++)
        r->fd[i] = -1;
    return PN_OK;
}

int pn_rl_port_hold(pn_port_resv *r, uint32_t ip, uint16_t port, char *err, size_t errlen)
{
    if (r->fd == NULL)
        return PN_OK;
    if (r->refs[port] > 0) {
        if (r->refs[port] == UINT16_MAX)
            return PN_EPORT;
        r->refs[port]++;
        return PN_OK;
    }
    /* In the link's namespace: step into it for the socket() call if the caller is not. */
    int back = -1;
    if (r->ns_fd >= 0 && r->ns_ino != 0 && netns_ino() != r->ns_ino) {
        back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (back < 0 || setns(r->ns_fd, CLONE_NEWNET) != 0) {
            pn_rl_errf(err, errlen, "port reservation",
                       "entering the link's network namespace: %s", strerror(errno));
            if (back >= 0)
                close(back);
            return PN_ELINK;
        }
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int sock_errno = errno;
    int one = 1;
    if (fd >= 0 && r->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one))
        sock_errno = errno, close(fd), fd = -1;
    if (back >= 0) {
        (void)setns(back, CLONE_NEWNET);
        close(back);
    }
    if (fd < 0) {
        pn_rl_errf(err, errlen, "port reservation", "socket(): %s", strerror(sock_errno));
        return PN_ELINK;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(ip);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        char ips[16];
        ip_str(ip, ips);
        close(fd);
        pn_rl_errf(err, errlen, "port reservation", "bind %s:%u: %s%s", ips, port, strerror(e),
                   e != EADDRINUSE ? ""
                   : r->reuseport ? " (a kernel socket without SO_REUSEPORT, or another "
                                    "user's, has this port: stop it or use another port)"
                                  : " (a kernel socket has this port: stop it or use "
                                    "another port)");
        return e == EADDRINUSE ? PN_EPORT : PN_ELINK;
    }
    r->fd[port] = fd;
    r->refs[port] = 1;
    r->count++;
    return PN_OK;
}

void pn_rl_port_release(pn_port_resv *r, uint16_t port)
{
    if (r->fd == NULL || r->refs[port] == 0)
        return;
    if (--r->refs[port] == 0) {
        close(r->fd[port]);
        r->fd[port] = -1;
        r->count--;
    }
}

void pn_rl_ports_free(pn_port_resv *r)
{
    if (r->fd == NULL)
        return;  /* never initialised (own_ip), or freed already */
    for (int i = 0; i < 65536; i++)
        if (r->fd[i] >= 0)
            close(r->fd[i]);
    free(r->fd);
    free(r->refs);
    r->fd = NULL;
    r->refs = NULL;
    r->count = 0;
    if (r->ns_fd >= 0)
        close(r->ns_fd);
    r->ns_fd = -1;
}

/* ------------------------------------------------------------------ counters */

int pn_real_link_stats_get(pn_link *l, pn_real_link_stats *out)
{
    if (l == NULL || l->ops == NULL || l->ops->name == NULL ||
        (strcmp(l->ops->name, "af_packet") != 0 && strcmp(l->ops->name, "af_xdp") != 0 &&
         strcmp(l->ops->name, "efvi") != 0))
        return PN_EINVAL;
    pn_real_link *rl = (pn_real_link *)l;
    if (rl->refresh_stats != NULL)
        rl->refresh_stats(rl);
    *out = rl->stats;
    return PN_OK;
}

/* ------------------------------------------------------------------ rtnetlink */

typedef int (*nl_cb)(const struct nlmsghdr *h, void *ctx);

/* Sends one request and feeds every reply to cb until DONE (dumps), an ACK/error, or the
 * single answer of a plain request. Returns 0 or -errno. */
static int nl_talk(void *req, uint32_t len, nl_cb cb, void *ctx)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct nlmsghdr *rq = req;
    rq->nlmsg_seq = 1;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, req, len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    int dump = (rq->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
    int ack = (rq->nlmsg_flags & NLM_F_ACK) != 0;
    static __thread char buf[32768] __attribute__((aligned(8)));
    int rc = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        int done = 0;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (uint32_t)n);
             h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != 1)
                continue;
            if (h->nlmsg_type == NLMSG_DONE) {
                done = 1;
                break;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                rc = e->error;
                done = 1;
                break;
            }
            if (rc == 0 && cb != NULL)
                rc = cb(h, ctx);
            if (!dump && !ack)
                done = 1;
        }
        if (done)
            break;
    }
    close(fd);
    return rc;
}

struct route_req {
    struct nlmsghdr h;
    struct rtmsg r;
    char attrs[64];
};

static void add_attr32(struct nlmsghdr *h, uint16_t type, uint32_t v)
{
    struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(4);
    memcpy(RTA_DATA(a), &v, 4);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

static int route_cb(const struct nlmsghdr *h, void *ctx)
{
    pn_route *out = ctx;
    if (h->nlmsg_type != RTM_NEWROUTE)
        return 0;
    const struct rtmsg *r = NLMSG_DATA(h);
    if (r->rtm_type != RTN_UNICAST && r->rtm_type != RTN_LOCAL)
        return -ENETUNREACH;
    int len = (int)RTM_PAYLOAD(h);
    for (const struct rtattr *a = RTM_RTA(r); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        uint32_t v = 0;
        if (RTA_PAYLOAD(a) >= 4)
            memcpy(&v, RTA_DATA(a), 4);
        switch (a->rta_type) {
        case RTA_OIF: out->ifindex = (int)v; break;
        case RTA_GATEWAY: out->gateway = ntohl(v); break;
        case RTA_PREFSRC: out->src = ntohl(v); break;
        default: break;
        }
    }
    return 0;
}

static int neigh_cb(const struct nlmsghdr *h, void *ctx)
{
    pn_route *out = ctx;
    if (h->nlmsg_type != RTM_NEWNEIGH)
        return 0;
    const struct ndmsg *nd = NLMSG_DATA(h);
    if (nd->ndm_family != AF_INET || nd->ndm_ifindex != out->ifindex)
        return 0;
    if (!(nd->ndm_state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE |
                           NUD_PERMANENT | NUD_NOARP)))
        return 0;
    int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *nd));
    uint32_t dst = 0;
    const uint8_t *mac = NULL;
    for (const struct rtattr *a = (const struct rtattr *)((const char *)nd +
                                                          NLMSG_ALIGN(sizeof *nd));
         RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == NDA_DST && RTA_PAYLOAD(a) == 4)
            memcpy(&dst, RTA_DATA(a), 4);
        else if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6)
            mac = RTA_DATA(a);
    }
    if (mac != NULL && ntohl(dst) == out->next_hop) {
        memcpy(out->mac, mac, 6);
        out->has_mac = 1;
    }
    return 0;
}

static int addr_cb(const struct nlmsghdr *h, void *ctx)
{
    pn_route *out = ctx;
    if (h->nlmsg_type != RTM_NEWADDR)
        return 0;
    const struct ifaddrmsg *ia = NLMSG_DATA(h);
    if (ia->ifa_family != AF_INET)
        return 0;
    int len = (int)IFA_PAYLOAD(h);
    for (const struct rtattr *a = IFA_RTA(ia); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        uint32_t v;
        if (a->rta_type == IFA_LOCAL && RTA_PAYLOAD(a) == 4) {
            memcpy(&v, RTA_DATA(a), 4);
            if (ntohl(v) == out->src)
                out->src_prefix_len = ia->ifa_prefixlen;
        }
    }
    return 0;
}

int pn_route_lookup(uint32_t dst, pn_route *out, char *err, size_t errlen)
{
    static const char who[] = "route lookup";
    char ips[16];
    ip_str(dst, ips);
    memset(out, 0, sizeof *out);
    out->dst = dst;

    struct route_req rq;
    memset(&rq, 0, sizeof rq);
    rq.h.nlmsg_len = NLMSG_LENGTH(sizeof rq.r);
    rq.h.nlmsg_type = RTM_GETROUTE;
    rq.h.nlmsg_flags = NLM_F_REQUEST;
    rq.r.rtm_family = AF_INET;
    rq.r.rtm_dst_len = 32;
    add_attr32(&rq.h, RTA_DST, htonl(dst));
    int rc = nl_talk(&rq, rq.h.nlmsg_len, route_cb, out);
    if (rc == -ENETUNREACH || rc == -EHOSTUNREACH || rc == -EINVAL) {
        pn_rl_errf(err, errlen, who, "no route to %s in this network namespace (see `ip route`)",
                   ips);
        return PN_ENOROUTE;
    }
    if (rc < 0) {
        pn_rl_errf(err, errlen, who, "RTM_GETROUTE %s: %s", ips, strerror(-rc));
        return PN_ELINK;
    }
    if (out->ifindex == 0) {
        pn_rl_errf(err, errlen, who, "the kernel's route to %s names no interface", ips);
        return PN_ENOROUTE;
    }
    out->next_hop = out->gateway ? out->gateway : dst;
    if (if_indextoname((unsigned)out->ifindex, out->ifname) == NULL)
        out->ifname[0] = '\0';

    struct {
        struct nlmsghdr h;
        struct ndmsg n;
    } nq;
    memset(&nq, 0, sizeof nq);
    nq.h.nlmsg_len = NLMSG_LENGTH(sizeof nq.n);
    nq.h.nlmsg_type = RTM_GETNEIGH;
    nq.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    nq.n.ndm_family = AF_INET;
    nq.n.ndm_ifindex = out->ifindex;
    rc = nl_talk(&nq, nq.h.nlmsg_len, neigh_cb, out);
    if (rc < 0) {
        pn_rl_errf(err, errlen, who, "RTM_GETNEIGH: %s", strerror(-rc));
        return PN_ELINK;
    }

    if (out->src != 0) {
        struct {
            struct nlmsghdr h;
            struct ifaddrmsg a;
        } aq;
        memset(&aq, 0, sizeof aq);
        aq.h.nlmsg_len = NLMSG_LENGTH(sizeof aq.a);
        aq.h.nlmsg_type = RTM_GETADDR;
        aq.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        aq.a.ifa_family = AF_INET;
        aq.a.ifa_index = (uint32_t)out->ifindex;
        rc = nl_talk(&aq, aq.h.nlmsg_len, addr_cb, out);
        if (rc < 0) {
            pn_rl_errf(err, errlen, who, "RTM_GETADDR: %s", strerror(-rc));
            return PN_ELINK;
        }
    }
    return PN_OK;
}

int pn_route_neigh_probe(uint32_t ip, int ifindex, char *err, size_t errlen)
{
    struct {
        struct nlmsghdr h;
        struct ndmsg n;
        char attrs[16];
    } rq;
    memset(&rq, 0, sizeof rq);
    rq.h.nlmsg_len = NLMSG_LENGTH(sizeof rq.n);
    rq.h.nlmsg_type = RTM_NEWNEIGH;
    rq.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK;
    rq.n.ndm_family = AF_INET;
    rq.n.ndm_ifindex = ifindex;
    rq.n.ndm_state = NUD_NONE;
    rq.n.ndm_flags = NTF_USE;
    add_attr32(&rq.h, NDA_DST, htonl(ip));
    int rc = nl_talk(&rq, rq.h.nlmsg_len, NULL, NULL);
    if (rc < 0) {
        char ips[16];
        ip_str(ip, ips);
        pn_rl_errf(err, errlen, "neighbour resolve", "RTM_NEWNEIGH %s (NTF_USE): %s%s", ips,
                   strerror(-rc), rc == -EPERM ? " (needs CAP_NET_ADMIN)" : "");
        return rc == -EPERM ? PN_EINVAL : PN_ELINK;
    }
    return PN_OK;
}

int pn_rl_neigh_lookup(int ifindex, uint32_t ip, uint8_t mac[6])
{
    pn_route r;
    char err[128];
    if (pn_route_lookup(ip, &r, err, sizeof err) == 0 && r.has_mac && r.next_hop == ip &&
        r.ifindex == ifindex) {
        memcpy(mac, r.mac, 6);
        return 1;
    }
    (void)pn_route_neigh_probe(ip, ifindex, err, sizeof err);
    return 0;
}
