"""The look-alike library keeps TCPDirect's documented contract (zf_tcp.h, muxer.h, attr.h),
driven through pollnet's own binding: what the backend's tests rely on is tested here."""

from __future__ import annotations

import errno
import select
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pollnet.backends.tcpdirect import zf
from pollnet.errors import ConfigError

ffi = zf.ffi
SIN_LEN = ffi.sizeof("struct sockaddr_in")


class Zf:
    """One stack on `lo`, freed (with everything in it) at the end of a test."""

    def __init__(self, library: Path) -> None:
        self.lib = zf.load(str(library))
        self.attr = zf.alloc_attr(self.lib, "lo", {})
        out = ffi.new("struct zf_stack **")
        assert self.lib.zf_stack_alloc(self.attr, out) == 0
        self.st = out[0]
        self.zockets: list[Any] = []
        self.listeners: list[Any] = []

    def perform_until(self, cond: Callable[[], bool], rounds: int = 20000) -> bool:
        for _ in range(rounds):
            if cond():
                return True
            self.lib.zf_reactor_perform(self.st)
        return cond()

    def listen(self) -> tuple[Any, int]:
        out = ffi.new("struct zftl **")
        sa = zf.sockaddr_in("127.0.0.1", 0)
        assert self.lib.zftl_listen(self.st, sa_ptr(sa), SIN_LEN, self.attr, out) == 0
        self.listeners.append(out[0])
        name = ffi.new("struct sockaddr_in *")
        self.lib.zftl_getname(out[0], sa_ptr(name), ffi.new("socklen_t *", SIN_LEN))
        return out[0], zf.sockaddr_tuple(name)[1]

    def connect(self, port: int) -> Any:
        handle = ffi.new("struct zft_handle **")
        assert self.lib.zft_alloc(self.st, self.attr, handle) == 0
        out = ffi.new("struct zft **")
        sa = zf.sockaddr_in("127.0.0.1", port)  # kept alive: a cast does not own it
        rc = self.lib.zft_connect(handle[0], sa_ptr(sa), SIN_LEN, out)
        assert rc == 0
        self.zockets.append(out[0])
        return out[0]

    def accept(self, tl: Any) -> Any:
        out = ffi.new("struct zft **")
        assert self.perform_until(lambda: self.lib.zftl_accept(tl, out) == 0)
        self.zockets.append(out[0])
        return out[0]

    def pair(self) -> tuple[Any, Any]:
        tl, port = self.listen()
        client = self.connect(port)
        server = self.accept(tl)
        assert self.perform_until(lambda: self.lib.zft_state(client) == zf.TCP_ESTABLISHED)
        return client, server

    def free(self) -> None:
        for zock in self.zockets:
            self.lib.zft_free(zock)
        for tl in self.listeners:
            self.lib.zftl_free(tl)
        self.lib.zf_stack_free(self.st)
        self.lib.zf_attr_free(self.attr)


def sa_ptr(sa: Any) -> Any:
    return ffi.cast("struct sockaddr *", sa)


@pytest.fixture
def z(shim_library: Path) -> Iterator[Zf]:
    stack = Zf(shim_library)
    yield stack
    stack.free()


def recv_all(z: Zf, zock: Any, iovs: int = 8) -> tuple[list[bytes], int | None]:
    """One zft_zc_recv + zft_zc_recv_done: the payloads, and done's result (None: none)."""
    msg = ffi.new("struct zft_msg *", {"iov": iovs})
    msg.iovcnt = iovs
    z.lib.zft_zc_recv(zock, msg, 0)
    got = [bytes(ffi.buffer(msg.iov[i].iov_base, msg.iov[i].iov_len)) for i in range(msg.iovcnt)]
    if msg.iovcnt == 0:
        return got, None
    return got, z.lib.zft_zc_recv_done(zock, msg)


def test_nothing_moves_without_the_reactor(z: Zf) -> None:
    tl, port = z.listen()
    z.connect(port)
    out = ffi.new("struct zft **")
    assert z.lib.zftl_accept(tl, out) == -errno.EAGAIN  # the SYN is not processed yet


def test_connect_goes_syn_sent_then_established(z: Zf) -> None:
    tl, port = z.listen()
    client = z.connect(port)
    assert z.lib.zft_state(client) == zf.TCP_SYN_SENT
    assert z.lib.zft_send_single(client, b"x", 1, 0) == -errno.ENOTCONN
    z.accept(tl)
    assert z.perform_until(lambda: z.lib.zft_state(client) == zf.TCP_ESTABLISHED)
    assert z.lib.zft_error(client) == 0


def test_refusal_shows_in_state_and_error_not_in_connect(z: Zf) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        client = z.connect(port)  # returns 0
        assert z.perform_until(lambda: z.lib.zft_state(client) == zf.TCP_CLOSE)
        assert z.lib.zft_error(client) == errno.ECONNREFUSED
        got, done = recv_all(z, client)
        assert got == [b""] and done == -errno.ECONNREFUSED


def test_zero_copy_receive_fills_iovecs_and_counts_what_is_left(z: Zf) -> None:
    client, server = z.pair()
    data = bytes(range(256)) * 20  # 5120 bytes: four packets of at most 1460
    assert z.lib.zft_send_single(client, data, len(data), 0) == len(data)
    msg = ffi.new("struct zft_msg *", {"iov": 2})
    assert z.perform_until(lambda: recv_peek(z, server, msg) == 2)
    assert msg.pkts_left >= 1  # more packets than the two iovecs
    first = b"".join(bytes(ffi.buffer(msg.iov[i].iov_base, msg.iov[i].iov_len)) for i in range(2))
    assert z.lib.zft_zc_recv_done(server, msg) == 1
    rest = b""
    while len(first) + len(rest) < len(data):
        z.lib.zf_reactor_perform(z.st)
        got, _ = recv_all(z, server)
        rest += b"".join(got)
    assert first + rest == data


def recv_peek(z: Zf, zock: Any, msg: Any) -> int:
    """zft_zc_recv into `msg` (2 iovecs); returns iovcnt, leaving the packets lent."""
    msg.iovcnt = 2
    z.lib.zft_zc_recv(zock, msg, 0)
    if 0 < msg.iovcnt < 2:
        z.lib.zft_zc_recv_done(zock, msg)  # not enough yet: give it back, try again
        return 0
    return int(msg.iovcnt)


def test_orderly_eof_is_a_zero_length_iovec_then_done_returns_zero(z: Zf) -> None:
    client, server = z.pair()
    z.lib.zft_send_single(client, b"bye", 3, 0)
    assert z.lib.zft_shutdown_tx(client) == 0
    assert z.lib.zft_state(client) == zf.TCP_FIN_WAIT1
    got: list[bytes] = []
    done: int | None = None
    while b"" not in got:
        z.lib.zf_reactor_perform(z.st)
        more, done = recv_all(z, server)
        got += more
    assert got == [b"bye", b""] and done == 0
    assert z.lib.zft_state(server) == zf.TCP_CLOSE_WAIT


def test_reset_is_a_zero_length_iovec_then_done_returns_econnreset(z: Zf) -> None:
    client, server = z.pair()
    z.lib.zft_send_single(server, b"unread", 6, 0)
    # The reactor brings the bytes into the client zocket; nobody reads them.
    assert z.perform_until(lambda: z.lib.zf_reactor_perform(z.st) > 0)
    z.lib.zft_free(client)  # unread data: RST, as TCPDirect's zft_free does
    z.zockets.remove(client)
    done: int | None = None
    got: list[bytes] = []
    while b"" not in got:
        z.lib.zf_reactor_perform(z.st)
        more, done = recv_all(z, server)
        got += more
    assert done == -errno.ECONNRESET
    assert z.lib.zft_state(server) == zf.TCP_CLOSE


def test_send_flags_other_than_msg_more_are_refused(z: Zf) -> None:
    client, _ = z.pair()
    assert z.lib.zft_send_single(client, b"x", 1, socket.MSG_DONTWAIT) == -errno.EINVAL
    assert z.lib.zft_send_single(client, b"x", 1, zf.MSG_MORE) == 1


def test_send_returns_eagain_when_nothing_fits(z: Zf) -> None:
    client, _ = z.pair()
    chunk = b"y" * 65536
    for _ in range(5000):
        rc = z.lib.zft_send_single(client, chunk, len(chunk), 0)
        if rc < 0:
            break
    assert rc == -errno.EAGAIN


def test_muxer_is_edge_triggered(z: Zf) -> None:
    client, server = z.pair()
    out = ffi.new("struct zf_muxer_set **")
    assert z.lib.zf_muxer_alloc(z.st, out) == 0
    mux = out[0]
    ev = ffi.new("struct epoll_event *")
    ev.events = select.EPOLLIN
    ev.data.u64 = 42
    w = z.lib.zft_to_waitable(server)
    assert z.lib.zf_muxer_add(mux, w, ev) == 0
    assert z.lib.zf_muxer_add(mux, w, ev) == -errno.EALREADY
    events = ffi.new("struct epoll_event[]", 4)

    def wait() -> list[int]:
        n = z.lib.zf_muxer_wait(mux, events, 4, 0)
        return [int(events[i].data.u64) for i in range(n)]

    assert wait() == []
    z.lib.zft_send_single(client, b"one", 3, 0)
    reported: list[int] = []
    for _ in range(20000):
        reported = wait()
        if reported:
            break
    assert reported == [42]
    assert wait() == []  # still readable, but no new edge
    z.lib.zft_send_single(client, b"two", 3, 0)
    assert any(wait() == [42] for _ in range(20000))
    assert z.lib.zf_muxer_del(w) == 0
    assert z.lib.zf_muxer_del(w) == -errno.EINVAL
    z.lib.zf_muxer_free(mux)


def test_listener_refuses_inaddr_any_and_counts_endpoints(z: Zf) -> None:
    out = ffi.new("struct zftl **")
    sa = zf.sockaddr_in("0.0.0.0", 0)
    assert z.lib.zftl_listen(z.st, sa_ptr(sa), SIN_LEN, z.attr, out) == -errno.EOPNOTSUPP
    handles = []
    handle = ffi.new("struct zft_handle **")
    while (rc := z.lib.zft_alloc(z.st, z.attr, handle)) == 0:
        handles.append(handle[0])
    assert rc == -errno.ENOBUFS and len(handles) == 64  # max_tcp_endpoints' default
    for h in handles:
        assert z.lib.zft_handle_free(h) == 0


def test_attributes_follow_attr_h(shim_library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = zf.load(str(shim_library))
    out = ffi.new("struct zf_attr **")
    assert lib.zf_attr_alloc(out) == 0
    attr = out[0]
    assert lib.zf_attr_set_int(attr, b"no_such_attribute", 1) == -errno.ENOENT
    assert lib.zf_attr_set_str(attr, b"max_tcp_endpoints", b"3") == -errno.ENOMSG
    assert lib.zf_attr_set_int(attr, b"max_tcp_endpoints", 65) == -errno.EOVERFLOW
    assert lib.zf_attr_set_str(attr, b"interface", b"lo") == 0
    lib.zf_attr_free(attr)
    monkeypatch.setenv("ZF_ATTR", "interface=lo;max_tcp_endpoints=banana")
    assert lib.zf_attr_alloc(out) == -errno.EINVAL
    monkeypatch.setenv("ZF_ATTR", "no_equals_sign")
    with pytest.raises(ConfigError, match="not name=value"):
        zf.alloc_attr(lib, "lo", {})


def test_stack_needs_an_interface(shim_library: Path) -> None:
    lib = zf.load(str(shim_library))
    attr = zf.alloc_attr(lib, "", {})
    out = ffi.new("struct zf_stack **")
    assert lib.zf_stack_alloc(attr, out) == -errno.ENODEV
    lib.zf_attr_free(attr)


def test_parse_zf_attr() -> None:
    assert zf.parse_zf_attr("interface=eth2;log_level=3;;") == {
        "interface": "eth2",
        "log_level": "3",
    }
    with pytest.raises(ConfigError):
        zf.parse_zf_attr("=3")
