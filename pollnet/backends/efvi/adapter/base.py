"""What the pollnet-level client and server over the efvi stack share: the stack's options
derived from the config, opening a link inside a network namespace, the clock, and the
pump (a poll of the stack that takes no events, used by `write` to wait for room).

Options: the stack gets the config's `[efvi]` section with two changes -- at least two
user timers (ids 0 and 1 are the send and receive idle timers, as in pollnet's efvi
wrapper) and `conn_recv_buf_size = min(efvi.conn_recv_buf_size, <role>.recv_buf_size)`:
the core's receive buffer *is* the pollnet receive buffer (zero-copy), so a handler
leaving that many bytes unconsumed closes the connection ("recv buffer full"). The core
takes at least 512 bytes; below that the adapter presents at most `recv_buf_size` bytes a
call and enforces the limit itself.

Interface: `[client] interface` / `[server] interface`, when set, override
`efvi.interface` for that role; `NETNS/IFNAME` opens the link inside the network
namespace NETNS (as `ip netns` names it, /run/netns/NETNS).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pollnet.backends.efvi.adapter.conn import EfviPollConnection, Owner, Plan, timer_plan
from pollnet.backends.efvi.adapter.sim_net import SimNet, sim_net
from pollnet.backends.efvi.core.fast import FAST
from pollnet.config import EfviOptions
from pollnet.errors import ConfigError, TransportError
from pollnet.handler import HandlerCache, HandlerMethods

if TYPE_CHECKING:
    from pollnet.backends.efvi.efvitcp.connection import Connection
    from pollnet.backends.efvi.efvitcp.endpoint import Endpoint
    from pollnet.connection import ConnectionBase

_CLONE_NEWNET = 0x40000000
CORE_MIN_RECV_BUF = 512  # the core's smallest conn_recv_buf_size


def stack_options(efvi: EfviOptions, interface: str, local_ip: str, recv_buf_size: int
                  ) -> EfviOptions:
    update: dict[str, Any] = {
        "user_timer_cnt": max(2, efvi.user_timer_cnt),
        "conn_recv_buf_size": max(CORE_MIN_RECV_BUF,
                                  min(efvi.conn_recv_buf_size, recv_buf_size)),
    }
    if interface:
        update["interface"] = interface
    if local_ip:
        update["local_ip"] = local_ip
    return efvi.model_copy(update=update)


def split_interface(interface: str) -> tuple[str, str]:
    """`NETNS/IFNAME` -> (NETNS, IFNAME); a plain name -> ("", name)."""
    if "/" in interface:
        netns, _, ifname = interface.rpartition("/")
        return netns, ifname
    return "", interface


@contextlib.contextmanager
def in_netns(netns: str) -> Iterator[None]:
    """Run the body inside network namespace `netns` (this thread only), then return.
    Sockets made inside stay in that namespace."""
    if not netns:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    path = netns if netns.startswith("/") else f"/run/netns/{netns}"
    try:
        target = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ConfigError(f"interface {netns}/...: no network namespace {path} "
                          f"({exc.strerror})") from None
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(target, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise TransportError(f"cannot enter network namespace {netns}: "
                                 f"{os.strerror(err)} (needs root)")
        try:
            yield
        finally:
            libc.setns(home, _CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)


def _retire_sim_host(ep: Endpoint, net: SimNet, host: str) -> None:
    net.forget(host)
    ep.close()


def _close_in_netns(ep: Endpoint, netns: str) -> None:
    if not os.path.exists(netns if netns.startswith("/") else f"/run/netns/{netns}"):
        ep.close()  # the namespace (and its interfaces) went first
        return
    with in_netns(netns):
        ep.close()


class Base(Owner):
    """The owner side of `EfviPollConnection`, the clock, and poll()'s control flow."""

    _handlers: HandlerCache
    _events: StackEvents
    _methods: HandlerMethods | None

    def __init__(self, efvi: EfviOptions, send_timeout_sec: float, recv_timeout_sec: float,
                 recv_size: int) -> None:
        self._dispatching = False
        self._fast: Any = None  # the stack's compiled Poller, once `_compile_poll` ran
        self.plan = Plan(send_timeout_sec, recv_timeout_sec, recv_size)
        self.send_ms, self.send_chunks = timer_plan(send_timeout_sec)
        self.recv_ms, self.recv_chunks = timer_plan(recv_timeout_sec)
        self.recv_size = recv_size
        self.flush: list[EfviPollConnection] = []
        self.net: SimNet | None = sim_net(efvi) if efvi.link == "sim" else None
        self.ep: Endpoint | None = None

    def _start(self, ep: Endpoint, netns: str = "") -> None:
        self.ep = ep
        if self.net is not None:
            # Off the wire with us: the address and the names it registered are freed,
            # even when close() was never called.
            weakref.finalize(self, _retire_sim_host, ep, self.net, ep.local_ip)
        elif netns:
            # A link is destroyed where it was made: detaching an XDP program from the
            # host namespace would miss the interface and leave the program attached.
            weakref.finalize(self, _close_in_netns, ep, netns)

    def _compile_poll(self, events: StackEvents, closed: list[ConnectionBase]) -> None:
        """Where the compiled path runs, poll() is `compiled_poll`'s: the same control flow
        as Base.poll, over the stack's Poller, calling back `_rebind`, `_sim_now`,
        `send_queued` and `_after` only when they have work."""
        ep = self.ep
        if ep is None or ep.poller is None:
            return
        self._fast = ep.poller
        self._fast.pollnet_setup(events, self.flush, closed, self.net is not None)

    @property
    def dispatching(self) -> bool:
        """Inside poll()'s dispatch: the stack must not be polled (pump) then."""
        fast = self._fast
        return bool(fast.dispatching) if fast is not None else self._dispatching

    def _idle(self, idle: bool) -> None:
        """Whether the next poll has work for `_after` beyond closed connections."""
        if self._fast is not None:
            self._fast.owner_idle = idle

    def poll(self, handler: object, now_ns: int | None = None) -> None:
        """The pollnet poll() (the Python path): one poll of the stack, its events as
        pollnet callbacks, then the owner's bookkeeping (`_after`)."""
        methods = self._handlers.methods
        if methods is None or methods.handler is not handler:
            self._rebind(handler)
        now = self._sim_now(now_ns) if self.net is not None else self.now(now_ns)
        self._dispatching = True
        try:
            self._endpoint_poll(now)
        finally:
            self._dispatching = False
        if self.flush:
            self.send_queued()
        self._after(now)

    def _rebind(self, handler: object) -> None:
        methods = self._handlers.get(handler)
        self._methods = methods
        self._events.m = methods  # read by the event methods without the weak proxy
        self.deliver_to(methods)

    def _sim_now(self, now_ns: int | None) -> int:
        assert self.net is not None
        return self.net.now(now_ns)

    def _endpoint_poll(self, now: int) -> None:
        raise NotImplementedError

    def _after(self, now: int) -> None:
        """After the stack's events: connecting, disconnect notices, the backlog."""
        raise NotImplementedError

    def __del__(self) -> None:
        # The stack's event-array memoryviews (efvitcp/endpoint.py) export buffers to each other;
        # if the GC reaches them inside a garbage cycle (a traceback holding this object,
        # say) its tp_clear fails on them and the interpreter crashes. Releasing them
        # here, before the GC clears anything, avoids that: the stack dies with us.
        ep = getattr(self, "ep", None)
        if ep is not None:
            for name in ("_ev_words", "_ev_halves"):
                view = getattr(ep, name, None)
                if isinstance(view, memoryview):
                    view.release()

    def deliver_to(self, methods: HandlerMethods) -> None:
        """A new pollnet handler: the compiled dispatch hands data to its on_data itself
        (EfviPollConnection.deliver's common case), the rest goes through StackEvents."""
        ep = self.ep
        if ep is not None and ep.poller is not None:
            ep.poller.set_pollnet(methods.on_data)

    def now(self, now_ns: int | None) -> int:
        net = self.net
        if net is not None:
            return net.now(now_ns)
        return time.monotonic_ns() if now_ns is None else now_ns

    def stats(self) -> dict[str, int]:
        """The stack's counters (`pn_stats`): `pollnet info --stats` shows them."""
        if self.ep is None:
            return {}
        return self.ep.stats()

    def pump(self) -> None:
        """Receive, run timers, transmit -- and leave every event queued in the core
        for the next poll() (max = 0)."""
        ep = self.ep
        if ep is not None and not self.dispatching:
            ep.pump(self.net.now() if self.net is not None else 0)

    def send_queued(self) -> None:
        """Writes that did not fit: send what the buffers take now, keep the rest."""
        self.flush[:] = [pc for pc in self.flush if not pc.send_queued()]


def compiled_poll(cls: type[Base]) -> None:
    """Give the class the compiled poll() (a method of the class, found by
    `pollnet._pnfast.owner_poll`), where the compiled path runs."""
    if FAST is not None:
        setattr(cls, "poll", FAST.owner_poll(cls))  # noqa: B010 (mypy: a method)


def dead(core: Connection, reason: str, err: int = 0) -> None:
    """The core ended the connection (its slot is free): tell pollnet once."""
    conn: Any = core.user_data
    if isinstance(conn, EfviPollConnection) and conn._connected:
        conn._core_dead = True
        conn._shutdown(reason, err)


class StackEvents:
    """What the client's and the server's efvitcp-level handlers share: the handler
    methods of this poll (`m`, read without going through a weak proxy) and the events
    that end a connection. Their data events stay their own (only the server's check
    the backlog)."""

    __slots__ = ("m",)

    def __init__(self) -> None:
        self.m: HandlerMethods | None = None

    def on_connection_timeout(self, core: Connection) -> None:
        dead(core, f"connection timeout: {core.end_reason}", errno.ETIMEDOUT)

    def on_connection_reset(self, core: Connection) -> None:
        dead(core, "connection reset", errno.ECONNRESET)

    def on_connection_closed(self, core: Connection) -> None:
        dead(core, "remote close")
