"""Type stubs of the compiled efvi per-message path (native/ext/pnfast.c)."""

from collections.abc import Callable
from typing import Any

EVENT_SIZE: int

def bind_core(pn_poll_address: int, pn_send_address: int) -> None: ...

class CoreConn:
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
    def detach(self) -> None: ...
    def undispatched(self) -> bool: ...
