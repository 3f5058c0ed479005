/* tcp_send.c -- the send API: the application's bytes into a connection's send buffers
 * (pn_send, pn_sendv with `more`), and how much it may send now (pn_sendable,
 * pn_immediately_sendable); tcp_out.c turns the buffers into segments. */
#include "pn_internal.h"

static bool can_send_state(const pn_conn *c)
{
    return (c->state == PN_TCP_ESTABLISHED || c->state == PN_TCP_CLOSE_WAIT) && !c->fin_queued;
}

/* Room in the last buffer, if no byte of it has gone out yet (sent segments are final). */
static uint32_t tail_room(const pn_stack *s, const pn_conn *c)
{
    if (c->sb_cnt == 0)
        return 0;
    const pn_sseg *t = pn_seg_at(s, c, c->sb_cnt - 1);
    if (seq_lt(t->seq, c->snd_max) || t->len >= c->mss)
        return 0;
    return c->mss - t->len;
}

static uint32_t sendable(const pn_stack *s, const pn_conn *c)
{
    if (!can_send_state(c))
        return 0;
    uint64_t v = (uint64_t)(s->cfg.conn_send_buf_cnt - c->sb_cnt) * c->mss + tail_room(s, c);
    return v > INT32_MAX ? INT32_MAX : (uint32_t)v;
}

static uint32_t append(pn_stack *s, pn_conn *c, const uint8_t *p, uint32_t len)
{
    uint32_t done = 0, room = tail_room(s, c);
    if (room && len) {
        pn_sseg *t = pn_seg_at(s, c, c->sb_cnt - 1);
        uint32_t n = len < room ? len : room;
        uint32_t bi = (uint32_t)(t - c->segs);
        memcpy(c->sbuf + (size_t)bi * s->sbuf_size + t->len, p, n);
        t->len = (uint16_t)(t->len + n);
        done += n;
    }
    while (done < len && c->sb_cnt < s->cfg.conn_send_buf_cnt) {
        uint32_t bi = (c->sb_head + c->sb_cnt) % s->cfg.conn_send_buf_cnt;
        pn_sseg *t = &c->segs[bi];
        uint32_t n = len - done < c->mss ? len - done : c->mss;
        t->seq = c->data_end + done;
        t->len = (uint16_t)n;
        t->flags = 0;
        memcpy(c->sbuf + (size_t)bi * s->sbuf_size, p + done, n);
        c->sb_cnt++;
        done += n;
    }
    c->data_end += done;
    return done;
}

int32_t pn_sendv(pn_stack *s, uint32_t id, const pn_iovec *iov, int iovcnt, int more)
{
    pn_conn *c = pn_conn_get(s, id);
    if (!c)
        return PN_EBADCONN;
    if (iovcnt < 0 || (iovcnt > 0 && !iov))
        return PN_EINVAL;
    if (!can_send_state(c))
        return PN_ESTATE;
    uint64_t want = 0, got = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].len && !iov[i].base)
            return PN_EINVAL;
        want += iov[i].len;
    }
    if (want > INT32_MAX)
        return PN_EINVAL;
    for (int i = 0; i < iovcnt; i++) {
        uint32_t n = append(s, c, iov[i].base, iov[i].len);
        got += n;
        if (n < iov[i].len)
            break;
    }
    /* `more` holds back the trailing partial segment only while the caller says more is
     * coming; a short write means the rest is coming too. */
    c->more_hold = more ? 1 : 0;
    if (got < want)
        c->want_more_sendable = 1;
    pn_tcp_output(s, c);
    s->link->ops->tx_flush(s->link);
    return (int32_t)got;
}

int32_t pn_send(pn_stack *s, uint32_t id, const void *data, uint32_t len, int more)
{
    pn_iovec v = {data, len};
    return pn_sendv(s, id, &v, 1, more);
}

int32_t pn_sendable(const pn_stack *s, uint32_t id)
{
    const pn_conn *c = pn_conn_get(s, id);
    if (!c)
        return PN_EBADCONN;
    return (int32_t)sendable(s, c);
}

/* What the next send could put on the wire now: bounded by the buffers and by the
 * usable window (min of the peer's window and cwnd) less bytes already queued. */
int32_t pn_immediately_sendable(const pn_stack *s, uint32_t id)
{
    const pn_conn *c = pn_conn_get(s, id);
    if (!c)
        return PN_EBADCONN;
    uint32_t b = sendable(s, c);
    if (b == 0)
        return 0;
    uint32_t wnd = c->snd_wnd;
    if (s->cfg.congestion_control != PN_CC_NONE && c->cwnd < wnd)
        wnd = c->cwnd;
    uint32_t used = c->data_end - c->snd_una;   /* in flight plus queued */
    if (used >= wnd)
        return 0;
    uint32_t w = wnd - used;
    return (int32_t)(w < b ? w : b);
}
