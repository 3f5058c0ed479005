"""The socket backend's compiled per-message path (pollnet._pnfast.SockConnCore): it runs
unless POLLNET_PURE_PYTHON says otherwise, and a connected client then reads without an
epoll call per poll (as pollnet's C++ client does). The behaviour suite's socket row
covers its semantics on both paths (scripts/test.sh runs it with POLLNET_PURE_PYTHON=1)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pollnet import _fast
from pollnet.backends.socket.connection import SocketConnection
from pollnet.config import config_from_dict
from pollnet.factory import create_client, create_server

PURE = os.environ.get("POLLNET_PURE_PYTHON", "") not in ("", "0")


class Peer:
    def __init__(self, echo: bool) -> None:
        self.echo = echo
        self.got = b""
        self.conns: list[Any] = []

    def on_tcp_connected(self, conn: Any) -> None:
        self.conns.append(conn)

    def on_tcp_data(self, conn: Any, data: memoryview) -> int:
        self.got += bytes(data)
        if self.echo:
            conn.write(data)
        return 0


def _until(cond: Callable[[], bool], *polls: Callable[[], None]) -> bool:
    for _ in range(200_000):
        for poll in polls:
            poll()
        if cond():
            return True
    return False


def test_the_compiled_path_runs_unless_told_not_to() -> None:
    if PURE:
        assert _fast.FAST is None
        assert not any(b.__module__ == "pollnet._pnfast" for b in SocketConnection.__mro__)
        return
    assert _fast.FAST is not None, _fast.WHY
    assert issubclass(SocketConnection, _fast.FAST.SockConnCore)
    from pollnet.backends.socket.client import SocketTcpClient
    from pollnet.backends.socket.server import SocketTcpServer

    for cls in (SocketTcpClient, SocketTcpServer):  # poll() itself compiled
        assert type(cls.__dict__["poll"]).__name__ == "method_descriptor"


def test_a_connected_client_reads_without_epoll() -> None:
    server = create_server(config_from_dict({"server": {"listen_ip": "127.0.0.1", "port": 0}}))
    client = create_client(config_from_dict(
        {"client": {"server_ip": "127.0.0.1", "server_port": server.address[1]}}))
    h, e = Peer(echo=False), Peer(echo=True)
    try:
        assert _until(lambda: client.conn is not None and bool(e.conns),
                      lambda: client.poll(h), lambda: server.poll(e))
        calls = [0]
        ready = client._ready  # type: ignore[attr-defined]

        def counted(timeout: float) -> Any:
            calls[0] += 1
            return ready(timeout)

        client._ready = counted  # type: ignore[attr-defined]
        for i in range(20):
            assert client.write(b"ping%02d" % i)
            assert _until(lambda i=i: len(h.got) == 6 * (i + 1),  # type: ignore[misc]
                          lambda: server.poll(e), lambda: client.poll(h))
        assert h.got == b"".join(b"ping%02d" % i for i in range(20))
        if PURE:
            assert calls[0] >= 20  # the Python read asks epoll first
        else:
            assert calls[0] == 0
    finally:
        client.close()
        server.close()


def test_an_idle_server_poll_allocates_little() -> None:
    # epoll.poll(0) without maxevents allocated room for 1023 events (12 KB) on every poll
    # of the Python path (found by a helper; the compiled poll's epoll_wait allocates none).
    import tracemalloc

    from pollnet.testing import Pair, loopback_config

    pair = Pair(loopback_config("socket"))
    for _ in range(10):
        pair.poll()
    tracemalloc.start()
    try:
        rises = []
        for _ in range(5):
            tracemalloc.reset_peak()
            start = tracemalloc.get_traced_memory()[0]
            pair.server.poll(pair.server_handler)
            rises.append(tracemalloc.get_traced_memory()[1] - start)
    finally:
        tracemalloc.stop()
    assert max(rises) < 2048, rises
    pair.close()
