/*
 * pollnet._pnfast: the per-message path of every backend as a CPython extension.
 *
 * A poll() is one call into C: it asks the transport for news (pn_poll, recv,
 * zf_reactor_perform or zf_muxer_wait), wraps the bytes in a memoryview (no copy) and
 * vectorcalls the handler's on_data; write() sends from C. Rare events (connecting,
 * closing, timeouts, a handler that raised) go back to small Python methods of the
 * owner. The Python path of each backend stays as the fallback where this module cannot
 * be built, with the same semantics: the behaviour suite runs on both.
 *
 * This file: the module, the helpers every compiled method shares and the PollState of
 * the socket and tcpdirect polls. The backends: fast_efvi.c, fast_socket.c,
 * fast_tcpdirect.c.
 */
#include "pnfast.h"
#include "pn_stack.h" /* pn_event: EVENT_SIZE */

PyObject *str_tail, *str_view, *str_buf, *str_poll_py, *str_drain_now, *str_on_listener,
    *str_free_transport, *str_dead, *str_release, *str_now_ns, *str_send_failed,
    *str_queue, *str_shutdown, *str_recv_full, *str_rebind, *str_sim_now,
    *str_send_queued, *str_after, *str_fast, *str_read_slow, *str_keep_after,
    *str_bad_return, *str_stream_ended, *str_free_zocket, *str_deliver_packet,
    *str_write_from, *str_keep_packet, *str_listener_ready;
PyObject *py_byte_view, *py_checked_remaining;

/* The (data, more=False) of every send and write method (vectorcall arguments). */
int data_more_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
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

/* Parse (data, more=False) of a write method: `*obj` gets a new reference to what the
 * buffer was taken from (data, or its byte_view for other buffers). */
int write_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
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

void write_done(PyObject *obj, Py_buffer *buf)
{
    PyBuffer_Release(buf);
    Py_DECREF(obj);
}

void save_error(Saved *e)
{
#if PY_VERSION_HEX >= 0x030C0000
    e->value = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&e->type, &e->value, &e->tb);
#endif
}

void restore_error(Saved *e)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(e->value);
#else
    PyErr_Restore(e->type, e->value, e->tb);
#endif
}

/* poll(handler, now_ns=None)'s arguments. */
int poll_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
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

int as_ns(PyObject *obj, uint64_t *ns)
{
    /* PyLong_AsUnsignedLongLong reads an int of two digits or more (every nanosecond clock
     * past 1 s) through a byte array; this reads it in a loop. Past 2**63 and below 0 it
     * is PyLong_AsUnsignedLongLong again, with its errors. */
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (!overflow && v >= 0) {
        *ns = (uint64_t)v;
        return 0;
    }
    *ns = PyLong_AsUnsignedLongLong(obj);
    return *ns == (uint64_t)-1 && PyErr_Occurred() ? -1 : 0;
}

PyObject *owner_call(PyObject *owner, PyObject *name, PyObject *arg)
{
    return arg ? PyObject_CallMethodOneArg(owner, name, arg)
               : PyObject_CallMethodNoArgs(owner, name);
}

int owner_do(PyObject *owner, PyObject *name, PyObject *arg)
{
    PyObject *r = owner_call(owner, name, arg);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* ------------------------------------------------------------------ RecvHold */

int hold_conn_traverse(HoldConn *c, visitproc visit, void *arg)
{
    Py_VISIT(c->buf.rb);
    Py_VISIT(c->buf.view);
    Py_VISIT(c->buf.bytes);
    return 0;
}

int hold_conn_clear(HoldConn *c)
{
    Py_CLEAR(c->buf.rb);
    Py_CLEAR(c->buf.view);
    Py_CLEAR(c->buf.bytes);
    return 0;
}

void hold_conn_dealloc(HoldConn *c)
{
    PyTypeObject *tp = Py_TYPE(c);
    PyObject_GC_UnTrack(c);
    hold_conn_clear(c);
    tp->tp_free((PyObject *)c);
}

void keep_for_redelivery(PollState *p, PyObject *conn)
{
    Saved exc = {NULL, NULL, NULL};
    save_error(&exc);
    PyList_Append(p->again, conn);
    PyErr_Clear();
    restore_error(&exc);
}

int hold_attach(RecvHold *h, PyObject *rb)
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
int rb_kept(PyObject *rb)
{
    PyObject *tail = PyObject_GetAttr(rb, str_tail);
    int kept = tail ? PyObject_IsTrue(tail) : -1;
    Py_XDECREF(tail);
    return kept;
}

/* ------------------------------------------------------------------ PollState */

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

PyTypeObject PollStateType = {
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
PollState *poll_state(PyObject *owner, PyObject *handler)
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

PyObject *poll_py(PyObject *owner, PyObject *handler, PyObject *now_obj)
{
    return PyObject_CallMethodObjArgs(owner, str_poll_py, handler, now_obj, NULL);
}

PyObject *drained(PyObject *owner, PollState *p)
{
    if (PyList_GET_SIZE(p->closed) && owner_do(owner, str_drain_now, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

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
        !(str_listener_ready = PyUnicode_InternFromString("_listener_ready")) ||
        !(str_stream_ended = PyUnicode_InternFromString("_stream_ended")) ||
        !(str_free_zocket = PyUnicode_InternFromString("_free_zocket")) ||
        !(str_deliver_packet = PyUnicode_InternFromString("_deliver")) ||
        !(str_write_from = PyUnicode_InternFromString("_write_from")) ||
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
