/* stack.c -- create/destroy, the arena, pn_poll (receive, demultiplex, timers, events),
 * the event queue, the timer heap and the demux hash. */
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>

#include "pn_internal.h"
#include "wire_arp.h"
#include "wire_ipv4.h"
#include "wire_tcp.h"

#define TWBIT 0x80000000u

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
    if (bad) {
        if (err && errlen)
            snprintf(err, errlen, "config: %s", bad);
        return PN_EINVAL;
    }
    return 0;
}

static void compute_layout(const pn_config *c, layout *L)
{
    size_t n = c->max_conn_cnt, nb = c->conn_send_buf_cnt;
    size_t sbs = c->send_buf_1k ? 1024 : 2048;
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
    s->sbuf_size = cfg->send_buf_1k ? 1024 : 2048;
    /* 1K buffers: MSS 960 (efvitcp); 2K: the MTU's MSS (1460 at 1500). */
    uint32_t mtu = cfg->mtu;
    if (link->mtu && link->mtu < mtu)
        mtu = link->mtu;
    s->cfg.mtu = (uint16_t)mtu;
    s->mss_cap = cfg->send_buf_1k ? 960 : 1984;
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

/* ------------------------------------------------------------------ timer heap */
static bool t_before(const pn_timer *a, const pn_timer *b) { return a->when < b->when; }

static void heap_place(pn_stack *s, pn_timer *t, uint32_t i)
{
    s->heap[i] = t;
    t->heap_idx = i;
}

static void heap_up(pn_stack *s, uint32_t i)
{
    pn_timer *t = s->heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!t_before(t, s->heap[p]))
            break;
        heap_place(s, s->heap[p], i);
        i = p;
    }
    heap_place(s, t, i);
}

static void heap_down(pn_stack *s, uint32_t i)
{
    pn_timer *t = s->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        const pn_timer *mv = t;
        if (l < s->heap_n && t_before(s->heap[l], mv)) { m = l; mv = s->heap[l]; }
        if (r < s->heap_n && t_before(s->heap[r], mv)) m = r;
        if (m == i)
            break;
        heap_place(s, s->heap[m], i);
        i = m;
    }
    heap_place(s, t, i);
}

void pn_timer_set(pn_stack *s, pn_timer *t, uint64_t when)
{
    if (t->heap_idx != PN_NONE32) {
        uint64_t old = t->when;
        t->when = when;
        if (when < old)
            heap_up(s, t->heap_idx);
        else
            heap_down(s, t->heap_idx);
        return;
    }
    t->when = when;
    uint32_t i = s->heap_n++;
    heap_place(s, t, i);
    heap_up(s, i);
}

void pn_timer_del(pn_stack *s, pn_timer *t)
{
    uint32_t i = t->heap_idx;
    if (i == PN_NONE32)
        return;
    t->heap_idx = PN_NONE32;
    pn_timer *last = s->heap[--s->heap_n];
    if (i == s->heap_n)
        return;
    heap_place(s, last, i);
    heap_up(s, i);
    heap_down(s, last->heap_idx);
}

uint64_t pn_stack_next_timer(const pn_stack *s)
{
    if (!s)
        return UINT64_MAX;
    /* events still queued, a FIN event waiting for its poll, or an ACK to resend that
     * found the TX ring full: poll again now */
    if (s->ev_head != s->ev_tail || s->finq_n || s->ackq_n)
        return s->now;
    uint64_t t = s->heap_n ? s->heap[0]->when : UINT64_MAX;
    if (s->tw_old != PN_NONE32 && s->tw[s->tw_old].expire < t)
        t = s->tw[s->tw_old].expire;
    return t;
}

/* ------------------------------------------------------------------ demux hash
 * Open addressing, linear probing, backward-shift deletion (no tombstones). */
static uint32_t ht_hash(const pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport)
{
    uint64_t k = ((uint64_t)rip << 32 | (uint64_t)rport << 16 | lport) ^ s->isn_key[0];
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k & s->ht_mask;
}

static bool ht_match(const pn_stack *s, uint32_t v, uint32_t rip, uint16_t rport, uint16_t lport)
{
    if (v & TWBIT) {
        const pn_tw *t = &s->tw[v & ~TWBIT];
        return t->remote_ip == rip && t->remote_port == rport && t->local_port == lport;
    }
    const pn_conn *c = &s->conns[v];
    return c->remote_ip == rip && c->remote_port == rport && c->local_port == lport;
}

uint32_t pn_ht_find(const pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport)
{
    for (uint32_t i = ht_hash(s, rip, rport, lport);; i = (i + 1) & s->ht_mask) {
        uint32_t v = s->ht[i];
        if (v == PN_NONE32)
            return PN_NONE32;
        if (ht_match(s, v, rip, rport, lport))
            return v;
    }
}

void pn_ht_add(pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport, uint32_t val)
{
    uint32_t i = ht_hash(s, rip, rport, lport);
    while (s->ht[i] != PN_NONE32)
        i = (i + 1) & s->ht_mask;
    s->ht[i] = val;
}

static uint32_t ht_home(const pn_stack *s, uint32_t v)
{
    if (v & TWBIT) {
        const pn_tw *t = &s->tw[v & ~TWBIT];
        return ht_hash(s, t->remote_ip, t->remote_port, t->local_port);
    }
    const pn_conn *c = &s->conns[v];
    return ht_hash(s, c->remote_ip, c->remote_port, c->local_port);
}

void pn_ht_del(pn_stack *s, uint32_t rip, uint16_t rport, uint16_t lport)
{
    uint32_t i = ht_hash(s, rip, rport, lport);
    for (;; i = (i + 1) & s->ht_mask) {
        uint32_t v = s->ht[i];
        if (v == PN_NONE32)
            return;
        if (ht_match(s, v, rip, rport, lport))
            break;
    }
    /* backward shift: pull later entries of the cluster into the hole when allowed */
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & s->ht_mask; s->ht[j] != PN_NONE32; j = (j + 1) & s->ht_mask) {
        uint32_t h = ht_home(s, s->ht[j]);
        /* can move j to hole iff h is not cyclically in (hole, j] */
        bool in = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
        if (!in) {
            s->ht[hole] = s->ht[j];
            hole = j;
        }
    }
    s->ht[hole] = PN_NONE32;
}

/* ------------------------------------------------------------------ listeners */
bool pn_is_listening(const pn_stack *s, uint16_t port)
{
    for (uint32_t i = 0; i < s->listen_n; i++)
        if (s->listen[i] == port)
            return true;
    return false;
}

int pn_listen(pn_stack *s, uint16_t port)
{
    if (!s || port == 0)
        return PN_EINVAL;
    if (pn_is_listening(s, port))
        return PN_EPORT;
    if (s->listen_n >= PN_MAX_LISTEN)
        return PN_ENOMEM;
    pn_flow f = {s->cfg.local_ip, 0, port, 0};
    if (s->link->ops->flow_add && s->link->ops->flow_add(s->link, &f) < 0)
        return PN_ELINK;
    s->listen[s->listen_n++] = port;
    return PN_OK;
}

int pn_unlisten(pn_stack *s, uint16_t port)
{
    if (!s)
        return PN_EINVAL;
    for (uint32_t i = 0; i < s->listen_n; i++)
        if (s->listen[i] == port) {
            s->listen[i] = s->listen[--s->listen_n];
            pn_flow f = {s->cfg.local_ip, 0, port, 0};
            if (s->link->ops->flow_del)
                s->link->ops->flow_del(s->link, &f);
            return PN_OK;
        }
    return PN_EINVAL;
}

/* RFC 5961 7: a global limit on challenge ACKs per second. */
bool pn_challenge_ack_allowed(pn_stack *s)
{
    /* RFC 5961 7: at most challenge_ack_limit a second per stack; each second's budget is
     * drawn from [ceil(limit/2), ceil(limit/2) + limit), as Linux does since CVE-2016-5696, so an off-path
     * attacker cannot count our challenge ACKs against a known constant. chal_cnt counts
     * down what is left this second. */
    uint64_t sec = s->now / 1000000000u;
    if (sec != s->chal_sec) {
        uint32_t lim = s->cfg.challenge_ack_limit;
        s->chal_sec = sec;
        /* half rounded up, as Linux: a limit of 1 still allows one a second */
        s->chal_cnt = (lim + 1) / 2 +
                      (uint32_t)(pn_siphash(s->isn_key, &sec, sizeof sec) % (lim ? lim : 1));
    }
    if (s->chal_cnt == 0) {
        s->st.TcpExtTCPACKSkippedChallenge++;
        return false;
    }
    s->chal_cnt--;
    s->st.TcpExtTCPChallengeACK++;
    return true;
}

/* ------------------------------------------------------------------ events */
int pn_ev_push(pn_stack *s, pn_conn *c, uint32_t type)
{
    if (s->ev_tail - s->ev_head >= s->evq_cap)
        return -1;   /* cannot happen with the sizing in compute_layout */
    uint32_t pos = s->ev_tail++;
    pn_event *e = &s->evq[pos & (s->evq_cap - 1)];
    memset(e, 0, sizeof *e);
    e->type = type;
    e->conn_id = c->idx;
    e->remote_ip = c->remote_ip;
    e->remote_port = c->remote_port;
    e->local_port = c->local_port;
    s->evq_conn[pos & (s->evq_cap - 1)] = c->idx;
    c->qrefs++;
    return (int)(pos & (s->evq_cap - 1));
}

/* One DATA event per connection per poll: the queued one grows; a FIN converts it. */
void pn_ev_data(pn_stack *s, pn_conn *c)
{
    if (c->data_ev_live)
        return;
    int i = pn_ev_push(s, c, PN_EV_DATA);
    if (i >= 0) {
        c->data_ev_live = 1;
        c->data_ev_pos = (uint32_t)i;
    }
}

pn_conn *pn_conn_get(const pn_stack *s, uint32_t id)
{
    if (!s || id >= s->cfg.max_conn_cnt)
        return NULL;
    pn_conn *c = &s->conns[id];
    return c->in_use == 1 ? c : NULL;
}

/* ------------------------------------------------------------------ transmit helpers */
uint8_t *pn_tx_begin(pn_stack *s, const uint8_t dst_mac[6], uint32_t dst_ip, uint8_t proto,
                     uint32_t l4len, uint8_t **frame)
{
    uint32_t cap = 0;
    uint8_t *f = pn_link_txbuf(s->link, &cap);
    uint32_t total = PN_ETH_HLEN + PN_IP_HLEN + l4len;
    if (f == NULL || cap < total) {
        s->st.drop_no_buffer++;
        return NULL;
    }
    pn_eth_emit(f, dst_mac, s->mac, PN_ETHERTYPE_IPV4);
    uint8_t *ip = f + PN_ETH_HLEN;
    pn_ipv4_emit(ip, (uint16_t)(PN_IP_HLEN + l4len), s->ip_id++, proto, s->cfg.local_ip, dst_ip);
    uint16_t ck = pn_csum_fold(pn_csum_partial(ip, PN_IP_HLEN, 0));
    memcpy(ip + 10, &ck, 2);
    *frame = f;
    return ip + PN_IP_HLEN;
}

void pn_tx_end(pn_stack *s, uint8_t *frame, uint32_t l4len)
{
    if (pn_link_tx(s->link, s->now, frame, PN_ETH_HLEN + PN_IP_HLEN + l4len) == 0)
        s->st.frames_out++;
}

/* ------------------------------------------------------------------ receive */
static bool martian(uint32_t ip, uint32_t local)
{
    /* RFC 1122 3.2.1.3 / 4.2.3.10: no segments from 0/8, loopback, multicast, broadcast */
    return (ip >> 24) == 0 || (ip >> 24) == 127 || ip >= 0xe0000000u || ip == local;
}

static void rx_frame(pn_stack *s, const pn_rx_frame *f)
{
    pn_eth e;
    s->st.frames_in++;
    if (pn_eth_parse(f->data, f->len, &e) < 0) {
        s->st.drop_malformed++;
        return;
    }
    if (memcmp(e.dst, s->mac, 6) != 0 && !pn_mac_is_bcast(e.dst)) {
        s->st.drop_not_ours++;
        return;
    }
    if (e.src[0] & 1) {   /* a multicast/broadcast source address is never valid */
        s->st.drop_malformed++;
        return;
    }
    if (e.type == PN_ETHERTYPE_ARP) {
        pn_arp_rx(s, f->data, f->len);
        return;
    }
    if (e.type != PN_ETHERTYPE_IPV4) {
        s->st.drop_not_ours++;
        return;
    }
    pn_ipv4 ip;
    if (pn_ipv4_parse(e.payload, e.plen, &ip) < 0) {
        s->st.drop_malformed++;
        return;
    }
    if (ip.dst != s->cfg.local_ip || ip.is_fragment) {
        s->st.drop_not_ours++;
        return;
    }
    bool verified = (f->flags & PN_RX_CSUM_OK) || (s->link->caps & PN_LINK_RX_CSUM) ||
                    !s->cfg.verify_checksums;
    if (!verified && pn_csum_fold(pn_csum_partial(ip.hdr, ip.hlen, 0)) != 0) {
        s->st.drop_bad_csum++;
        return;
    }
    if (martian(ip.src, s->cfg.local_ip)) {
        s->st.drop_malformed++;
        return;
    }
    if (ip.proto == PN_IPPROTO_TCP) {
        if (!verified && !(f->flags & PN_RX_CSUM_PARTIAL)) {
            uint32_t sum = pn_csum_pseudo(ip.src, ip.dst, PN_IPPROTO_TCP, (uint16_t)ip.plen);
            if (pn_csum_fold(pn_csum_partial(ip.payload, ip.plen, sum)) != 0) {
                s->st.drop_bad_csum++;
                s->st.TcpInErrs++;
                return;
            }
        }
        pn_tcp_rx(s, e.src, ip.src, ip.payload, ip.plen);
    } else if (ip.proto == PN_IPPROTO_ICMP) {
        pn_icmp_rx(s, e.src, ip.hdr, ip.hlen + ip.plen, ip.src, ip.payload, ip.plen,
                         verified);
    } else {
        s->st.drop_not_ours++;
    }
}

/* ------------------------------------------------------------------ poll */
static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void release_slots(pn_stack *s)
{
    /* Slots freed in an earlier batch return to the free list once no queued event names
     * them; the scan is over the table only when something was freed. */
    for (uint32_t i = 0; i < s->cfg.max_conn_cnt; i++) {
        pn_conn *c = &s->conns[i];
        if (c->in_use == 2 && c->qrefs == 0) {
            c->in_use = 0;
            s->zombies--;
            c->next_free = s->conn_free;
            s->conn_free = i;
        }
    }
}

int pn_poll(pn_stack *s, uint64_t now, pn_event *events, int max)
{
    if (!s || (max > 0 && !events))
        return PN_EINVAL;
    if (now == 0)
        now = mono_ns();
    if (now > s->now)
        s->now = now;

    /* 1. the previous batch's bytes, less what pn_keep() kept */
    for (uint32_t i = 0; i < s->last_n; i++) {
        pn_shadow *sh = &s->last[i];
        pn_conn *c = &s->conns[sh->conn];
        if (c->in_use != 1)
            continue;
        pn_apply_remaining(s, c, sh->len, sh->fin ? 0 : sh->remaining);
    }
    s->last_n = 0;
    if (s->finq_n)
        pn_fin_deferred(s);
    if (s->zombies)
        release_slots(s);

    /* 2. a burst of frames */
    pn_rx_frame fr[PN_RX_BURST];
    int n = pn_link_rx(s->link, s->now, fr, PN_RX_BURST);
    if (n < 0)
        return PN_ELINK;
    for (int i = 0; i < n; i++)
        rx_frame(s, &fr[i]);
    if (n > 0)
        s->link->ops->rx_release(s->link, fr, n);
    pn_tcp_flush_acks(s);

    /* 3. timers */
    while (s->heap_n && s->heap[0]->when <= s->now) {
        pn_timer *t = s->heap[0];
        pn_timer_del(s, t);
        if (t->kind == PN_T_ARP)
            pn_arp_timer(s, &s->neigh[t->owner]);
        else
            pn_tcp_timer(s, &s->conns[t->owner], t);
    }
    pn_tw_expire(s);
    s->link->ops->tx_flush(s->link);

    /* 4. events */
    int k = 0;
    while (k < max && s->ev_head != s->ev_tail) {
        uint32_t slot = s->ev_head++ & (s->evq_cap - 1);
        pn_event *e = &s->evq[slot];
        pn_conn *c = &s->conns[s->evq_conn[slot]];
        c->qrefs--;
        if (e->type == 0)
            continue;   /* cancelled by pn_close */
        events[k] = *e;
        if (e->type == PN_EV_DATA || e->type == PN_EV_FIN) {
            c->data_ev_live = 0;
            events[k].data = c->rbuf;
            events[k].len = c->rlen;
            if (s->last_n < s->cfg.max_conn_cnt) {   /* one per connection: always room */
                pn_shadow *sh = &s->last[s->last_n++];
                sh->conn = c->idx;
                sh->len = c->rlen;
                sh->remaining = 0;
                sh->fin = e->type == PN_EV_FIN;
            }
        } else if (e->type == PN_EV_MORE_SENDABLE) {
            c->ms_ev_live = 0;
        }
        k++;
    }
    return k;
}

int pn_keep(pn_stack *s, uint32_t conn_id, uint32_t remaining)
{
    if (!s)
        return PN_EINVAL;
    for (uint32_t i = 0; i < s->last_n; i++) {   /* one per connection, a batch's worth */
        if (s->last[i].conn == conn_id) {
            s->last[i].remaining = remaining;
            return 0;
        }
    }
    return PN_EINVAL;
}
