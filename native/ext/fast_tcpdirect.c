/*
 * The tcpdirect backend's compiled path (see pnfast.c): TdConnCore (TcpdirectConnection's
 * base: zero-copy receive, send), TdStackCore (Stack's base: the reactor and muxer) and
 * the client's and server's poll().
 *
 * About 540 lines, one backend as fast_efvi.c and fast_socket.c are: the two polls are
 * loops over TdConnCore's delivery, and each file holds one backend's compiled path.
 */
#include "pnfast.h"

/* ------------------------------------------------------------------ TdConnCore */

/* The tcpdirect backend's connection (TcpdirectConnection's base): zft_zc_recv lends a
 * packet, the handler reads it in place, zft_zc_recv_done gives it back; zft_send_single
 * sends. The library is the one the backend loaded (ABI mode): its functions' addresses
 * come with each connection. The layout of struct zft_msg with one iovec is TCPDirect's
 * (zf/zf_tcp.h), as the backend's cdef has it. */
struct td_iovec {
    void *iov_base;
    size_t iov_len;
};
struct td_msg {
    int reserved[4];
    int pkts_left;
    int flags;
    int iovcnt;
    struct td_iovec iov[1];
};
typedef void (*td_zc_recv_fn)(void *, struct td_msg *, int);
typedef int (*td_zc_done_fn)(void *, struct td_msg *);
typedef ssize_t (*td_send_fn)(void *, const void *, size_t, int);

enum { TD_MAX_PACKETS = 64 }; /* per zocket per poll (connection.py's MAX_PACKETS_PER_POLL) */

typedef struct {
    PyObject_HEAD
    RecvHold buf;
    void *zock;
    td_zc_recv_fn zc_recv;
    td_zc_done_fn zc_done;
    td_send_fn send;
    struct td_msg msg;
    char connected, sent, received, redeliver, in_zc, free_pending;
    char queued; /* write() left bytes in the connection's send queue: new ones go behind */
} TdConnCore;
_Static_assert(offsetof(TdConnCore, buf) == offsetof(HoldConn, buf), "TdConnCore is a HoldConn");

static PyObject *td_attach(TdConnCore *c, PyObject *args)
{
    PyObject *rb;
    unsigned long long zock, zc_recv, zc_done, send;
    if (!PyArg_ParseTuple(args, "OKKKK:_attach", &rb, &zock, &zc_recv, &zc_done, &send))
        return NULL;
    if (!zock || !zc_recv || !zc_done || !send) {
        PyErr_SetString(PyExc_ValueError, "_attach: a null zocket or function");
        return NULL;
    }
    if (hold_attach(&c->buf, rb) < 0)
        return NULL;
    c->zock = (void *)(uintptr_t)zock;
    c->zc_recv = (td_zc_recv_fn)(uintptr_t)zc_recv;
    c->zc_done = (td_zc_done_fn)(uintptr_t)zc_done;
    c->send = (td_send_fn)(uintptr_t)send;
    Py_RETURN_NONE;
}

/* The packet goes back to the library; a zocket closed meanwhile is freed now. */
static int td_done(TdConnCore *c)
{
    c->in_zc = 0;
    c->zc_done(c->zock, &c->msg);
    if (c->free_pending) {
        c->free_pending = 0;
        return owner_do((PyObject *)c, str_free_zocket, NULL);
    }
    return 0;
}

/* One lent packet of n bytes to the handler, nothing kept from before: 0, or -1. */
static int td_packet(TdConnCore *c, PyObject *on_data, char *base, size_t n)
{
    PyObject *view = PyMemoryView_FromMemory(base, (Py_ssize_t)n, PyBUF_READ);
    if (view == NULL)
        return -1;
    PyObject *r;
    if ((Py_ssize_t)n > c->buf.size) { /* longer than the receive buffer: the Python way */
        PyObject *len = PyLong_FromSize_t(n);
        r = len ? PyObject_CallMethodObjArgs((PyObject *)c, str_deliver_packet, view, len,
                                             on_data, NULL) : NULL;
        Py_XDECREF(len);
    } else {
        PyObject *argv[3] = {NULL, (PyObject *)c, view};
        r = PyObject_Vectorcall(on_data, argv + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        long long rem = r != NULL ? plain_remaining(r, (long long)n) : -1;
        if (r != NULL && rem != 0) { /* keep the tail, or the Python checks and keeps */
            PyObject *got = PyLong_FromSize_t(n);
            PyObject *k = got ? PyObject_CallMethodObjArgs((PyObject *)c, str_keep_packet, view,
                                                           got, r, NULL) : NULL;
            Py_XDECREF(got);
            Py_DECREF(r);
            r = k;
        } else if (r == NULL) { /* the handler raised: what it saw stays for the next poll */
            Saved exc = {NULL, NULL, NULL};
            save_error(&exc);
            PyObject *got = PyLong_FromSize_t(n);
            PyObject *k = got ? PyObject_CallMethodObjArgs((PyObject *)c, str_keep_packet,
                                                           view, got, Py_None, NULL) : NULL;
            Py_XDECREF(got);
            Py_XDECREF(k);
            PyErr_Clear();
            restore_error(&exc);
            c->redeliver = 1;
        }
    }
    /* The memory goes back to the library: a view the handler kept is released. */
    if (Py_REFCNT(view) > 1) {
        Saved exc = {NULL, NULL, NULL};
        save_error(&exc);
        PyObject *rel = PyObject_CallMethodNoArgs(view, str_release);
        Py_XDECREF(rel);
        PyErr_Clear();
        restore_error(&exc);
    }
    Py_DECREF(view);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *td_read(TdConnCore *c, PyObject *on_data)
{
    if (c->buf.rb == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "read: no zocket attached");
        return NULL;
    }
    int kept = c->redeliver ? 1 : rb_kept(c->buf.rb);
    if (kept < 0)
        return NULL;
    if (kept)
        return PyObject_CallMethodOneArg((PyObject *)c, str_read_slow, on_data);
    for (int i = 0; i < TD_MAX_PACKETS; i++) {
        c->msg.iovcnt = 1;
        c->zc_recv(c->zock, &c->msg, 0);
        if (c->msg.iovcnt == 0)
            Py_RETURN_FALSE;
        size_t n = c->msg.iov[0].iov_len;
        if (n == 0) { /* end of stream: zft_zc_recv_done says whether orderly */
            int rc = c->zc_done(c->zock, &c->msg);
            PyObject *code = PyLong_FromLong(rc);
            int ok = code ? owner_do((PyObject *)c, str_stream_ended, code) : -1;
            Py_XDECREF(code);
            return ok < 0 ? NULL : Py_NewRef(Py_False);
        }
        c->received = 1;
        c->in_zc = 1;
        int rc = td_packet(c, on_data, c->msg.iov[0].iov_base, n);
        if (rc < 0) {
            Saved exc = {NULL, NULL, NULL};
            save_error(&exc);
            td_done(c);
            PyErr_Clear();
            restore_error(&exc);
            return NULL;
        }
        if (td_done(c) < 0)
            return NULL;
        if (!c->connected)
            Py_RETURN_FALSE;
        if ((kept = rb_kept(c->buf.rb)) != 0) /* bytes kept: the next read is the Python one */
            return kept < 0 ? NULL : PyObject_CallMethodOneArg((PyObject *)c, str_read_slow,
                                                               on_data);
    }
    Py_RETURN_TRUE;
}

static PyObject *td_write_some(TdConnCore *c, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    PyObject *obj;
    Py_buffer buf;
    int more;
    if (write_args(args, nargs, kwnames, "write_some", &obj, &buf, &more) < 0)
        return NULL;
    ssize_t n = -1;
    PyObject *r = NULL;
    if (c->connected && c->queued) {
        n = 0; /* sending now would overtake the queued bytes */
    } else if (c->connected) {
        n = buf.len ? c->send(c->zock, buf.buf, (size_t)buf.len, more ? MSG_MORE : 0) : 0;
        if (n >= 0) {
            c->sent = c->sent || buf.len > 0;
        } else if (n == -EAGAIN || n == -ENOMEM) {
            n = 0;
        } else {
            PyObject *code = PyLong_FromSsize_t(n);
            n = code && owner_do((PyObject *)c, str_send_failed, code) == 0 ? -1 : -2;
            Py_XDECREF(code);
        }
    }
    if (n != -2)
        r = PyLong_FromSsize_t(n);
    write_done(obj, &buf);
    return r;
}

static PyObject *td_write(TdConnCore *c, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    PyObject *obj;
    Py_buffer buf;
    int more;
    if (write_args(args, nargs, kwnames, "write", &obj, &buf, &more) < 0)
        return NULL;
    PyObject *r;
    if (!c->connected) {
        r = Py_NewRef(Py_False);
    } else if (buf.len == 0) {
        r = Py_NewRef(Py_True);
    } else {
        ssize_t n = c->queued ? 0 : c->send(c->zock, buf.buf, (size_t)buf.len,
                                              more ? MSG_MORE : 0);
        if (n == buf.len) {
            c->sent = 1;
            r = Py_NewRef(Py_True);
        } else { /* partial, refused or behind queued bytes: Python queues the rest */
            PyObject *rc = PyLong_FromSsize_t(n);
            PyObject *m = PyBool_FromLong(more);
            r = rc ? PyObject_CallMethodObjArgs((PyObject *)c, str_write_from, obj, m, rc,
                                                NULL) : NULL;
            Py_XDECREF(rc);
            Py_XDECREF(m);
        }
    }
    write_done(obj, &buf);
    return r;
}

static PyMethodDef td_methods[] = {
    {"read", (PyCFunction)td_read, METH_O,
     "read(on_data) -> bool: the packets the reactor brought in, one handler call each; "
     "True when it stopped at the per-poll limit."},
    {"write_some", (PyCFunction)(void (*)(void))td_write_some, METH_FASTCALL | METH_KEYWORDS,
     WRITE_DOC("write_some", "bytes the zocket took now (0: none), -1 when not connected.")},
    {"write", (PyCFunction)(void (*)(void))td_write, METH_FASTCALL | METH_KEYWORDS,
     WRITE_DOC("write", "all of data, running the stack between retries.")},
    {"_attach", (PyCFunction)td_attach, METH_VARARGS,
     "_attach(recv_buffer, zock, zft_zc_recv, zft_zc_recv_done, zft_send_single)"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef td_members[] = {
    {"_buf", T_OBJECT, offsetof(TdConnCore, buf.rb), READONLY, NULL},
    {"_connected", T_BOOL, offsetof(TdConnCore, connected), 0, NULL},
    {"_sent", T_BOOL, offsetof(TdConnCore, sent), 0, NULL},
    {"_received", T_BOOL, offsetof(TdConnCore, received), 0, NULL},
    {"redeliver", T_BOOL, offsetof(TdConnCore, redeliver), 0, NULL},
    {"_in_zc", T_BOOL, offsetof(TdConnCore, in_zc), 0, NULL},
    {"_free_pending", T_BOOL, offsetof(TdConnCore, free_pending), 0, NULL},
    {"_queued", T_BOOL, offsetof(TdConnCore, queued), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject TdConnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pollnet._pnfast.TdConnCore",
    .tp_basicsize = sizeof(TdConnCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The compiled part of a tcpdirect-backend connection: zero-copy receive, send.",
    .tp_traverse = (traverseproc)hold_conn_traverse,
    .tp_clear = (inquiry)hold_conn_clear,
    .tp_dealloc = (destructor)hold_conn_dealloc,
    .tp_methods = td_methods,
    .tp_members = td_members,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------------ TdStackCore */

/* A TCPDirect stack as the compiled polls use it (Stack's base): the library's reactor
 * and, for a server, its muxer; `pending` says the reactor reported something a client
 * has not read yet; `queued` lists the connections holding bytes write() queued. */
typedef int (*td_perform_fn)(void *);
typedef int (*td_mux_wait_fn)(void *, struct epoll_event *, int, int64_t);

typedef struct {
    PyObject_HEAD
    void *zst, *mux;
    td_perform_fn perform;
    td_mux_wait_fn wait;
    PyObject *queued;
    char pending;
} TdStackCore;

static int ts_traverse(TdStackCore *s, visitproc visit, void *arg)
{
    Py_VISIT(s->queued);
    return 0;
}

static int ts_clear(TdStackCore *s)
{
    Py_CLEAR(s->queued);
    return 0;
}

static void ts_dealloc(TdStackCore *s)
{
    PyTypeObject *tp = Py_TYPE(s);
    PyObject_GC_UnTrack(s);
    ts_clear(s);
    tp->tp_free((PyObject *)s);
}

static PyObject *ts_attach(TdStackCore *s, PyObject *args)
{
    unsigned long long zst, perform, mux = 0, wait = 0;
    if (!PyArg_ParseTuple(args, "KK|KK:_attach", &zst, &perform, &mux, &wait))
        return NULL;
    if (!zst != !perform || !mux != !wait) {
        PyErr_SetString(PyExc_ValueError, "_attach: a stack (or muxer) without its function");
        return NULL;
    }
    s->zst = (void *)(uintptr_t)zst;
    s->perform = (td_perform_fn)(uintptr_t)perform;
    s->mux = (void *)(uintptr_t)mux;
    s->wait = (td_mux_wait_fn)(uintptr_t)wait;
    Py_RETURN_NONE;
}

static PyMethodDef ts_methods[] = {
    {"_attach", (PyCFunction)ts_attach, METH_VARARGS,
     "_attach(stack, zf_reactor_perform[, muxer, zf_muxer_wait]): addresses; 0, 0 detaches."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef ts_members[] = {
    {"pending", T_BOOL, offsetof(TdStackCore, pending), 0, NULL},
    {"queued", T_OBJECT_EX, offsetof(TdStackCore, queued), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject TdStackType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pollnet._pnfast.TdStackCore",
    .tp_basicsize = sizeof(TdStackCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The compiled part of a TCPDirect stack: its reactor and muxer for poll().",
    .tp_traverse = (traverseproc)ts_traverse,
    .tp_clear = (inquiry)ts_clear,
    .tp_dealloc = (destructor)ts_dealloc,
    .tp_methods = ts_methods,
    .tp_members = ts_members,
    .tp_new = PyType_GenericNew,
};

/* ---- the tcpdirect backend's poll: the reactor (client) or the muxer (server) run
 * from C, the ready zockets read with td_read. */

/* The owner's TdStackCore, attached; NULL (no error) when the Python poll must run. */
static TdStackCore *td_stack(PollState *p)
{
    TdStackCore *s = (TdStackCore *)p->stack;
    if (s == NULL || s->zst == NULL || p->slow || p->timeouts_on ||
        PyList_GET_SIZE(p->closed) || s->queued == NULL || !PyList_Check(s->queued) ||
        PyList_GET_SIZE(s->queued)) /* bytes write() queued: the Python poll flushes */
        return NULL;
    return s;
}

/* A handler freed or closed the owner while a packet was lent: now that it is back, the
 * owner's _free_transport runs. `result` (a new reference, or NULL with the handler's
 * exception, which stays the one raised) is returned, or NULL if freeing failed. */
static PyObject *td_free_after(PyObject *owner, PollState *p, PyObject *result)
{
    p->free_after = 0;
    if (result != NULL) {
        if (owner_do(owner, str_free_transport, NULL) < 0)
            Py_CLEAR(result);
        return result;
    }
    Saved exc = {NULL, NULL, NULL};
    save_error(&exc);
    owner_do(owner, str_free_transport, NULL);
    PyErr_Clear();
    restore_error(&exc);
    return NULL;
}

static PyObject *tcpdirect_client_poll(PyObject *owner, PyObject *const *args,
                                       Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *handler, *now_obj, *r;
    if (poll_args(args, nargs, kwnames, &handler, &now_obj) < 0)
        return NULL;
    PollState *p = poll_state(owner, handler);
    if (p == NULL)
        return NULL;
    TdStackCore *s = td_stack(p);
    PyObject *conn = p->conn;
    if (s == NULL || !PyObject_TypeCheck(conn, &TdConnType)) {
        r = poll_py(owner, handler, now_obj); /* connecting, timeouts, queued, notices */
    } else {
        TdConnCore *c = (TdConnCore *)conn;
        /* zf_reactor_perform never misses an event (false positives only), so an idle
         * poll costs no zft_zc_recv. */
        if (s->perform(s->zst) > 0)
            s->pending = 1;
        r = Py_NewRef(Py_None);
        if ((s->pending || c->redeliver) && c->connected) {
            s->pending = 0;
            Py_DECREF(r);
            Py_INCREF(conn);
            r = td_read(c, p->on_data);
            Py_DECREF(conn);
            if (r == Py_True)
                s->pending = 1;
        }
        if (p->free_after) /* free() from the handler: the packet is back now */
            r = td_free_after(owner, p, r);
        if (r != NULL) {
            Py_DECREF(r);
            r = drained(owner, p);
        }
    }
    Py_DECREF(p);
    return r;
}

enum { TD_EVENTS = 64 }; /* server.py's MAX_EVENTS; the muxer keeps the rest for later */

/* Read one ready zocket; one to read again next poll goes on `again`. 0, or -1. */
static int td_serve(PollState *p, PyObject *conn)
{
    TdConnCore *c = (TdConnCore *)conn;
    if (!c->connected)
        return 0;
    Py_INCREF(conn);
    PyObject *r = td_read(c, p->on_data);
    int rc = 0;
    if (r == NULL) { /* what the raising handler saw comes again next poll */
        if (c->redeliver)
            keep_for_redelivery(p, conn);
        rc = -1;
    } else if (r == Py_True) {
        rc = PyList_Append(p->again, conn);
    }
    Py_XDECREF(r);
    Py_DECREF(conn);
    return rc;
}

/* The connection (a TdConnCore) of muxer key `key`, borrowed; NULL if none (an error set
 * only when the lookup failed). */
static PyObject *td_conn_of(PollState *p, uint64_t key)
{
    PyObject *k = PyLong_FromUnsignedLongLong(key);
    PyObject *conn = k ? PyDict_GetItemWithError(p->conns, k) : NULL;
    Py_XDECREF(k);
    return conn != NULL && PyObject_TypeCheck(conn, &TdConnType) ? conn : NULL;
}

/* A handler raised at event `start - 1`: the muxer reports a zocket once (edge-triggered),
 * so the events from `start` on go to `again` (connections) and to the owner's
 * _listener_ready (the listener), read at the next poll instead of lost. The handler's
 * exception stays the one raised. */
static void td_keep_unread(PyObject *owner, PollState *p, const struct epoll_event *evs,
                           int start, int n, int listener)
{
    Saved exc = {NULL, NULL, NULL};
    save_error(&exc);
    for (int i = start; i < n; i++) {
        uint64_t key = evs[i].data.u64;
        PyObject *conn = key ? td_conn_of(p, key) : NULL;
        listener |= key == 0;
        if (conn != NULL && ((TdConnCore *)conn)->connected &&
            PySequence_Contains(p->again, conn) == 0)
            PyList_Append(p->again, conn);
        PyErr_Clear();
    }
    if (listener)
        owner_do(owner, str_listener_ready, NULL);
    PyErr_Clear();
    restore_error(&exc);
}

static PyObject *tcpdirect_server_poll(PyObject *owner, PyObject *const *args,
                                       Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *handler, *now_obj;
    if (poll_args(args, nargs, kwnames, &handler, &now_obj) < 0)
        return NULL;
    PollState *p = poll_state(owner, handler);
    if (p == NULL)
        return NULL;
    PyObject *result = NULL;
    TdStackCore *s = td_stack(p);
    if (s == NULL || s->mux == NULL || p->conns == NULL || p->again == NULL ||
        PyList_GET_SIZE(p->again)) {
        result = poll_py(owner, handler, now_obj); /* accepting, timeouts, reads left over */
        goto out;
    }
    struct epoll_event evs[TD_EVENTS];
    int n = s->wait(s->mux, evs, TD_EVENTS, 0); /* runs the reactor too */
    int listener = 0;
    p->in_poll = 1;
    for (int i = 0; i < n; i++) {
        uint64_t key = evs[i].data.u64;
        if (key == 0) { /* the listener (server.py's _LISTENER) */
            listener = 1;
            continue;
        }
        PyObject *conn = td_conn_of(p, key);
        if ((conn == NULL && PyErr_Occurred()) || (conn != NULL && td_serve(p, conn) < 0)) {
            td_keep_unread(owner, p, evs, i + 1, n, listener);
            goto done;
        }
    }
    if (listener && owner_do(owner, str_on_listener, now_obj) < 0)
        goto done;
    result = drained(owner, p);
done:
    p->in_poll = 0;
    if (p->free_after) /* a handler closed the server: no packet is lent any more */
        result = td_free_after(owner, p, result);
out:
    Py_DECREF(p);
    return result;
}

PyMethodDef tcpdirect_client_poll_def = {
    "poll", (PyCFunction)(void (*)(void))tcpdirect_client_poll, METH_FASTCALL | METH_KEYWORDS,
    "poll(handler, now_ns=None): the reactor once, the connection read (compiled)."};
PyMethodDef tcpdirect_server_poll_def = {
    "poll", (PyCFunction)(void (*)(void))tcpdirect_server_poll, METH_FASTCALL | METH_KEYWORDS,
    "poll(handler, now_ns=None): one zf_muxer_wait(0), its zockets read (compiled)."};
