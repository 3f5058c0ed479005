"""Type stubs of the compiled per-message path (native/ext/: pnfast.c and fast_<backend>.c)."""

from collections.abc import Callable
from typing import Any

EVENT_SIZE: int

def bind_core(pn_poll: int, pn_send: int, pn_set_user_timer: int, pn_keep: int) -> None: ...
def set_helpers(byte_view: Callable[[object, str], Any],
                checked_remaining: Callable[[object, int], int]) -> None: ...

class CoreConn:
    user_data: Any
    conn_id: int
    _core_stack: int
    _kept: int
    _remote_ip: int
    _remote_port: int
    _local_port: int
    _closed: bool
    _established: bool
    def send(self, data: bytes | bytearray | memoryview, more: bool = False) -> int: ...

class Poller:
    resume: int
    pending: int
    def __init__(self, endpoint: Any, stack: int, events: bytearray, conns: list[Any],
                 wire: object, accept_errors: list[BaseException], max_events: int,
                 remaining: Callable[..., int], kept_export: Callable[..., BaseException]
                 ) -> None: ...
    def poll(self, handler: object, now_ns: int | None = None) -> int: ...
    def set_pollnet(self, on_data: Callable[[Any, memoryview], object] | None) -> None: ...
    def detach(self) -> None: ...
    def undispatched(self) -> bool: ...

class PollConnCore:
    _core: Any
    _held: Any
    _outq: bytearray | None
    _rx_total: int
    _kept: int
    _send_left: int
    _recv_left: int
    _connected: bool
    _announced: bool
    def write_some(self, data: bytes | bytearray | memoryview, more: bool = False) -> int: ...
    def write_nonblock(self, data: bytes | bytearray | memoryview, more: bool = False
                       ) -> bool: ...
    def write(self, data: bytes | bytearray | memoryview, more: bool = False) -> bool: ...
    def _use_plan(self, plan: Any) -> None: ...

class SockConnCore:
    _buf: Any
    fd: int
    _connected: bool
    _sent: bool
    _received: bool
    redeliver: bool
    def _attach(self, buf: Any, fd: int) -> None: ...
    def read(self, on_data: Callable[[Any, memoryview], object]) -> None: ...
    def write_some(self, data: bytes | bytearray | memoryview, more: bool = False) -> int: ...
    def write_nonblock(self, data: bytes | bytearray | memoryview, more: bool = False
                       ) -> bool: ...
    def write(self, data: bytes | bytearray | memoryview, more: bool = False) -> bool: ...

class PollState:
    handler: object
    on_data: Callable[[Any, memoryview], object] | None
    conn: Any
    slow: bool
    in_poll: bool
    free_after: bool
    def __init__(self, closed: list[Any], conns: dict[int, Any] | None = None,
                 again: list[Any] | None = None, epfd: int = -1, lfd: int = -1,
                 timeouts_on: bool = False, stack: TdStackCore | None = None) -> None: ...

def compiled_poll(cls: type, backend: str, role: str) -> Any: ...
def owner_poll(cls: type) -> Any: ...

class TdConnCore:
    _buf: Any
    _connected: bool
    _sent: bool
    _received: bool
    redeliver: bool
    _in_zc: bool
    _free_pending: bool
    _queued: bool
    def _attach(self, buf: Any, zock: int, zc_recv: int, zc_done: int, send: int) -> None: ...
    def read(self, on_data: Callable[[Any, memoryview], object]) -> bool: ...
    def write_some(self, data: bytes | bytearray | memoryview, more: bool = False) -> int: ...
    def write(self, data: bytes | bytearray | memoryview, more: bool = False) -> bool: ...

class TdStackCore:
    pending: bool
    queued: list[Any]
    def _attach(self, stack: int, perform: int, muxer: int = 0, wait: int = 0) -> None: ...
