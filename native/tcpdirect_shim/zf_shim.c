/* libzf_shim.so: the TCPDirect API subset of include/zf/zf.h carried by the kernel's
 * non-blocking TCP sockets, so pollnet's tcpdirect backend can be run without a
 * Solarflare NIC.
 * One file of about eight hundred lines: it is one library, the API subset the backend
 * calls.
 *
 * What it keeps from TCPDirect, because the backend must cope with it:
 *  - nothing happens between calls: only zf_reactor_perform() moves bytes (a poll() with
 *    zero timeout, then non-blocking recv/accept), completes connects and queues accepted
 *    connections. zft_zc_recv() and zftl_accept() only see what the reactor brought in.
 *  - zero-copy receive: zft_zc_recv() points msg->iov[] at the shim's own packet buffers
 *    (one iovec per "packet" of at most 1460 bytes), locked until zft_zc_recv_done().
 *    The end of the stream, orderly or not, is a zero-length iovec after the data;
 *    zft_zc_recv_done() then says which: 0 for EOF, -errno for a failure.
 *  - zft_connect() never reports a refusal; zft_state() turns TCP_CLOSE and zft_error()
 *    gives ECONNREFUSED once the reactor has seen it.
 *  - negative-errno returns (-EAGAIN, -ENOTCONN, -ENOBUFS, ...), fixed zocket counts
 *    (max_tcp_endpoints, max_tcp_listen_endpoints), listeners refusing INADDR_ANY, stacks
 *    needing an `interface` attribute, ZF_ATTR applied by zf_attr_alloc().
 *  - zft_free() aborts with RST when received data is left unread, else sends FIN.
 *  - a multiplexer that is strictly edge-triggered (muxer.h permits no more).
 * Uses that break the documented contract are counted (see zf_shim.h), not crashed on.
 */
#define _GNU_SOURCE
#include "zf/zf.h"
#include "zf_shim.h"

#include <errno.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
  ATTR_STR_MAX = 64,
  RX_PKTS = 32,       /* receive ring: packets a zocket holds before the kernel queues */
  PKT_PAYLOAD = 1460, /* bytes per packet, an Ethernet MSS, so multi-iov reads happen */
  ACCEPT_QUEUE = 64,
};

/* ------------------------------------------------------------------ violations */

static int g_violations;
static char g_last_violation[256];
static int g_inited;

static void violation(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_last_violation, sizeof g_last_violation, fmt, ap);
  va_end(ap);
  g_violations++;
  fprintf(stderr, "zf_shim: contract violation: %s\n", g_last_violation);
}

int zf_shim_violations(void) { return g_violations; }
const char* zf_shim_last_violation(void) { return g_last_violation; }

/* ------------------------------------------------------------------ attributes */

enum attr_kind { A_INT, A_STR };
struct attr_def {
  const char* name;
  enum attr_kind kind;
  int64_t def, min, max;
};

/* Names, kinds and defaults of the TCPDirect attributes the shim knows; others -ENOENT. */
static const struct attr_def ATTRS[] = {
    {"log_level", A_INT, 0, INT64_MIN, INT64_MAX},
    {"name", A_STR, 0, 0, 0},
    {"interface", A_STR, 0, 0, 0},
    {"max_tcp_endpoints", A_INT, 64, 1, 64},
    {"max_tcp_listen_endpoints", A_INT, 16, 1, 64},
    {"max_tcp_syn_backlog", A_INT, 32, 1, 65535},
    {"reactor_spin_count", A_INT, 128, 1, INT32_MAX},
    {"tcp_delayed_ack", A_INT, 1, 0, 1},
    {"n_bufs", A_INT, 0, 0, INT32_MAX},
};
#define N_ATTRS ((int)(sizeof ATTRS / sizeof ATTRS[0]))

struct zf_attr {
  int64_t ival[N_ATTRS];
  char sval[N_ATTRS][ATTR_STR_MAX];
};

static int attr_find(const char* name, size_t len) {
  for (int i = 0; i < N_ATTRS; i++)
    if (strlen(ATTRS[i].name) == len && memcmp(ATTRS[i].name, name, len) == 0) return i;
  return -1;
}

static int attr_get_int(const struct zf_attr* a, const char* name) {
  return (int)a->ival[attr_find(name, strlen(name))];
}

static const char* attr_get_str(const struct zf_attr* a, const char* name) {
  return a->sval[attr_find(name, strlen(name))];
}

static int attr_store_int(struct zf_attr* a, int i, int64_t val) {
  if (ATTRS[i].kind != A_INT) return -EINVAL;
  if (val < ATTRS[i].min || val > ATTRS[i].max) return -EOVERFLOW;
  a->ival[i] = val;
  return 0;
}

static int attr_store_str(struct zf_attr* a, int i, const char* val) {
  if (ATTRS[i].kind != A_STR) return -ENOMSG;
  if (val == NULL) val = "";
  if (strlen(val) >= ATTR_STR_MAX) return -EINVAL;
  strcpy(a->sval[i], val);
  return 0;
}

/* One `name=value` of ZF_ATTR, value converted for the attribute's kind. */
static int attr_from_text(struct zf_attr* a, const char* item, size_t len) {
  const char* eq = memchr(item, '=', len);
  if (eq == NULL || eq == item) return -EINVAL;
  int i = attr_find(item, (size_t)(eq - item));
  if (i < 0) return -EINVAL;
  char val[ATTR_STR_MAX];
  size_t vlen = len - (size_t)(eq + 1 - item);
  if (vlen >= sizeof val) return -EINVAL;
  memcpy(val, eq + 1, vlen);
  val[vlen] = '\0';
  if (ATTRS[i].kind == A_STR) return attr_store_str(a, i, val);
  char* end;
  errno = 0;
  long long v = strtoll(val, &end, 0);
  if (vlen == 0 || *end != '\0' || errno != 0) return -EINVAL;
  return attr_store_int(a, i, v) < 0 ? -EINVAL : 0;
}

int zf_attr_alloc(struct zf_attr** attr_out) {
  struct zf_attr* a = calloc(1, sizeof *a);
  if (a == NULL) return -ENOMEM;
  for (int i = 0; i < N_ATTRS; i++) a->ival[i] = ATTRS[i].def;
  const char* env = getenv("ZF_ATTR");
  while (env != NULL && *env != '\0') {
    const char* semi = strchr(env, ';');
    size_t len = semi ? (size_t)(semi - env) : strlen(env);
    if (len > 0 && attr_from_text(a, env, len) < 0) {
      free(a);
      return -EINVAL;
    }
    env = semi ? semi + 1 : NULL;
  }
  *attr_out = a;
  return 0;
}

void zf_attr_free(struct zf_attr* attr) { free(attr); }

int zf_attr_set_int(struct zf_attr* attr, const char* name, int64_t val) {
  int i = attr_find(name, strlen(name));
  return i < 0 ? -ENOENT : attr_store_int(attr, i, val);
}

int zf_attr_set_str(struct zf_attr* attr, const char* name, const char* val) {
  int i = attr_find(name, strlen(name));
  return i < 0 ? -ENOENT : attr_store_str(attr, i, val);
}

/* ------------------------------------------------------------------ zockets */

enum zkind { Z_FREE, Z_HANDLE, Z_TCP, Z_LISTEN };

/* What zft_to_waitable()/zftl_to_waitable() return: one inside each zocket. */
struct zf_waitable {
  struct zf_muxer_set* set; /* the set it is in, or NULL */
  struct epoll_event event; /* interest and user data, as given to zf_muxer_add() */
  int edge;                 /* something happened since zf_muxer_wait() last reported it */
};

struct zocket {
  enum zkind kind;
  struct zf_stack* st;
  struct zf_waitable w;
  int fd;
  int state; /* TCP_* of netinet/tcp.h, as zft_state() reports it */
  int error; /* positive errno once the connection failed, as zft_error() reports it */
  int eof;   /* the peer's FIN has been read */
  struct sockaddr_in raddr;
  /* listener: connections the reactor accepted, not yet taken by zftl_accept() */
  struct zocket* acceptq[ACCEPT_QUEUE];
  int aq_head, aq_count;
  /* receive ring, one slot a packet; slots from rx_head on are in use */
  int rx_head, rx_count;
  int rx_len[RX_PKTS];
  int zc_iovs, zc_pkts; /* what the pending zft_zc_recv() handed out; 0: none pending */
  const void* zc_first;
  unsigned char rx_pkt[RX_PKTS][PKT_PAYLOAD];
};

struct zf_muxer_set {
  struct zf_stack* st;
  int n;
  struct zf_waitable** members; /* room for every zocket of the stack */
};

struct zf_stack {
  int n_tcp, n_listen, backlog;
  int n_muxers; /* muxer sets not yet freed: they point into this stack */
  struct zocket* tcp;
  struct zocket* listen;
  struct pollfd* pfd;
  struct zocket** pz;
};

static void muxer_remove(struct zf_waitable* w) {
  struct zf_muxer_set* m = w->set;
  for (int i = 0; m != NULL && i < m->n; i++)
    if (m->members[i] == w) {
      m->members[i] = m->members[--m->n];
      break;
    }
  w->set = NULL;
}

/* A zocket's readiness as epoll bits, for the multiplexer. */
static uint32_t zocket_ready(const struct zocket* z) {
  if (z->kind == Z_LISTEN) return z->aq_count > 0 ? EPOLLIN : 0;
  uint32_t ev = 0;
  if (z->rx_count > 0 || z->eof || z->error) ev |= EPOLLIN;
  if (z->state == TCP_ESTABLISHED || z->state == TCP_CLOSE_WAIT) ev |= EPOLLOUT;
  if (z->eof && (z->state == TCP_CLOSE || z->state == TCP_LAST_ACK)) ev |= EPOLLHUP;
  if (z->error) ev |= EPOLLERR | EPOLLHUP;
  return ev;
}

static void zocket_reset(struct zocket* z) {
  muxer_remove(&z->w); /* zft_free and zftl_free leave the set, as TCPDirect's do */
  z->w.edge = 0;
  memset(&z->w.event, 0, sizeof z->w.event);
  z->kind = Z_FREE;
  z->fd = -1;
  z->state = TCP_CLOSE;
  z->error = z->eof = 0;
  memset(&z->raddr, 0, sizeof z->raddr);
  z->aq_head = z->aq_count = 0;
  z->rx_head = z->rx_count = 0;
  z->zc_iovs = z->zc_pkts = 0;
  z->zc_first = NULL;
}

static struct zocket* slot_take(struct zocket* arr, int n) {
  for (int i = 0; i < n; i++)
    if (arr[i].kind == Z_FREE) return &arr[i];
  return NULL;
}

static struct zocket* as_kind(const void* p, enum zkind kind, const char* fn) {
  struct zocket* z = (struct zocket*)p;
  if (z == NULL || z->kind != kind) {
    violation("%s on a %s", fn, z == NULL ? "NULL pointer" : "freed or wrong-kind zocket");
    return NULL;
  }
  return z;
}

static int errno_or(int fallback) { return errno ? -errno : fallback; }

static void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int check_sin(const struct sockaddr* addr, socklen_t len) {
  if (addr == NULL) return -EFAULT;
  if (len < (socklen_t)sizeof(struct sockaddr_in)) return -EINVAL;
  if (addr->sa_family != AF_INET) return -EAFNOSUPPORT;
  return 0;
}

/* ------------------------------------------------------------------ stack */

int zf_init(void) {
  /* As TCPDirect's: ZF_ATTR is parsed here already, so a malformed one fails zf_init. */
  struct zf_attr* a;
  int rc = zf_attr_alloc(&a);
  if (rc < 0) return rc;
  zf_attr_free(a);
  g_inited = 1;
  return 0;
}

int zf_deinit(void) {
  g_inited = 0;
  return 0;
}

int zf_stack_alloc(struct zf_attr* attr, struct zf_stack** stack_out) {
  if (!g_inited) {
    violation("zf_stack_alloc before zf_init");
    return -ENOENT;
  }
  const char* ifname = attr_get_str(attr, "interface");
  if (ifname[0] == '\0') return -ENODEV;
  if (if_nametoindex(ifname) == 0) return -ENOENT; /* what TCPDirect answers a bad name */
  struct zf_stack* st = calloc(1, sizeof *st);
  if (st == NULL) return -ENOMEM;
  st->n_tcp = attr_get_int(attr, "max_tcp_endpoints");
  st->n_listen = attr_get_int(attr, "max_tcp_listen_endpoints");
  st->backlog = attr_get_int(attr, "max_tcp_syn_backlog");
  int n = st->n_tcp + st->n_listen;
  st->tcp = calloc((size_t)st->n_tcp, sizeof *st->tcp);
  st->listen = calloc((size_t)st->n_listen, sizeof *st->listen);
  st->pfd = calloc((size_t)n, sizeof *st->pfd);
  st->pz = calloc((size_t)n, sizeof *st->pz);
  if (!st->tcp || !st->listen || !st->pfd || !st->pz) {
    zf_stack_free(st);
    return -ENOMEM;
  }
  for (int i = 0; i < st->n_tcp; i++) {
    st->tcp[i].st = st;
    zocket_reset(&st->tcp[i]);
  }
  for (int i = 0; i < st->n_listen; i++) {
    st->listen[i].st = st;
    zocket_reset(&st->listen[i]);
  }
  *stack_out = st;
  return 0;
}

/* The kernel carries on with a closed socket's queued bytes and FIN, so a shim stack has
 * no close of its own in progress. */
int zf_stack_is_quiescent(struct zf_stack* st) {
  (void)st;
  return 1;
}

int zf_stack_free(struct zf_stack* st) {
  int leaked = 0;
  for (int i = 0; st->tcp && i < st->n_tcp; i++)
    if (st->tcp[i].kind != Z_FREE) {
      leaked++;
      close(st->tcp[i].fd);
    }
  for (int i = 0; st->listen && i < st->n_listen; i++)
    if (st->listen[i].kind != Z_FREE) {
      leaked++;
      close(st->listen[i].fd);
    }
  if (leaked) violation("zf_stack_free with %d zocket(s) not freed", leaked);
  if (st->n_muxers) violation("zf_stack_free with %d muxer set(s) not freed", st->n_muxers);
  free(st->tcp);
  free(st->listen);
  free(st->pfd);
  free(st->pz);
  free(st);
  return 0;
}

/* ------------------------------------------------------------------ reactor */

static int kernel_state(int fd) {
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0) return TCP_CLOSE;
  return ti.tcpi_state;
}

static int closing_state(int s) {
  return s == TCP_FIN_WAIT1 || s == TCP_FIN_WAIT2 || s == TCP_LAST_ACK || s == TCP_CLOSING;
}

static int can_receive(const struct zocket* z) {
  return !z->eof && !z->error && z->rx_count < RX_PKTS &&
         (z->state == TCP_ESTABLISHED || z->state == TCP_FIN_WAIT1 ||
          z->state == TCP_FIN_WAIT2);
}

static void fail(struct zocket* z, int err) {
  z->error = err;
  z->state = TCP_CLOSE;
}

static int reactor_connect(struct zocket* z) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(z->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err)
    fail(z, err);
  else
    z->state = TCP_ESTABLISHED;
  return 1;
}

static int reactor_receive(struct zocket* z) {
  int got = 0;
  while (z->rx_count < RX_PKTS) {
    int slot = (z->rx_head + z->rx_count) % RX_PKTS;
    ssize_t r = recv(z->fd, z->rx_pkt[slot], PKT_PAYLOAD, MSG_DONTWAIT);
    if (r > 0) {
      z->rx_len[slot] = (int)r;
      z->rx_count++;
      got = 1;
    } else if (r == 0) {
      z->eof = 1;
      z->state = z->state == TCP_ESTABLISHED ? TCP_CLOSE_WAIT : kernel_state(z->fd);
      return 1;
    } else if (errno == EINTR) {
      continue;
    } else {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        fail(z, errno);
        got = 1;
      }
      break;
    }
  }
  return got;
}

static int reactor_accept(struct zf_stack* st, struct zocket* l) {
  int got = 0;
  while (l->aq_count < ACCEPT_QUEUE) {
    struct zocket* z = slot_take(st->tcp, st->n_tcp);
    if (z == NULL) break;
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    int fd = accept4(l->fd, (struct sockaddr*)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) break;
    set_nodelay(fd);
    zocket_reset(z);
    z->kind = Z_TCP;
    z->fd = fd;
    z->state = TCP_ESTABLISHED;
    z->raddr = peer;
    l->acceptq[(l->aq_head + l->aq_count) % ACCEPT_QUEUE] = z;
    l->aq_count++;
    got = 1;
  }
  return got;
}

int zf_reactor_perform(struct zf_stack* st) {
  int n = 0, events = 0;
  for (int i = 0; i < st->n_tcp; i++) {
    struct zocket* z = &st->tcp[i];
    if (z->kind != Z_TCP) continue;
    if (closing_state(z->state)) {
      int s = kernel_state(z->fd);
      if (s != z->state && !(z->eof && s == TCP_CLOSE_WAIT)) {
        z->state = s;
        z->w.edge = 1;
        events++;
      }
    }
    short want = z->state == TCP_SYN_SENT ? POLLOUT : can_receive(z) ? POLLIN : 0;
    if (want) {
      st->pfd[n] = (struct pollfd){.fd = z->fd, .events = want};
      st->pz[n++] = z;
    }
  }
  int free_tcp = slot_take(st->tcp, st->n_tcp) != NULL;
  for (int i = 0; free_tcp && i < st->n_listen; i++) {
    struct zocket* l = &st->listen[i];
    if (l->kind != Z_LISTEN || l->aq_count >= ACCEPT_QUEUE) continue;
    st->pfd[n] = (struct pollfd){.fd = l->fd, .events = POLLIN};
    st->pz[n++] = l;
  }
  if (n == 0 || poll(st->pfd, (nfds_t)n, 0) <= 0) return events;
  for (int i = 0; i < n; i++) {
    struct zocket* z = st->pz[i];
    if (st->pfd[i].revents == 0) continue;
    int got;
    if (z->kind == Z_LISTEN)
      got = reactor_accept(st, z);
    else if (z->state == TCP_SYN_SENT)
      got = reactor_connect(z);
    else
      got = reactor_receive(z);
    z->w.edge |= got;
    events += got;
  }
  return events;
}

/* ------------------------------------------------------------------ passive open */

int zftl_listen(struct zf_stack* st, const struct sockaddr* laddr, socklen_t laddrlen,
                const struct zf_attr* attr, struct zftl** tl_out) {
  (void)attr;
  int rc = check_sin(laddr, laddrlen);
  if (rc < 0) return rc;
  if (((const struct sockaddr_in*)laddr)->sin_addr.s_addr == htonl(INADDR_ANY))
    return -EOPNOTSUPP;
  struct zocket* l = slot_take(st->listen, st->n_listen);
  if (l == NULL) return -ENOBUFS;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_or(-ENOMEM);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, laddr, sizeof(struct sockaddr_in)) < 0 || listen(fd, st->backlog) < 0) {
    rc = errno_or(-EINVAL);
    close(fd);
    return rc;
  }
  zocket_reset(l);
  l->kind = Z_LISTEN;
  l->fd = fd;
  l->state = TCP_LISTEN;
  *tl_out = (struct zftl*)l;
  return 0;
}

int zftl_accept(struct zftl* tl, struct zft** ts_out) {
  struct zocket* l = as_kind(tl, Z_LISTEN, "zftl_accept");
  if (l == NULL) return -EINVAL;
  if (l->aq_count == 0) return -EAGAIN;
  *ts_out = (struct zft*)l->acceptq[l->aq_head];
  l->aq_head = (l->aq_head + 1) % ACCEPT_QUEUE;
  l->aq_count--;
  return 0;
}

int zftl_free(struct zftl* tl) {
  struct zocket* l = as_kind(tl, Z_LISTEN, "zftl_free");
  if (l == NULL) return -EINVAL;
  for (; l->aq_count > 0; l->aq_count--) { /* never accepted: closed with the listener */
    struct zocket* z = l->acceptq[l->aq_head];
    l->aq_head = (l->aq_head + 1) % ACCEPT_QUEUE;
    close(z->fd);
    zocket_reset(z);
  }
  close(l->fd);
  zocket_reset(l);
  return 0;
}

void zftl_getname(struct zftl* tl, struct sockaddr* laddr_out, socklen_t* laddrlen) {
  struct zocket* l = as_kind(tl, Z_LISTEN, "zftl_getname");
  if (l != NULL && laddr_out != NULL && laddrlen != NULL) getsockname(l->fd, laddr_out, laddrlen);
}

/* ------------------------------------------------------------------ active open */

int zft_alloc(struct zf_stack* st, const struct zf_attr* attr,
              struct zft_handle** handle_out) {
  (void)attr;
  struct zocket* z = slot_take(st->tcp, st->n_tcp);
  if (z == NULL) return -ENOBUFS;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_or(-ENOMEM);
  set_nodelay(fd);
  zocket_reset(z);
  z->kind = Z_HANDLE;
  z->fd = fd;
  *handle_out = (struct zft_handle*)z;
  return 0;
}

int zft_handle_free(struct zft_handle* handle) {
  struct zocket* z = as_kind(handle, Z_HANDLE, "zft_handle_free");
  if (z == NULL) return -EINVAL;
  close(z->fd);
  zocket_reset(z);
  return 0;
}

int zft_addr_bind(struct zft_handle* handle, const struct sockaddr* laddr,
                  socklen_t laddrlen, int flags) {
  struct zocket* z = as_kind(handle, Z_HANDLE, "zft_addr_bind");
  if (z == NULL) return -EINVAL;
  if (flags != 0) return -EINVAL;
  int rc = check_sin(laddr, laddrlen);
  if (rc < 0) return rc;
  int one = 1;
  setsockopt(z->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  return bind(z->fd, laddr, sizeof(struct sockaddr_in)) < 0 ? errno_or(-EINVAL) : 0;
}

int zft_connect(struct zft_handle* handle, const struct sockaddr* raddr,
                socklen_t raddrlen, struct zft** ts_out) {
  struct zocket* z = as_kind(handle, Z_HANDLE, "zft_connect");
  if (z == NULL) return -EINVAL;
  int rc = check_sin(raddr, raddrlen);
  if (rc < 0) return rc == -EFAULT ? -EINVAL : rc;
  if (connect(z->fd, raddr, sizeof(struct sockaddr_in)) == 0 || errno == EINPROGRESS) {
    z->state = TCP_SYN_SENT; /* the reactor completes it, as on a NIC */
  } else if (errno == ECONNREFUSED) {
    fail(z, ECONNREFUSED); /* reported through zft_state/zft_error, never here */
  } else if (errno == ENETUNREACH || errno == EHOSTUNREACH) {
    return -EHOSTUNREACH;
  } else if (errno == EADDRNOTAVAIL) {
    return -EADDRINUSE;
  } else {
    return errno_or(-EINVAL);
  }
  memcpy(&z->raddr, raddr, sizeof z->raddr);
  z->kind = Z_TCP;
  *ts_out = (struct zft*)z;
  return 0;
}

int zft_shutdown_tx(struct zft* ts) {
  struct zocket* z = as_kind(ts, Z_TCP, "zft_shutdown_tx");
  if (z == NULL) return -EINVAL;
  if (z->state != TCP_ESTABLISHED && z->state != TCP_CLOSE_WAIT) return -ENOTCONN;
  if (shutdown(z->fd, SHUT_WR) < 0) return -ENOTCONN;
  z->state = z->state == TCP_ESTABLISHED ? TCP_FIN_WAIT1 : TCP_LAST_ACK;
  return 0;
}

int zft_free(struct zft* ts) {
  struct zocket* z = as_kind(ts, Z_TCP, "zft_free");
  if (z == NULL) return -EINVAL;
  /* As TCPDirect's tcp_shutdown: unread data (in our ring, or still in the kernel's
   * queue, where close() sees it) aborts with RST; otherwise FIN. */
  if (z->rx_count > 0) {
    struct linger abort_now = {.l_onoff = 1, .l_linger = 0};
    setsockopt(z->fd, SOL_SOCKET, SO_LINGER, &abort_now, sizeof abort_now);
  }
  close(z->fd);
  zocket_reset(z);
  return 0;
}

int zft_state(struct zft* ts) {
  struct zocket* z = as_kind(ts, Z_TCP, "zft_state");
  return z == NULL ? TCP_CLOSE : z->state;
}

int zft_error(struct zft* ts) {
  struct zocket* z = as_kind(ts, Z_TCP, "zft_error");
  return z == NULL ? EINVAL : z->error;
}

void zft_getname(struct zft* ts, struct sockaddr* laddr_out, socklen_t* laddrlen,
                 struct sockaddr* raddr_out, socklen_t* raddrlen) {
  struct zocket* z = as_kind(ts, Z_TCP, "zft_getname");
  if (z == NULL) return;
  if (laddr_out != NULL && laddrlen != NULL) getsockname(z->fd, laddr_out, laddrlen);
  if (raddr_out != NULL && raddrlen != NULL) {
    size_t n = *raddrlen < sizeof z->raddr ? *raddrlen : sizeof z->raddr;
    memcpy(raddr_out, &z->raddr, n);
    *raddrlen = sizeof z->raddr;
  }
}

/* ------------------------------------------------------------------ multiplexer */

#define ZOCKET_OF(w) ((struct zocket*)((char*)(w)-offsetof(struct zocket, w)))

struct zf_waitable* zft_to_waitable(struct zft* ts) {
  struct zocket* z = as_kind(ts, Z_TCP, "zft_to_waitable");
  return z == NULL ? NULL : &z->w;
}

struct zf_waitable* zftl_to_waitable(struct zftl* tl) {
  struct zocket* l = as_kind(tl, Z_LISTEN, "zftl_to_waitable");
  return l == NULL ? NULL : &l->w;
}

int zf_muxer_alloc(struct zf_stack* stack, struct zf_muxer_set** muxer_out) {
  struct zf_muxer_set* m = calloc(1, sizeof *m);
  if (m == NULL) return -ENOMEM;
  m->st = stack;
  m->members = calloc((size_t)(stack->n_tcp + stack->n_listen), sizeof *m->members);
  if (m->members == NULL) {
    free(m);
    return -ENOMEM;
  }
  stack->n_muxers++;
  *muxer_out = m;
  return 0;
}

void zf_muxer_free(struct zf_muxer_set* muxer) {
  while (muxer->n > 0) muxer_remove(muxer->members[0]);
  muxer->st->n_muxers--;
  free(muxer->members);
  free(muxer);
}

int zf_muxer_add(struct zf_muxer_set* muxer, struct zf_waitable* w,
                 const struct epoll_event* event) {
  if (w == NULL) {
    violation("zf_muxer_add of a NULL waitable");
    return -EINVAL;
  }
  if (w->set == muxer) return -EALREADY;
  if (w->set != NULL) return -EBUSY;
  if (ZOCKET_OF(w)->st != muxer->st) return -EXDEV;
  w->set = muxer;
  w->event = *event;
  w->edge = zocket_ready(ZOCKET_OF(w)) != 0; /* already ready: report it once */
  muxer->members[muxer->n++] = w;
  return 0;
}

int zf_muxer_del(struct zf_waitable* w) {
  if (w == NULL || w->set == NULL) return -EINVAL;
  muxer_remove(w);
  return 0;
}

/* Strictly edge-triggered, as the header allows: a waitable is reported once per batch
 * of happenings, so a caller that relies on level-triggering misses events here too. */
int zf_muxer_wait(struct zf_muxer_set* muxer, struct epoll_event* events, int maxevents,
                  int64_t timeout_ns) {
  if (timeout_ns != 0) violation("zf_muxer_wait with a timeout: pollnet never blocks");
  zf_reactor_perform(muxer->st);
  int n = 0;
  for (int i = 0; i < muxer->n && n < maxevents; i++) {
    struct zf_waitable* w = muxer->members[i];
    /* Only the events asked for, EPOLLHUP and EPOLLERR included (muxer.h). */
    uint32_t ready = zocket_ready(ZOCKET_OF(w)) & w->event.events;
    if (!w->edge || ready == 0) continue;
    w->edge = 0;
    events[n].events = ready;
    events[n].data = w->event.data;
    n++;
  }
  return n;
}

/* ------------------------------------------------------------------ receive */

void zft_zc_recv(struct zft* ts, struct zft_msg* msg, int flags) {
  struct zocket* z = as_kind(ts, Z_TCP, "zft_zc_recv");
  int max = msg->iovcnt;
  msg->iovcnt = 0;
  if (z == NULL) return;
  if (flags != 0) {
    violation("zft_zc_recv flags %#x: the shim has no overlapped receive", (unsigned)flags);
    return;
  }
  if (z->zc_iovs) {
    violation("zft_zc_recv while the previous one awaits zft_zc_recv_done");
    return;
  }
  int n = 0;
  for (; n < max && n < z->rx_count; n++) {
    int slot = (z->rx_head + n) % RX_PKTS;
    msg->iov[n].iov_base = z->rx_pkt[slot];
    msg->iov[n].iov_len = (size_t)z->rx_len[slot];
  }
  int pkts = n;
  if (n < max && n == z->rx_count && (z->eof || z->error)) {
    msg->iov[n].iov_base = z->rx_pkt[(z->rx_head + n) % RX_PKTS];
    msg->iov[n].iov_len = 0; /* end of stream; zft_zc_recv_done() tells EOF from error */
    n++;
  }
  msg->iovcnt = n;
  msg->pkts_left = z->rx_count - pkts;
  msg->flags = 0;
  if (n > 0) {
    z->zc_iovs = n;
    z->zc_pkts = pkts;
    z->zc_first = msg->iov[0].iov_base;
  }
}

int zft_zc_recv_done(struct zft* ts, struct zft_msg* msg) {
  struct zocket* z = as_kind(ts, Z_TCP, "zft_zc_recv_done");
  if (z == NULL) return -EINVAL;
  if (z->zc_iovs == 0) {
    violation("zft_zc_recv_done without a zft_zc_recv that returned packets");
    return -EINVAL;
  }
  if (msg->iovcnt != z->zc_iovs || msg->iov[0].iov_base != z->zc_first)
    violation("zft_zc_recv_done with a message changed since zft_zc_recv");
  int ended = z->zc_iovs > z->zc_pkts;
  z->rx_head = (z->rx_head + z->zc_pkts) % RX_PKTS;
  z->rx_count -= z->zc_pkts;
  z->zc_iovs = z->zc_pkts = 0;
  z->zc_first = NULL;
  if (!ended) return 1;
  return z->error ? -z->error : 0;
}

/* ------------------------------------------------------------------ send */

ssize_t zft_send_single(struct zft* ts, const void* buf, size_t buflen, int flags) {
  struct zocket* z = as_kind(ts, Z_TCP, "zft_send_single");
  if (z == NULL) return -EINVAL;
  if (flags & ~MSG_MORE) return -EINVAL;
  if (z->state != TCP_ESTABLISHED && z->state != TCP_CLOSE_WAIT) return -ENOTCONN;
  if (buflen == 0) return 0;
  for (;;) {
    ssize_t r = send(z->fd, buf, buflen, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -EAGAIN;
    if (errno == ENOBUFS || errno == ENOMEM) return -ENOMEM;
    fail(z, errno);
    return -ENOTCONN;
  }
}
