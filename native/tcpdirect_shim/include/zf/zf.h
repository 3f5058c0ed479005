/* The subset of the TCPDirect API (Xilinx-CNS/tcpdirect, src/include/zf/zf.h and the
 * headers it includes) that pollnet's tcpdirect backend calls, declared with the public
 * headers' signatures and struct layouts.
 *
 * Two users: the look-alike test library in this folder (libzf_shim.so), and the layout
 * check in tests/tcpdirect, which compiles these declarations next to the Python cdef so
 * the two cannot drift. On a host with TCPDirect the same check can be pointed at the
 * real <zf/zf.h> instead (see docs/tcpdirect.md).
 *
 * Where each declaration comes from:
 *   zf_stack.h    zf_init, zf_deinit, zf_stack_alloc, zf_stack_free, zf_stack_is_quiescent
 *   attr.h        zf_attr_alloc, zf_attr_free, zf_attr_set_int, zf_attr_set_str
 *   zf_reactor.h  zf_reactor_perform
 *   muxer.h       zf_muxer_alloc, zf_muxer_free, zf_muxer_add, zf_muxer_del, zf_muxer_wait
 *   zf_tcp.h      zftl_listen, zftl_accept, zftl_free, zftl_getname, zftl_to_waitable,
 *                 zft_alloc, zft_handle_free, zft_addr_bind, zft_connect, zft_shutdown_tx,
 *                 zft_free, zft_state, zft_error, zft_getname, zft_to_waitable,
 *                 struct zft_msg, zft_zc_recv, zft_zc_recv_done, zft_send_single
 */
#ifndef POLLNET_ZF_SHIM_ZF_H
#define POLLNET_ZF_SHIM_ZF_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque objects: the API only ever hands out pointers to them. (The real zf_tcp.h
 * spells zft and zftl as empty structs, a GNU extension; as incomplete types they are
 * the same for every use through a pointer.) */
struct zf_stack;
struct zf_attr;
struct zftl;
struct zft;
struct zft_handle;
struct zf_muxer_set;
struct zf_waitable;

/* zf_stack.h */
int zf_init(void);
int zf_deinit(void);
int zf_stack_alloc(struct zf_attr* attr, struct zf_stack** stack_out);
int zf_stack_free(struct zf_stack* stack);
int zf_stack_is_quiescent(struct zf_stack* stack);

/* attr.h */
int zf_attr_alloc(struct zf_attr** attr_out);
void zf_attr_free(struct zf_attr* attr);
int zf_attr_set_int(struct zf_attr* attr, const char* name, int64_t val);
int zf_attr_set_str(struct zf_attr* attr, const char* name, const char* val);

/* zf_reactor.h */
int zf_reactor_perform(struct zf_stack* st);

/* zf_tcp.h: passive open */
int zftl_listen(struct zf_stack* st, const struct sockaddr* laddr, socklen_t laddrlen,
                const struct zf_attr* attr, struct zftl** tl_out);
int zftl_accept(struct zftl* tl, struct zft** ts_out);
int zftl_free(struct zftl* ts);
void zftl_getname(struct zftl* ts, struct sockaddr* laddr_out, socklen_t* laddrlen);

/* zf_tcp.h: active open */
int zft_alloc(struct zf_stack* st, const struct zf_attr* attr,
              struct zft_handle** handle_out);
int zft_handle_free(struct zft_handle* handle);
int zft_addr_bind(struct zft_handle* handle, const struct sockaddr* laddr,
                  socklen_t laddrlen, int flags);
int zft_connect(struct zft_handle* handle, const struct sockaddr* raddr,
                socklen_t raddrlen, struct zft** ts_out);
int zft_shutdown_tx(struct zft* ts);
int zft_free(struct zft* ts);
int zft_state(struct zft* ts);
int zft_error(struct zft* ts);
void zft_getname(struct zft* ts, struct sockaddr* laddr_out, socklen_t* laddrlen,
                 struct sockaddr* raddr_out, socklen_t* raddrlen);

/* muxer.h (with zf_tcp.h's waitables): readiness of many zockets in one call */
int zf_muxer_alloc(struct zf_stack* stack, struct zf_muxer_set** muxer_out);
void zf_muxer_free(struct zf_muxer_set* muxer);
int zf_muxer_add(struct zf_muxer_set* muxer, struct zf_waitable* w,
                 const struct epoll_event* event);
int zf_muxer_del(struct zf_waitable* w);
int zf_muxer_wait(struct zf_muxer_set* muxer, struct epoll_event* events, int maxevents,
                  int64_t timeout_ns);
struct zf_waitable* zft_to_waitable(struct zft* ts);
struct zf_waitable* zftl_to_waitable(struct zftl* tl);

/* zf_tcp.h: receive. iov[] is a flexible array; the caller's iovecs follow the struct. */
struct zft_msg {
  int reserved[4];
  int pkts_left;
  int flags;
  int iovcnt;
  struct iovec iov[];
};

void zft_zc_recv(struct zft* ts, struct zft_msg* msg, int flags);
int zft_zc_recv_done(struct zft* ts, struct zft_msg* msg);

/* zf_tcp.h: send */
ssize_t zft_send_single(struct zft* ts, const void* buf, size_t buflen, int flags);

#ifdef __cplusplus
}
#endif

#endif /* POLLNET_ZF_SHIM_ZF_H */
