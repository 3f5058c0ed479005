"""efvitcp's TcpClient: connect() and poll()."""

from __future__ import annotations

from pollnet.backends.efvi.core import binding as _core
from pollnet.backends.efvi.efvitcp.connection import Connection
from pollnet.backends.efvi.efvitcp.endpoint import Endpoint
from pollnet.backends.efvi.errors import EfviError
from pollnet.backends.efvi.link.sim import SimWire
from pollnet.config import EfviOptions


class TcpClient(Endpoint):
    """A client stack. Like efvitcp's it holds one connection unless `max_conns` says
    more (efvitcp's max_conn_cnt is a server knob; the options' value is not used here).

    `wire`: join this sim wire (whatever `options.link` says); otherwise the link comes
    from the options. `local_ip`: this host's address (default: options.local_ip, then the
    interface's, or the next free one on a sim wire).
    """

    def __init__(
        self,
        options: EfviOptions | None = None,
        *,
        wire: SimWire | None = None,
        local_ip: str | None = None,
        max_conns: int = 1,
    ) -> None:
        if max_conns < 1:
            raise EfviError(f"TcpClient(max_conns={max_conns}): must be at least 1")
        super().__init__(options, max_conn_cnt=max_conns, wire=wire, local_ip=local_ip)
        self.conn: Connection | None = None

    def connect(self, server_ip: str, server_port: int, local_port: int = 0) -> Connection:
        """Start an active open. Returning means only that the SYN (or the ARP request
        for the next hop) went out: wait in poll() for on_connection_established,
        on_connection_refused or on_connection_timeout."""
        ffi, lib = _core.require()
        try:
            rip = _core.ip_to_int(server_ip)
        except ValueError:
            raise EfviError(f"connect({server_ip!r}, ...): not an IPv4 address") from None
        if not 0 < server_port < 65536 or not 0 <= local_port < 65536:
            raise EfviError(f"connect(..., {server_port}, {local_port}): ports are 1..65535")
        out = ffi.new("uint32_t *")
        rc = lib.pn_connect(self._s(), rip, server_port, local_port, out)
        if rc < 0:
            hints = {
                "PN_ENOCONN": f"all {self.max_conn_cnt} connection slots are in use: close "
                "one or create the client with a larger max_conns (a slot freed while "
                "poll() dispatches its events is free again from the next poll)",
                "PN_EPORT": f"local port {local_port} is taken (or no ephemeral port is "
                "free): pick another local_port or 0",
                "PN_ENOROUTE": f"{server_ip} is not on {self.local_ip}'s subnet and no "
                "gateway is configured",
                "PN_ELINK": self._link.last_error(),
            }
            err = _core.core_error(rc, f"connect to {server_ip}:{server_port}")
            if err.symbol in hints:
                err = _core.core_error(rc, f"connect to {server_ip}:{server_port}",
                                       hints[err.symbol])
            raise err
        conn = self._slot(int(out[0]))
        info = self._h.conn_info
        port = info.local_port if lib.pn_conn_info_get(self._stack, out[0], info) == 0 else 0
        conn._open(rip, server_port, int(port) or local_port)
        self.conn = conn
        return conn
