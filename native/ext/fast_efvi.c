/*
 * The efvi backend's compiled path (see pnfast.c): CoreConn (the efvitcp-level
 * Connection's base: send is pn_send), PollConnCore (the pollnet-level connection's
 * writes) and Poller (one pn_poll, DATA/MORE_SENDABLE/USER_TIMEOUT dispatched from C, the
 * rarer events to Endpoint._event), plus the pollnet level's poll (owner_poll).
 *
 * The core is not linked in: it lives in the cffi module pollnet._pncore, which hands us
 * the addresses of pn_poll and pn_send (`bind_core`), so both modules share one core --
 * also the sanitised one of scripts/pytest-asan.sh. The semantics are those of the
 * Python path in pollnet/backends/efvi/efvitcp/endpoint.py.
 *
 * One file of about a thousand lines: Poller's delivery works on CoreConn's and
 * PollConnCore's fields directly, which is the point of compiling it.
 */
#include "pnfast.h"
#include "pn_stack.h"

typedef int (*poll_fn)(pn_stack *, uint64_t, pn_event *, int);
typedef int32_t (*send_fn)(pn_stack *, uint32_t, const void *, uint32_t, int);
typedef int (*timer_fn)(pn_stack *, uint32_t, uint32_t, uint32_t);
typedef int (*keep_fn)(pn_stack *, uint32_t, uint32_t);

static poll_fn core_poll;
static send_fn core_send;
static timer_fn core_set_timer;
static keep_fn core_keep;

enum { SEND_TIMER = 0, RECV_TIMER = 1 }; /* the pollnet adapter's user timers */

/* ------------------------------------------------------------------ CoreConn */

typedef struct {
    PyObject_HEAD
    PyObject *user_data;
    unsigned long long stack_addr; /* pn_stack *, 0 once the stack is gone */
    unsigned int conn_id;
    unsigned int kept;        /* bytes on_data left unconsumed last time */
    unsigned int remote_ip;
    unsigned short remote_port;
    unsigned short local_port;
    char closed;
    char established;
} CoreConn;

/* Raise what the Python side says about a call on a closed connection. */
static PyObject *raise_dead(PyObject *self, const char *doing)
{
    PyObject *what = PyUnicode_FromString(doing);
    PyObject *err = what ? PyObject_CallMethodOneArg(self, str_dead, what) : NULL;
    Py_XDECREF(what);
    if (err != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(err), err);
        Py_DECREF(err);
    }
    return NULL;
}

static PyObject *conn_send(CoreConn *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    PyObject *data;
    int more;
    if (data_more_args(args, nargs, kwnames, "send", &data, &more) < 0)
        return NULL;
    if (self->closed || self->stack_addr == 0)
        return raise_dead((PyObject *)self, "send");
    if (core_send == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pollnet._pnfast: bind_core was not called");
        return NULL;
    }

    int32_t rc;
    if (PyBytes_CheckExact(data)) {
        Py_ssize_t n = PyBytes_GET_SIZE(data);
        rc = core_send((pn_stack *)(uintptr_t)self->stack_addr, self->conn_id,
                       PyBytes_AS_STRING(data), n > UINT32_MAX ? UINT32_MAX : (uint32_t)n, more);
    } else {
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "send() takes a bytes-like object (bytes, "
                             "bytearray, memoryview or any C-contiguous buffer), not '%s'",
                             Py_TYPE(data)->tp_name);
            }
            return NULL;
        }
        uint32_t n = view.len > UINT32_MAX ? UINT32_MAX : (uint32_t)view.len;
        rc = core_send((pn_stack *)(uintptr_t)self->stack_addr, self->conn_id, view.buf, n,
                       more);
        PyBuffer_Release(&view);
    }
    if (rc < 0) {
        PyObject *r = PyObject_CallMethod((PyObject *)self, "_check", "is", (int)rc, "send");
        Py_XDECREF(r);
        if (r != NULL)
            PyErr_Format(PyExc_SystemError, "send: the core returned %d", (int)rc);
        return NULL;
    }
    return PyLong_FromLong(rc);
}

static PyMethodDef conn_methods[] = {
    {"send", (PyCFunction)(void (*)(void))conn_send, METH_FASTCALL | METH_KEYWORDS,
     "send(data, more=False) -> int: copy up to sendable() bytes into the send buffers; "
     "returns how many were accepted."},
    {NULL, NULL, 0, NULL},
};

static int conn_traverse(CoreConn *c, visitproc visit, void *arg)
{
    Py_VISIT(c->user_data);
    return 0;
}

static int conn_clear(CoreConn *c)
{
    Py_CLEAR(c->user_data);
    return 0;
}

static void conn_dealloc(CoreConn *c)
{
    PyTypeObject *tp = Py_TYPE(c);
    PyObject_GC_UnTrack(c);
    conn_clear(c);
    tp->tp_free((PyObject *)c);
}

static PyMemberDef conn_members[] = {
    {"user_data", T_OBJECT, offsetof(CoreConn, user_data), 0, "the application's, free"},
    {"conn_id", T_UINT, offsetof(CoreConn, conn_id), 0, "the core's slot number"},
    {"_core_stack", T_ULONGLONG, offsetof(CoreConn, stack_addr), 0, NULL},
    {"_kept", T_UINT, offsetof(CoreConn, kept), 0, NULL},
    {"_remote_ip", T_UINT, offsetof(CoreConn, remote_ip), 0, NULL},
    {"_remote_port", T_USHORT, offsetof(CoreConn, remote_port), 0, NULL},
    {"_local_port", T_USHORT, offsetof(CoreConn, local_port), 0, NULL},
    {"_closed", T_BOOL, offsetof(CoreConn, closed), 0, NULL},
    {"_established", T_BOOL, offsetof(CoreConn, established), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject CoreConnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pollnet._pnfast.CoreConn",
    .tp_basicsize = sizeof(CoreConn),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The compiled part of an efvi Connection: its slot, flags and send().",
    .tp_traverse = (traverseproc)conn_traverse,
    .tp_clear = (inquiry)conn_clear,
    .tp_dealloc = (destructor)conn_dealloc,
    .tp_methods = conn_methods,
    .tp_members = conn_members,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------------ PollConnCore */

/* The pollnet-level efvi connection's per-message state (EfviPollConnection's base): what
 * the write methods and the compiled delivery read on every message. Everything rarer
 * (the backlog's held bytes, chunked delivery, closing) stays in Python. */
typedef struct {
    PyObject_HEAD
    PyObject *core;  /* the efvitcp-level Connection (a CoreConn) */
    PyObject *held;  /* bytes held in Python while in a server's backlog, or None */
    PyObject *outq;  /* a write's tail waiting for send buffers, or None */
    unsigned long long rx_total; /* bytes ever presented (the FIN-or-RST choice) */
    unsigned int kept;           /* bytes the handler left unconsumed last time */
    int send_left, recv_left;    /* timer chunks left before on_send/recv_timeout */
    int recv_size, recv_ms, recv_chunks, send_ms, send_chunks; /* the owner's Plan */
    char connected, announced;
} PollConnCore;

static int pc_traverse(PollConnCore *c, visitproc visit, void *arg)
{
    Py_VISIT(c->core);
    Py_VISIT(c->held);
    Py_VISIT(c->outq);
    return 0;
}

static int pc_clear(PollConnCore *c)
{
    Py_CLEAR(c->core);
    Py_CLEAR(c->held);
    Py_CLEAR(c->outq);
    return 0;
}

static void pc_dealloc(PollConnCore *c)
{
    PyTypeObject *tp = Py_TYPE(c);
    PyObject_GC_UnTrack(c);
    pc_clear(c);
    tp->tp_free((PyObject *)c);
}

static CoreConn *pc_core(PollConnCore *c)
{
    if (c->core == NULL || !PyObject_TypeCheck(c->core, &CoreConnType)) {
        PyErr_SetString(PyExc_SystemError, "EfviPollConnection._core must be a Connection");
        return NULL;
    }
    return (CoreConn *)c->core;
}

static int outq_waiting(PollConnCore *c)
{
    return c->outq != NULL && c->outq != Py_None && PyObject_Size(c->outq) > 0;
}

static void sent_some(PollConnCore *c, CoreConn *core)
{
    if (c->send_ms) { /* re-arm the send idle timer (the connection is alive: it just sent) */
        c->send_left = c->send_chunks;
        core_set_timer((pn_stack *)(uintptr_t)core->stack_addr, core->conn_id, SEND_TIMER,
                       (uint32_t)c->send_ms);
    }
}

/* pn_send of the whole buffer: bytes accepted, or -1 after telling Python (which closes
 * the connection with the core's error), or -2 with an exception set. */
static long long send_buffer(PollConnCore *c, CoreConn *core, Py_buffer *buf, int more)
{
    if (core->closed || core->stack_addr == 0) {
        PyObject *r = PyObject_CallMethod((PyObject *)c, "_send_failed", "i", 0);
        Py_XDECREF(r);
        return r ? -1 : -2;
    }
    uint32_t n = buf->len > UINT32_MAX ? UINT32_MAX : (uint32_t)buf->len;
    int32_t rc = core_send((pn_stack *)(uintptr_t)core->stack_addr, core->conn_id, buf->buf,
                           n, more);
    if (rc < 0) {
        PyObject *code = PyLong_FromLong(rc);
        PyObject *r = code ? PyObject_CallMethodOneArg((PyObject *)c, str_send_failed, code)
                           : NULL;
        Py_XDECREF(code);
        Py_XDECREF(r);
        return r ? -1 : -2;
    }
    if (rc)
        sent_some(c, core);
    return rc;
}

static PyObject *pc_write_some(PollConnCore *c, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    PyObject *obj;
    Py_buffer buf;
    int more;
    if (write_args(args, nargs, kwnames, "write_some", &obj, &buf, &more) < 0)
        return NULL;
    long long n;
    CoreConn *core;
    if (!c->connected)
        n = -1;
    else if (outq_waiting(c))
        n = 0; /* an earlier write's tail goes first */
    else if ((core = pc_core(c)) == NULL)
        n = -2;
    else
        n = send_buffer(c, core, &buf, more);
    write_done(obj, &buf);
    return n == -2 ? NULL : PyLong_FromLongLong(n);
}

static PyObject *pc_write_nonblock(PollConnCore *c, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames)
{
    PyObject *obj;
    Py_buffer buf;
    int more;
    if (write_args(args, nargs, kwnames, "write_nonblock", &obj, &buf, &more) < 0)
        return NULL;
    if (!c->connected) {
        write_done(obj, &buf);
        Py_RETURN_FALSE;
    }
    Py_ssize_t size = buf.len;
    long long n = 0;
    CoreConn *core = NULL;
    if (!outq_waiting(c))
        n = (core = pc_core(c)) == NULL ? -2 : send_buffer(c, core, &buf, more);
    write_done(obj, &buf);
    if (n == -2)
        return NULL;
    if (n == size)
        Py_RETURN_TRUE;
    if (n >= 0 && c->connected) {
        PyObject *why = PyUnicode_FromFormat("send buffer full: write_nonblock sent %lld of "
                                             "%zd bytes", n, size);
        PyObject *r = why ? PyObject_CallMethodOneArg((PyObject *)c, str_shutdown, why) : NULL;
        Py_XDECREF(why);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    Py_RETURN_FALSE;
}

static PyObject *pc_write(PollConnCore *c, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    PyObject *obj;
    Py_buffer buf;
    int more;
    if (write_args(args, nargs, kwnames, "write", &obj, &buf, &more) < 0)
        return NULL;
    if (!c->connected) {
        write_done(obj, &buf);
        Py_RETURN_FALSE;
    }
    long long n = 0;
    if (c->outq == NULL || c->outq == Py_None) {
        CoreConn *core = pc_core(c);
        n = core == NULL ? -2 : send_buffer(c, core, &buf, more);
    }
    Py_ssize_t size = buf.len;
    PyBuffer_Release(&buf);
    PyObject *r;
    if (n < 0) {
        r = n == -1 ? Py_NewRef(Py_False) : NULL;
    } else if (n == size) {
        r = Py_NewRef(Py_True);
    } else { /* the rest waits in the queue, sent by the following polls */
        PyObject *off = PyLong_FromLongLong(n);
        r = off ? PyObject_CallMethodObjArgs((PyObject *)c, str_queue, obj, off, NULL) : NULL;
        Py_XDECREF(off);
    }
    Py_DECREF(obj);
    return r;
}

static PyObject *pc_use_plan(PollConnCore *c, PyObject *plan)
{
    static const char *names[] = {"recv_size", "recv_ms", "recv_chunks", "send_ms",
                                  "send_chunks"};
    int *fields[] = {&c->recv_size, &c->recv_ms, &c->recv_chunks, &c->send_ms,
                     &c->send_chunks};
    for (int k = 0; k < 5; k++) {
        PyObject *v = PyObject_GetAttrString(plan, names[k]);
        long x = v ? PyLong_AsLong(v) : -1;
        Py_XDECREF(v);
        if (x == -1 && PyErr_Occurred())
            return NULL;
        if (x < 0 || x > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "plan.%s = %ld is out of range", names[k], x);
            return NULL;
        }
        *fields[k] = (int)x;
    }
    Py_RETURN_NONE;
}

static PyMethodDef pc_methods[] = {
    {"write_some", (PyCFunction)(void (*)(void))pc_write_some, METH_FASTCALL | METH_KEYWORDS,
     WRITE_DOC("write_some", "bytes the send buffers took now (0 while a queue waits), -1 "
               "when not connected.")},
    {"write_nonblock", (PyCFunction)(void (*)(void))pc_write_nonblock,
     METH_FASTCALL | METH_KEYWORDS,
     WRITE_DOC("write_nonblock", "all of data now, or the connection closes; False then.")},
    {"write", (PyCFunction)(void (*)(void))pc_write, METH_FASTCALL | METH_KEYWORDS,
     WRITE_DOC("write", "all of data in order, never blocking (the rest is queued).")},
    {"_use_plan", (PyCFunction)pc_use_plan, METH_O, "Copy the owner's Plan numbers."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef pc_members[] = {
    {"_core", T_OBJECT_EX, offsetof(PollConnCore, core), 0, NULL},
    {"_held", T_OBJECT, offsetof(PollConnCore, held), 0, NULL},
    {"_outq", T_OBJECT, offsetof(PollConnCore, outq), 0, NULL},
    {"_rx_total", T_ULONGLONG, offsetof(PollConnCore, rx_total), 0, NULL},
    {"_kept", T_UINT, offsetof(PollConnCore, kept), 0, NULL},
    {"_send_left", T_INT, offsetof(PollConnCore, send_left), 0, NULL},
    {"_recv_left", T_INT, offsetof(PollConnCore, recv_left), 0, NULL},
    {"_connected", T_BOOL, offsetof(PollConnCore, connected), 0, NULL},
    {"_announced", T_BOOL, offsetof(PollConnCore, announced), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject PollConnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pollnet._pnfast.PollConnCore",
    .tp_basicsize = sizeof(PollConnCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The compiled part of a pollnet-level efvi connection: writes and the state "
              "the per-message path reads.",
    .tp_traverse = (traverseproc)pc_traverse,
    .tp_clear = (inquiry)pc_clear,
    .tp_dealloc = (destructor)pc_dealloc,
    .tp_methods = pc_methods,
    .tp_members = pc_members,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------------ Poller */

enum { M_DATA, M_FIN, M_MORE, M_EST, M_CLOSED, M_RESET, M_TIMEOUT, M_REFUSED, M_TIMER,
       M_ACCEPT, N_METHODS };

/* A handler method ready for vectorcall: a bound method is called as its function with
 * its self first (no bound-method indirection on every call). */
typedef struct {
    PyObject *func; /* NULL: the handler lacks it */
    PyObject *self; /* NULL: func is called as is */
} Method;

typedef struct {
    PyObject_HEAD
    pn_stack *stack;
    pn_event *events;
    Py_buffer evbuf; /* the endpoint's event bytearray, exported while we live */
    int max_events;
    int resume;  /* events [resume, pending) of the last batch are not dispatched yet */
    int pending;
    PyObject *conns;         /* list of Connection, indexed by conn_id */
    PyObject *wire;          /* the sim wire (its now_ns is the clock) or None */
    PyObject *accept_errors; /* list: what allow_new_connection raised inside pn_poll */
    PyObject *handler;       /* the handler the methods below belong to */
    Method m[N_METHODS];
    Method pollnet;          /* the pollnet handler's on_tcp_data (set_pollnet), or none */
    /* the pollnet level (pollnet_setup): the efvitcp-level handler of the owner's events,
     * its lists of queued writers and closed connections */
    PyObject *pn_events, *pn_flush, *pn_closed, *pn_handler;
    char pn_sim;       /* the owner's clock is the sim net's (its _sim_now) */
    char dispatching;  /* inside the pollnet poll's dispatch: the stack must not be pumped */
    char owner_idle;   /* the owner has nothing to do after a poll but what the lists say */
    /* the endpoint's Python side, bound methods */
    PyObject *bind, *slot, *event, *closed_error, *poll_error, *remaining, *kept_export;
} Poller;

static void method_clear(Method *m)
{
    Py_CLEAR(m->func);
    Py_CLEAR(m->self);
}

static int poller_traverse(Poller *p, visitproc visit, void *arg)
{
    Py_VISIT(p->conns);
    Py_VISIT(p->wire);
    Py_VISIT(p->accept_errors);
    Py_VISIT(p->handler);
    for (int k = 0; k < N_METHODS; k++) {
        Py_VISIT(p->m[k].func);
        Py_VISIT(p->m[k].self);
    }
    Py_VISIT(p->pollnet.func);
    Py_VISIT(p->pollnet.self);
    Py_VISIT(p->pn_events);
    Py_VISIT(p->pn_flush);
    Py_VISIT(p->pn_closed);
    Py_VISIT(p->pn_handler);
    Py_VISIT(p->bind);
    Py_VISIT(p->slot);
    Py_VISIT(p->event);
    Py_VISIT(p->closed_error);
    Py_VISIT(p->poll_error);
    Py_VISIT(p->remaining);
    Py_VISIT(p->kept_export);
    return 0;
}

static int poller_clear(Poller *p)
{
    Py_CLEAR(p->conns);
    Py_CLEAR(p->wire);
    Py_CLEAR(p->accept_errors);
    Py_CLEAR(p->handler);
    for (int k = 0; k < N_METHODS; k++)
        method_clear(&p->m[k]);
    method_clear(&p->pollnet);
    Py_CLEAR(p->pn_events);
    Py_CLEAR(p->pn_flush);
    Py_CLEAR(p->pn_closed);
    Py_CLEAR(p->pn_handler);
    Py_CLEAR(p->bind);
    Py_CLEAR(p->slot);
    Py_CLEAR(p->event);
    Py_CLEAR(p->closed_error);
    Py_CLEAR(p->poll_error);
    Py_CLEAR(p->remaining);
    Py_CLEAR(p->kept_export);
    return 0;
}

static void poller_dealloc(Poller *p)
{
    PyObject_GC_UnTrack(p);
    poller_clear(p);
    if (p->evbuf.obj != NULL)
        PyBuffer_Release(&p->evbuf);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyObject *getattr_str(PyObject *obj, const char *name)
{
    return PyObject_GetAttrString(obj, name);
}

static int poller_init(Poller *p, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"endpoint", "stack", "events", "conns", "wire", "accept_errors",
                         "max_events", "remaining", "kept_export", NULL};
    PyObject *ep, *events, *conns, *wire, *accept_errors, *remaining, *kept_export;
    unsigned long long stack;
    int max_events;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OKOO!OO!iOO:Poller", kw, &ep, &stack,
                                     &events, &PyList_Type, &conns, &wire, &PyList_Type,
                                     &accept_errors, &max_events, &remaining, &kept_export))
        return -1;
    if (p->evbuf.obj != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Poller is initialised once");
        return -1;
    }
    if (core_poll == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pollnet._pnfast: bind_core was not called");
        return -1;
    }
    if (PyObject_GetBuffer(events, &p->evbuf, PyBUF_WRITABLE) < 0)
        return -1;
    if (max_events < 0 || (size_t)p->evbuf.len < (size_t)max_events * sizeof(pn_event) ||
        ((uintptr_t)p->evbuf.buf % _Alignof(pn_event)) != 0) {
        PyBuffer_Release(&p->evbuf);
        PyErr_Format(PyExc_ValueError, "Poller: the event buffer must hold %d aligned "
                     "pn_event (%zu bytes each)", max_events, sizeof(pn_event));
        return -1;
    }
    p->stack = (pn_stack *)(uintptr_t)stack;
    p->events = p->evbuf.buf;
    p->max_events = max_events;
    p->conns = Py_NewRef(conns);
    p->wire = Py_NewRef(wire);
    p->accept_errors = Py_NewRef(accept_errors);
    p->remaining = Py_NewRef(remaining);
    p->kept_export = Py_NewRef(kept_export);
    if (!(p->bind = getattr_str(ep, "_bind")) || !(p->slot = getattr_str(ep, "_slot")) ||
        !(p->event = getattr_str(ep, "_event")) || !(p->closed_error = getattr_str(ep, "_s")) ||
        !(p->poll_error = getattr_str(ep, "_poll_error")))
        return -1;
    return 0;
}

static void method_set(Method *m, PyObject *f)
{
    method_clear(m);
    if (f == Py_None)
        return;
    if (PyMethod_Check(f)) {
        m->func = Py_NewRef(PyMethod_GET_FUNCTION(f));
        m->self = Py_NewRef(PyMethod_GET_SELF(f));
    } else {
        m->func = Py_NewRef(f);
    }
}

/* Take a handler's Bound tuple (Endpoint._bind) apart into vectorcall-ready methods. */
static int poller_rebind(Poller *p, PyObject *handler)
{
    PyObject *bound = PyObject_CallOneArg(p->bind, handler);
    if (bound == NULL)
        return -1;
    if (!PyTuple_Check(bound) || PyTuple_GET_SIZE(bound) != N_METHODS) {
        Py_DECREF(bound);
        PyErr_SetString(PyExc_SystemError, "Endpoint._bind must return a Bound of 10 methods");
        return -1;
    }
    for (int k = 0; k < N_METHODS; k++)
        method_set(&p->m[k], PyTuple_GET_ITEM(bound, k));
    Py_DECREF(bound);
    Py_XSETREF(p->handler, Py_NewRef(handler));
    return 0;
}

/* Call method k with (conn[, arg]); argv[0] is scratch for the method's self. */
static PyObject *call(Method *m, PyObject *conn, PyObject *arg)
{
    PyObject *argv[4];
    size_t n = 0;
    argv[n++] = NULL;
    if (m->self != NULL)
        argv[n++] = m->self;
    argv[n++] = conn;
    if (arg != NULL)
        argv[n++] = arg;
    return PyObject_Vectorcall(m->func, argv + 1, (n - 1) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                               NULL);
}

static PyObject *conn_at(Poller *p, uint32_t cid)
{
    if (cid < (size_t)PyList_GET_SIZE(p->conns))
        return Py_NewRef(PyList_GET_ITEM(p->conns, cid));
    PyObject *idx = PyLong_FromUnsignedLong(cid);
    if (idx == NULL)
        return NULL;
    PyObject *c = PyObject_CallOneArg(p->slot, idx);
    Py_DECREF(idx);
    return c;
}

/* Release the data view after the handler: a view nobody else holds is simply dropped;
 * one the handler kept is released so it cannot outlive the call (an export of it that
 * is still alive is the handler's error). Returns -1 with an exception set then. */
static int drop_view(Poller *p, PyObject *view, PyObject *conn, int handler_failed)
{
    int rc = 0;
    if (Py_REFCNT(view) > 1) {
        Saved exc = {NULL, NULL, NULL};
        if (handler_failed)
            save_error(&exc);
        PyObject *r = PyObject_CallMethodNoArgs(view, str_release);
        if (r != NULL) {
            Py_DECREF(r);
        } else if (handler_failed) {
            PyErr_Clear(); /* still exported: the handler's own exception is the one raised */
        } else if (PyErr_ExceptionMatches(PyExc_BufferError)) {
            PyErr_Clear();
            PyObject *err = PyObject_CallFunction(p->kept_export, "Os", conn, "on_data");
            if (err != NULL) {
                PyErr_SetObject((PyObject *)Py_TYPE(err), err);
                Py_DECREF(err);
            }
            rc = -1;
        } else {
            rc = -1;
        }
        if (handler_failed)
            restore_error(&exc);
    }
    Py_DECREF(view);
    return rc;
}

/* The handler's return as a count of unconsumed bytes in 0..size, or -1 with an error. */
static long long remaining_of(Poller *p, PyObject *rem, uint32_t size, PyObject *conn)
{
    long long plain = plain_remaining(rem, size);
    if (plain >= 0)
        return plain;
    PyObject *r = PyObject_CallFunction(p->remaining, "OIOs", rem, (unsigned)size, conn,
                                        "on_data");
    if (r == NULL)
        return -1;
    long long v = PyLong_AsLongLong(r);
    Py_DECREF(r);
    return v;
}

/* The pollnet adapter's delivery (EfviPollConnection.deliver), for the common case: the
 * connection announced, nothing held in Python, the event within the receive buffer. */
static int deliver(Poller *p, PollConnCore *pc, CoreConn *c, pn_event *ev)
{
    uint32_t size = ev->len;
    if (pc->recv_ms) { /* data arrived: the receive idle timer starts again */
        pc->recv_left = pc->recv_chunks;
        core_set_timer((pn_stack *)(uintptr_t)c->stack_addr, c->conn_id, RECV_TIMER,
                       (uint32_t)pc->recv_ms);
    }
    PyObject *view = PyMemoryView_FromMemory((char *)ev->data, size, PyBUF_READ);
    if (view == NULL)
        return -1;
    Py_INCREF(pc); /* the handler may drop every other reference */
    PyObject *r = call(&p->pollnet, (PyObject *)pc, view);
    if (drop_view(p, view, (PyObject *)c, r == NULL) < 0)
        Py_CLEAR(r);
    long long rem = r != NULL ? plain_remaining(r, size) : -1;
    if (rem < 0 && r != NULL) { /* None, int subclasses, or the HandlerError */
        PyObject *checked = PyObject_CallFunction(py_checked_remaining, "OI", r, (unsigned)size);
        if (checked != NULL) {
            rem = PyLong_AsLongLong(checked);
            Py_DECREF(checked);
        }
    }
    Py_XDECREF(r);
    if (rem < 0) { /* nothing is counted: the event is presented again */
        Py_DECREF(pc);
        return -1;
    }
    pc->rx_total += size - pc->kept;
    int rc = 0;
    if (!pc->connected) {
        rem = 0;
    } else if (rem == size && size >= (uint32_t)pc->recv_size) {
        rem = 0; /* a full receive buffer left unconsumed closes the connection */
        PyObject *res = PyObject_CallMethodNoArgs((PyObject *)pc, str_recv_full);
        Py_XDECREF(res);
        rc = res ? 0 : -1;
    }
    pc->kept = (unsigned int)rem;
    c->kept = (unsigned int)rem;
    if (rem && p->stack != NULL) /* (a handler may have closed the endpoint) */
        core_keep(p->stack, ev->conn_id, (uint32_t)rem);
    Py_DECREF(pc);
    return rc;
}

/* A DATA event the compiled pollnet delivery takes: 1, or 0 for the Python path. */
static int delivers(Poller *p, CoreConn *c, uint32_t size)
{
    if (p->pollnet.func == NULL || c->closed || c->user_data == NULL ||
        !PyObject_TypeCheck(c->user_data, &PollConnType))
        return 0;
    PollConnCore *pc = (PollConnCore *)c->user_data;
    return pc->connected && pc->announced && (pc->held == NULL || pc->held == Py_None) &&
           size <= (uint32_t)pc->recv_size;
}

/* Dispatch events [start, n). Returns 0, or -1 with the handler's exception set; `resume`
 * says where the next poll goes on (a DATA event whose handler failed is presented again). */
static int dispatch(Poller *p, int start, int n)
{
    p->pending = n;
    for (int i = start; i < n; i++) {
        pn_event *ev = &p->events[i];
        uint32_t t = ev->type;
        PyObject *conn = conn_at(p, ev->conn_id);
        if (conn == NULL) {
            p->resume = i;
            return -1;
        }
        if (!PyObject_TypeCheck(conn, &CoreConnType)) {
            Py_DECREF(conn);
            p->resume = i;
            PyErr_SetString(PyExc_SystemError, "efvi connection slots must be CoreConn");
            return -1;
        }
        CoreConn *c = (CoreConn *)conn;
        PyObject *r = Py_None;
        Py_INCREF(r);
        if (t == PN_EV_DATA && delivers(p, c, ev->len)) {
            p->resume = i;
            int rc = deliver(p, (PollConnCore *)c->user_data, c, ev);
            Py_DECREF(conn);
            if (rc < 0)
                return -1;
            p->resume = i + 1;
            continue;
        }
        if (t == PN_EV_DATA) {
            Method *m = &p->m[M_DATA];
            if (!c->closed && m->func != NULL) {
                p->resume = i; /* pending until the handler returns a valid count */
                uint32_t size = ev->len;
                PyObject *view = PyMemoryView_FromMemory((char *)ev->data, size, PyBUF_READ);
                Py_DECREF(r);
                r = view ? call(m, conn, view) : NULL;
                if (view != NULL && drop_view(p, view, conn, r == NULL) < 0)
                    Py_CLEAR(r);
                if (r != NULL) {
                    long long rem = remaining_of(p, r, size, conn);
                    if (rem < 0) {
                        Py_CLEAR(r);
                    } else {
                        c->kept = (unsigned int)rem;
                        if (rem && p->stack != NULL)
                            core_keep(p->stack, ev->conn_id, (uint32_t)rem);
                    }
                }
            }
        } else {
            p->resume = i + 1; /* a non-DATA event is dispatched once, even if it raises */
            if (t == PN_EV_MORE_SENDABLE || t == PN_EV_USER_TIMEOUT) {
                Method *m = &p->m[t == PN_EV_MORE_SENDABLE ? M_MORE : M_TIMER];
                if (!c->closed && m->func != NULL) {
                    Py_DECREF(r);
                    if (t == PN_EV_MORE_SENDABLE) {
                        r = call(m, conn, NULL);
                    } else {
                        PyObject *id = PyLong_FromUnsignedLong(ev->timer_id);
                        r = id ? call(m, conn, id) : NULL;
                        Py_XDECREF(id);
                    }
                }
            } else {
                Py_DECREF(r);
                r = PyObject_CallFunction(p->event, "i", i);
            }
        }
        Py_DECREF(conn);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        p->resume = i + 1;
    }
    return 0;
}

/* The endpoint was closed: its own error (Endpoint._s) says so. */
static int stack_gone(Poller *p)
{
    PyObject *r = PyObject_CallNoArgs(p->closed_error);
    Py_XDECREF(r);
    if (r != NULL)
        PyErr_SetString(PyExc_RuntimeError, "poll on a closed endpoint");
    return -1;
}

/* One poll for `handler` at `now`: the rest of a batch a handler interrupted, pn_poll,
 * its events. Returns the batch's event count, or -1 with an exception set. */
static int run(Poller *p, PyObject *handler, uint64_t now)
{
    if (p->stack == NULL)
        return stack_gone(p);
    if (handler != p->handler && poller_rebind(p, handler) < 0)
        return -1;
    if (p->resume < p->pending && dispatch(p, p->resume, p->pending) < 0)
        return -1;
    if (p->stack == NULL) /* a handler of the resumed batch closed the endpoint */
        return stack_gone(p);
    int n = core_poll(p->stack, now, p->events, p->max_events);
    p->resume = p->pending = 0;
    Py_ssize_t nerr = PyList_GET_SIZE(p->accept_errors);
    if (nerr > 0) {
        PyObject *err = Py_NewRef(PyList_GET_ITEM(p->accept_errors, nerr - 1));
        if (PyList_SetSlice(p->accept_errors, 0, nerr, NULL) < 0) {
            Py_DECREF(err);
            return -1;
        }
        if (n > 0)
            p->pending = n; /* keep the batch for the next poll */
        PyErr_SetObject((PyObject *)Py_TYPE(err), err);
        Py_DECREF(err);
        return -1;
    }
    if (n < 0) {
        PyObject *r = PyObject_CallFunction(p->poll_error, "i", n);
        Py_XDECREF(r);
        if (r != NULL)
            PyErr_Format(PyExc_RuntimeError, "pn_poll returned %d", n);
        return -1;
    }
    if (n > 0 && dispatch(p, 0, n) < 0)
        return -1;
    return n;
}

static PyObject *poller_poll(Poller *p, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    PyObject *handler, *now_obj;
    if (poll_args(args, nargs, kwnames, &handler, &now_obj) < 0)
        return NULL;
    uint64_t now = 0; /* 0: the core reads the clock */
    if (now_obj != Py_None) {
        if (as_ns(now_obj, &now) < 0)
            return NULL;
    } else if (p->wire != Py_None) { /* the sim wire's virtual clock */
        PyObject *clock = PyObject_GetAttr(p->wire, str_now_ns);
        int rc = clock ? as_ns(clock, &now) : -1;
        Py_XDECREF(clock);
        if (rc < 0)
            return NULL;
    }
    int n = run(p, handler, now);
    return n < 0 ? NULL : PyLong_FromLong(n);
}

/* ---- the pollnet level's poll (EfviTcpClient / EfviTcpServer): the same control flow
 * as their Python poll(), with the owner's Python methods called only when there is
 * work for them (a new handler, queued writes, connections closed, connecting). */

/* EfviTcpClient.poll / EfviTcpServer.poll: a method of the owner's class (owner_poll),
 * so calling it needs no bound-method object and keeps the owner alive like any method. */
static PyObject *pollnet_poll(PyObject *owner, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
    PyObject *handler, *now_obj;
    if (poll_args(args, nargs, kwnames, &handler, &now_obj) < 0)
        return NULL;
    PyObject *fast = PyObject_GetAttr(owner, str_fast);
    if (fast == NULL)
        return NULL;
    if (!PyObject_TypeCheck(fast, &PollerType) || ((Poller *)fast)->pn_events == NULL) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_RuntimeError, "poll: the owner's Poller has no pollnet_setup");
        return NULL;
    }
    Poller *p = (Poller *)fast;
    PyObject *result = NULL;
    if (handler != p->pn_handler) {
        if (owner_do(owner, str_rebind, handler) < 0)
            goto out;
        Py_XSETREF(p->pn_handler, Py_NewRef(handler));
    }
    uint64_t now;
    if (p->pn_sim) { /* the sim net's clock (and its closed-host pump) */
        PyObject *t = owner_call(owner, str_sim_now, now_obj);
        int rc = t ? as_ns(t, &now) : -1;
        Py_XDECREF(t);
        if (rc < 0)
            goto out;
    } else if (now_obj == Py_None) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    } else if (as_ns(now_obj, &now) < 0) {
        goto out;
    }
    p->dispatching = 1;
    int n = run(p, p->pn_events, now);
    p->dispatching = 0;
    if (n < 0)
        goto out;
    if (PyList_GET_SIZE(p->pn_flush) && owner_do(owner, str_send_queued, NULL) < 0)
        goto out;
    if (!p->owner_idle || PyList_GET_SIZE(p->pn_closed)) {
        PyObject *t = PyLong_FromUnsignedLongLong(now);
        int rc = t ? owner_do(owner, str_after, t) : -1;
        Py_XDECREF(t);
        if (rc < 0)
            goto out;
    }
    result = Py_NewRef(Py_None);
out:
    Py_DECREF(fast);
    return result;
}

static PyMethodDef pollnet_poll_def = {
    "poll", (PyCFunction)(void (*)(void))pollnet_poll, METH_FASTCALL | METH_KEYWORDS,
    "poll(handler, now_ns=None): receive, run timers, transmit, and call the handler for "
    "every event (compiled: pollnet._pnfast)."};

PyObject *owner_poll(PyObject *Py_UNUSED(mod), PyObject *cls)
{
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "owner_poll(cls): a class");
        return NULL;
    }
    return PyDescr_NewMethod((PyTypeObject *)cls, &pollnet_poll_def);
}

static PyObject *poller_pollnet_setup(Poller *p, PyObject *args)
{
    PyObject *events, *flush, *closed;
    int sim;
    if (!PyArg_ParseTuple(args, "OO!O!p:pollnet_setup", &events, &PyList_Type, &flush,
                          &PyList_Type, &closed, &sim))
        return NULL;
    Py_XSETREF(p->pn_events, Py_NewRef(events));
    Py_XSETREF(p->pn_flush, Py_NewRef(flush));
    Py_XSETREF(p->pn_closed, Py_NewRef(closed));
    Py_CLEAR(p->pn_handler);
    p->pn_sim = (char)sim;
    Py_RETURN_NONE;
}

static PyObject *poller_detach(Poller *p, PyObject *Py_UNUSED(ignored))
{
    p->stack = NULL;
    p->resume = p->pending = 0;
    Py_RETURN_NONE;
}

static PyObject *poller_set_pollnet(Poller *p, PyObject *on_data)
{
    method_set(&p->pollnet, on_data);
    Py_RETURN_NONE;
}

static PyObject *poller_undispatched(Poller *p, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(p->resume < p->pending);
}

static PyMethodDef poller_methods[] = {
    {"poll", (PyCFunction)(void (*)(void))poller_poll, METH_FASTCALL | METH_KEYWORDS,
     "poll(handler, now_ns=None) -> int: one pn_poll and its events dispatched."},
    {"detach", (PyCFunction)poller_detach, METH_NOARGS, "The stack is gone: poll no more."},
    {"pollnet_setup", (PyCFunction)poller_pollnet_setup, METH_VARARGS,
     "pollnet_setup(events, flush, closed, sim): what the owner's compiled poll works "
     "with (owner_poll)."},
    {"set_pollnet", (PyCFunction)poller_set_pollnet, METH_O,
     "set_pollnet(on_tcp_data or None): DATA events of pollnet-level connections go to it "
     "from C (EfviPollConnection.deliver's common case)."},
    {"undispatched", (PyCFunction)poller_undispatched, METH_NOARGS,
     "True while events of the last batch wait (a handler raised mid-batch)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef poller_members[] = {
    {"resume", T_INT, offsetof(Poller, resume), READONLY, NULL},
    {"pending", T_INT, offsetof(Poller, pending), READONLY, NULL},
    {"dispatching", T_BOOL, offsetof(Poller, dispatching), READONLY, NULL},
    {"owner_idle", T_BOOL, offsetof(Poller, owner_idle), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject PollerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pollnet._pnfast.Poller",
    .tp_basicsize = sizeof(Poller),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "An efvi endpoint's poll() and event dispatch, compiled.",
    .tp_traverse = (traverseproc)poller_traverse,
    .tp_clear = (inquiry)poller_clear,
    .tp_dealloc = (destructor)poller_dealloc,
    .tp_methods = poller_methods,
    .tp_members = poller_members,
    .tp_init = (initproc)poller_init,
    .tp_new = PyType_GenericNew,
};

PyObject *bind_core(PyObject *Py_UNUSED(mod), PyObject *args)
{
    unsigned long long poll_addr, send_addr, timer_addr, keep_addr;
    if (!PyArg_ParseTuple(args, "KKKK:bind_core", &poll_addr, &send_addr, &timer_addr,
                          &keep_addr))
        return NULL;
    if (poll_addr == 0 || send_addr == 0 || timer_addr == 0 || keep_addr == 0) {
        PyErr_SetString(PyExc_ValueError, "bind_core: null function address");
        return NULL;
    }
    core_poll = (poll_fn)(uintptr_t)poll_addr;
    core_send = (send_fn)(uintptr_t)send_addr;
    core_set_timer = (timer_fn)(uintptr_t)timer_addr;
    core_keep = (keep_fn)(uintptr_t)keep_addr;
    Py_RETURN_NONE;
}
