"""The pollnet interface over the efvi stack: `EfviTcpClient` / `EfviTcpServer`.

The factory imports this module for `backend = "efvi"` and calls `create_client(cfg)` /
`create_server(cfg)`. The semantics are the socket backend's (see docs/backends.md):

* client: connect on the first poll, again every `conn_retry_sec` (0: only after
  `allow_reconnect()`); `conn_timeout_sec` aborts a connect (RST) with "connect timeout";
  refused, SYN retries exhausted and ARP failure call `on_tcp_connect_failed`.
* data: the core's memoryview goes to `on_tcp_data` (zero-copy); the `remaining` it
  returns goes back to the core, which keeps exactly those bytes; unconsumed bytes that
  fill the receive buffer (`min(efvi.conn_recv_buf_size, recv_buf_size)`) close it.
* send/receive idle timeouts: the core's user timers 0 and 1 (as pollnet's efvi wrapper).
* close: FIN, or RST when bytes arrived that the handler never saw (the kernel's rule).
* server: `max_conns` announced, more wait in a backlog (adapter/server.py).
* sim link: a process-wide wire with a name table (adapter/sim_net.py).
"""

from __future__ import annotations

from pollnet.backends.efvi.adapter.client import EfviTcpClient
from pollnet.backends.efvi.adapter.conn import EfviPollConnection
from pollnet.backends.efvi.adapter.server import EfviTcpServer
from pollnet.backends.efvi.adapter.sim_net import SimNet, sim_net
from pollnet.config import AnyConfig, EfviConfig, EfviOptions

__all__ = [
    "EfviPollConnection",
    "EfviTcpClient",
    "EfviTcpServer",
    "SimNet",
    "create_client",
    "create_server",
    "sim_net",
]


def _options(cfg: AnyConfig) -> EfviOptions:
    # Another backend's config carries no [efvi] section: the defaults (the sim link).
    return cfg.efvi if isinstance(cfg, EfviConfig) else EfviOptions()


def create_client(cfg: AnyConfig) -> EfviTcpClient:
    return EfviTcpClient(cfg.client, _options(cfg))


def create_server(cfg: AnyConfig) -> EfviTcpServer:
    return EfviTcpServer(cfg.server, _options(cfg))
