/*
 * pnfast.h: what the files of pollnet._pnfast share (internal to the extension).
 *
 * pnfast.c holds the module, the argument parsing and error keeping every compiled
 * method uses, the receive-buffer hold and the PollState of the socket and tcpdirect
 * polls; fast_efvi.c, fast_socket.c and fast_tcpdirect.c hold one backend's types each.
 */
#ifndef POLLNET_PNFAST_H
#define POLLNET_PNFAST_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

/* Attribute and method names, interned once at import (pnfast.c). */
extern PyObject *str_tail, *str_view, *str_buf, *str_poll_py, *str_drain_now, *str_on_listener,
    *str_free_transport, *str_dead, *str_release, *str_now_ns, *str_send_failed,
    *str_queue, *str_shutdown, *str_recv_full, *str_rebind, *str_sim_now,
    *str_send_queued, *str_after, *str_fast, *str_read_slow, *str_keep_after,
    *str_bad_return, *str_stream_ended, *str_free_zocket, *str_deliver_packet,
    *str_write_from, *str_keep_packet, *str_listener_ready;

/* Python helpers the compiled code defers to off its fast path (set_helpers). */
extern PyObject *py_byte_view;         /* pollnet.connection.byte_view(data, method) */
extern PyObject *py_checked_remaining; /* pollnet.handler.checked_remaining(r, size) */

extern PyTypeObject CoreConnType, PollConnType, PollerType, SockConnType, TdConnType,
    TdStackType, PollStateType;

#define WRITE_DOC(name, what) name "(data, more=False): " what

/* The exception being raised, kept aside while we clean up. */
typedef struct {
    PyObject *type, *value, *tb;
} Saved;

/* A connection's Python RecvBuffer as the compiled reads use it: the object, its
 * memoryview (handlers get slices of it) and its bytearray (never resized: the
 * memoryview exports it). Shared by the socket and tcpdirect connections. */
typedef struct {
    PyObject *rb, *view, *bytes;
    Py_ssize_t size;
} RecvHold;

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

/* Arguments: (data, more=False) of a send or write method; write_args also takes the
 * buffer (`*obj` a new reference to what it came from), write_done gives it back. */
int data_more_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                   const char *method, PyObject **data, int *more);
int write_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
               const char *method, PyObject **obj, Py_buffer *buf, int *more);
void write_done(PyObject *obj, Py_buffer *buf);
/* poll(handler, now_ns=None); now_ns as an integer. */
int poll_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
              PyObject **handler, PyObject **now_obj);
int as_ns(PyObject *obj, uint64_t *ns);

/* A handler's return when it plainly is a count of unconsumed bytes: None is 0, an exact
 * int in 0..size is itself; -1 for anything else, which the backend's Python check then
 * judges (an int subclass, out of range, the wrong type). Sets no error. */
static inline long long plain_remaining(PyObject *r, long long size)
{
    if (r == Py_None)
        return 0;
    if (!PyLong_CheckExact(r))
        return -1;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(r, &overflow);
    return overflow || v < 0 || v > size ? -1 : v;
}

void save_error(Saved *e);
void restore_error(Saved *e);
/* Call the owner's Python method `name` (with `arg` unless NULL). */
PyObject *owner_call(PyObject *owner, PyObject *name, PyObject *arg);
int owner_do(PyObject *owner, PyObject *name, PyObject *arg);

/* A socket or tcpdirect connection (SockConnCore, TdConnCore): its only references are
 * its RecvHold, right after the head, so one set of GC slots serves both types. */
typedef struct {
    PyObject_HEAD
    RecvHold buf;
} HoldConn;
int hold_conn_traverse(HoldConn *c, visitproc visit, void *arg);
int hold_conn_clear(HoldConn *c);
void hold_conn_dealloc(HoldConn *c);
int hold_attach(RecvHold *h, PyObject *rb);
int rb_kept(PyObject *rb);

/* The socket and tcpdirect polls: the owner's PollState (handler bound), its Python
 * poll, its disconnect notices. */
PollState *poll_state(PyObject *owner, PyObject *handler);
PyObject *poll_py(PyObject *owner, PyObject *handler, PyObject *now_obj);
PyObject *drained(PyObject *owner, PollState *p);
/* A connection whose handler raised, kept in p->again for the next poll; the handler's
 * exception stays the one raised. */
void keep_for_redelivery(PollState *p, PyObject *conn);

/* What each backend's file gives the module. */
PyObject *bind_core(PyObject *mod, PyObject *args);
PyObject *owner_poll(PyObject *mod, PyObject *cls);
extern PyMethodDef socket_client_poll_def, socket_server_poll_def,
    tcpdirect_client_poll_def, tcpdirect_server_poll_def;

#endif
