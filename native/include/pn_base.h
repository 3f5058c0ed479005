/*
 * pn_base.h -- what every header of pollnet's native TCP/IPv4 stack starts from: the
 * fixed-width types, the PN_E* error codes and the two opaque handles.
 *
 * Byte order: IPv4 addresses and ports cross this API in HOST byte order
 * (10.0.0.1 == 0x0a000001); MAC addresses are 6 bytes as on the wire.
 */
#ifndef PN_BASE_H
#define PN_BASE_H

#ifndef PN_CDEF /* the cffi cdef (native/build_ffi.py) knows these types */
#include <stddef.h>
#include <stdint.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ errors */

/* Every call that can fail returns a negative PN_E* code; pn_strerror() names it.
 * Stack- and link-creation calls also fill a caller-provided message buffer. */
enum {
    PN_OK = 0,
    PN_EINVAL = -1,     /* bad argument or config value */
    PN_ENOMEM = -2,     /* arena could not be allocated (only at create time) */
    PN_ENOCONN = -3,    /* connection table full (max_conn_cnt) */
    PN_EBADCONN = -4,   /* conn_id does not name a live connection */
    PN_ESTATE = -5,     /* not allowed in the connection's current state */
    PN_EPORT = -6,      /* no local port available / port already in use */
    PN_ELINK = -7,      /* the link failed (its message says why) */
    PN_ENOROUTE = -8,   /* destination not reachable from this stack's subnet/gateway */
    PN_EAGAIN = -9,     /* try again later (e.g. link transmit ring full) */
    PN_ETIMER = -10,    /* timer id >= user_timer_cnt or duration > 65000 ms */
};
const char *pn_strerror(int err);

/* Every header of the core names the link and the stack; their contents are pn_link.h's
 * and the core's own. */
typedef struct pn_link pn_link;
typedef struct pn_stack pn_stack;

#ifdef __cplusplus
}
#endif
#endif /* PN_BASE_H */
