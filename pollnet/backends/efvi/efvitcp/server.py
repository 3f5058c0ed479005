"""efvitcp's TcpServer: listen() and poll(); its connections come with
on_connection_established, filtered by the handler's allow_new_connection(ip, port)."""

from __future__ import annotations

from pollnet.backends.efvi.core import binding as _core
from pollnet.backends.efvi.efvitcp.endpoint import Endpoint
from pollnet.backends.efvi.link.sim import SimWire
from pollnet.config import EfviOptions


class TcpServer(Endpoint):
    """A server stack with `options.max_conn_cnt` connection slots (TIME_WAIT ones not
    counted). `port`: listen on it at once. `wire`/`local_ip`: as for TcpClient."""

    def __init__(
        self,
        options: EfviOptions | None = None,
        *,
        port: int | None = None,
        wire: SimWire | None = None,
        local_ip: str | None = None,
    ) -> None:
        options = options or EfviOptions()
        super().__init__(options, max_conn_cnt=options.max_conn_cnt, wire=wire,
                         local_ip=local_ip)
        self.ports: set[int] = set()
        if port is not None:
            self.listen(port)

    def listen(self, port: int) -> None:
        """Accept connections on local_ip:port (a server may listen on several ports)."""
        rc = self._lib.pn_listen(self._s(), port)
        if rc < 0:
            raise _core.core_error(
                rc, f"listen on {self.local_ip}:{port}",
                "the port is already listened on here" if rc == self._lib.PN_EPORT
                else self._link.last_error() if rc == self._lib.PN_ELINK
                else "ports are 1..65535",
            )
        self.ports.add(port)

    def unlisten(self, port: int) -> None:
        """Stop accepting on port (its established connections go on)."""
        rc = self._lib.pn_unlisten(self._s(), port)
        if rc < 0:
            raise _core.core_error(rc, f"unlisten on {self.local_ip}:{port}",
                                   "this server does not listen on that port")
        self.ports.discard(port)
