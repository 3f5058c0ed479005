/* timer_heap.c -- every timer of a stack in one binary heap by due time (connections',
 * neighbours', TIME_WAIT's), and the next one due for pn_stack_next_timer. */
#include "pn_internal.h"

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
