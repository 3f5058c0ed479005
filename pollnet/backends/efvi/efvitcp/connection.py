"""One TCP connection of an efvi stack (efvitcp's TcpConn).

Objects are preallocated, one per connection slot, and reused like file descriptors:
after `on_connection_closed`/`reset`/`timeout`/`refused` or `close()` a connection must not
be used -- until its slot is taken again the object raises `ConnectionClosedError`; after
that it is the new connection. `user_data` is cleared when the slot is reused.
`end_reason` says why it ended (the core's `pn_event.reason`, readable in the closing
handler): e.g. "retransmissions unacknowledged (tcp_retries)", "reset by the peer".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pollnet.backends.efvi.core import binding as _core
from pollnet.backends.efvi.core.fast import FAST, address
from pollnet.backends.efvi.core.stack import BytesLike
from pollnet.backends.efvi.errors import ConnectionClosedError, EfviError

if TYPE_CHECKING:
    from pollnet.backends.efvi.core.stack import StackHandle

STATE_NAMES: dict[int, str] = {
    v: k[len("PN_TCP_") :] for k, v in _core.constants("PN_TCP_").items()
}


@dataclass(frozen=True, slots=True)
class ConnInfo:
    """A snapshot of `pn_conn_info`: the connection's TCP variables (Linux's names)."""

    state: str
    remote_ip: str
    remote_port: int
    local_port: int
    snd_una: int
    snd_nxt: int
    rcv_nxt: int
    snd_wnd: int
    rcv_wnd: int
    cwnd: int
    ssthresh: int
    srtt_us: int
    rttvar_us: int
    rto_ms: int
    mss: int
    retransmits: int
    irs: int
    options: int  # what the handshake negotiated: OPT_TIMESTAMPS | OPT_SACK | OPT_WSCALE


OPT_TIMESTAMPS, OPT_SACK, OPT_WSCALE = 1, 2, 4  # pn_conn_info.options (Linux's tcpi_options)


CLOSED_BY_APPLICATION = "closed by the application (close())"

_from_buffer: Any = _core.ffi.from_buffer if _core.ffi is not None else None
_INFO_INTS = frozenset(ConnInfo.__dataclass_fields__) - {"state", "remote_ip"}


class PyCoreConn:
    """What the compiled `pollnet._pnfast.CoreConn` holds and does, in Python: the base
    of Connection where the extension is not used (see `_fast`)."""

    __slots__ = ("_closed", "_core_stack", "_established", "_kept", "_local_port",
                 "_remote_ip", "_remote_port", "conn_id", "user_data")

    _lib: Any
    _stack: Any
    user_data: Any
    conn_id: int
    _core_stack: int
    _kept: int
    _remote_ip: int
    _remote_port: int
    _local_port: int
    _closed: bool
    _established: bool

    if TYPE_CHECKING:  # Connection's (the compiled base calls them too)
        def _dead(self, doing: str) -> ConnectionClosedError: ...
        def _check(self, rc: int, doing: str, hint: str = "") -> int: ...

    def send(self, data: BytesLike, more: bool = False) -> int:
        """Copy up to `sendable()` bytes of `data` into the send buffers; return how many
        were accepted (buffered for retransmission, maybe not on the wire yet).
        `more=True` holds back a trailing partial segment until more data or a send
        without `more` (like MSG_MORE)."""
        if self._closed:
            raise self._dead("send")
        if data.__class__ is bytes:  # cffi passes bytes as a pointer without a copy
            rc: int = self._lib.pn_send(self._stack, self.conn_id, data, len(data), more)
        else:
            try:
                buf = _from_buffer(data)
            except TypeError:
                raise TypeError(
                    "send() takes a bytes-like object (bytes, bytearray, memoryview or any "
                    f"C-contiguous buffer), not {type(data).__name__!r}") from None
            rc = self._lib.pn_send(self._stack, self.conn_id, buf, len(buf), more)
            # Drop the buffer export of `data` before anything can raise: a traceback
            # holding it, with `data` a memoryview in a reference cycle, crashes the GC of
            # CPython 3.11 (memoryview tp_clear with exports).
            del buf
        if rc < 0:
            self._check(rc, "send")
        return rc


if TYPE_CHECKING:
    _ConnBase = PyCoreConn
else:
    _ConnBase = PyCoreConn if FAST is None else FAST.CoreConn


class Connection(_ConnBase):
    """A connection slot. Use it only between `on_connection_established` (or `connect()`)
    and its closing event; see the module doc."""

    __slots__ = (
        "_h",
        "_lib",
        "_stack",
        "end_reason",
    )

    def __init__(self, handle: StackHandle, conn_id: int) -> None:
        self._h = handle
        self._lib: Any = handle.lib
        self._stack: Any = handle.stack
        self._core_stack = address(handle.stack)
        self.conn_id = conn_id
        self.user_data: Any = None
        self._remote_ip = 0
        self._remote_port = 0
        self._local_port = 0
        self._established = False
        self._closed = True
        self._kept = 0  # bytes on_data left unconsumed last time (they come back first)
        # Why the connection ended: set before on_connection_closed/reset/timeout/refused
        # is called (the core's pn_reason_str, see endpoint.end_reason_text); "" while open.
        self.end_reason = ""

    # ------------------------------------------------------------ lifecycle (backend use)

    def _open(self, remote_ip: int, remote_port: int, local_port: int) -> None:
        """The slot now holds a new connection (connect() or a passive open)."""
        self.user_data = None
        self._remote_ip = remote_ip
        self._remote_port = remote_port
        self._local_port = local_port
        self._established = False
        self._closed = False
        self._kept = 0
        self.end_reason = ""

    def _dead(self, doing: str) -> ConnectionClosedError:
        return ConnectionClosedError(
            f"{doing} on connection {self.conn_id} to {self._peer_str()}: the connection is "
            "closed; do not use a connection after on_connection_closed/reset/timeout/refused "
            "or close() -- its conn_id is reused for the next connection"
        )

    def _peer_str(self) -> str:
        return f"{_core.int_to_ip(self._remote_ip)}:{self._remote_port}"

    def _check(self, rc: int, doing: str, hint: str = "") -> int:
        if rc >= 0:
            return rc
        err = _core.core_error(rc, f"{doing} on connection {self.conn_id} to {self._peer_str()}",
                               hint)
        if isinstance(err, ConnectionClosedError):
            self._closed = True
        raise err

    # ------------------------------------------------------------ sending

    def sendv(self, buffers: Iterable[BytesLike], more: bool = False) -> int:
        """Send several buffers as one stream (writev); returns bytes accepted."""
        if self._closed:
            raise self._dead("sendv")
        rc: int = self._h.sendv(self.conn_id, buffers, more)
        if rc < 0:
            self._check(rc, "sendv")
        return rc

    def sendable(self) -> int:
        """Bytes the next send can accept (free send buffer space)."""
        if self._closed:
            raise self._dead("sendable")
        return self._check(self._lib.pn_sendable(self._stack, self.conn_id), "sendable")

    def immediately_sendable(self) -> int:
        """Bytes the next send can put on the wire now (windows and cwnd allowing)."""
        if self._closed:
            raise self._dead("immediately_sendable")
        return self._check(
            self._lib.pn_immediately_sendable(self._stack, self.conn_id), "immediately_sendable"
        )

    def send_fin(self) -> None:
        """Half-close: no more sending (shutdown(SHUT_WR)); receiving goes on."""
        if self._closed:
            raise self._dead("send_fin")
        self._check(self._lib.pn_send_fin(self._stack, self.conn_id), "send_fin",
                    "send_fin is allowed once, on an established connection")

    def close(self) -> None:
        """Abort: send RST and free the slot now. No more events come for it.
        Closing a connection that is already closed does nothing."""
        if self._closed:
            return
        self._closed = True
        self._established = False
        self.end_reason = CLOSED_BY_APPLICATION
        rc = self._lib.pn_close(self._stack, self.conn_id)
        if rc < 0 and rc != _core.lib.PN_EBADCONN:
            raise _core.core_error(rc, f"close on connection {self.conn_id}")

    def set_user_timer(self, timer_id: int, ms: int) -> None:
        """Arm timer `timer_id` (< user_timer_cnt) to fire `on_user_timeout` in `ms`
        milliseconds (1..65000); 0 deletes it. Re-arming replaces the old deadline."""
        if self._closed:
            raise self._dead("set_user_timer")
        if not 0 <= ms <= 65000 or timer_id < 0:
            raise EfviError(
                f"set_user_timer({timer_id}, {ms}): ms must be 0..65000 and timer_id >= 0"
            )
        self._check(
            self._lib.pn_set_user_timer(self._stack, self.conn_id, timer_id, ms),
            f"set_user_timer({timer_id}, {ms})",
            f"timer ids are 0..user_timer_cnt-1 (user_timer_cnt = {self._h.user_timer_cnt}); "
            "raise user_timer_cnt in the config for more",
        )

    # ------------------------------------------------------------ state

    @property
    def peername(self) -> tuple[str, int]:
        """(remote IPv4 address, remote port)."""
        return _core.int_to_ip(self._remote_ip), self._remote_port

    @property
    def sockname(self) -> tuple[str, int]:
        """(this stack's IPv4 address, local port)."""
        return self._h.local_ip, self._local_port

    @property
    def local_port(self) -> int:
        return self._local_port

    @property
    def is_established(self) -> bool:
        """The handshake completed and the connection has not ended (it may be half
        closed). False in `on_connection_timeout` for a connect that never completed."""
        return self._established

    @property
    def is_closed(self) -> bool:
        """The connection ended: the object must not be used (see the module doc)."""
        return self._closed

    def info(self) -> ConnInfo:
        """The core's view of the connection (`pn_conn_info`)."""
        if self._closed:
            raise self._dead("info")
        out = self._h.conn_info
        self._check(self._lib.pn_conn_info_get(self._stack, self.conn_id, out), "info")
        fields = _core.struct_dict("pn_conn_info", out)
        state = fields["state"]
        kept = {k: v for k, v in fields.items() if k in _INFO_INTS}
        return ConnInfo(
            state=STATE_NAMES.get(state, str(state)),
            remote_ip=_core.int_to_ip(fields["remote_ip"]),
            **kept,
        )

    def __repr__(self) -> str:
        status = "closed" if self._closed else (
            "established" if self._established else "opening")
        return f"<Connection {self.conn_id} {self._peer_str()} {status}>"
