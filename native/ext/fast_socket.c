/*
 * The socket backend's compiled path (see pnfast.c): SockConnCore (SocketConnection's
 * base: recv into its RecvBuffer, send) and the client's and server's poll().
 */
#include "pnfast.h"

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
_Static_assert(offsetof(SockConnCore, buf) == offsetof(HoldConn, buf), "SockConnCore is a HoldConn");

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
    long long v = plain_remaining(r, n); /* None and 0: all consumed, the buffer stays empty */
    if (v < 0)
        rc = py_do((PyObject *)c, str_bad_return, r, size);
    else if (v > 0)
        rc = py_do((PyObject *)c, str_keep_after, r, size);
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

PyTypeObject SockConnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pollnet._pnfast.SockConnCore",
    .tp_basicsize = sizeof(SockConnCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The compiled part of a socket-backend connection: recv, send, its flags.",
    .tp_traverse = (traverseproc)hold_conn_traverse,
    .tp_clear = (inquiry)hold_conn_clear,
    .tp_dealloc = (destructor)hold_conn_dealloc,
    .tp_methods = sc_methods,
    .tp_members = sc_members,
    .tp_new = PyType_GenericNew,
};

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
                if (c->redeliver)
                    keep_for_redelivery(p, conn);
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

PyMethodDef socket_client_poll_def = {
    "poll", (PyCFunction)(void (*)(void))socket_client_poll, METH_FASTCALL | METH_KEYWORDS,
    "poll(handler, now_ns=None): read the connection, connect, notices (compiled)."};
PyMethodDef socket_server_poll_def = {
    "poll", (PyCFunction)(void (*)(void))socket_server_poll, METH_FASTCALL | METH_KEYWORDS,
    "poll(handler, now_ns=None): one epoll_wait(0), its connections read (compiled)."};
