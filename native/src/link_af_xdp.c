/*
 * link_af_xdp.c -- the af_xdp link: kernel bypass on any Linux NIC through an XDP program
 * and an AF_XDP socket (UMEM + fill, completion, RX and TX rings) bound to one RX queue.
 * One file of about a thousand lines, as every link is one file (pn_link.h): the rings,
 * the XDP program and its map, and the shared-address modes all serve its ops.
 *
 * The XDP program (native/bpf/pn_xdp.c, embedded at build time as pn_xdp_obj.h by
 * native/build_links.py: nothing is looked up at run time) steers to the socket only the
 * frames of our flows -- the pn_flows map, which flow_add/flow_del keep -- and, when the
 * stack owns its address (own_ip), every frame to that address and ARP for it. Everything
 * else goes on to the kernel, so SSH, ARP and the kernel's own sockets keep working.
 *
 * Attaching: a BPF link (bpf_link_create, BPF_XDP), so the program is detached when the
 * link is destroyed, at exit, and also when the process dies any other way (the kernel
 * drops it with the last fd). Kernels without XDP BPF links get bpf_xdp_attach() with
 * XDP_FLAGS_UPDATE_IF_NOEXIST, detached by destroy() and an atexit handler; a signal
 * handler that ends the process should call pn_real_links_detach_all() (tests also clean
 * up with `ip -n NS link set dev IF xdpgeneric off` / `xdpdrv off`). Either way an XDP
 * program someone else attached is never replaced: creation fails and says so.
 *
 * Modes (pn_real_link_params.mode):
 *   AUTO      native XDP when the driver has it, generic (SKB) otherwise; the kernel
 *             binds zero-copy where the driver allows and copy mode elsewhere (veth).
 *   NATIVE    native XDP only, zero-copy or copy as the driver allows.
 *   GENERIC   generic XDP, copy mode.
 *   ZEROCOPY  native XDP, zero-copy, or fail.
 *
 * UMEM: 2 * ring_frames frames; the first half circulates through fill -> RX -> the stack
 * -> fill, the second half through a free list -> TX -> completion -> free list. Copy-mode
 * transmit needs a sendto() kick, and the kernel sends at most 32 frames a kick, so
 * tx_flush kicks until the TX ring is drained (or the kernel says try later).
 *
 * Shared-address mode (own_ip 0): flow_add also holds each local port with a kernel
 * socket bound to ip:port (real_link.h) so the kernel never hands the port out; the
 * kernel never sees the flow's frames, so it never RSTs our peers. The stack's own ARP
 * works too: when it sends an ARP request, the link puts the target in `pn_arp_wait` and
 * the XDP program steers the reply to the stack (the kernel did not ask for it).
 *
 * Without libxdp/libbpf at build time (PN_HAVE_AF_XDP undefined) only a stub remains that
 * says how to get the real thing.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "real_link.h"

#define WHO "af_xdp"

#ifndef PN_HAVE_AF_XDP

pn_link *pn_af_xdp_link_create(const pn_real_link_params *p, char *err, size_t errlen)
{
    (void)p;
    pn_rl_errf(err, errlen, WHO,
               "this build has no af_xdp link: libxdp, libbpf or clang was missing when it "
               "was built (apt-get install libxdp-dev libbpf-dev clang llvm, then rebuild)");
    return NULL;
}

void pn_real_links_detach_all(void)
{
}

pn_tc_hide *pn_rl_tc_hide_open(int ifindex, const char *who, char *err, size_t errlen)
{
    (void)ifindex;
    pn_rl_errf(err, errlen, who,
               "this build has no libbpf, so nothing can hide the stack's flows from the "
               "kernel (apt-get install libbpf-dev clang, then rebuild)");
    return NULL;
}

int pn_rl_tc_hide_flow(pn_tc_hide *h, const pn_flow *f, int add)
{
    (void)h;
    (void)f;
    (void)add;
    return PN_ELINK;
}

int pn_rl_tc_hide_own_ip(pn_tc_hide *h, uint32_t ip)
{
    (void)h;
    (void)ip;
    return PN_ELINK;
}

uint64_t pn_rl_tc_hidden(pn_tc_hide *h)
{
    (void)h;
    return 0;
}

void pn_rl_tc_hide_close(pn_tc_hide *h)
{
    (void)h;
}

#else /* PN_HAVE_AF_XDP */

#include <arpa/inet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/if_xdp.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#include "ax_fill.h"

#include "pn_xdp_obj.h"

#define DEFAULT_RING_FRAMES 1024u
#define MAX_RING_FRAMES 16384u
#define XDP_HEADROOM 256u       /* XDP_PACKET_HEADROOM: copy mode puts data after it */
#define KICKS_PER_FLUSH 64

/* Must match native/bpf/pn_xdp.c. */
struct pn_flow_key {
    uint32_t local_ip, remote_ip;     /* network byte order */
    uint16_t local_port, remote_port; /* network byte order */
};
struct pn_xdp_cfg {
    uint32_t own_ip;
    uint32_t pad;
};
enum { PN_XDP_PASS = 0, PN_XDP_FLOW = 1, PN_XDP_OWN = 2, PN_XDP_ARP = 3, PN_XDP_NSTATS = 4 };

typedef struct af_xdp_link {
    pn_real_link rl;
    char ifname[IF_NAMESIZE];
    int ifindex;
    ino_t netns;                 /* the network namespace ifindex is an index of */
    uint32_t queue;
    uint32_t shards;             /* > 1: may share another process's program (adopt()) */
    pn_rss rss;                  /* shards > 1: the NIC's RSS, to pick client ports */
    char rss_err[64];            /* why there is none */
    uint8_t own_ip;
    uint8_t veth;                /* the interface is a veth: see veth_csum_flags() */
    struct xdp_prog *xp;         /* the interface's program, shared with our other links */
    pid_t owner;

    void *area;
    size_t area_len;
    struct xsk_umem *umem;
    struct xsk_socket *xsk;
    int xsk_fd;
    struct xsk_ring_prod fill, tx;
    struct xsk_ring_cons comp, rx;
    uint32_t frames;             /* per ring; the UMEM has 2 * frames */
    uint32_t frame_size;
    uint64_t *tx_free;
    uint32_t tx_free_n;
    pn_ax_fill_backlog fill_wait; /* RX frames the fill ring had no room for yet */
    uint64_t tx_pending;         /* the buffer tx_buf() handed out, not yet sent */
    int tx_has_pending;
    int tx_dirty;                /* TX ring may hold frames the kernel has not taken */
    int ncpus;

    pn_port_resv ports;
    struct af_xdp_link *next;    /* every live link, for the exit handler */
} af_xdp_link;

static af_xdp_link *live_links;
static int exit_handler_set;

/* One XDP program per interface (and namespace) for every af_xdp link of this process on
 * it: each link puts its socket at its RX queue in the program's XSKMAP, so N stacks --
 * one a queue -- share an interface, and a flow goes to the stack of the queue its
 * frames arrive on. Links may be opened and polled from several threads: the list, the
 * references and the flow counts change under `xdp_lock`. */
typedef struct xdp_prog {
    ino_t netns;
    int ifindex;
    int refs;
    struct bpf_object *obj;
    int prog_fd, xsks_fd, flows_fd, cfg_fd, stats_fd, arp_fd;
    int bpf_link_fd;             /* >= 0: attached through a BPF link (ours or adopted) */
    int adopted;                 /* the fds are another process's program's, found by id */
    uint32_t nl_flags;           /* != 0: attached through netlink with these flags */
    uint32_t mode_flag;          /* XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE in force */
    uint32_t own_addr;           /* host order; 0 until known (own_ip mode) */
    pid_t owner;
    struct xdp_prog *next;
} xdp_prog;

static xdp_prog *live_progs;
static pthread_mutex_t xdp_lock = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------------------ attach / detach */

static void detach(xdp_prog *xp)
{
    if (xp->bpf_link_fd >= 0) {
        close(xp->bpf_link_fd);
        xp->bpf_link_fd = -1;
    }
    if (xp->nl_flags != 0) {
        LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = xp->prog_fd);
        /* REPLACE + the expected fd: only our own program is ever removed. */
        bpf_xdp_detach(xp->ifindex, xp->nl_flags | XDP_FLAGS_REPLACE, &opts);
        xp->nl_flags = 0;
    }
}

struct pn_tc_hide {
    struct bpf_object *obj;
    int flows_fd, stats_fd, cfg_fd;
    int link_fd;             /* tcx BPF link (kernel >= 6.6), or -1 */
    int classic;             /* attached as a classic tc filter instead */
    int hook_created;        /* we made the clsact qdisc: remove it after */
    int ifindex;
    pid_t owner;
    struct pn_tc_hide *next;
};
static struct pn_tc_hide *live_hides;
static void tc_detach(struct pn_tc_hide *h);

void pn_real_links_detach_all(void)
{
    pid_t me = getpid();
    for (xdp_prog *xp = live_progs; xp != NULL; xp = xp->next)
        if (xp->owner == me)  /* a forked child must not detach its parent's program */
            detach(xp);
    for (struct pn_tc_hide *h = live_hides; h != NULL; h = h->next)
        if (h->owner == me)
            tc_detach(h);
}

static void at_exit(void)
{
    pn_real_links_detach_all();
}

/* libbpf's messages: keep the last warning for our error text, print nothing. */
static char libbpf_msg[256];
static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    if (level != LIBBPF_DEBUG) {
        vsnprintf(libbpf_msg, sizeof libbpf_msg, fmt, ap);
        size_t n = strlen(libbpf_msg);
        while (n > 0 && libbpf_msg[n - 1] == '\n')
            libbpf_msg[--n] = '\0';
    }
    return 0;
}

/* Opens and loads the embedded BPF object (both programs and the maps). */
static struct bpf_object *open_object(const char *who, char *err, size_t errlen)
{
    libbpf_msg[0] = '\0';
    libbpf_print_fn_t old = libbpf_set_print(libbpf_quiet);
    LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = "pn_xdp");
    struct bpf_object *obj = bpf_object__open_mem(pn_xdp_obj, pn_xdp_obj_len, &oo);
    if (obj == NULL) {
        pn_rl_errf(err, errlen, who, "opening the embedded BPF object: %s (%s)",
                   strerror(errno), libbpf_msg);
    } else if (bpf_object__load(obj) != 0) {
        int e = errno;
        if (e == EPERM || e == EACCES)
            pn_rl_errf(err, errlen, who,
                       "loading BPF programs needs CAP_BPF and CAP_NET_ADMIN (run as root): %s",
                       libbpf_msg);
        else
            pn_rl_errf(err, errlen, who, "loading the BPF programs: %s (%s)", strerror(e),
                       libbpf_msg);
        bpf_object__close(obj);
        obj = NULL;
    }
    libbpf_set_print(old);
    return obj;
}

static int map_fd(struct bpf_object *obj, const char *name)
{
    struct bpf_map *m = bpf_object__find_map_by_name(obj, name);
    return m ? bpf_map__fd(m) : -1;
}

static int prog_fd(struct bpf_object *obj, const char *name)
{
    struct bpf_program *p = bpf_object__find_program_by_name(obj, name);
    return p ? bpf_program__fd(p) : -1;
}

/* The program's maps, named by map_names[] in the same order (load_program() and adopt() find them so). */
#define PN_XDP_NMAPS 5
static const char *const map_names[PN_XDP_NMAPS] = {"pn_xsks", "pn_flows", "pn_cfg",
                                                     "pn_stats", "pn_arp_wait"};
static void map_slots(xdp_prog *xp, int *slots[PN_XDP_NMAPS])
{
    slots[0] = &xp->xsks_fd;
    slots[1] = &xp->flows_fd;
    slots[2] = &xp->cfg_fd;
    slots[3] = &xp->stats_fd;
    slots[4] = &xp->arp_fd;
}

/* The interface's program for x: the one our other links there use, else a new one
 * (loaded, not yet attached). Under xdp_lock. */
static int load_program(af_xdp_link *x, char *err, size_t errlen)
{
    for (xdp_prog *xp = live_progs; xp != NULL; xp = xp->next)
        if (xp->ifindex == x->ifindex && xp->netns == x->netns && xp->owner == x->owner) {
            xp->refs++;
            x->xp = xp;
            return PN_OK;
        }
    xdp_prog *xp = calloc(1, sizeof *xp);
    if (xp == NULL) {
        pn_rl_errf(err, errlen, WHO, "out of memory");
        return PN_ENOMEM;
    }
    xp->netns = x->netns;
    xp->ifindex = x->ifindex;
    xp->refs = 1;
    xp->owner = x->owner;
    xp->bpf_link_fd = -1;
    xp->next = live_progs;
    live_progs = xp;
    x->xp = xp;
    xp->obj = open_object(WHO, err, errlen);
    if (xp->obj == NULL)
        return PN_ELINK;
    xp->prog_fd = prog_fd(xp->obj, "pn_xdp_steer");
    int *slots[PN_XDP_NMAPS], missing = xp->prog_fd < 0;
    map_slots(xp, slots);
    for (int j = 0; j < PN_XDP_NMAPS; j++)
        missing |= (*slots[j] = map_fd(xp->obj, map_names[j])) < 0;
    if (missing) {
        pn_rl_errf(err, errlen, WHO, "the embedded BPF object lacks a program or map");
        return PN_ELINK;
    }
    return PN_OK;
}

static void close_adopted(xdp_prog *xp)
{
    int *slots[PN_XDP_NMAPS];
    map_slots(xp, slots);
    for (int i = 0; i < PN_XDP_NMAPS; i++) {
        close(*slots[i]);
        *slots[i] = -1;
    }
    close(xp->prog_fd);
    xp->prog_fd = -1;
    xp->adopted = 0;
}

/* A link lets go of its program; the last one detaches and closes it. Under xdp_lock. */
static void release_program(af_xdp_link *x)
{
    xdp_prog *xp = x->xp;
    x->xp = NULL;
    if (xp == NULL || --xp->refs > 0)
        return;
    detach(xp);
    if (xp->adopted)
        close_adopted(xp);
    if (xp->obj != NULL)
        bpf_object__close(xp->obj);
    for (xdp_prog **pp = &live_progs; *pp != NULL; pp = &(*pp)->next)
        if (*pp == xp) {
            *pp = xp->next;
            break;
        }
    free(xp);
}

/* The program steers every frame to one own address: the stacks sharing it share that
 * address (sharding), and a second one is refused (-EADDRINUSE). */
static int set_own_ip(af_xdp_link *x, uint32_t ip)
{
    xdp_prog *xp = x->xp;
    if (xp->own_addr == ip)
        return 0;
    if (xp->own_addr != 0)
        return -EADDRINUSE;
    uint32_t zero = 0;
    struct pn_xdp_cfg cfg = {.own_ip = htonl(ip), .pad = 0};
    if (bpf_map_update_elem(xp->cfg_fd, &zero, &cfg, BPF_ANY) != 0)
        return -errno;
    xp->own_addr = ip;
    return 0;
}

/* Attach in one mode: a BPF link first, netlink when the kernel has no XDP links. */
static int attach_mode(xdp_prog *xp, uint32_t mode_flag)
{
    LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = mode_flag);
    int fd = bpf_link_create(xp->prog_fd, xp->ifindex, BPF_XDP, &lo);
    if (fd >= 0) {
        xp->bpf_link_fd = fd;
        xp->mode_flag = mode_flag;
        return 0;
    }
    int e = errno;
    if (e == EBUSY || e == EEXIST)
        return -e;  /* someone else's program: never replace it */
    if (e == EINVAL) {
        /* Old kernel without XDP BPF links: netlink, refusing to replace anything. */
        uint32_t fl = mode_flag | XDP_FLAGS_UPDATE_IF_NOEXIST;
        if (bpf_xdp_attach(xp->ifindex, xp->prog_fd, fl, NULL) == 0) {
            xp->nl_flags = mode_flag;
            xp->mode_flag = mode_flag;
            return 0;
        }
        return -errno;
    }
    return -e;
}

/* ------------------------------------------------------------------ shards across processes */

/* The BPF link attaching prog_id to ifindex, or -errno. */
static int find_xdp_link(int ifindex, uint32_t prog_id)
{
    uint32_t id = 0;
    while (bpf_link_get_next_id(id, &id) == 0) {
        int fd = bpf_link_get_fd_by_id(id);
        if (fd < 0)
            continue;
        struct bpf_link_info li;
        memset(&li, 0, sizeof li);
        uint32_t len = sizeof li;
        if (bpf_obj_get_info_by_fd(fd, &li, &len) == 0 && li.type == BPF_LINK_TYPE_XDP &&
            li.prog_id == prog_id && li.xdp.ifindex == (uint32_t)ifindex)
            return fd;
        close(fd);
    }
    return -ENOENT;
}

/* The attached program's maps by name, into fds (PN_XDP_NMAPS of them, -1 if absent). */
static void find_maps(const uint32_t *ids, uint32_t n, int *fds)
{
    for (int j = 0; j < PN_XDP_NMAPS; j++)
        fds[j] = -1;
    for (uint32_t i = 0; i < n; i++) {
        int fd = bpf_map_get_fd_by_id(ids[i]);
        if (fd < 0)
            continue;
        struct bpf_map_info mi;
        memset(&mi, 0, sizeof mi);
        uint32_t len = sizeof mi;
        int used = 0;
        if (bpf_obj_get_info_by_fd(fd, &mi, &len) == 0)
            for (int j = 0; j < PN_XDP_NMAPS && !used; j++)
                if (fds[j] < 0 && strcmp(mi.name, map_names[j]) == 0) {
                    fds[j] = fd;
                    used = 1;
                }
        if (!used)
            close(fd);
    }
}

/*
 * Shards in several processes share one program. The first attaches it through a BPF
 * link; each other finds it by id, checks it is the program it loaded itself (the
 * kernel's tag hashes the instructions), uses its maps and holds its link as well: the
 * kernel keeps a link attached while any process has it open, so the program outlives
 * whichever shard attached it, and goes with the last. Our own loaded copy, never
 * attached, is closed. 1: adopted; 0: the attached program is not ours; < 0: -errno.
 * Under xdp_lock.
 */
static int adopt(xdp_prog *xp, uint32_t *prog_id)
{
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(xp->ifindex, 0, &q) != 0)
        return -errno;
    *prog_id = q.prog_id;
    if (q.prog_id == 0)
        return -ENOENT;
    int pfd = bpf_prog_get_fd_by_id(q.prog_id);
    if (pfd < 0)
        return -errno;
    uint32_t map_ids[8];
    struct bpf_prog_info mine, theirs;
    memset(&mine, 0, sizeof mine);
    memset(&theirs, 0, sizeof theirs);
    theirs.nr_map_ids = 8;
    theirs.map_ids = (uint64_t)(uintptr_t)map_ids;
    uint32_t len = sizeof mine, len2 = sizeof theirs;
    if (bpf_obj_get_info_by_fd(xp->prog_fd, &mine, &len) != 0 ||
        bpf_obj_get_info_by_fd(pfd, &theirs, &len2) != 0) {
        int e = errno;
        close(pfd);
        return -e;
    }
    int fds[PN_XDP_NMAPS];
    find_maps(map_ids, theirs.nr_map_ids < 8 ? theirs.nr_map_ids : 8, fds);
    int ok = memcmp(mine.tag, theirs.tag, sizeof mine.tag) == 0 &&
             strcmp(mine.name, theirs.name) == 0;
    for (int j = 0; j < PN_XDP_NMAPS; j++)
        ok = ok && fds[j] >= 0;
    int lfd = ok ? find_xdp_link(xp->ifindex, q.prog_id) : -1;
    if (lfd < 0) {
        for (int j = 0; j < PN_XDP_NMAPS; j++)
            if (fds[j] >= 0)
                close(fds[j]);
        close(pfd);
        return ok ? -EOPNOTSUPP : 0;  /* ours, but attached through netlink: no link */
    }
    bpf_object__close(xp->obj);
    xp->obj = NULL;
    xp->adopted = 1;
    xp->prog_fd = pfd;
    int *slots[PN_XDP_NMAPS];
    map_slots(xp, slots);
    for (int j = 0; j < PN_XDP_NMAPS; j++)
        *slots[j] = fds[j];
    xp->bpf_link_fd = lfd;
    xp->mode_flag = q.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
    uint32_t zero = 0;
    struct pn_xdp_cfg cfg;
    xp->own_addr = bpf_map_lookup_elem(xp->cfg_fd, &zero, &cfg) == 0 ? ntohl(cfg.own_ip) : 0;
    return 1;
}

/* x's mode against the one the interface's program (ours, maybe another process's) runs in. */
static int same_mode(af_xdp_link *x, uint8_t mode, const char *whose, char *err, size_t errlen)
{
    xdp_prog *xp = x->xp;
    uint32_t want = mode == PN_XDP_MODE_GENERIC ? XDP_FLAGS_SKB_MODE
                    : mode == PN_XDP_MODE_AUTO  ? xp->mode_flag
                                                : XDP_FLAGS_DRV_MODE;
    if (want == xp->mode_flag)
        return PN_OK;
    pn_rl_errf(err, errlen, WHO, "'%s' already runs our XDP program in %s mode for "
               "another stack of %s: open this one in that mode too (or auto)",
               x->ifname, xp->mode_flag == XDP_FLAGS_SKB_MODE ? "generic" : "native", whose);
    return PN_ELINK;
}

/* Joins the program another process's shard attached: x's socket goes into its XSKMAP. */
static int join_other_process(af_xdp_link *x, uint8_t mode, char *err, size_t errlen)
{
    uint32_t id = 0;
    int rc = adopt(x->xp, &id);
    if (rc == 0) {
        pn_rl_errf(err, errlen, WHO, "interface '%s' already has an XDP program (id %u) that "
                   "is not this pollnet's (another program, or another version of ours): "
                   "shards share only the same program; see `ip link show %s`",
                   x->ifname, id, x->ifname);
        return PN_ELINK;
    }
    if (rc < 0) {
        pn_rl_errf(err, errlen, WHO, "sharing the XDP program (id %u) of another process's "
                   "shard on '%s': %s%s", id, x->ifname, strerror(-rc),
                   rc == -EOPNOTSUPP ? " (it was attached through netlink, not a BPF link: "
                   "the kernel is too old to share it)" : "");
        return PN_ELINK;
    }
    uint32_t q = x->queue;
    if (bpf_map_update_elem(x->xp->xsks_fd, &q, &x->xsk_fd, BPF_ANY) != 0) {
        pn_rl_errf(err, errlen, WHO, "registering the socket in the XSKMAP: %s",
                   strerror(errno));
        return PN_ELINK;
    }
    return same_mode(x, mode, "another process", err, errlen);
}

static int attach(af_xdp_link *x, uint8_t mode, char *err, size_t errlen)
{
    xdp_prog *xp = x->xp;
    if (xp->mode_flag != 0)     /* attached already, for another of our links */
        return same_mode(x, mode, "this process", err, errlen);
    int rc;
    if (mode == PN_XDP_MODE_GENERIC) {
        rc = attach_mode(xp, XDP_FLAGS_SKB_MODE);
    } else {
        rc = attach_mode(xp, XDP_FLAGS_DRV_MODE);
        if (rc < 0 && mode == PN_XDP_MODE_AUTO && rc != -EBUSY && rc != -EEXIST)
            rc = attach_mode(xp, XDP_FLAGS_SKB_MODE);
    }
    if (rc == 0)
        return PN_OK;
    if ((rc == -EBUSY || rc == -EEXIST) && x->shards > 1)
        return join_other_process(x, mode, err, errlen);
    uint32_t id = 0;
    bpf_xdp_query_id(x->ifindex, 0, &id);
    if (rc == -EBUSY || rc == -EEXIST)
        pn_rl_errf(err, errlen, WHO,
                   "interface '%s' already has an XDP program (id %u; see `ip link show %s`); "
                   "if it is a stale one of ours, detach it with `ip link set dev %s xdp off`",
                   x->ifname, id, x->ifname, x->ifname);
    else if (rc == -EPERM)
        pn_rl_errf(err, errlen, WHO, "attaching XDP to '%s' needs CAP_NET_ADMIN (run as root)",
                   x->ifname);
    else if (rc == -ENOSPC && x->veth)
        pn_rl_errf(err, errlen, WHO,
                   "attaching native XDP to '%s': %s (a veth needs as many RX queues as its "
                   "peer has TX queues: ethtool -L PEER tx N)", x->ifname, strerror(-rc));
    else
        pn_rl_errf(err, errlen, WHO, "attaching %s XDP to '%s': %s%s",
                   mode == PN_XDP_MODE_GENERIC ? "generic" : "native", x->ifname,
                   strerror(-rc),
                   mode == PN_XDP_MODE_NATIVE && (rc == -EOPNOTSUPP || rc == -EINVAL)
                       ? " (the driver may lack native XDP: try mode generic)" : "");
    return PN_ELINK;
}

static void flow_key(const pn_flow *f, struct pn_flow_key *k)
{
    memset(k, 0, sizeof *k);
    k->local_ip = htonl(f->local_ip);
    k->remote_ip = htonl(f->remote_ip);
    k->local_port = htons(f->local_port);
    k->remote_port = htons(f->remote_port);
}

/* ------------------------------------------------------------------ tc filter (af_packet) */

/*
 * af_packet sharing the kernel's address: packet sockets see each frame before tc ingress,
 * so a tc program (pn_tc_hide) that drops our flows' frames there hides them from the
 * kernel's IP stack -- which would otherwise answer them with RSTs -- while the stack
 * still gets them. Attached through tcx (a BPF link: gone with the process) where the
 * kernel has it, as a classic clsact filter (removed by close and at exit) otherwise.
 * PN_TEST_TC_CLASSIC in the environment forces the classic filter (for its test).
 */
#define PN_BPF_TCX_INGRESS 46       /* enum bpf_attach_type, kernels >= 6.6 */
#define PN_TC_HANDLE 0x706e         /* "pn" */
#define PN_TC_PRIO 0x706e

static void tc_detach(struct pn_tc_hide *h)
{
    if (h->link_fd >= 0) {
        close(h->link_fd);
        h->link_fd = -1;
    }
    if (h->classic) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = h->ifindex, .attach_point = BPF_TC_INGRESS);
        LIBBPF_OPTS(bpf_tc_opts, o, .handle = PN_TC_HANDLE, .priority = PN_TC_PRIO);
        libbpf_print_fn_t old = libbpf_set_print(libbpf_quiet);
        bpf_tc_detach(&hook, &o);
        if (h->hook_created) {
            /* Both points: that removes the clsact qdisc we made (one alone flushes). */
            LIBBPF_OPTS(bpf_tc_hook, q, .ifindex = h->ifindex,
                        .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
            bpf_tc_hook_destroy(&q);
        }
        libbpf_set_print(old);
        h->classic = 0;
    }
}

pn_tc_hide *pn_rl_tc_hide_open(int ifindex, const char *who, char *err, size_t errlen)
{
    struct pn_tc_hide *h = calloc(1, sizeof *h);
    if (h == NULL) {
        pn_rl_errf(err, errlen, who, "out of memory");
        return NULL;
    }
    h->link_fd = -1;
    h->ifindex = ifindex;
    h->owner = getpid();
    h->obj = open_object(who, err, errlen);
    if (h->obj == NULL) {
        free(h);
        return NULL;
    }
    int pfd = prog_fd(h->obj, "pn_tc_hide");
    h->flows_fd = map_fd(h->obj, "pn_flows");
    h->stats_fd = map_fd(h->obj, "pn_stats");
    h->cfg_fd = map_fd(h->obj, "pn_cfg");
    LIBBPF_OPTS(bpf_link_create_opts, lo);
    h->link_fd = pfd < 0 || getenv("PN_TEST_TC_CLASSIC") ? -1
                 : bpf_link_create(pfd, ifindex, PN_BPF_TCX_INGRESS, &lo);
    if (h->link_fd < 0 && pfd >= 0) {
        libbpf_print_fn_t old = libbpf_set_print(libbpf_quiet);
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
        LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = pfd, .handle = PN_TC_HANDLE,
                    .priority = PN_TC_PRIO);
        int rc = bpf_tc_hook_create(&hook);
        if (rc == 0)
            h->hook_created = 1;
        if (rc == 0 || rc == -EEXIST)
            rc = bpf_tc_attach(&hook, &o);
        libbpf_set_print(old);
        if (rc == 0) {
            h->classic = 1;
        } else {
            pn_rl_errf(err, errlen, who, "attaching the tc ingress filter: %s%s",
                       strerror(-rc), rc == -EEXIST ? " (another process has one here)" : "");
            if (h->hook_created) {
                LIBBPF_OPTS(bpf_tc_hook, hk, .ifindex = ifindex,
                            .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
                bpf_tc_hook_destroy(&hk);
            }
            bpf_object__close(h->obj);
            free(h);
            return NULL;
        }
    }
    h->next = live_hides;
    live_hides = h;
    if (!exit_handler_set) {
        atexit(at_exit);
        exit_handler_set = 1;
    }
    return h;
}

int pn_rl_tc_hide_flow(pn_tc_hide *h, const pn_flow *f, int add)
{
    struct pn_flow_key k;
    flow_key(f, &k);
    uint32_t one = 1;
    int rc = add ? bpf_map_update_elem(h->flows_fd, &k, &one, BPF_ANY)
                 : bpf_map_delete_elem(h->flows_fd, &k);
    return rc == 0 || (!add && errno == ENOENT) ? PN_OK : PN_ELINK;
}

int pn_rl_tc_hide_own_ip(pn_tc_hide *h, uint32_t ip)
{
    uint32_t zero = 0;
    struct pn_xdp_cfg cfg = {.own_ip = htonl(ip), .pad = 0};
    return bpf_map_update_elem(h->cfg_fd, &zero, &cfg, BPF_ANY) == 0 ? PN_OK : PN_ELINK;
}

uint64_t pn_rl_tc_hidden(pn_tc_hide *h)
{
    uint64_t sum = 0;
    int ncpus = libbpf_num_possible_cpus();
    if (ncpus <= 0)
        return 0;
    uint64_t *percpu = calloc((size_t)ncpus, sizeof *percpu);
    uint32_t keys[2] = {PN_XDP_FLOW, PN_XDP_OWN};
    for (int i = 0; i < 2 && percpu != NULL; i++)
        if (bpf_map_lookup_elem(h->stats_fd, &keys[i], percpu) == 0)
            for (int c = 0; c < ncpus; c++)
                sum += percpu[c];
    free(percpu);
    return sum;
}

void pn_rl_tc_hide_close(pn_tc_hide *h)
{
    if (h == NULL)
        return;
    tc_detach(h);
    for (struct pn_tc_hide **pp = &live_hides; *pp != NULL; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    bpf_object__close(h->obj);
    free(h);
}

/* ------------------------------------------------------------------ data path */

static inline uint64_t chunk_of(const af_xdp_link *x, uint64_t addr)
{
    return addr & ~(uint64_t)(x->frame_size - 1);
}

/*
 * AF_XDP says nothing about checksums. Frames a kernel sends over veth are
 * CHECKSUM_PARTIAL: the TCP/UDP checksum field holds only the folded pseudo-header sum
 * (never a NIC's frames: only a veth peer's). On veth, a field equal to that sum is taken
 * as such a frame and flagged PN_RX_CSUM_PARTIAL (veth copies memory: nothing corrupts).
 */
static uint32_t veth_csum_flags(const uint8_t *d, uint32_t len)
{
    if (len < 14 + 20 || d[12] != 0x08 || d[13] != 0x00 || (d[14] >> 4) != 4)
        return 0;
    const uint8_t *ip = d + 14;
    uint32_t ihl = (uint32_t)(ip[0] & 15) * 4;
    uint32_t tot = (uint32_t)ip[2] << 8 | ip[3];
    uint32_t off;
    if (ip[9] == 6)
        off = 16;
    else if (ip[9] == 17)
        off = 6;
    else
        return 0;
    if (ihl < 20 || tot < ihl + off + 2 || 14 + tot > len || (ip[6] & 0x3f) || ip[7])
        return 0;
    uint32_t s = ip[9] + (tot - ihl);
    for (int i = 12; i < 20; i += 2)
        s += (uint32_t)ip[i] << 8 | ip[i + 1];
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    const uint8_t *c = ip + ihl + off;
    return ((uint32_t)c[0] << 8 | c[1]) == s ? PN_RX_CSUM_PARTIAL : 0;
}

static int ax_rx_burst(pn_link *l, uint64_t now_ns, pn_rx_frame *frames, int max)
{
    (void)now_ns;
    af_xdp_link *x = (af_xdp_link *)l;
    uint32_t idx = 0;
    if (x->fill_wait.n)
        pn_ax_fill_flush(&x->fill, &x->fill_wait);
    uint32_t n = max > 0 ? xsk_ring_cons__peek(&x->rx, (uint32_t)max, &idx) : 0;
    if (n == 0) {
        if (xsk_ring_prod__needs_wakeup(&x->fill))
            recvfrom(x->xsk_fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
        return 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x->rx, idx + i);
        pn_rx_frame *f = &frames[i];
        f->data = (const uint8_t *)xsk_umem__get_data(x->area, d->addr);
        f->len = d->len;
        f->flags = x->veth ? veth_csum_flags(f->data, d->len) : 0;
        if (!x->own_ip && d->len >= 42 && f->data[12] == 0x08 && f->data[13] == 0x06)
            bpf_map_delete_elem(x->xp->arp_fd, f->data + 28);  /* its reply came */
        f->handle = d->addr;
        f->hw_ts_ns = 0;
        x->rl.stats.rx_bytes += d->len;
    }
    xsk_ring_cons__release(&x->rx, n);
    x->rl.stats.rx_frames += n;
    return (int)n;
}

static void ax_rx_release(pn_link *l, const pn_rx_frame *frames, int n)
{
    af_xdp_link *x = (af_xdp_link *)l;
    if (n <= 0)
        return;
    /* The fill ring has room for twice the RX frames, but the kernel can be slow to
     * retire slots; what does not fit now waits in fill_wait (never dropped). */
    uint64_t addr[64];
    for (int off = 0; off < n; off += 64) {
        uint32_t k = (uint32_t)(n - off < 64 ? n - off : 64);
        for (uint32_t i = 0; i < k; i++)
            addr[i] = chunk_of(x, frames[off + (int)i].handle);
        if (pn_ax_fill_return(&x->fill, &x->fill_wait, addr, k, &x->rl.stats.rx_fill_lost))
            x->rl.stats.rx_fill_deferred++;
    }
}

static void reclaim_completions(af_xdp_link *x)
{
    uint32_t idx = 0;
    uint32_t n = xsk_ring_cons__peek(&x->comp, x->frames, &idx);
    for (uint32_t i = 0; i < n; i++)
        x->tx_free[x->tx_free_n++] = chunk_of(x, *xsk_ring_cons__comp_addr(&x->comp, idx + i));
    if (n)
        xsk_ring_cons__release(&x->comp, n);
}

static void ax_tx_flush(pn_link *l);

static uint8_t *ax_tx_buf(pn_link *l, uint32_t *cap)
{
    af_xdp_link *x = (af_xdp_link *)l;
    if (!x->tx_has_pending) {
        if (x->tx_free_n == 0)
            reclaim_completions(x);
        if (x->tx_free_n == 0 && x->tx_dirty) {
            /* Every TX frame is queued: kick them out, then take back what completed. */
            ax_tx_flush(l);
        }
        if (x->tx_free_n == 0) {
            x->rl.stats.tx_ring_full++;
            return NULL;
        }
        x->tx_pending = x->tx_free[--x->tx_free_n];
        x->tx_has_pending = 1;
    }
    *cap = x->frame_size;
    return (uint8_t *)xsk_umem__get_data(x->area, x->tx_pending);
}

/* Shared-address mode: the stack asks for a neighbour; its reply must come to us. */
static void arp_request_out(af_xdp_link *x, const uint8_t *f)
{
    /* shards learn from the kernel (ax_neigh_lookup): the reply must reach it, not one
     * shard's socket */
    if (f[20] != 0 || f[21] != 1 || x->shards > 1)  /* ARP oper 1: request */
        return;
    uint32_t tpa, one = 1;
    memcpy(&tpa, f + 38, 4);
    bpf_map_update_elem(x->xp->arp_fd, &tpa, &one, BPF_ANY);
}

/* A client shard's ports: those whose replies the NIC's RSS puts on this link's queue.
 * Without the NIC's key and table (veth has none: its RX queue is the sender's TX queue)
 * there is no telling, and a connection is refused rather than left to go astray. */
static int ax_port_fits(pn_link *l, const pn_flow *f)
{
    af_xdp_link *x = (af_xdp_link *)l;
    if (x->shards <= 1)
        return 1;
    if (x->rss.indir != NULL)
        return pn_rss_queue(&x->rss, f) == x->queue;
    snprintf(l->err, sizeof l->err, "client shard on '%.15s' cannot tell its replies' RX "
             "queue (%.60s): use link af_packet", x->ifname, x->rss_err);
    return -1;
}

static int ax_neigh_lookup(pn_link *l, uint32_t ip, uint8_t mac[6])
{
    af_xdp_link *x = (af_xdp_link *)l;
    return x->shards > 1 && pn_rl_neigh_lookup(x->ifindex, ip, mac);
}

static int ax_tx_send(pn_link *l, uint8_t *buf, uint32_t len)
{
    af_xdp_link *x = (af_xdp_link *)l;
    if (!x->tx_has_pending || buf != (uint8_t *)xsk_umem__get_data(x->area, x->tx_pending) ||
        len > x->frame_size || len < 14) {
        pn_rl_errf(x->rl.link.err, sizeof x->rl.link.err, WHO,
                   "tx_send: not the buffer of the last tx_buf() or bad length %u", len);
        return PN_EINVAL;
    }
    uint32_t idx = 0;
    if (xsk_ring_prod__reserve(&x->tx, 1, &idx) != 1)
        return PN_EAGAIN;  /* cannot happen: the ring has room for every TX frame */
    if (!x->own_ip && buf[12] == 0x08 && buf[13] == 0x06 && len >= 42)
        arp_request_out(x, buf);
    struct xdp_desc *d = xsk_ring_prod__tx_desc(&x->tx, idx);
    d->addr = x->tx_pending;
    d->len = len;
    d->options = 0;
    xsk_ring_prod__submit(&x->tx, 1);
    x->tx_has_pending = 0;
    x->tx_dirty = 1;
    x->rl.stats.tx_frames++;
    x->rl.stats.tx_bytes += len;
    return PN_OK;
}

static int tx_drained(af_xdp_link *x)
{
    return xsk_prod_nb_free(&x->tx, x->frames) >= x->frames;
}

static void ax_tx_flush(pn_link *l)
{
    af_xdp_link *x = (af_xdp_link *)l;
    reclaim_completions(x);
    if (!x->tx_dirty)
        return;
    for (int k = 0; k < KICKS_PER_FLUSH; k++) {
        if (tx_drained(x)) {
            x->tx_dirty = 0;
            break;
        }
        if (!xsk_ring_prod__needs_wakeup(&x->tx))
            break;  /* zero-copy driver at work: it takes them without a kick */
        if (sendto(x->xsk_fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
            continue;
        if (errno == EAGAIN || errno == EINTR) {
            reclaim_completions(x);  /* copy mode: 32 frames a kick, or completions full */
            continue;
        }
        if (errno == EBUSY || errno == ENOBUFS) {
            x->rl.stats.tx_kick_retries++;
            break;  /* the frames stay in the ring: next flush */
        }
        x->rl.stats.tx_errors++;
        pn_rl_errf(x->rl.link.err, sizeof x->rl.link.err, WHO, "sendto kick: %s",
                   strerror(errno));
        break;
    }
    reclaim_completions(x);
}


static int ax_flow_add(pn_link *l, const pn_flow *f)
{
    af_xdp_link *x = (af_xdp_link *)l;
    char *err = x->rl.link.err;
    if (x->own_ip && x->xp->own_addr == 0 && f->local_ip != 0) {
        pthread_mutex_lock(&xdp_lock);
        int e = set_own_ip(x, f->local_ip);
        pthread_mutex_unlock(&xdp_lock);
        if (e < 0) {
            pn_rl_errf(err, sizeof x->rl.link.err, WHO, "setting own_ip: %s", strerror(-e));
            return PN_ELINK;
        }
    }
    if (!x->own_ip) {
        int rc = pn_rl_port_hold(&x->ports, f->local_ip, f->local_port, err,
                                 sizeof x->rl.link.err);
        if (rc < 0)
            return rc;
    }
    /* each entry counts the links that steer it: stacks sharing the interface listen
     * on the same port */
    struct pn_flow_key k;
    flow_key(f, &k);
    pthread_mutex_lock(&xdp_lock);
    uint32_t n = 0;
    if (bpf_map_lookup_elem(x->xp->flows_fd, &k, &n) != 0)
        n = 0;
    n++;
    int rc = bpf_map_update_elem(x->xp->flows_fd, &k, &n, BPF_ANY);
    int e = errno;
    pthread_mutex_unlock(&xdp_lock);
    if (rc != 0) {
        if (!x->own_ip)
            pn_rl_port_release(&x->ports, f->local_port);
        pn_rl_errf(err, sizeof x->rl.link.err, WHO, "adding the flow to the XDP map: %s",
                   strerror(e));
        return e == E2BIG || e == ENOMEM ? PN_ENOCONN : PN_ELINK;
    }
    return PN_OK;
}

static int ax_flow_del(pn_link *l, const pn_flow *f)
{
    af_xdp_link *x = (af_xdp_link *)l;
    struct pn_flow_key k;
    flow_key(f, &k);
    pthread_mutex_lock(&xdp_lock);
    uint32_t n = 0;
    int rc = PN_OK;
    if (bpf_map_lookup_elem(x->xp->flows_fd, &k, &n) == 0) {
        if (n > 1) {
            n--;
            rc = bpf_map_update_elem(x->xp->flows_fd, &k, &n, BPF_ANY) == 0 ? PN_OK : PN_ELINK;
        } else {
            rc = bpf_map_delete_elem(x->xp->flows_fd, &k) == 0 || errno == ENOENT ? PN_OK
                                                                                   : PN_ELINK;
        }
    }
    pthread_mutex_unlock(&xdp_lock);
    if (!x->own_ip)
        pn_rl_port_release(&x->ports, f->local_port);
    return rc;
}

static void ax_refresh_stats(pn_real_link *rl)
{
    af_xdp_link *x = (af_xdp_link *)rl;
    uint64_t vals[PN_XDP_NSTATS] = {0};
    uint64_t *percpu = calloc((size_t)x->ncpus, sizeof *percpu);
    if (percpu != NULL) {
        for (uint32_t k = 0; k < PN_XDP_NSTATS; k++) {
            if (bpf_map_lookup_elem(x->xp->stats_fd, &k, percpu) != 0)
                continue;
            for (int c = 0; c < x->ncpus; c++)
                vals[k] += percpu[c];
        }
        free(percpu);
    }
    rl->stats.xdp_pass = vals[PN_XDP_PASS];
    rl->stats.xdp_to_flow = vals[PN_XDP_FLOW];
    rl->stats.xdp_to_own = vals[PN_XDP_OWN] + vals[PN_XDP_ARP];
    struct xdp_statistics xs;
    socklen_t len = sizeof xs;
    if (getsockopt(x->xsk_fd, SOL_XDP, XDP_STATISTICS, &xs, &len) == 0)
        rl->stats.rx_kernel_drops = xs.rx_dropped + xs.rx_ring_full;  /* disjoint counts */
    rl->stats.ports_reserved = x->ports.count;
}

static void ax_destroy(pn_link *l)
{
    af_xdp_link *x = (af_xdp_link *)l;
    if (x == NULL)
        return;
    pthread_mutex_lock(&xdp_lock);
    if (x->xp != NULL && x->xp->xsks_fd >= 0 && x->xsk_fd >= 0) {
        uint32_t q = x->queue;
        bpf_map_delete_elem(x->xp->xsks_fd, &q);
    }
    release_program(x);
    for (af_xdp_link **pp = &live_links; *pp != NULL; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            break;
        }
    pthread_mutex_unlock(&xdp_lock);
    if (x->xsk != NULL)
        xsk_socket__delete(x->xsk);
    if (x->umem != NULL)
        xsk_umem__delete(x->umem);
    if (x->area != NULL)
        munmap(x->area, x->area_len);
    pn_rl_ports_free(&x->ports);
    free(x->tx_free);
    free(x->fill_wait.addr);
    free(x->rss.indir);
    free(x);
}

static const pn_link_ops af_xdp_ops = {
    .name = "af_xdp",
    .rx_burst = ax_rx_burst,
    .rx_release = ax_rx_release,
    .tx_buf = ax_tx_buf,
    .tx_send = ax_tx_send,
    .tx_flush = ax_tx_flush,
    .flow_add = ax_flow_add,
    .flow_del = ax_flow_del,
    .destroy = ax_destroy,
    .port_fits = ax_port_fits,
    .neigh_lookup = ax_neigh_lookup,
};

/* ------------------------------------------------------------------ creation */

/* This thread's network namespace: interface indexes are per namespace (two veth ends in
 * two namespaces often share one). */
static ino_t current_netns(void)
{
    struct stat st;
    return stat("/proc/thread-self/ns/net", &st) == 0 ? st.st_ino : 0;
}

static int queue_held(const af_xdp_link *x)
{
    for (const af_xdp_link *o = live_links; o != NULL; o = o->next)
        if (o != x && o->xsk != NULL && o->ifindex == x->ifindex && o->netns == x->netns &&
            o->queue == x->queue)
            return 1;
    return 0;
}

static int make_socket(af_xdp_link *x, uint8_t mode, char *err, size_t errlen)
{
    x->area_len = (size_t)2 * x->frames * x->frame_size;
    x->area = mmap(NULL, x->area_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (x->area == MAP_FAILED) {
        x->area = NULL;
        pn_rl_errf(err, errlen, WHO, "mmap of the UMEM (%zu bytes): %s", x->area_len,
                   strerror(errno));
        return PN_ENOMEM;
    }
    /* Zeroed ring structs: garbage in cached_prod gives phantom completions. */
    memset(&x->fill, 0, sizeof x->fill);
    memset(&x->comp, 0, sizeof x->comp);
    memset(&x->rx, 0, sizeof x->rx);
    memset(&x->tx, 0, sizeof x->tx);
    struct xsk_umem_config uc;
    memset(&uc, 0, sizeof uc);
    uc.fill_size = 2 * x->frames;   /* above the frame count: see ax_rx_release */
    uc.comp_size = x->frames;
    uc.frame_size = x->frame_size;
    uc.frame_headroom = 0;
    int rc = xsk_umem__create(&x->umem, x->area, x->area_len, &x->fill, &x->comp, &uc);
    if (rc != 0) {
        x->umem = NULL;
        pn_rl_errf(err, errlen, WHO, "creating the UMEM: %s%s", strerror(-rc),
                   rc == -EPERM ? " (AF_XDP needs CAP_NET_RAW: run as root)" : "");
        return PN_ELINK;
    }
    struct xsk_socket_config sc;
    memset(&sc, 0, sizeof sc);
    sc.rx_size = x->frames;
    sc.tx_size = x->frames;
    sc.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
    sc.bind_flags = XDP_USE_NEED_WAKEUP;
    if (mode == PN_XDP_MODE_GENERIC)
        sc.bind_flags |= XDP_COPY;
    else if (mode == PN_XDP_MODE_ZEROCOPY)
        sc.bind_flags |= XDP_ZEROCOPY;
    rc = xsk_socket__create(&x->xsk, x->ifname, x->queue, x->umem, &x->rx, &x->tx, &sc);
    /* A socket closed just now frees its queue from a kernel work item a little later:
     * when none of ours holds the queue, wait for that (up to a second). */
    for (int wait = 0; rc == -EBUSY && wait < 100 && !queue_held(x); wait++) {
        x->xsk = NULL;
        usleep(10000);
        rc = xsk_socket__create(&x->xsk, x->ifname, x->queue, x->umem, &x->rx, &x->tx, &sc);
    }
    if (rc != 0) {
        x->xsk = NULL;
        if (rc == -EOPNOTSUPP && mode == PN_XDP_MODE_ZEROCOPY)
            pn_rl_errf(err, errlen, WHO,
                       "the driver of '%s' has no AF_XDP zero-copy (veth has copy mode only): "
                       "use mode auto, native or generic", x->ifname);
        else if (rc == -EINVAL)
            pn_rl_errf(err, errlen, WHO,
                       "binding an AF_XDP socket to '%s' queue %u: %s (does the interface "
                       "have that RX queue? see `ethtool -l %s`)", x->ifname, x->queue,
                       strerror(-rc), x->ifname);
        else if (rc == -EBUSY)
            pn_rl_errf(err, errlen, WHO, "'%s' queue %u already has an AF_XDP socket",
                       x->ifname, x->queue);
        else
            pn_rl_errf(err, errlen, WHO, "creating the AF_XDP socket on '%s' queue %u: %s%s",
                       x->ifname, x->queue, strerror(-rc),
                       rc == -EPERM ? " (needs CAP_NET_RAW: run as root)" : "");
        return PN_ELINK;
    }
    x->xsk_fd = xsk_socket__fd(x->xsk);

    /* The RX half of the UMEM goes into the fill ring. */
    uint32_t idx = 0;
    if (xsk_ring_prod__reserve(&x->fill, x->frames, &idx) != x->frames) {
        pn_rl_errf(err, errlen, WHO, "the fill ring has no room for %u frames", x->frames);
        return PN_ELINK;
    }
    for (uint32_t i = 0; i < x->frames; i++)
        *xsk_ring_prod__fill_addr(&x->fill, idx + i) = (uint64_t)i * x->frame_size;
    xsk_ring_prod__submit(&x->fill, x->frames);
    x->fill_wait.addr = malloc(x->frames * sizeof *x->fill_wait.addr);
    x->fill_wait.cap = x->frames;
    x->tx_free = malloc(x->frames * sizeof *x->tx_free);
    if (x->tx_free == NULL || x->fill_wait.addr == NULL) {
        pn_rl_errf(err, errlen, WHO, "out of memory");
        return PN_ENOMEM;
    }
    for (uint32_t i = 0; i < x->frames; i++)
        x->tx_free[x->tx_free_n++] = (uint64_t)(x->frames + i) * x->frame_size;

    uint32_t q = x->queue;
    if (bpf_map_update_elem(x->xp->xsks_fd, &q, &x->xsk_fd, BPF_ANY) != 0) {
        pn_rl_errf(err, errlen, WHO, "registering the socket in the XSKMAP: %s",
                   strerror(errno));
        return PN_ELINK;
    }
    return PN_OK;
}

/* The steps that touch what our links share: the live list, the interface's program. */
static int open_locked(af_xdp_link *x, const pn_real_link_params *p, char *err, size_t errlen)
{
    x->next = live_links;
    live_links = x;
    if (!exit_handler_set) {
        atexit(at_exit);
        exit_handler_set = 1;
    }
    if (!x->own_ip && pn_rl_ports_init(&x->ports, WHO, err, errlen) < 0)
        return PN_ELINK;
    x->ports.reuseport = p->shards > 1;
    int rc = load_program(x, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = make_socket(x, p->mode, err, errlen)) < 0 ||
        (rc = attach(x, p->mode, err, errlen)) < 0)
        return rc;
    /* after attach: the program in force may be another process's shard's */
    if (x->own_ip && p->local_ip != 0 && (rc = set_own_ip(x, p->local_ip)) < 0) {
        struct in_addr a = {.s_addr = htonl(x->xp->own_addr)};
        char ip[INET_ADDRSTRLEN];
        if (rc == -EADDRINUSE)
            pn_rl_errf(err, errlen, WHO, "'%s' already steers %s to another stack (shard): "
                       "the stacks sharing an interface share its address",
                       x->ifname, inet_ntop(AF_INET, &a, ip, sizeof ip));
        else
            pn_rl_errf(err, errlen, WHO, "setting own_ip in the XDP map: %s", strerror(-rc));
        return PN_ELINK;
    }
    return PN_OK;
}

pn_link *pn_af_xdp_link_create(const pn_real_link_params *p, char *err, size_t errlen)
{
    if (p == NULL) {
        pn_rl_errf(err, errlen, WHO, "no parameters");
        return NULL;
    }
    if (p->mode > PN_XDP_MODE_ZEROCOPY) {
        pn_rl_errf(err, errlen, WHO, "mode %u: must be auto (0), native (1), generic (2) or "
                   "zerocopy (3)", p->mode);
        return NULL;
    }
    pn_if_facts ifc;
    if (pn_rl_if_facts(p->ifname, WHO, &ifc, err, errlen) < 0)
        return NULL;
    /* 0: the smaller UMEM chunk that carries the interface's MTU (4096 at most: a chunk
     * is at most a page, and one frame takes one chunk without XDP multi-buffer) */
    uint32_t frame_size = p->frame_size ? p->frame_size
                          : ifc.mtu + 14 + XDP_HEADROOM > 2048 ? 4096 : 2048;
    if (frame_size != 2048 && frame_size != 4096) {
        pn_rl_errf(err, errlen, WHO, "frame_size %u: must be 2048 or 4096", frame_size);
        return NULL;
    }
    if (!p->frame_size && ifc.mtu + 14 + XDP_HEADROOM > frame_size) {
        pn_rl_errf(err, errlen, WHO, "interface '%s' has MTU %u: one af_xdp frame carries "
                   "at most %u (a %u-byte chunk); set its MTU to %u or less (ip link set "
                   "dev %s mtu %u), or use the af_packet link", p->ifname, ifc.mtu,
                   frame_size - 14 - XDP_HEADROOM, frame_size, frame_size - 14 - XDP_HEADROOM,
                   p->ifname, frame_size - 14 - XDP_HEADROOM);
        return NULL;
    }
    if (ifc.mtu + 14 + XDP_HEADROOM > frame_size) {
        pn_rl_errf(err, errlen, WHO, "interface '%s' has MTU %u: frame_size %u is too small "
                   "(use 4096, or a smaller MTU)", p->ifname, ifc.mtu, frame_size);
        return NULL;
    }
    uint32_t nq = 1;
    if (p->shards <= 1 && pn_rl_rx_spread(p->ifname, p->queue, &nq)) {
        pn_rl_errf(err, errlen, WHO,
                   "'%s' spreads flows over %u RX queues (RSS); this link reads queue %u only: "
                   "use one queue (ethtool -L %s combined 1, or rx 1), point RSS at it "
                   "(ethtool -X), or steer with ntuple filters (ethtool -K %s ntuple on)",
                   p->ifname, nq, p->queue, p->ifname, p->ifname);
        return NULL;
    }
    uint32_t frames = p->ring_frames ? p->ring_frames : DEFAULT_RING_FRAMES;
    uint32_t pow2 = 64;
    while (pow2 < frames && pow2 < MAX_RING_FRAMES)
        pow2 <<= 1;

    af_xdp_link *x = calloc(1, sizeof *x);
    if (x == NULL) {
        pn_rl_errf(err, errlen, WHO, "out of memory");
        return NULL;
    }
    x->rl.link.ops = &af_xdp_ops;
    x->rl.link.pcap_fd = -1;
    memcpy(x->rl.link.mac, ifc.mac, 6);
    x->rl.link.mtu = (uint16_t)(ifc.mtu > 65535 ? 65535 : ifc.mtu);
    x->own_ip = p->own_ip ? 1 : 0;
    x->rl.link.caps = x->own_ip ? PN_LINK_OWN_IP : 0;
    x->rl.refresh_stats = ax_refresh_stats;
    memcpy(x->ifname, p->ifname, strlen(p->ifname) + 1);
    x->ifindex = ifc.ifindex;
    x->netns = current_netns();
    x->queue = p->queue;
    x->shards = p->shards;
    if (x->shards > 1 && pn_rl_rss_read(x->ifname, &x->rss, x->rss_err, sizeof x->rss_err) < 0)
        x->rss.indir = NULL;
    x->frames = pow2;
    x->frame_size = frame_size;
    x->xsk_fd = -1;
    x->owner = getpid();
    x->veth = (uint8_t)ifc.veth;
    x->ncpus = libbpf_num_possible_cpus();
    if (x->ncpus <= 0)
        x->ncpus = 1;
    pthread_mutex_lock(&xdp_lock);
    int rc = open_locked(x, p, err, errlen);
    pthread_mutex_unlock(&xdp_lock);
    if (rc < 0)
        goto fail;
    if (x->xp->mode_flag == XDP_FLAGS_SKB_MODE && ifc.merges) {
        /* Generic XDP runs after GRO: merged frames would not fit the UMEM. */
        pn_rl_merge_error(&ifc, p->ifname, WHO, err, errlen);
        goto fail;
    }

    struct xdp_options xo;
    socklen_t len = sizeof xo;
    int zc = getsockopt(x->xsk_fd, SOL_XDP, XDP_OPTIONS, &xo, &len) == 0 &&
             (xo.flags & XDP_OPTIONS_ZEROCOPY);
    x->rl.stats.xdp_mode = zc ? PN_XDP_MODE_ZEROCOPY
                         : x->xp->mode_flag == XDP_FLAGS_SKB_MODE ? PN_XDP_MODE_GENERIC
                                                              : PN_XDP_MODE_NATIVE;
    return &x->rl.link;

fail:
    ax_destroy(&x->rl.link);
    return NULL;
}

#endif /* PN_HAVE_AF_XDP */
