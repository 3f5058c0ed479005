"""PollTcpClient over TCPDirect: zft_connect, then zft_state read once per poll.

A connect never blocks here: zft_connect only starts it, and each poll runs the reactor
and looks at zft_state (SYN_SENT: still going; ESTABLISHED: connected; anything else:
failed, with zft_error saying why). Once connected, a poll reads the zocket only when the
reactor reported something since the last read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pollnet._fast import FAST
from pollnet.backends.tcpdirect import zf
from pollnet.backends.tcpdirect.connection import TcpdirectConnection
from pollnet.backends.tcpdirect.stack import Stack
from pollnet.client_base import NEVER, PolledClient
from pollnet.config import ClientConfig, TcpdirectOptions
from pollnet.connection import ConnectionBase
from pollnet.handler import HandlerCache, HandlerMethods
from pollnet.recvbuf import RecvBuffer
from pollnet.timeouts import IdleTimeouts

_ffi = zf.ffi
_SIN_LEN = _ffi.sizeof("struct sockaddr_in")


def _no_reactor(stack: Any) -> int:
    return 0


class TcpdirectTcpClient(PolledClient[TcpdirectConnection, Any]):
    """Connects to `server_ip:server_port` through a stack on `interface`, reconnecting
    every `conn_retry_sec`."""

    def __init__(self, cfg: ClientConfig, opts: TcpdirectOptions) -> None:
        self.cfg = cfg
        self._stack = Stack(opts, cfg.interface, "client")
        self._lib = self._stack.lib
        self._st = self._stack.ptr
        self._perform = self._lib.zf_reactor_perform
        self._raddr = zf.sockaddr_in(cfg.server_ip, cfg.server_port)
        bind = cfg.local_ip or cfg.local_port
        self._laddr = zf.sockaddr_in(cfg.local_ip or "0.0.0.0", cfg.local_port) if bind else None
        self._handle_out = _ffi.new("struct zft_handle **")
        self._zock_out = _ffi.new("struct zft **")
        self._timeouts = IdleTimeouts(cfg.send_timeout_sec, cfg.recv_timeout_sec)
        self._buf = RecvBuffer(cfg.recv_buf_size)  # one connection at a time: reused
        self._handlers = HandlerCache()
        # _connecting: the struct zft* of a connect in progress; set last, so __del__
        # knows the stack exists.
        self._free_deferred = False
        super().__init__(cfg)
        # What the compiled poll() reads (kept in step by _rebind and _sync).
        self._fast: Any = (None if FAST is None else FAST.PollState(
            self._closed, timeouts_on=self._timeouts.enabled, stack=self._stack))

    def __del__(self) -> None:
        if hasattr(self, "_connecting"):  # not when __init__ failed
            self.free()

    def free(self) -> None:
        """Close everything and free the TCPDirect stack now (garbage collection does it
        otherwise). The client is unusable afterwards. Called from a handler, while the
        library lends the packet it is reading, the stack is freed once the packet is back
        (at the end of that read)."""
        if self._stack.ptr is None:
            return
        conn = self._conn
        if conn is not None and conn._in_zc:
            if conn._connected:
                conn._shutdown("client freed")
            self._free_deferred = True
            if self._fast is not None:
                self._fast.free_after = True
            return
        self._free_transport()

    def _free_transport(self) -> None:
        self._free_deferred = False
        if self._fast is not None:
            self._fast.free_after = False
        if self._stack.ptr is None:
            return
        if self._conn is not None and self._conn._connected:
            self._conn._shutdown("client freed")
        self._abandon_connect()
        self._stack.free()
        # Later polls only deliver the disconnect notice: no reactor, no reconnect.
        self._perform = _no_reactor
        self._next_connect_ns = NEVER

    # ---------------------------------------------------------------- PolledClient's part

    def _service(self) -> None:
        stack = self._stack
        if self._perform(self._st) > 0:
            stack.pending = True
        if stack.queued:
            stack.flush()

    def _read(self, conn: TcpdirectConnection,
              on_data: Callable[[ConnectionBase, memoryview], int]) -> None:
        # zf_reactor_perform never misses an event (false positives only), so an idle
        # poll costs no zft_zc_recv.
        stack = self._stack
        if (stack.pending or conn.redeliver) and conn._connected:
            stack.pending = False
            try:
                if conn.read(on_data):
                    stack.pending = True
            finally:
                if self._free_deferred:  # free() from the handler: the packet is back now
                    self._free_transport()

    # ---------------------------------------------------------------- connecting

    def _start_connect(self, methods: HandlerMethods, now_ns: int) -> None:
        if self._stack.ptr is None:
            self._error = "client freed"
            return
        self.connect_attempts += 1
        lib = self._lib
        rc = lib.zft_alloc(self._st, self._stack.attr, self._handle_out)
        if rc < 0:
            self._fail(methods, "zft_alloc error", -rc)
            return
        handle = self._handle_out[0]
        if self._laddr is not None:
            rc = lib.zft_addr_bind(handle, _ffi.cast("struct sockaddr *", self._laddr), _SIN_LEN, 0)
            if rc < 0:
                lib.zft_handle_free(handle)
                self._fail(methods, "zft_addr_bind error", -rc)
                return
        sa = _ffi.cast("struct sockaddr *", self._raddr)
        rc = lib.zft_connect(handle, sa, _SIN_LEN, self._zock_out)
        if rc < 0:
            lib.zft_handle_free(handle)  # a failed zft_connect leaves the handle to us
            self._fail(methods, "zft_connect error", -rc)
            return
        self._connecting = self._zock_out[0]
        self._connect_deadline_ns = now_ns + self._connect_timeout_ns
        self._check_connect(methods, now_ns)  # a refusal may be known already

    def _check_connect(self, methods: HandlerMethods, now_ns: int) -> None:
        zock = self._connecting
        state = self._lib.zft_state(zock)
        if state == zf.TCP_SYN_SENT:
            if self._connect_timed_out(now_ns):
                self._connect_failed(methods, "connect timeout")
        elif state in (zf.TCP_ESTABLISHED, zf.TCP_CLOSE_WAIT):
            self._established(zock, methods, now_ns)
        else:
            self._connect_failed(methods, "connect error", self._lib.zft_error(zock))

    def _established(self, zock: Any, methods: HandlerMethods, now_ns: int) -> None:
        local = _ffi.new("struct sockaddr_in *")
        local_len = _ffi.new("socklen_t *", _SIN_LEN)
        self._lib.zft_getname(
            zock, _ffi.cast("struct sockaddr *", local), local_len, _ffi.NULL, _ffi.NULL
        )
        peer = (self.cfg.server_ip, self.cfg.server_port)
        if zf.sockaddr_tuple(local) == peer:
            # TCP simultaneous open onto our own ephemeral port: not a server.
            self._connect_failed(methods, "connect error: connected to itself")
            return
        self._connecting = None
        self._stack.pending = True  # bytes may have come with the handshake
        self._buf.reset()
        self._error = ""
        conn = TcpdirectConnection(self._stack, zock, peer, self._buf, self._closed, now_ns)
        self._conn = conn
        methods.on_connected(conn)

    def _abandon_connect(self) -> None:
        zock = self._connecting
        if zock is not None:
            self._connecting = None
            self._lib.zft_free(zock)


if FAST is not None:  # poll() compiled: a method of the class (pollnet._pnfast.compiled_poll)
    setattr(  # noqa: B010
        TcpdirectTcpClient, "poll", FAST.compiled_poll(TcpdirectTcpClient, "tcpdirect", "client")
    )
