/* stack.c -- a stack's config, arena and life: pn_config_default and its checks, the
 * arena layout, create/destroy, the accessors; error and reason names. The rest of the
 * stack: timer_heap.c, demux.c (connections and listeners by address), poll.c (receive,
 * events, pn_poll). */
#include <stdio.h>
#include <sys/mman.h>

#include "pn_internal.h"

const char *pn_strerror(int err)
{
    switch (err) {
    case PN_OK: return "ok";
    case PN_EINVAL: return "invalid argument";
    case PN_ENOMEM: return "out of memory";
    case PN_ENOCONN: return "connection table full";
    case PN_EBADCONN: return "no such connection";
    case PN_ESTATE: return "not allowed in this connection state";
    case PN_EPORT: return "no local port available or port in use";
    case PN_ELINK: return "link error";
    case PN_ENOROUTE: return "no route to host";
    case PN_EAGAIN: return "try again";
    case PN_ETIMER: return "bad timer id or duration";
    default: return "unknown error";
    }
}

void pn_config_default(pn_config *c)
{
    memset(c, 0, sizeof *c);
    c->conn_send_buf_cnt = 512;
    c->send_buf_1k = 1;
    c->conn_recv_buf_size = 40960;
    c->max_conn_cnt = 200;
    c->max_time_wait_conn_cnt = 100;
    c->recv_buf_cnt = 512;
    c->syn_retries = 3;
    c->tcp_retries = 10;
    c->delayed_ack_ms = 10;
    c->ack_every = 2;
    c->min_rto_ms = 100;
    c->max_rto_ms = 30000;
    c->congestion_control = PN_CC_NONE;
    c->user_timer_cnt = 1;
    c->netmask = 0xffffff00u;
    c->mtu = 1500;
    c->verify_checksums = 1;
    c->arp_retries = 3;
    c->arp_timeout_ms = 200;
    c->max_syn_backlog = 0;          /* max_conn_cnt / 2 */
    c->syn_cookies = PN_SYN_COOKIES_WHEN_FULL;
    c->max_ooo_segs = 8;
    c->max_ooo_bytes = 0;            /* conn_recv_buf_size */
    c->zero_window_timeout_ms = 0;   /* never: efvitcp probes while the peer answers */
    c->max_conns_per_source = 0;
    c->challenge_ack_limit = PN_CHALLENGE_ACK_LIMIT;
    c->oow_rate_limit_ms = 500;
    c->fin_timeout_ms = 60000;       /* Linux's tcp_fin_timeout */
    c->keepalive_idle_ms = 0;        /* off, as Linux without SO_KEEPALIVE */
    c->keepalive_intvl_ms = 75000;   /* Linux's tcp_keepalive_intvl */
    c->keepalive_cnt = 9;            /* Linux's tcp_keepalive_probes */
}

const char *pn_reason_str(uint32_t reason)
{
    switch (reason) {
    case PN_REASON_NONE: return "none";
    case PN_REASON_SYN_RETRIES: return "SYN retries exhausted (syn_retries)";
    case PN_REASON_RETRIES: return "retransmissions unacknowledged (tcp_retries)";
    case PN_REASON_PROBES: return "zero-window probes unanswered (tcp_retries)";
    case PN_REASON_ZERO_WINDOW: return "peer's window stayed zero (zero_window_timeout_ms)";
    case PN_REASON_RESET: return "reset by the peer";
    case PN_REASON_FIN_WAIT_2: return "no FIN from the peer in FIN_WAIT_2 (fin_timeout_ms)";
    case PN_REASON_KEEPALIVE: return "keepalive probes unanswered (keepalive_cnt)";
    default: return "unknown reason";
    }
}

/* Keep in the order of pn_stats (pncore.h); test_hostile.c checks the count. */
const char *const pn_stats_names[] = {
    "frames_in", "frames_out",
    "drop_bad_csum", "drop_malformed", "drop_not_ours", "drop_no_buffer",
    "TcpInSegs", "TcpOutSegs", "TcpRetransSegs", "TcpActiveOpens", "TcpPassiveOpens",
    "TcpAttemptFails", "TcpEstabResets", "TcpInErrs", "TcpOutRsts",
    "TcpExtTCPChallengeACK", "TcpExtTCPFastRetrans", "TcpExtTCPTimeouts",
    "TcpExtTW", "TcpExtListenOverflows", "TcpExtPAWSEstabRejected",
    "ArpRequestsOut", "ArpRepliesOut", "ArpIn", "IcmpEchoReplies",
    "TcpExtSyncookiesSent", "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed",
    "TcpExtTCPReqQFullDoCookies", "TcpExtTCPReqQFullDrop", "TcpExtListenDrops",
    "TcpExtTCPACKSkippedChallenge",
    "TcpExtTCPOFOQueue", "TcpExtTCPOFODrop",
    "TcpExtTCPAbortOnTimeout",
    "TcpInRsts",
    "PnZeroWindowAborts",
    "PnPerSourceDrops",
    "TcpExtTWRecycled",
    "PnNotOursDrops",
    "PnAckRetries",
    "PnInvariantRepairs",
    "TcpExtTCPACKSkippedPAWS", "TcpExtTCPACKSkippedSynRecv",
    "TcpExtTCPACKSkippedSeq", "TcpExtTCPACKSkippedTimeWait",
    "PnFinWait2Timeouts",
    "TcpExtTCPKeepAlive", "PnKeepaliveTimeouts",
    "TcpExtTCPSackRecovery", "PnSackHoleRetrans", "TcpExtTCPLossProbes",
    NULL,
};

/* ------------------------------------------------------------------ arena layout */
typedef struct layout {
    size_t conns, segs, sbuf, rbuf, utimers, ht, tw, heap, evq, evq_conn, last, ackq, finq, total;
    uint32_t ht_size, evq_cap, heap_cap;
} layout;

static size_t al64(size_t x) { return (x + 63) & ~(size_t)63; }

static int check_config(const pn_config *c, char *err, size_t errlen)
{
    const char *bad = NULL;
    if (c->conn_send_buf_cnt < 2 || c->conn_send_buf_cnt > 65536) bad = "conn_send_buf_cnt must be 2..65536";
    else if (c->conn_recv_buf_size < 512 || c->conn_recv_buf_size > (1u << 30)) bad = "conn_recv_buf_size must be 512..2^30";
    else if (c->max_conn_cnt < 1 || c->max_conn_cnt > (1u << 20)) bad = "max_conn_cnt must be 1..1048576";
    else if (c->max_time_wait_conn_cnt > (1u << 20)) bad = "max_time_wait_conn_cnt must be <= 1048576";
    else if (c->user_timer_cnt > 1024) bad = "user_timer_cnt must be <= 1024";
    else if (c->min_rto_ms < 1 || c->max_rto_ms < c->min_rto_ms || c->max_rto_ms > 3600000) bad = "need 1 <= min_rto_ms <= max_rto_ms <= 3600000";
    else if (c->congestion_control > PN_CC_CUBIC) bad = "congestion_control must be 0 (none), 1 (newreno) or 2 (cubic)";
    else if (c->mtu < 576 || c->mtu > 9000) bad = "mtu must be 576..9000";
    else if (c->local_ip == 0) bad = "local_ip is required";
    else if (c->delayed_ack_ms > 500) bad = "delayed_ack_ms must be <= 500 (RFC 1122 4.2.3.2)";
    else if (c->arp_timeout_ms < 1 || c->arp_retries > 100) bad = "arp_timeout_ms must be >= 1, arp_retries <= 100";
    else if (c->syn_retries > 100 || c->tcp_retries > 100) bad = "syn_retries and tcp_retries must be <= 100";
    else if (c->syn_cookies > PN_SYN_COOKIES_ALWAYS) bad = "syn_cookies must be 0 (never), 1 (when the half-open pool is full) or 2 (always)";
    else if (c->max_ooo_segs > PN_MAX_OOO) bad = "max_ooo_segs must be <= 32";
    else if (c->max_ooo_bytes > c->conn_recv_buf_size) bad = "max_ooo_bytes must be <= conn_recv_buf_size";
    else if (c->max_syn_backlog > c->max_conn_cnt) bad = "max_syn_backlog must be <= max_conn_cnt";
    else if (c->challenge_ack_limit > 1000000) bad = "challenge_ack_limit must be <= 1000000";
    else if (c->send_buf_size && (c->send_buf_size < 1024 || c->send_buf_size > 65536 ||
                                  c->send_buf_size % 64)) bad = "send_buf_size must be 0 or a multiple of 64 in 1024..65536";
    else if (c->sack > 1) bad = "sack must be 0 or 1";
    else if (c->ack_every < 1 || c->ack_every > 64) bad = "ack_every must be 1..64";
    if (bad) {
        if (err && errlen)
            snprintf(err, errlen, "config: %s", bad);
        return PN_EINVAL;
    }
    return 0;
}

/* Bytes per send buffer: send_buf_size, else efvitcp's 1K or 2K by send_buf_1k. */
static uint32_t send_buf_bytes(const pn_config *c)
{
    return c->send_buf_size ? c->send_buf_size : c->send_buf_1k ? 1024u : 2048u;
}

static void compute_layout(const pn_config *c, layout *L)
{
    size_t n = c->max_conn_cnt, nb = c->conn_send_buf_cnt;
    size_t sbs = send_buf_bytes(c);
    size_t off = al64(sizeof(pn_stack));
    L->conns = off; off += al64(n * sizeof(pn_conn));
    L->segs = off; off += al64(n * nb * sizeof(pn_sseg));
    L->utimers = off; off += al64(n * (c->user_timer_cnt ? c->user_timer_cnt : 1) * sizeof(pn_timer));
    uint32_t hs = 16;
    while (hs < 2 * (c->max_conn_cnt + c->max_time_wait_conn_cnt))
        hs <<= 1;
    L->ht_size = hs;
    L->ht = off; off += al64(hs * sizeof(uint32_t));
    L->tw = off; off += al64((c->max_time_wait_conn_cnt ? c->max_time_wait_conn_cnt : 1) * sizeof(pn_tw));
    L->heap_cap = (uint32_t)(n * (2 + c->user_timer_cnt) + PN_NEIGH_CNT);
    L->heap = off; off += al64(L->heap_cap * sizeof(pn_timer *));
    /* Each connection holds at most ESTABLISHED, DATA/FIN, MORE_SENDABLE, one terminal
     * event and one per user timer in the queue at once (slots are not reused while any
     * event names them); twice that leaves room for timers re-armed before delivery. */
    uint32_t ec = (uint32_t)(n * (8 + 2 * c->user_timer_cnt) + 64);
    if (c->max_events > ec)
        ec = c->max_events;
    /* A power of two: the queue's positions are free-running uint32 counters, and only
     * then does `pos % cap` stay continuous when they wrap (2^32 is a multiple of cap). */
    uint32_t pow2 = 64;
    while (pow2 < ec && pow2 < 0x80000000u)
        pow2 <<= 1;
    ec = pow2;
    L->evq_cap = ec;
    L->evq = off; off += al64(ec * sizeof(pn_event));
    L->evq_conn = off; off += al64(ec * sizeof(uint32_t));
    L->last = off; off += al64(n * sizeof(pn_shadow));
    L->ackq = off; off += al64(n * sizeof(uint32_t));
    L->finq = off; off += al64(n * sizeof(uint32_t));
    L->rbuf = off; off += al64(n * c->conn_recv_buf_size);
    L->sbuf = off; off += al64(n * nb * sbs);
    L->total = off;
}

size_t pn_stack_footprint(const pn_config *cfg)
{
    if (cfg == NULL || check_config(cfg, NULL, 0) < 0)
        return 0;
    layout L;
    compute_layout(cfg, &L);
    return L.total;
}

int pn_stack_create(pn_stack **out, const pn_config *cfg, pn_link *link, char *err, size_t errlen)
{
    if (out == NULL || cfg == NULL || link == NULL || link->ops == NULL) {
        if (err && errlen)
            snprintf(err, errlen, "pn_stack_create: out, cfg and link are required");
        return PN_EINVAL;
    }
    *out = NULL;
    int r = check_config(cfg, err, errlen);
    if (r < 0)
        return r;
    layout L;
    compute_layout(cfg, &L);
    /* One anonymous mapping, zero-filled. The tables and queues (everything before the
     * data buffers) are populated now; the buffers fault in on first use, as efvitcp's
     * object does, so a 100 MB server does not pay 40 ms at create. */
    void *a = mmap(NULL, L.total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED) {
        if (err && errlen)
            snprintf(err, errlen, "pn_stack_create: cannot map %zu bytes", L.total);
        return PN_ENOMEM;
    }
    uint8_t *base = a;
#ifdef MADV_POPULATE_WRITE
    (void)madvise(a, L.rbuf, MADV_POPULATE_WRITE);   /* best effort (Linux >= 5.14) */
#endif
    pn_stack *s = (pn_stack *)base;
    s->cfg = *cfg;
    s->link = link;
    s->arena = a;
    s->arena_size = L.total;
    memcpy(s->mac, link->mac, 6);
    if (s->cfg.user_timer_cnt == 0)
        s->cfg.user_timer_cnt = 0;
    s->sbuf_size = send_buf_bytes(cfg);
    /* A segment fits one buffer with 64 bytes to spare: 1K buffers give efvitcp's MSS
     * 960, 2K the MTU's (1460 at 1500), larger ones a jumbo MTU's. */
    uint32_t mtu = cfg->mtu;
    if (link->mtu && link->mtu < mtu)
        mtu = link->mtu;
    s->cfg.mtu = (uint16_t)mtu;
    s->mss_cap = s->sbuf_size - 64;
    if (s->mss_cap > mtu - 40)
        s->mss_cap = mtu - 40;
    s->conns = (pn_conn *)(base + L.conns);
    s->ht = (uint32_t *)(base + L.ht);
    s->ht_mask = L.ht_size - 1;
    memset(s->ht, 0xff, L.ht_size * sizeof(uint32_t));
    s->tw = (pn_tw *)(base + L.tw);
    s->heap = (pn_timer **)(base + L.heap);
    s->evq = (pn_event *)(base + L.evq);
    s->evq_conn = (uint32_t *)(base + L.evq_conn);
    s->evq_cap = L.evq_cap;
    s->last = (pn_shadow *)(base + L.last);
    s->ackq = (uint32_t *)(base + L.ackq);
    s->finq = (uint32_t *)(base + L.finq);
    pn_sseg *segs = (pn_sseg *)(base + L.segs);
    pn_timer *ut = (pn_timer *)(base + L.utimers);
    uint8_t *rb = base + L.rbuf, *sb = base + L.sbuf;
    uint32_t utc = cfg->user_timer_cnt ? cfg->user_timer_cnt : 1;
    for (uint32_t i = 0; i < cfg->max_conn_cnt; i++) {
        pn_conn *c = &s->conns[i];
        c->idx = i;
        c->segs = segs + (size_t)i * cfg->conn_send_buf_cnt;
        c->sbuf = sb + (size_t)i * cfg->conn_send_buf_cnt * s->sbuf_size;
        c->rbuf = rb + (size_t)i * cfg->conn_recv_buf_size;
        c->t_user = ut + (size_t)i * utc;
        c->next_free = i + 1 < cfg->max_conn_cnt ? i + 1 : PN_NONE32;
        c->t_rtx.heap_idx = c->t_delack.heap_idx = PN_NONE32;
        for (uint32_t j = 0; j < utc; j++)
            c->t_user[j].heap_idx = PN_NONE32;
    }
    s->conn_free = 0;
    uint32_t ntw = cfg->max_time_wait_conn_cnt;
    for (uint32_t i = 0; i < ntw; i++)
        s->tw[i].next = i + 1 < ntw ? i + 1 : PN_NONE32;
    s->tw_free = ntw ? 0 : PN_NONE32;
    s->tw_old = s->tw_new = PN_NONE32;
    for (uint32_t i = 0; i < PN_NEIGH_CNT; i++) {
        s->neigh[i].t.heap_idx = PN_NONE32;
        s->neigh[i].t.owner = i;
        s->neigh[i].t.kind = PN_T_ARP;
    }
    if (cfg->isn_secret[0] || cfg->isn_secret[1]) {
        s->isn_key[0] = cfg->isn_secret[0];
        s->isn_key[1] = cfg->isn_secret[1];
    } else {
        pn_siphash_key(s->isn_key);
    }
    s->eph_next = (uint16_t)(pn_siphash(s->isn_key, &cfg->local_ip, 4) % 28232);
    s->chal_sec = UINT64_MAX;
    s->syn_backlog = cfg->max_syn_backlog ? cfg->max_syn_backlog
                   : (cfg->max_conn_cnt / 2 ? cfg->max_conn_cnt / 2 : 1);
    if (s->cfg.max_ooo_segs == 0)
        s->cfg.max_ooo_segs = 8;
    if (s->cfg.max_ooo_bytes == 0)
        s->cfg.max_ooo_bytes = s->cfg.conn_recv_buf_size;
    if (s->cfg.challenge_ack_limit == 0)
        s->cfg.challenge_ack_limit = PN_CHALLENGE_ACK_LIMIT;
    *out = s;
    return PN_OK;
}

void pn_stack_destroy(pn_stack *s)
{
    if (s == NULL)
        return;
    /* give back every flow the link steers to us (listeners, active opens, TIME_WAIT) */
    if (s->link->ops->flow_del) {
        for (uint32_t i = 0; i < s->listen_n; i++) {
            pn_flow f = {s->cfg.local_ip, 0, s->listen[i], 0};
            s->link->ops->flow_del(s->link, &f);
        }
        for (uint32_t i = 0; i < s->cfg.max_conn_cnt; i++) {
            const pn_conn *c = &s->conns[i];
            if (c->in_use == 1 && c->active && c->in_ht) {
                pn_flow f = {s->cfg.local_ip, c->remote_ip, c->local_port, c->remote_port};
                s->link->ops->flow_del(s->link, &f);
            }
        }
        for (uint32_t i = 0; i < s->cfg.max_time_wait_conn_cnt; i++) {
            const pn_tw *t = &s->tw[i];
            if (t->in_use && t->active) {
                pn_flow f = {s->cfg.local_ip, t->remote_ip, t->local_port, t->remote_port};
                s->link->ops->flow_del(s->link, &f);
            }
        }
    }
    munmap(s->arena, s->arena_size);
}

size_t pn_stack_memory(const pn_stack *s) { return s ? s->arena_size : 0; }

void pn_stack_set_accept(pn_stack *s, pn_accept_fn fn, void *ctx)
{
    if (!s)
        return;
    s->accept_fn = fn;
    s->accept_ctx = ctx;
}

void pn_stack_stats(const pn_stack *s, pn_stats *out)
{
    if (s && out)
        *out = s->st;
}

int pn_stack_add_neighbour(pn_stack *s, uint32_t ip, const uint8_t mac[6])
{
    if (!s || !mac || ip == 0)
        return PN_EINVAL;
    return pn_arp_add_static(s, ip, mac);
}
