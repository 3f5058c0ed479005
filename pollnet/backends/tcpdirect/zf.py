"""cffi ABI-mode binding of the TCPDirect API subset pollnet uses (`libonload_zf.so`).

The declarations below are the public headers' (Xilinx-CNS/tcpdirect `src/include/zf/`:
`zf_stack.h`, `attr.h`, `zf_reactor.h`, `muxer.h`, `zf_tcp.h`). The shim's header
`native/tcpdirect_shim/include/zf/zf.h` declares the same, and `tests/tcpdirect/test_abi.py`
compiles both side by side so signatures and struct layouts cannot drift. ABI mode
(`ffi.dlopen`): nothing is compiled at install time, so pollnet installs on hosts without
TCPDirect and finds the library only when a tcpdirect config asks for it.
"""

from __future__ import annotations

import errno
import importlib
import os
import socket
import sys
from collections.abc import Mapping
from typing import Any

from pollnet.errors import BackendUnavailable, ConfigError

# cffi ships no type information; everything that crosses it is Any on purpose.
_cffi: Any = importlib.import_module("cffi")

CDEF = """
typedef unsigned short sa_family_t;
typedef uint16_t in_port_t;
typedef uint32_t socklen_t;
struct in_addr { uint32_t s_addr; };
struct sockaddr { sa_family_t sa_family; char sa_data[14]; };
struct sockaddr_in {
    sa_family_t sin_family;
    in_port_t sin_port;
    struct in_addr sin_addr;
    unsigned char sin_zero[8];
};
struct iovec { void *iov_base; size_t iov_len; };

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

/* muxer.h */
int zf_muxer_alloc(struct zf_stack* stack, struct zf_muxer_set** muxer_out);
void zf_muxer_free(struct zf_muxer_set* muxer);
int zf_muxer_add(struct zf_muxer_set* muxer, struct zf_waitable* w,
                 const struct epoll_event* event);
int zf_muxer_del(struct zf_waitable* w);
int zf_muxer_wait(struct zf_muxer_set* muxer, struct epoll_event* events, int maxevents,
                  int64_t timeout_ns);

/* zf_tcp.h */
struct zf_waitable* zft_to_waitable(struct zft* ts);
struct zf_waitable* zftl_to_waitable(struct zftl* tl);
int zftl_listen(struct zf_stack* st, const struct sockaddr* laddr, socklen_t laddrlen,
                const struct zf_attr* attr, struct zftl** tl_out);
int zftl_accept(struct zftl* tl, struct zft** ts_out);
int zftl_free(struct zftl* ts);
void zftl_getname(struct zftl* ts, struct sockaddr* laddr_out, socklen_t* laddrlen);
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
struct zft_msg {
    int reserved[4];
    int pkts_left;
    int flags;
    int iovcnt;
    struct iovec iov[];
};
void zft_zc_recv(struct zft* ts, struct zft_msg* msg, int flags);
int zft_zc_recv_done(struct zft* ts, struct zft_msg* msg);
ssize_t zft_send_single(struct zft* ts, const void* buf, size_t buflen, int flags);
"""

#: The functions above, in the order a test lists them.
FUNCTIONS = (
    "zf_init", "zf_deinit", "zf_stack_alloc", "zf_stack_free", "zf_stack_is_quiescent",
    "zf_attr_alloc", "zf_attr_free", "zf_attr_set_int", "zf_attr_set_str",
    "zf_reactor_perform",
    "zf_muxer_alloc", "zf_muxer_free", "zf_muxer_add", "zf_muxer_del", "zf_muxer_wait",
    "zft_to_waitable", "zftl_to_waitable",
    "zftl_listen", "zftl_accept", "zftl_free", "zftl_getname",
    "zft_alloc", "zft_handle_free", "zft_addr_bind", "zft_connect", "zft_shutdown_tx",
    "zft_free", "zft_state", "zft_error", "zft_getname",
    "zft_zc_recv", "zft_zc_recv_done", "zft_send_single",
)  # fmt: skip

# <sys/epoll.h> on x86-64: the union is ordinary, struct epoll_event is packed (12 bytes).
EPOLL_CDEF = """
typedef union epoll_data { void *ptr; int fd; uint32_t u32; uint64_t u64; } epoll_data_t;
"""
EPOLL_EVENT_CDEF = """
struct epoll_event { uint32_t events; epoll_data_t data; };
"""

ffi: Any = _cffi.FFI()
ffi.cdef(EPOLL_CDEF)
ffi.cdef(EPOLL_EVENT_CDEF, packed=True)
ffi.cdef(CDEF)

# TCP states zft_state() returns: Linux <netinet/tcp.h> (the test checks them against C).
TCP_ESTABLISHED = 1
TCP_SYN_SENT = 2
TCP_SYN_RECV = 3
TCP_FIN_WAIT1 = 4
TCP_FIN_WAIT2 = 5
TCP_TIME_WAIT = 6
TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8
TCP_LAST_ACK = 9
TCP_LISTEN = 10
TCP_CLOSING = 11

MSG_MORE: int = socket.MSG_MORE  # the only flag zft_send_single takes

DEFAULT_LIBRARY = "libonload_zf.so"
INSTALL_HINT = (
    "install AMD (Solarflare) Onload with TCPDirect, which provides libonload_zf.so, "
    "or set tcpdirect.library to the library's path"
)

_libs: dict[str, Any] = {}
_inited: set[str] = set()


def load(library: str = DEFAULT_LIBRARY) -> Any:
    """dlopen `library` once per process and call zf_init() once, as TCPDirect requires."""
    lib = _libs.get(library)
    if lib is None:
        try:
            lib = ffi.dlopen(library)
        except OSError as exc:
            raise BackendUnavailable(
                "tcpdirect", f"cannot load {library!r} ({exc}); {INSTALL_HINT}"
            ) from None
        missing = [name for name in FUNCTIONS if not hasattr(lib, name)]
        if missing:
            raise BackendUnavailable(
                "tcpdirect",
                f"{library!r} lacks {', '.join(missing)}: not TCPDirect; {INSTALL_HINT}",
            )
        _libs[library] = lib
    if library not in _inited:
        # zf_init applies ZF_ATTR already: a malformed one fails it with -EINVAL.
        env = os.environ.get("ZF_ATTR")
        if env is not None:
            parse_zf_attr(env)
        rc = lib.zf_init()
        if rc == -errno.EINVAL and env is not None:
            raise ConfigError(
                f"ZF_ATTR = {env!r}: TCPDirect's zf_init refused it (EINVAL): an unknown "
                "attribute or a value of the wrong type (the library's message on stderr "
                "names it); fix ZF_ATTR or unset it"
            )
        if rc < 0:
            raise BackendUnavailable(
                "tcpdirect",
                f"zf_init failed: {strerror(rc)} (are the Onload drivers loaded?)",
            )
        _inited.add(library)
    return lib


def strerror(rc: int) -> str:
    """`-EAGAIN` -> 'EAGAIN (Resource temporarily unavailable)'."""
    code = -rc if rc < 0 else rc
    return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


def parse_zf_attr(text: str) -> dict[str, str]:
    """Parse a ZF_ATTR value, `name=value;name=value` (TCPDirect's attr.h format).

    The library applies ZF_ATTR itself in zf_attr_alloc(); pollnet parses it too only to
    turn a malformed one into a message naming it rather than a bare -EINVAL.
    """
    out: dict[str, str] = {}
    for item in text.split(";"):
        if not item:
            continue
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise ConfigError(
                f"ZF_ATTR: {item!r} is not name=value (format: name=value;name=value)"
            )
        out[name] = value
    return out


def alloc_attr(
    lib: Any, interface: str, attributes: Mapping[str, str | int], section: str = "client"
) -> Any:
    """A zf_attr: library defaults, then ZF_ATTR (applied by the library), then our own
    `reactor_spin_count=1` (never spin inside a poll), the interface and the config's
    attributes, in that order, so the config wins. The caller frees it."""
    env = os.environ.get("ZF_ATTR")
    if env is not None:
        parse_zf_attr(env)
    out = ffi.new("struct zf_attr **")
    rc = lib.zf_attr_alloc(out)
    if rc < 0:
        raise ConfigError(f"zf_attr_alloc failed: {strerror(rc)} (check ZF_ATTR={env!r})")
    attr = out[0]
    try:
        lib.zf_attr_set_int(attr, b"reactor_spin_count", 1)  # tolerated if unknown
        if interface:
            _set(lib, attr, "interface", interface, f"{section}.interface")
        for name, value in attributes.items():
            _set(lib, attr, name, value, f"tcpdirect.attributes.{name}")
    except BaseException:
        lib.zf_attr_free(attr)
        raise
    return attr


def _set(lib: Any, attr: Any, name: str, value: str | int, field: str) -> None:
    if isinstance(value, int):
        rc = lib.zf_attr_set_int(attr, name.encode(), value)
    else:
        rc = lib.zf_attr_set_str(attr, name.encode(), value.encode())
    if rc < 0:
        why = {
            -errno.ENOENT: "not an attribute of this TCPDirect",
            -errno.EOVERFLOW: "value out of range",
            -errno.ENOMSG: "this attribute takes an integer, not a string",
            -errno.EINVAL: "invalid value or type for this attribute",
        }.get(rc, strerror(rc))
        raise ConfigError(f"{field} = {value!r}: {why}")


def address(pointer: Any) -> int:
    """A cffi pointer (a stack, a zocket, a library function) as the integer the compiled
    bases take."""
    return int(ffi.cast("uintptr_t", pointer))


def sockaddr_in(ip: str, port: int) -> Any:
    """A `struct sockaddr_in` (network byte order) for an IPv4 address and port."""
    sa = ffi.new("struct sockaddr_in *")
    sa.sin_family = socket.AF_INET
    sa.sin_port = socket.htons(port)
    sa.sin_addr.s_addr = int.from_bytes(socket.inet_aton(ip), sys.byteorder)
    return sa


def sockaddr_tuple(sa: Any) -> tuple[str, int]:
    """(ip, port) of a `struct sockaddr_in`."""
    ip = socket.inet_ntoa(int(sa.sin_addr.s_addr).to_bytes(4, sys.byteorder))
    return ip, socket.ntohs(sa.sin_port)
