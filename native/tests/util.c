/* util.c -- the simulated world used by every C test. */
#include "util.h"

#include <time.h>

int h_pass, h_fail;
pn_link *(*wrap_link)(pn_link *inner);

double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void cfg_for(pn_config *c, uint32_t ip)
{
    pn_config_default(c);
    c->local_ip = ip;
    c->netmask = 0xffffff00u;
    c->isn_secret[0] = ip;
    c->isn_secret[1] = 42;
}

void world_init(world *w, const pn_sim_params *p)
{
    memset(w, 0, sizeof *w);
    char err[200];
    w->wire = pn_sim_wire_create(p, err, sizeof err);
    if (!w->wire) {
        fprintf(stderr, "wire: %s\n", err);
        exit(2);
    }
    w->now = 1000000000ull;   /* virtual time starts at 1 s */
    const char *pc = getenv("PN_PCAP");
    if (pc && pn_sim_wire_pcap(w->wire, pc, err, sizeof err) < 0)
        fprintf(stderr, "pcap: %s\n", err);
}

node *world_add(world *w, const pn_config *cfg, uint32_t ip, uint8_t macbyte)
{
    node *n = &w->nodes[w->nn++];
    memset(n, 0, sizeof *n);
    n->w = w;
    n->ip = ip;
    uint8_t mac[6] = {0x02, 0, 0, 0, 0, macbyte};
    memcpy(n->mac, mac, 6);
    char err[200];
    n->l = pn_sim_link_create(w->wire, mac, err, sizeof err);
    if (!n->l) {
        fprintf(stderr, "link: %s\n", err);
        exit(2);
    }
    n->cfg = *cfg;
    n->cfg.local_ip = ip;
    if (wrap_link)
        n->l = wrap_link(n->l);
    int r = pn_stack_create(&n->s, &n->cfg, n->l, err, sizeof err);
    if (r < 0) {
        fprintf(stderr, "stack: %s\n", err);
        exit(2);
    }
    pn_poll(n->s, w->now, n->ev, EV_MAX);   /* the stack's clock starts at the world's */
    n->nstreams = cfg->max_conn_cnt;
    n->streams = calloc(n->nstreams, sizeof(stream));
    return n;
}

void world_two(world *w, const pn_sim_params *p, const pn_config *cc, const pn_config *sc,
               node **cl, node **sv)
{
    pn_sim_params d;
    pn_sim_params_default(&d);
    world_init(w, p ? p : &d);
    pn_config c;
    cfg_for(&c, PAIR_CIP);
    *cl = world_add(w, cc ? cc : &c, PAIR_CIP, 1);
    cfg_for(&c, PAIR_SIP);
    *sv = world_add(w, sc ? sc : &c, PAIR_SIP, 2);
}

void world_pair(world *w, const pn_sim_params *p, const pn_config *cc, const pn_config *sc,
                node **cl, node **sv)
{
    world_two(w, p, cc, sc, cl, sv);
    pn_listen((*sv)->s, 80);
}

pn_link *world_add_raw(world *w, uint8_t macbyte)
{
    uint8_t mac[6] = {0x02, 0, 0, 0, 0, macbyte};
    char err[100];
    pn_link *l = pn_sim_link_create(w->wire, mac, err, sizeof err);
    w->raw[w->nraw++] = l;
    pn_rx_frame f[1];
    l->ops->rx_burst(l, w->now, f, 0);   /* its clock */
    return l;
}

static void drain_raw(world *w)
{
    pn_rx_frame f[32];
    for (int i = 0; i < w->nraw; i++) {
        int n;
        while ((n = w->raw[i]->ops->rx_burst(w->raw[i], w->now, f, 32)) > 0) {
            for (int j = 0; j < n; j++) {
                w->raw_rx++;
                if (w->raw_hook)
                    w->raw_hook(w, f[j].data, f[j].len);
            }
            w->raw[i]->ops->rx_release(w->raw[i], f, n);
        }
    }
}

void world_free(world *w)
{
    for (int i = 0; i < w->nraw; i++)
        pn_link_destroy(w->raw[i]);
    w->nraw = 0;
    for (int i = 0; i < w->nn; i++) {
        pn_stack_destroy(w->nodes[i].s);
        pn_link_destroy(w->nodes[i].l);
        free(w->nodes[i].streams);
    }
    pn_sim_wire_destroy(w->wire);
    w->nn = 0;
}

/* The byte at stream offset `off`: splitmix64 of (seed, off/8), little-endian. */
static inline uint64_t gen_word(uint64_t seed, uint64_t blk)
{
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + blk * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void gen_bytes(uint64_t seed, uint64_t off, uint8_t *dst, uint32_t n)
{
    uint32_t i = 0;
    while (i < n && (off + i) % 8) {   /* head, byte by byte */
        dst[i] = (uint8_t)(gen_word(seed, (off + i) / 8) >> (8 * ((off + i) % 8)));
        i++;
    }
    for (; i + 8 <= n; i += 8) {       /* whole words */
        uint64_t z = gen_word(seed, (off + i) / 8);
        for (int b = 0; b < 8; b++)
            dst[i + (uint32_t)b] = (uint8_t)(z >> (8 * b));
    }
    for (; i < n; i++)
        dst[i] = (uint8_t)(gen_word(seed, (off + i) / 8) >> (8 * ((off + i) % 8)));
}

stream *node_stream(node *n, uint32_t conn)
{
    if (conn >= n->nstreams)
        return NULL;
    return &n->streams[conn];
}

void stream_pump(node *n, stream *st)
{
    static uint8_t buf[65536];
    while (st->tx_sent < st->tx_total) {
        uint64_t left = st->tx_total - st->tx_sent;
        uint32_t chunk = left > sizeof buf ? (uint32_t)sizeof buf : (uint32_t)left;
        int32_t room = pn_sendable(n->s, st->conn);
        if (room >= 0 && (uint32_t)room < chunk)   /* generate only what fits (+1 to ask */
            chunk = (uint32_t)room + 1;            /* for MORE_SENDABLE) */
        gen_bytes(st->tx_seed, st->tx_sent, buf, chunk);
        int32_t r = pn_send(n->s, st->conn, buf, chunk, 0);
        if (r <= 0)
            break;
        st->tx_sent += (uint64_t)r;
        if ((uint32_t)r < chunk)
            break;
    }
    if (st->send_fin_when_done && !st->fin_sent && st->tx_sent == st->tx_total) {
        if (pn_send_fin(n->s, st->conn) == 0)
            st->fin_sent = 1;
    }
}

static void on_data(node *n, stream *st, pn_event *e)
{
    /* e->data holds stream bytes [rx_consumed, rx_consumed + len); verify the new ones */
    static uint8_t exp[1 << 16];
    uint64_t from = st->rx_seen - st->rx_consumed;
    uint64_t off = st->rx_seen;
    for (uint64_t i = from; i < e->len;) {
        uint32_t k = e->len - i > sizeof exp ? (uint32_t)sizeof exp : (uint32_t)(e->len - i);
        gen_bytes(st->rx_seed, off, exp, k);
        if (memcmp(exp, e->data + i, k) != 0)
            st->rx_bad++;
        i += k;
        off += k;
    }
    st->rx_seen = st->rx_consumed + e->len;
    uint32_t rem = 0;
    if (st->partial && e->type == PN_EV_DATA)
        rem = (uint32_t)((st->rx_seen * 2654435761u) % 97u) % (e->len + 1);
    if (st->keep_all && e->type == PN_EV_DATA)
        rem = e->len;
    int kept = rem ? pn_keep(n->s, e->conn_id, rem) : 0;
    if (kept != 0)   /* (checked only when it fails: this runs for every DATA event) */
        CHECK_EQ(kept, 0);
    st->kept = rem;
    st->rx_consumed += e->len - rem;
    (void)n;
}

static void handle(node *n, pn_event *e)
{
    if (e->type < 16)
        n->counts[e->type]++;
    stream *st = node_stream(n, e->conn_id);
    switch (e->type) {
    case PN_EV_CONNECTION_ESTABLISHED:
        if (st) {
            if (!st->used) {   /* accepted: the server side's stream */
                memset(st, 0, sizeof *st);
                st->used = 1;
                st->conn = e->conn_id;
                st->tx_total = n->default_tx;
                st->tx_seed = ((uint64_t)e->remote_ip << 16 | e->remote_port) * 2 + 1;
                st->rx_seed = ((uint64_t)e->remote_ip << 16 | e->remote_port) * 2;
                st->rx_expect = n->default_rx ? n->default_rx : UINT64_MAX;
                st->partial = n->partial;
                st->send_fin_when_done = n->auto_fin;
            }
            st->established = 1;
        }
        break;
    case PN_EV_DATA:
    case PN_EV_FIN:
        if (st) {
            on_data(n, st, e);
            if (e->type == PN_EV_FIN) {
                st->fin_seen = 1;
                st->rx_consumed = st->rx_seen;
            }
        }
        break;
    case PN_EV_MORE_SENDABLE:
        if (st)
            st->more_sendable++;
        break;
    case PN_EV_CONNECTION_CLOSED:
        if (st) st->closed = 1;
        break;
    case PN_EV_CONNECTION_RESET:
        if (st) st->reset = 1;
        break;
    case PN_EV_CONNECTION_TIMEOUT:
        if (st) st->timeout = 1;
        break;
    case PN_EV_CONNECTION_REFUSED:
        if (st) st->refused = 1;
        break;
    case PN_EV_USER_TIMEOUT:
        if (st) st->user_timeouts++;
        break;
    default:
        break;
    }
    if (n->hook)
        n->hook(n, e);
    /* after the handler: keep streams going */
    if (st && st->used && st->established && !st->closed && !st->reset &&
        (e->type == PN_EV_CONNECTION_ESTABLISHED || e->type == PN_EV_MORE_SENDABLE ||
         e->type == PN_EV_FIN))
        stream_pump(n, st);
    if (st && (e->type == PN_EV_CONNECTION_CLOSED || e->type == PN_EV_CONNECTION_RESET ||
               e->type == PN_EV_CONNECTION_TIMEOUT || e->type == PN_EV_CONNECTION_REFUSED))
        st->used = st->used ? 2 : 0;   /* finished; its slot may be reused next poll */
}

bool world_run(world *w, uint64_t limit_ns, bool (*done)(world *w, void *ctx), void *ctx)
{
    uint64_t end = w->now + limit_ns;
    for (;;) {
        bool more = false;
        for (int i = 0; i < w->nn; i++) {
            node *n = &w->nodes[i];
            pn_event *ev = n->ev;
            if (w->fresh_event_arrays) {
                ev = malloc(EV_MAX * sizeof *ev);
                memset(ev, 0xA5, EV_MAX * sizeof *ev);
            }
            int k = pn_poll(n->s, w->now, ev, EV_MAX);
            w->polls++;
            if (k < 0) {
                fprintf(stderr, "pn_poll: %d\n", k);
                return false;
            }
            for (int j = 0; j < k; j++)
                handle(n, &ev[j]);
            if (ev != n->ev)
                free(ev);
            if (k == EV_MAX)
                more = true;
        }
        drain_raw(w);
        if (done && done(w, ctx))
            return true;
        if (more)
            continue;
        uint64_t next = pn_sim_wire_next_arrival(w->wire);
        for (int i = 0; i < w->nn; i++) {
            uint64_t t = pn_stack_next_timer(w->nodes[i].s);
            if (t < next)
                next = t;
        }
        if (next == UINT64_MAX) {
            /* idle: one more round so `remaining` is applied, then report */
            return done ? done(w, ctx) : true;
        }
        if (next > w->now) {
            if (next > end) {
                w->now = end;   /* the time still passes */
                return done ? done(w, ctx) : false;
            }
            w->now = next;
        }
    }
}

void cfg_bulk_pair(pn_config *cl, pn_config *sv)
{
    cfg_for(cl, PAIR_CIP);
    cfg_for(sv, PAIR_SIP);
    cl->send_buf_1k = sv->send_buf_1k = 0;
    cl->window_scale = sv->window_scale = 1;
    cl->conn_recv_buf_size = sv->conn_recv_buf_size = 1u << 20;
    cl->congestion_control = sv->congestion_control = PN_CC_NEWRENO;
}

bool server_got(world *w, void *ctx)
{
    node *sv = &w->nodes[1];
    for (uint32_t i = 0; i < sv->nstreams; i++)
        if (sv->streams[i].used && sv->streams[i].rx_seen >= *(const uint64_t *)ctx)
            return true;
    return false;
}

bool all_streams_done(world *w, void *ctx)
{
    (void)ctx;
    for (int i = 0; i < w->nn; i++) {
        node *n = &w->nodes[i];
        for (uint32_t j = 0; j < n->nstreams; j++) {
            stream *st = &n->streams[j];
            if (st->used != 1)
                continue;
            if (st->tx_sent < st->tx_total)
                return false;
            if (st->rx_expect != UINT64_MAX && st->rx_seen < st->rx_expect)
                return false;
        }
    }
    return true;
}

static uint16_t fold16(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static uint32_t sum16(const uint8_t *p, uint32_t n, uint32_t sum)
{
    for (uint32_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        sum += (uint32_t)p[n - 1] << 8;
    return sum;
}

uint32_t build_tcp_frame(uint8_t *f, const raw_seg *r)
{
    uint32_t thl = 20 + r->optlen, l4 = thl + r->plen, tot = 20 + l4;
    memcpy(f, r->dst_mac, 6);
    memcpy(f + 6, r->src_mac, 6);
    f[12] = 0x08;
    f[13] = 0;
    uint8_t *ip = f + 14;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    ip[2] = (uint8_t)(tot >> 8);
    ip[3] = (uint8_t)tot;
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    for (int i = 0; i < 4; i++) {
        ip[12 + i] = (uint8_t)(r->src_ip >> (24 - 8 * i));
        ip[16 + i] = (uint8_t)(r->dst_ip >> (24 - 8 * i));
    }
    uint16_t ck = fold16(sum16(ip, 20, 0));
    ip[10] = (uint8_t)(ck >> 8);
    ip[11] = (uint8_t)ck;
    uint8_t *t = ip + 20;
    t[0] = (uint8_t)(r->sport >> 8); t[1] = (uint8_t)r->sport;
    t[2] = (uint8_t)(r->dport >> 8); t[3] = (uint8_t)r->dport;
    for (int i = 0; i < 4; i++) {
        t[4 + i] = (uint8_t)(r->seq >> (24 - 8 * i));
        t[8 + i] = (uint8_t)(r->ack >> (24 - 8 * i));
    }
    t[12] = (uint8_t)((thl / 4) << 4);
    t[13] = r->flags;
    t[14] = (uint8_t)(r->wnd >> 8);
    t[15] = (uint8_t)r->wnd;
    t[16] = t[17] = t[18] = t[19] = 0;
    if (r->optlen)
        memcpy(t + 20, r->opts, r->optlen);
    if (r->plen)
        memcpy(t + thl, r->payload, r->plen);
    uint8_t ph[12];
    memcpy(ph, ip + 12, 8);
    ph[8] = 0;
    ph[9] = 6;
    ph[10] = (uint8_t)(l4 >> 8);
    ph[11] = (uint8_t)l4;
    ck = fold16(sum16(t, l4, sum16(ph, 12, 0)));
    t[16] = (uint8_t)(ck >> 8);
    t[17] = (uint8_t)ck;
    return 14 + tot;
}

void raw_send(pn_link *raw, const uint8_t *f, uint32_t len)
{
    uint32_t cap;
    uint8_t *b = raw->ops->tx_buf(raw, &cap);
    if (len > cap)
        len = cap;
    memcpy(b, f, len);
    raw->ops->tx_send(raw, b, len);
}

stream *client_open(node *cl, uint32_t sip, uint16_t port, uint64_t tx, uint64_t rx)
{
    return client_open_from(cl, 0, sip, port, tx, rx);
}

stream *client_open_from(node *cl, uint16_t lport, uint32_t sip, uint16_t port, uint64_t tx,
                         uint64_t rx)
{
    uint32_t id = 0;
    int r = pn_connect(cl->s, sip, port, lport, &id);
    CHECK_EQ(r, 0);
    if (r < 0)
        return NULL;
    stream *st = node_stream(cl, id);
    if (!st)
        return NULL;
    memset(st, 0, sizeof *st);
    st->used = 1;
    st->conn = id;
    st->tx_total = tx;
    st->rx_expect = rx;
    pn_conn_info ci;
    pn_conn_info_get(cl->s, id, &ci);
    st->tx_seed = ((uint64_t)cl->ip << 16 | ci.local_port) * 2;
    st->rx_seed = ((uint64_t)cl->ip << 16 | ci.local_port) * 2 + 1;
    return st;
}
