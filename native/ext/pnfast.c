/*
 * pollnet._pnfast: the efvi backend's per-message path as a CPython extension.
 *
 * One `Poller.poll(handler, now_ns)` is one call into C: it calls the core's pn_poll,
 * then for each DATA event wraps the receive buffer in a memoryview (no copy) and
 * vectorcalls the handler's on_data; MORE_SENDABLE and USER_TIMEOUT are dispatched here
 * too. The rarer events (ESTABLISHED, FIN, the endings) go back to Python, one call each
 * (`Endpoint._event`), where their bookkeeping lives. `CoreConn` is the base of the
 * efvitcp-level Connection: its `send` calls pn_send straight from C.
 *
 * The core is not linked in: it lives in the cffi module pollnet._pncore, which hands us
 * the addresses of pn_poll and pn_send (`bind_core`), so both modules share one core --
 * also the sanitised one of scripts/pytest-asan.sh. The semantics are those of the
 * Python path in pollnet/backends/efvi/endpoint.py, which stays as the fallback where this
 * module cannot be built; the behaviour suite runs on both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include "pncore.h"

typedef int (*poll_fn)(pn_stack *, uint64_t, pn_event *, int);
typedef int32_t (*send_fn)(pn_stack *, uint32_t, const void *, uint32_t, int);
typedef int (*timer_fn)(pn_stack *, uint32_t, uint32_t, uint32_t);
typedef int (*keep_fn)(pn_stack *, uint32_t, uint32_t);

static poll_fn core_poll;
static send_fn core_send;
static timer_fn core_set_timer;
static keep_fn core_keep;

/* Python helpers the compiled code defers to off its fast path (set_helpers). */
static PyObject *py_byte_view;        /* pollnet.connection.byte_view(data, method) */
static PyObject *py_checked_remaining; /* pollnet.handler.checked_remaining(r, size) */

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

static PyTypeObject CoreConnType;

static PyObject *str_dead, *str_release, *str_now_ns;

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

/* The (data, more=False) of every send and write method (vectorcall arguments). */
static int data_more_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                          const char *method, PyObject **data, int *more)
{
    PyObject *more_obj = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    *data = NULL;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 2 arguments (%zd given)", method,
                     nargs);
        return -1;
    }
    if (nargs >= 1) *data = args[0];
    if (nargs >= 2) more_obj = args[1];
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        PyObject **slot = NULL;
        if (PyUnicode_CompareWithASCIIString(key, "data") == 0)
            slot = data;
        else if (PyUnicode_CompareWithASCIIString(key, "more") == 0)
            slot = &more_obj;
        if (slot == NULL || *slot != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected or repeated keyword "
                         "argument '%U'", method, key);
            return -1;
        }
        *slot = args[nargs + k];
    }
    if (*data == NULL) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument 'data'", method);
        return -1;
    }
    *more = 0;
    if (more_obj != NULL && (*more = PyObject_IsTrue(more_obj)) < 0)
        return -1;
    return 0;
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

static PyTypeObject CoreConnType = {
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

static PyTypeObject PollConnType;
static PyObject *str_send_failed, *str_queue, *str_shutdown, *str_recv_full;
static PyObject *str_rebind, *str_sim_now, *str_send_queued, *str_after, *str_fast;

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

/* Parse (data, more=False) of a write method: `*obj` gets a new reference to what the
 * buffer was taken from (data, or its byte_view for other buffers). */
static int write_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                      const char *method, PyObject **obj, Py_buffer *buf, int *more)
{
    PyObject *data;
    if (data_more_args(args, nargs, kwnames, method, &data, more) < 0)
        return -1;
    if (PyBytes_CheckExact(data) || PyByteArray_CheckExact(data)) {
        *obj = Py_NewRef(data);
    } else { /* anything else: a byte view of it, or the TypeError naming what is taken */
        *obj = PyObject_CallFunction(py_byte_view, "Os", data, method);
        if (*obj == NULL)
            return -1;
    }
    if (PyObject_GetBuffer(*obj, buf, PyBUF_SIMPLE) < 0) {
        Py_CLEAR(*obj);
        return -1;
    }
    return 0;
}

static void write_done(PyObject *obj, Py_buffer *buf)
{
    PyBuffer_Release(buf);
    Py_DECREF(obj);
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

#define WRITE_DOC(name, what) name "(data, more=False): " what
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

static PyTypeObject PollConnType = {
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

/* The exception being raised, kept aside while we clean up. */
typedef struct {
    PyObject *type, *value, *tb;
} Saved;

static void save_error(Saved *e)
{
#if PY_VERSION_HEX >= 0x030C0000
    e->value = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&e->type, &e->value, &e->tb);
#endif
}

static void restore_error(Saved *e)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(e->value);
#else
    PyErr_Restore(e->type, e->value, e->tb);
#endif
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
    if (rem == Py_None)
        return 0;
    if (PyLong_CheckExact(rem)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(rem, &overflow);
        if (!overflow && v >= 0 && v <= size)
            return v;
    }
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
    long long rem = -1;
    if (r == Py_None) {
        rem = 0;
    } else if (r != NULL && PyLong_CheckExact(r)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(r, &overflow);
        if (!overflow && v >= 0 && v <= size)
            rem = v;
    }
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

/* poll(handler, now_ns=None)'s arguments. */
static int poll_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                     PyObject **handler, PyObject **now_obj)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    *handler = NULL;
    *now_obj = Py_None;
    if (nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "poll(handler, now_ns=None)");
        return -1;
    }
    if (nargs >= 1) *handler = args[0];
    if (nargs == 2) *now_obj = args[1];
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        if (PyUnicode_CompareWithASCIIString(key, "now_ns") == 0 && nargs < 2) {
            *now_obj = args[nargs + k];
        } else if (PyUnicode_CompareWithASCIIString(key, "handler") == 0 && *handler == NULL) {
            *handler = args[nargs + k];
        } else {
            PyErr_Format(PyExc_TypeError, "poll() got an unexpected keyword argument '%U'",
                         key);
            return -1;
        }
    }
    if (*handler == NULL) {
        PyErr_SetString(PyExc_TypeError, "poll() missing required argument 'handler'");
        return -1;
    }
    return 0;
}

static int as_ns(PyObject *obj, uint64_t *ns)
{
    *ns = PyLong_AsUnsignedLongLong(obj);
    return *ns == (uint64_t)-1 && PyErr_Occurred() ? -1 : 0;
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

static PyObject *owner_call(PyObject *owner, PyObject *name, PyObject *arg)
{
    return arg ? PyObject_CallMethodOneArg(owner, name, arg)
               : PyObject_CallMethodNoArgs(owner, name);
}

static int owner_do(PyObject *owner, PyObject *name, PyObject *arg)
{
    PyObject *r = owner_call(owner, name, arg);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static PyTypeObject PollerType;

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

static PyObject *owner_poll(PyObject *Py_UNUSED(mod), PyObject *cls)
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

static PyTypeObject PollerType = {
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

/* ------------------------------------------------------------------ RecvHold */

/* A connection's Python RecvBuffer as the compiled reads use it: the object, its
 * memoryview (handlers get slices of it) and its bytearray (never resized: the
 * memoryview exports it). Shared by the socket and tcpdirect connections. */
typedef struct {
    PyObject *rb, *view, *bytes;
    Py_ssize_t size;
} RecvHold;

static PyObject *str_tail, *str_view, *str_buf;

static int hold_traverse(RecvHold *h, visitproc visit, void *arg)
{
    Py_VISIT(h->rb);
    Py_VISIT(h->view);
    Py_VISIT(h->bytes);
    return 0;
}

static void hold_clear(RecvHold *h)
{
    Py_CLEAR(h->rb);
    Py_CLEAR(h->view);
    Py_CLEAR(h->bytes);
}

static int hold_attach(RecvHold *h, PyObject *rb)
{
    PyObject *view = PyObject_GetAttr(rb, str_view);
    PyObject *bytes = PyObject_GetAttr(rb, str_buf);
    if (view == NULL || bytes == NULL || !PyMemoryView_Check(view) ||
        !PyByteArray_CheckExact(bytes)) {
        Py_XDECREF(view);
        Py_XDECREF(bytes);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "_attach: a RecvBuffer (bytearray + view)");
        return -1;
    }
    Py_XSETREF(h->rb, Py_NewRef(rb));
    Py_XSETREF(h->view, view);
    Py_XSETREF(h->bytes, bytes);
    h->size = PyByteArray_GET_SIZE(bytes);
    return 0;
}

/* Bytes kept in the receive buffer (its tail): 1, 0, or -1 with an error. */
static int rb_kept(PyObject *rb)
{
    PyObject *tail = PyObject_GetAttr(rb, str_tail);
    int kept = tail ? PyObject_IsTrue(tail) : -1;
    Py_XDECREF(tail);
    return kept;
}

/* ------------------------------------------------------------------ SockConnCore */

/* The socket backend's connection (SocketConnection's base): recv and send straight
 * from C on its non-blocking fd. The receive buffer is the Python RecvBuffer; its
 * common case (nothing kept from last time) is read here, everything else in Python. */
typedef struct {
    PyObject_HEAD
    RecvHold buf;
    int fd;
    char connected, sent, received, redeliver;
} SockConnCore;

static PyTypeObject SockConnType;
static PyObject *str_read_slow, *str_keep_after, *str_bad_return;

static int sc_traverse(SockConnCore *c, visitproc visit, void *arg)
{
    return hold_traverse(&c->buf, visit, arg);
}

static int sc_clear(SockConnCore *c)
{
    hold_clear(&c->buf);
    return 0;
}

static void sc_dealloc(SockConnCore *c)
{
    PyTypeObject *tp = Py_TYPE(c);
    PyObject_GC_UnTrack(c);
    sc_clear(c);
    tp->tp_free((PyObject *)c);
}

static PyObject *sc_attach(SockConnCore *c, PyObject *args)
{
    PyObject *rb;
    int fd;
    if (!PyArg_ParseTuple(args, "Oi:_attach", &rb, &fd) || hold_attach(&c->buf, rb) < 0)
        return NULL;
    c->fd = fd;
    Py_RETURN_NONE;
}

/* Call the owner's Python (method name, args...) and drop its result. */
static int py_do(PyObject *self, PyObject *name, PyObject *a, PyObject *b)
{
    PyObject *r = PyObject_CallMethodObjArgs(self, name, a, b, NULL);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static int sc_shutdown(SockConnCore *c, const char *reason, int err)
{
    PyObject *why = PyUnicode_FromString(reason);
    PyObject *code = PyLong_FromLong(err);
    int rc = why && code ? py_do((PyObject *)c, str_shutdown, why, code) : -1;
    Py_XDECREF(why);
    Py_XDECREF(code);
    return rc;
}

static PyObject *sc_read(SockConnCore *c, PyObject *on_data)
{
    if (c->buf.rb == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "read: no receive buffer attached");
        return NULL;
    }
    int kept = c->redeliver ? 1 : rb_kept(c->buf.rb);
    if (kept < 0)
        return NULL;
    if (kept) /* bytes kept from last time, or presented again: the Python path */
        return PyObject_CallMethodOneArg((PyObject *)c, str_read_slow, on_data);
    ssize_t n = recv(c->fd, PyByteArray_AS_STRING(c->buf.bytes), (size_t)c->buf.size,
                     MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            Py_RETURN_NONE;
        return sc_shutdown(c, "recv error", errno) < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (n == 0)
        return sc_shutdown(c, "remote close", 0) < 0 ? NULL : Py_NewRef(Py_None);
    c->received = 1;
    PyObject *view = n == c->buf.size ? Py_NewRef(c->buf.view)
                                      : PySequence_GetSlice(c->buf.view, 0, n);
    PyObject *size = PyLong_FromSsize_t(n);
    PyObject *r = NULL;
    if (view != NULL && size != NULL) {
        PyObject *argv[3] = {NULL, (PyObject *)c, view};
        r = PyObject_Vectorcall(on_data, argv + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    Py_XDECREF(view);
    if (r == NULL) { /* the bytes stay whole and come again at the next poll */
        Saved exc = {NULL, NULL, NULL};
        save_error(&exc);
        if (size != NULL)
            PyObject_SetAttr(c->buf.rb, str_tail, size);
        c->redeliver = 1;
        PyErr_Clear();
        restore_error(&exc);
        Py_XDECREF(size);
        return NULL;
    }
    int rc = 0;
    if (r != Py_None) { /* None and 0: everything consumed, the buffer stays empty */
        int overflow = 1;
        long long v = PyLong_CheckExact(r) ? PyLong_AsLongLongAndOverflow(r, &overflow) : -1;
        if (overflow || v < 0 || v > n)
            rc = py_do((PyObject *)c, str_bad_return, r, size);
        else if (v > 0)
            rc = py_do((PyObject *)c, str_keep_after, r, size);
    }
    Py_DECREF(r);
    Py_DECREF(size);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

/* send() of the whole buffer: bytes sent (0 for EAGAIN), or -1 after closing the
 * connection on an error, or -2 with an exception set. */
static ssize_t sc_send(SockConnCore *c, const char *p, size_t len, int more)
{
    ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0));
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    return sc_shutdown(c, "send error", errno) < 0 ? -2 : -1;
}

static PyObject *sc_write(SockConnCore *c, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    PyObject *obj;
    Py_buffer buf;
    int more;
    if (write_args(args, nargs, kwnames, "write", &obj, &buf, &more) < 0)
        return NULL;
    PyObject *r = Py_False;
    if (c->connected) {
        size_t off = 0, len = (size_t)buf.len;
        ssize_t n = sc_send(c, buf.buf, len, more);
        if (n >= 0)
            c->sent = 1;
        /* Partial: busy-retry the rest, as pollnet's write does (signals still count). */
        while (n >= 0 && (off += (size_t)n) < len) {
            if (PyErr_CheckSignals() < 0) {
                n = -2;
                break;
            }
            n = sc_send(c, (const char *)buf.buf + off, len - off, more);
        }
        r = n == -2 ? NULL : n < 0 ? Py_False : Py_True;
    }
    write_done(obj, &buf);
    return r ? Py_NewRef(r) : NULL;
}

static PyObject *sc_write_some(SockConnCore *c, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    PyObject *obj;
    Py_buffer buf;
    int more;
    if (write_args(args, nargs, kwnames, "write_some", &obj, &buf, &more) < 0)
        return NULL;
    ssize_t n = -1;
    if (c->connected) {
        n = sc_send(c, buf.buf, (size_t)buf.len, more);
        if (n >= 0)
            c->sent = 1;
    }
    write_done(obj, &buf);
    return n == -2 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *sc_write_nonblock(SockConnCore *c, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames)
{
    PyObject *obj;
    Py_buffer buf;
    int more;
    if (write_args(args, nargs, kwnames, "write_nonblock", &obj, &buf, &more) < 0)
        return NULL;
    Py_ssize_t len = buf.len;
    ssize_t n = c->connected ? sc_send(c, buf.buf, (size_t)len, more) : -1;
    write_done(obj, &buf);
    if (n == -2)
        return NULL;
    if (n == len) {
        c->sent = 1;
        Py_RETURN_TRUE;
    }
    if (n >= 0) {
        PyObject *why = PyUnicode_FromFormat("send buffer full: write_nonblock sent %zd of "
                                             "%zd bytes", n, len);
        PyObject *r = why ? PyObject_CallMethodOneArg((PyObject *)c, str_shutdown, why) : NULL;
        Py_XDECREF(why);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    Py_RETURN_FALSE;
}

static PyMethodDef sc_methods[] = {
    {"read", (PyCFunction)sc_read, METH_O,
     "read(on_data): one recv into the buffer, then kept + new bytes to the handler."},
    {"write_some", (PyCFunction)(void (*)(void))sc_write_some, METH_FASTCALL | METH_KEYWORDS,
     WRITE_DOC("write_some", "bytes the socket took now (0: none), -1 when not connected.")},
    {"write_nonblock", (PyCFunction)(void (*)(void))sc_write_nonblock,
     METH_FASTCALL | METH_KEYWORDS,
     WRITE_DOC("write_nonblock", "all of data now, or the connection closes; False then.")},
    {"write", (PyCFunction)(void (*)(void))sc_write, METH_FASTCALL | METH_KEYWORDS,
     WRITE_DOC("write", "all of data, retrying a partial send at once.")},
    {"_attach", (PyCFunction)sc_attach, METH_VARARGS, "_attach(recv_buffer, fd)"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef sc_members[] = {
    {"_buf", T_OBJECT, offsetof(SockConnCore, buf.rb), READONLY, NULL},
    {"fd", T_INT, offsetof(SockConnCore, fd), READONLY, NULL},
    {"_connected", T_BOOL, offsetof(SockConnCore, connected), 0, NULL},
    {"_sent", T_BOOL, offsetof(SockConnCore, sent), 0, NULL},
    {"_received", T_BOOL, offsetof(SockConnCore, received), 0, NULL},
    {"redeliver", T_BOOL, offsetof(SockConnCore, redeliver), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject SockConnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pollnet._pnfast.SockConnCore",
    .tp_basicsize = sizeof(SockConnCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The compiled part of a socket-backend connection: recv, send, its flags.",
    .tp_traverse = (traverseproc)sc_traverse,
    .tp_clear = (inquiry)sc_clear,
    .tp_dealloc = (destructor)sc_dealloc,
    .tp_methods = sc_methods,
    .tp_members = sc_members,
    .tp_new = PyType_GenericNew,
};

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

static PyTypeObject TdConnType;
static PyObject *str_stream_ended, *str_free_zocket, *str_deliver_packet, *str_write_from,
    *str_send_failed_td, *str_keep_packet;

static int td_traverse(TdConnCore *c, visitproc visit, void *arg)
{
    return hold_traverse(&c->buf, visit, arg);
}

static int td_clear(TdConnCore *c)
{
    hold_clear(&c->buf);
    return 0;
}

static void td_dealloc(TdConnCore *c)
{
    PyTypeObject *tp = Py_TYPE(c);
    PyObject_GC_UnTrack(c);
    td_clear(c);
    tp->tp_free((PyObject *)c);
}

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
        long long rem = -1;
        if (r == Py_None) {
            rem = 0;
        } else if (r != NULL && PyLong_CheckExact(r)) {
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(r, &overflow);
            rem = overflow || v < 0 || v > (long long)n ? -1 : v;
        }
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
            n = code && owner_do((PyObject *)c, str_send_failed_td, code) == 0 ? -1 : -2;
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

static PyTypeObject TdConnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pollnet._pnfast.TdConnCore",
    .tp_basicsize = sizeof(TdConnCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The compiled part of a tcpdirect-backend connection: zero-copy receive, send.",
    .tp_traverse = (traverseproc)td_traverse,
    .tp_clear = (inquiry)td_clear,
    .tp_dealloc = (destructor)td_dealloc,
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

static PyTypeObject TdStackType;

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

static PyTypeObject TdStackType = {
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

/* ------------------------------------------------------------------ PollState */

/* What a socket or tcpdirect client's or server's compiled poll() reads on every call
 * (the owner keeps it in `_fast` and in step: `conn`, `handler`/`on_data` via _rebind,
 * `slow` via its _sync). Anything beyond reading connections (connecting, accepting,
 * timeouts, handler errors to redeliver) runs the owner's Python `_poll_py`; closed
 * connections its `_drain_now`. */
typedef struct {
    PyObject_HEAD
    PyObject *handler;  /* the handler on_data belongs to */
    PyObject *on_data;
    PyObject *conn;     /* client: its connection or None */
    PyObject *conns;    /* server: {fd or muxer key: connection} */
    PyObject *closed;   /* connections closed, their notices not yet given */
    PyObject *again;    /* server: connections to read again next poll */
    PyObject *stack;    /* tcpdirect: the TdStackCore */
    int epfd, lfd;      /* socket server: its epoll set and listener */
    char timeouts_on;
    char slow;          /* the owner has work only its Python poll does */
    char in_poll;       /* tcpdirect server: handlers are running (a close waits) */
    char free_after;    /* tcpdirect server: closed by a handler, free it after the poll */
} PollState;

static PyObject *str_poll_py, *str_drain_now, *str_on_listener, *str_free_transport;

static int sp_traverse(PollState *p, visitproc visit, void *arg)
{
    Py_VISIT(p->handler);
    Py_VISIT(p->on_data);
    Py_VISIT(p->conn);
    Py_VISIT(p->conns);
    Py_VISIT(p->closed);
    Py_VISIT(p->again);
    Py_VISIT(p->stack);
    return 0;
}

static int sp_clear(PollState *p)
{
    Py_CLEAR(p->handler);
    Py_CLEAR(p->on_data);
    Py_CLEAR(p->conn);
    Py_CLEAR(p->conns);
    Py_CLEAR(p->closed);
    Py_CLEAR(p->again);
    Py_CLEAR(p->stack);
    return 0;
}

static void sp_dealloc(PollState *p)
{
    PyObject_GC_UnTrack(p);
    sp_clear(p);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static int sp_init(PollState *p, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"closed", "conns", "again", "epfd", "lfd", "timeouts_on", "stack",
                         NULL};
    PyObject *closed, *conns = Py_None, *again = Py_None, *stack = Py_None;
    int epfd = -1, lfd = -1, timeouts_on = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!|OOiipO:PollState", kw, &PyList_Type,
                                     &closed, &conns, &again, &epfd, &lfd, &timeouts_on,
                                     &stack))
        return -1;
    if ((conns != Py_None && !PyDict_Check(conns)) || (again != Py_None && !PyList_Check(again)) ||
        (stack != Py_None && !PyObject_TypeCheck(stack, &TdStackType))) {
        PyErr_SetString(PyExc_TypeError,
                        "PollState: conns is a dict, again a list and stack a TdStackCore");
        return -1;
    }
    Py_XSETREF(p->closed, Py_NewRef(closed));
    Py_XSETREF(p->conns, conns == Py_None ? NULL : Py_NewRef(conns));
    Py_XSETREF(p->again, again == Py_None ? NULL : Py_NewRef(again));
    Py_XSETREF(p->stack, stack == Py_None ? NULL : Py_NewRef(stack));
    Py_XSETREF(p->conn, Py_NewRef(Py_None));
    p->epfd = epfd;
    p->lfd = lfd;
    p->timeouts_on = (char)timeouts_on;
    return 0;
}

static PyMemberDef sp_members[] = {
    {"handler", T_OBJECT, offsetof(PollState, handler), 0, NULL},
    {"on_data", T_OBJECT, offsetof(PollState, on_data), 0, NULL},
    {"conn", T_OBJECT, offsetof(PollState, conn), 0, NULL},
    {"slow", T_BOOL, offsetof(PollState, slow), 0, NULL},
    {"in_poll", T_BOOL, offsetof(PollState, in_poll), READONLY, NULL},
    {"free_after", T_BOOL, offsetof(PollState, free_after), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject PollStateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pollnet._pnfast.PollState",
    .tp_basicsize = sizeof(PollState),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "What the socket and tcpdirect backends' compiled poll() reads on every call.",
    .tp_traverse = (traverseproc)sp_traverse,
    .tp_clear = (inquiry)sp_clear,
    .tp_dealloc = (destructor)sp_dealloc,
    .tp_members = sp_members,
    .tp_init = (initproc)sp_init,
    .tp_new = PyType_GenericNew,
};

/* The owner's PollState, with the handler bound (a new reference), or NULL. */
static PollState *poll_state(PyObject *owner, PyObject *handler)
{
    PyObject *st = PyObject_GetAttr(owner, str_fast);
    if (st == NULL)
        return NULL;
    if (!PyObject_TypeCheck(st, &PollStateType)) {
        Py_DECREF(st);
        PyErr_SetString(PyExc_RuntimeError, "poll: the owner's _fast is not a PollState");
        return NULL;
    }
    PollState *p = (PollState *)st;
    if ((handler != p->handler || p->on_data == NULL) &&
        owner_do(owner, str_rebind, handler) < 0) {
        Py_DECREF(st);
        return NULL;
    }
    if (p->on_data == NULL) {
        Py_DECREF(st);
        PyErr_SetString(PyExc_RuntimeError, "poll: _rebind set no on_data");
        return NULL;
    }
    return p;
}

static PyObject *poll_py(PyObject *owner, PyObject *handler, PyObject *now_obj)
{
    return PyObject_CallMethodObjArgs(owner, str_poll_py, handler, now_obj, NULL);
}

static PyObject *drained(PyObject *owner, PollState *p)
{
    if (PyList_GET_SIZE(p->closed) && owner_do(owner, str_drain_now, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *socket_client_poll(PyObject *owner, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    PyObject *handler, *now_obj, *r;
    if (poll_args(args, nargs, kwnames, &handler, &now_obj) < 0)
        return NULL;
    PollState *p = poll_state(owner, handler);
    if (p == NULL)
        return NULL;
    PyObject *conn = p->conn;
    if (conn == NULL || !PyObject_TypeCheck(conn, &SockConnType) || p->timeouts_on ||
        PyList_GET_SIZE(p->closed)) {
        r = poll_py(owner, handler, now_obj); /* connecting, timeouts, notices */
    } else {
        Py_INCREF(conn);
        r = sc_read((SockConnCore *)conn, p->on_data);
        Py_DECREF(conn);
        if (r != NULL) {
            Py_DECREF(r);
            r = drained(owner, p);
        }
    }
    Py_DECREF(p);
    return r;
}

enum { SOCK_EVENTS = 64 };

static PyObject *socket_server_poll(PyObject *owner, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    PyObject *handler, *now_obj;
    if (poll_args(args, nargs, kwnames, &handler, &now_obj) < 0)
        return NULL;
    PollState *p = poll_state(owner, handler);
    if (p == NULL)
        return NULL;
    PyObject *result = NULL;
    if (p->conns == NULL || p->again == NULL || p->timeouts_on || PyList_GET_SIZE(p->again)) {
        result = poll_py(owner, handler, now_obj); /* timeouts, handler errors to redo */
        goto out;
    }
    struct epoll_event evs[SOCK_EVENTS];
    int n = epoll_wait(p->epfd, evs, SOCK_EVENTS, 0);
    if (n < 0) {
        if (errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            goto out;
        }
        n = 0;
    }
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        PyObject *key = PyLong_FromLong(fd);
        PyObject *conn = key ? PyDict_GetItemWithError(p->conns, key) : NULL;
        Py_XDECREF(key);
        if (conn == NULL && PyErr_Occurred())
            goto out;
        if (conn != NULL && PyObject_TypeCheck(conn, &SockConnType)) {
            SockConnCore *c = (SockConnCore *)conn;
            if (!c->connected)
                continue;
            Py_INCREF(conn);
            PyObject *r = sc_read(c, p->on_data);
            if (r == NULL) { /* its bytes come again at the next poll */
                if (c->redeliver) {
                    Saved exc = {NULL, NULL, NULL};
                    save_error(&exc);
                    PyList_Append(p->again, conn);
                    PyErr_Clear();
                    restore_error(&exc);
                }
                Py_DECREF(conn);
                goto out;
            }
            Py_DECREF(r);
            Py_DECREF(conn);
        } else if (fd == p->lfd && owner_do(owner, str_on_listener, now_obj) < 0) {
            goto out;
        }
    }
    result = drained(owner, p);
out:
    Py_DECREF(p);
    return result;
}

static PyMethodDef socket_client_poll_def = {
    "poll", (PyCFunction)(void (*)(void))socket_client_poll, METH_FASTCALL | METH_KEYWORDS,
    "poll(handler, now_ns=None): read the connection, connect, notices (compiled)."};
static PyMethodDef socket_server_poll_def = {
    "poll", (PyCFunction)(void (*)(void))socket_server_poll, METH_FASTCALL | METH_KEYWORDS,
    "poll(handler, now_ns=None): one epoll_wait(0), its connections read (compiled)."};

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
        if (c->redeliver) {
            Saved exc = {NULL, NULL, NULL};
            save_error(&exc);
            PyList_Append(p->again, conn);
            PyErr_Clear();
            restore_error(&exc);
        }
        rc = -1;
    } else if (r == Py_True) {
        rc = PyList_Append(p->again, conn);
    }
    Py_XDECREF(r);
    Py_DECREF(conn);
    return rc;
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
        PyObject *k = PyLong_FromUnsignedLongLong(key);
        PyObject *conn = k ? PyDict_GetItemWithError(p->conns, k) : NULL;
        Py_XDECREF(k);
        if (conn == NULL && PyErr_Occurred())
            goto done;
        if (conn != NULL && PyObject_TypeCheck(conn, &TdConnType) && td_serve(p, conn) < 0)
            goto done;
    }
    if (listener && owner_do(owner, str_on_listener, now_obj) < 0)
        goto done;
    result = drained(owner, p);
done:
    p->in_poll = 0;
    if (p->free_after) { /* a handler closed the server: no packet is lent any more */
        p->free_after = 0;
        if (result != NULL) {
            if (owner_do(owner, str_free_transport, NULL) < 0)
                Py_CLEAR(result);
        } else { /* the handler's exception is the one raised */
            Saved exc = {NULL, NULL, NULL};
            save_error(&exc);
            owner_do(owner, str_free_transport, NULL);
            PyErr_Clear();
            restore_error(&exc);
        }
    }
out:
    Py_DECREF(p);
    return result;
}

static PyMethodDef tcpdirect_client_poll_def = {
    "poll", (PyCFunction)(void (*)(void))tcpdirect_client_poll, METH_FASTCALL | METH_KEYWORDS,
    "poll(handler, now_ns=None): the reactor once, the connection read (compiled)."};
static PyMethodDef tcpdirect_server_poll_def = {
    "poll", (PyCFunction)(void (*)(void))tcpdirect_server_poll, METH_FASTCALL | METH_KEYWORDS,
    "poll(handler, now_ns=None): one zf_muxer_wait(0), its zockets read (compiled)."};

/* The compiled poll() for a socket- or tcpdirect-backend client or server class. */
static PyObject *compiled_poll(PyObject *Py_UNUSED(mod), PyObject *args)
{
    PyObject *cls;
    const char *backend, *role;
    if (!PyArg_ParseTuple(args, "O!ss:compiled_poll", &PyType_Type, &cls, &backend, &role))
        return NULL;
    int client = strcmp(role, "client") == 0;
    PyMethodDef *def = NULL;
    if (strcmp(backend, "socket") == 0)
        def = client ? &socket_client_poll_def : &socket_server_poll_def;
    else if (strcmp(backend, "tcpdirect") == 0)
        def = client ? &tcpdirect_client_poll_def : &tcpdirect_server_poll_def;
    if (def == NULL || (!client && strcmp(role, "server") != 0)) {
        PyErr_Format(PyExc_ValueError,
                     "compiled_poll: socket or tcpdirect, client or server; not %s, %s",
                     backend, role);
        return NULL;
    }
    return PyDescr_NewMethod((PyTypeObject *)cls, def);
}

/* ------------------------------------------------------------------ module */

static PyObject *bind_core(PyObject *Py_UNUSED(mod), PyObject *args)
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

static PyObject *set_helpers(PyObject *Py_UNUSED(mod), PyObject *args)
{
    PyObject *byte_view, *checked_remaining;
    if (!PyArg_ParseTuple(args, "OO:set_helpers", &byte_view, &checked_remaining))
        return NULL;
    Py_XSETREF(py_byte_view, Py_NewRef(byte_view));
    Py_XSETREF(py_checked_remaining, Py_NewRef(checked_remaining));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"bind_core", bind_core, METH_VARARGS,
     "bind_core(pn_poll, pn_send, pn_set_user_timer, pn_keep): the efvi core's functions "
     "(their addresses)."},
    {"owner_poll", owner_poll, METH_O,
     "owner_poll(cls): poll() for a pollnet-level efvi client or server class, the "
     "compiled one (it finds its Poller in the instance's _fast)."},
    {"compiled_poll", compiled_poll, METH_VARARGS,
     "compiled_poll(cls, 'socket'|'tcpdirect', 'client'|'server'): the compiled poll() for "
     "that backend's class."},
    {"set_helpers", set_helpers, METH_VARARGS,
     "set_helpers(byte_view, checked_remaining): the Python this module defers to."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pollnet._pnfast",
    "The efvi backend's per-message path, compiled (see native/ext/pnfast.c).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__pnfast(void)
{
    if (PyType_Ready(&CoreConnType) < 0 || PyType_Ready(&PollerType) < 0 ||
        PyType_Ready(&PollConnType) < 0 || PyType_Ready(&SockConnType) < 0 ||
        PyType_Ready(&PollStateType) < 0 || PyType_Ready(&TdConnType) < 0 ||
        PyType_Ready(&TdStackType) < 0)
        return NULL;
    if (!(str_dead = PyUnicode_InternFromString("_dead")) ||
        !(str_release = PyUnicode_InternFromString("release")) ||
        !(str_now_ns = PyUnicode_InternFromString("now_ns")) ||
        !(str_send_failed = PyUnicode_InternFromString("_send_failed")) ||
        !(str_queue = PyUnicode_InternFromString("_queue")) ||
        !(str_shutdown = PyUnicode_InternFromString("_shutdown")) ||
        !(str_recv_full = PyUnicode_InternFromString("_recv_full")) ||
        !(str_rebind = PyUnicode_InternFromString("_rebind")) ||
        !(str_sim_now = PyUnicode_InternFromString("_sim_now")) ||
        !(str_send_queued = PyUnicode_InternFromString("send_queued")) ||
        !(str_after = PyUnicode_InternFromString("_after")) ||
        !(str_fast = PyUnicode_InternFromString("_fast")) ||
        !(str_read_slow = PyUnicode_InternFromString("_read_slow")) ||
        !(str_keep_after = PyUnicode_InternFromString("_keep_after")) ||
        !(str_bad_return = PyUnicode_InternFromString("_bad_return")) ||
        !(str_tail = PyUnicode_InternFromString("tail")) ||
        !(str_view = PyUnicode_InternFromString("view")) ||
        !(str_buf = PyUnicode_InternFromString("_buf")) ||
        !(str_poll_py = PyUnicode_InternFromString("_poll_py")) ||
        !(str_drain_now = PyUnicode_InternFromString("_drain_now")) ||
        !(str_on_listener = PyUnicode_InternFromString("_on_listener")) ||
        !(str_free_transport = PyUnicode_InternFromString("_free_transport")) ||
        !(str_stream_ended = PyUnicode_InternFromString("_stream_ended")) ||
        !(str_free_zocket = PyUnicode_InternFromString("_free_zocket")) ||
        !(str_deliver_packet = PyUnicode_InternFromString("_deliver")) ||
        !(str_write_from = PyUnicode_InternFromString("_write_from")) ||
        !(str_send_failed_td = PyUnicode_InternFromString("_send_failed")) ||
        !(str_keep_packet = PyUnicode_InternFromString("_keep_packet")))
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "CoreConn", (PyObject *)&CoreConnType) < 0 ||
        PyModule_AddObjectRef(m, "Poller", (PyObject *)&PollerType) < 0 ||
        PyModule_AddObjectRef(m, "PollConnCore", (PyObject *)&PollConnType) < 0 ||
        PyModule_AddObjectRef(m, "SockConnCore", (PyObject *)&SockConnType) < 0 ||
        PyModule_AddObjectRef(m, "PollState", (PyObject *)&PollStateType) < 0 ||
        PyModule_AddObjectRef(m, "TdConnCore", (PyObject *)&TdConnType) < 0 ||
        PyModule_AddObjectRef(m, "TdStackCore", (PyObject *)&TdStackType) < 0 ||
        PyModule_AddIntConstant(m, "EVENT_SIZE", (long)sizeof(pn_event)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
