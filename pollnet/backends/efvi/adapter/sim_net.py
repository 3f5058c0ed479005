"""The sim link at the pollnet level: one process-wide wire per `[efvi.sim]` section,
and a name table so that clients and servers made by the factory find each other.

* **Wires.** Every client and server the factory makes with `link = "sim"` joins the
  process-wide wire of its `[efvi.sim]` section: equal sections share one wire (the same
  faults, the same seed); `sim_net(options)` returns it. The wire lives while something
  is on it. Its clock is the monotonic clock (`poll()` without `now_ns` works in real
  time); a poll with a later `now_ns` moves it on.
* **Hosts.** Each client and server is its own host (its own stack, MAC and address)
  on 10.0.0.0/16: the address named in the config when it is on that subnet
  (`server.listen_ip`, `efvi.local_ip`), otherwise one from 10.0.128.1 up.
* **Names.** Config addresses are names, steered like a NIC's filters steer flows: a
  server registers `(listen_ip, port)`; a client connecting to `(server_ip, port)` reaches
  the server registered under that name, or under `0.0.0.0` and that port. So the loopback
  configs of the socket backend (`127.0.0.1`) work unchanged on sim, and peers see each
  other under the names they used (a client aiming at a loopback name is shown to its
  server as 127.0.0.1, as the kernel shows it). An address on 10.0.0.0/16 that nobody
  registered is connected to directly (a host there answers, or ARP fails); any other
  unregistered name reaches the wire's *closed host*, which refuses every connection,
  like a loopback port nobody listens on.
"""

from __future__ import annotations

import ipaddress
import itertools
import time
import weakref
from typing import Any

from pollnet.backends.efvi.core import binding as _core
from pollnet.backends.efvi.efvitcp.server import TcpServer
from pollnet.backends.efvi.link.sim import SimWire
from pollnet.config import EfviOptions, SimOptions

SUBNET = ipaddress.IPv4Network("10.0.0.0/16")
AUTO_FIRST = int(ipaddress.IPv4Address("10.0.128.1"))
AUTO_LAST = int(ipaddress.IPv4Address("10.0.255.253"))
CLOSED_HOST = "10.0.255.254"
ANY = "0.0.0.0"
_EPHEMERAL = range(40000, 60000)

_nets: weakref.WeakValueDictionary[str, SimNet] = weakref.WeakValueDictionary()


def on_subnet(ip: str) -> bool:
    return ipaddress.IPv4Address(ip) in SUBNET


def is_loopback(ip: str) -> bool:
    return ip == ANY or ipaddress.IPv4Address(ip).is_loopback


class SimNet:
    """A wire, who is on it, and the names servers registered."""

    def __init__(self, options: SimOptions) -> None:
        self.wire = SimWire(options)
        self.wire.now_ns = max(self.wire.now_ns, time.monotonic_ns())
        self.listeners: dict[tuple[str, int], str] = {}  # (name, port) -> host address
        self.names: dict[str, str] = {}  # host address -> the name peers see
        self._auto = itertools.cycle(range(AUTO_FIRST, AUTO_LAST + 1))
        self._ports = itertools.cycle(_EPHEMERAL)
        self._closed_host: TcpServer | None = None
        self._closed_events = object()  # no methods: the closed host has no connections

    # ---------------------------------------------------------------- time

    def now(self, now_ns: int | None = None) -> int:
        """The wire clock: the monotonic clock, or a later `now_ns`; never backwards."""
        wire = self.wire
        t = time.monotonic_ns() if now_ns is None else now_ns
        if t > wire.now_ns:
            wire.now_ns = t
        return wire.now_ns

    # ---------------------------------------------------------------- hosts and names

    def host_address(self, wanted: str) -> str:
        """The address of a new host: `wanted` when it is a free subnet address."""
        if wanted and wanted != ANY and on_subnet(wanted):
            return wanted
        taken = self.wire._hosts
        for _ in range(AUTO_LAST - AUTO_FIRST + 1):
            addr = next(self._auto)
            if addr not in taken:
                return _core.int_to_ip(addr)
        raise OSError(105, "no free address left on the sim wire (32k hosts)")

    def register(self, name: str, port: int, host: str) -> int:
        """A server listens on (name, port) at `host`; port 0 picks a free one."""
        if port == 0:
            while True:
                port = next(self._ports)
                if not any(p == port for _, p in self.listeners):
                    break
        key = (name, port)
        if key in self.listeners:
            raise OSError(98, f"{name}:{port} is already listened on by a server on this "
                              "sim wire (Address already in use)")
        self.listeners[key] = host
        self.names.setdefault(host, name if not is_loopback(name) else "127.0.0.1")
        return port

    def unregister(self, name: str, port: int) -> None:
        self.listeners.pop((name, port), None)

    def name_client(self, host: str, server_name: str) -> None:
        """How servers see this client: as a loopback peer when it aims at a loopback
        name (as on the kernel's loopback), else under its own address."""
        self.names[host] = "127.0.0.1" if is_loopback(server_name) else host

    def forget(self, host: str) -> None:
        self.names.pop(host, None)
        for key in [k for k, v in self.listeners.items() if v == host]:
            del self.listeners[key]

    def display(self, host: str) -> str:
        return self.names.get(host, host)

    def resolve(self, name: str, port: int) -> tuple[str, bool]:
        """(host address to connect to, whether it is the closed host)."""
        host = self.listeners.get((name, port))
        if host is None and is_loopback(name):
            host = self.listeners.get((ANY, port))
        if host is not None:
            return host, False
        if on_subnet(name) and name != ANY:
            return name, False
        self._ensure_closed_host()
        return CLOSED_HOST, True

    # ---------------------------------------------------------------- the closed host

    def _ensure_closed_host(self) -> None:
        if self._closed_host is None:
            small = EfviOptions(link="sim", conn_send_buf_cnt=2, conn_recv_buf_size=1024,
                                recv_buf_cnt=64, max_time_wait_conn_cnt=0, max_conn_cnt=1,
                                sim=self.wire.options)
            self._closed_host = TcpServer(small, wire=self.wire, local_ip=CLOSED_HOST)

    def pump_closed_host(self) -> None:
        """Poll the closed host (a client does while it connects to it): it answers
        every SYN with a RST."""
        host = self._closed_host
        if host is not None:
            host.poll(self._closed_events, self.wire.now_ns)


def sim_net(options: EfviOptions | SimOptions) -> SimNet:
    """The process-wide sim wire (and name table) of this `[efvi.sim]` section."""
    sim = options.sim if isinstance(options, EfviOptions) else options
    key = sim.model_dump_json()
    net = _nets.get(key)
    if net is None:
        net = SimNet(sim)
        _nets[key] = net
    return net


def peer_address(net: Any, ip: str) -> str:
    return net.display(ip) if net is not None else ip
