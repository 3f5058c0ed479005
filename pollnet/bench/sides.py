"""The two ends of a bench row inside a worker: the server of each row kind, and a
connected client of any kind (`ClientSide`), with the sim wire's server in-process."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pollnet.bench import loops
from pollnet.bench.handlers import Counter, FastEcho
from pollnet.bench.rows import ROW_KINDS
from pollnet.bench.spec import WorkerSpec

EFVI_PORT = 7001


def efvi_options(spec: WorkerSpec, side: str, max_conns: int = 64) -> Any:
    from pollnet.config import EfviOptions

    link = spec.link
    kw: dict[str, Any] = {"link": link, "max_conn_cnt": max_conns,
                          "max_time_wait_conn_cnt": 1024}
    if link != "sim":
        kw["interface"] = spec.ifname
        kw["local_ip"] = getattr(spec, f"{side}_ip")
    kw.update(spec.efvi)
    if kw.get("pcap"):  # one capture per side: FILE -> FILE.client.pcap / FILE.server.pcap
        kw["pcap"] = f"{kw['pcap'].removesuffix('.pcap')}.{side}.pcap"
    return EfviOptions(**kw)


def pollnet_config(spec: WorkerSpec, **sections: Any) -> Any:
    from pollnet.config import config_from_dict

    backend = "efvi" if spec.kind == "efvi-pollnet" else spec.kind
    merged: dict[str, Any] = {"backend": backend}
    if backend == "efvi":
        side = "server" if "server" in sections else "client"
        # only what the row sets: the rest keeps the pollnet level's own defaults
        merged["efvi"] = efvi_options(spec, side).model_dump(exclude_unset=True)
    for name, values in [*sections.items(), *spec.config.items()]:
        merged[name] = {**merged.get(name, {}), **values}
    return config_from_dict(merged)


def make_server(spec: WorkerSpec) -> tuple[Any, str, int]:
    """(server, ip, port) for kind socket/tcpdirect (pollnet API) or efvi/native."""
    kind = spec.kind
    if ROW_KINDS[kind].efvitcp:
        from pollnet.backends.efvi import TcpServer

        srv = TcpServer(efvi_options(spec, "server", spec.max_conns), port=EFVI_PORT)
        return srv, srv.local_ip, EFVI_PORT
    from pollnet.factory import create_server

    port = EFVI_PORT if kind == "efvi-pollnet" else 0  # the efvi stack picks no port
    listen = "0.0.0.0" if spec.link == "sim" else spec.server_ip
    cfg = pollnet_config(spec, server={"listen_ip": listen, "port": port,
                                       "max_conns": spec.max_conns})
    server = create_server(cfg)
    ip, port = server.address
    return server, ip, port


class ClientSide:
    """A connected client of any kind: `send(msg)`, `poll(handler)`, `close()`."""

    def __init__(self, spec: WorkerSpec, handler: Counter, streams: int = 1,
                 wire_peer: Any = None) -> None:
        self.spec = spec
        self.efvitcp = ROW_KINDS[spec.kind].efvitcp  # TcpClient, not the pollnet API
        self.handler = handler
        self.clients: list[Any] = []
        self.conns: list[Any] = []
        self.poll2: Callable[[Any], Any] | None = None
        self.handler2: Any = None
        self.stack: Any = None
        deadline = time.monotonic() + spec.connect_timeout
        if self.efvitcp:
            from pollnet.backends.efvi import TcpClient

            opts = efvi_options(spec, "client", max_conns=max(1, streams) + 2)
            wire = wire_peer.wire if wire_peer is not None else None
            client = TcpClient(opts, wire=wire, max_conns=max(1, streams) + 2)
            self.clients.append(client)
            self.stack = client._stack
            if wire_peer is not None:
                self.poll2 = wire_peer.poll
                self.handler2 = FastEcho()
            ip = wire_peer.local_ip if wire_peer is not None else spec.server_ip
            for _ in range(streams):
                conn = client.connect(ip, spec.port)
                before = handler.established
                while handler.established == before:
                    self._poll_all()
                    self._check(deadline)
                self.conns.append(conn)
            self.poll = client.poll
            self.send = self.conns[0].send
        else:
            from pollnet.factory import create_client

            cfg = pollnet_config(spec, client={"server_ip": spec.server_ip,
                                               "server_port": spec.port,
                                               "conn_retry_sec": 0.01})
            if wire_peer is not None:  # efvi-pollnet on the sim link: server in-process
                self.poll2 = wire_peer.poll
                self.handler2 = FastEcho()
            for _ in range(streams):
                c = create_client(cfg)
                self.clients.append(c)
                while c.conn is None:
                    c.poll(handler)
                    if self.poll2 is not None:
                        self.poll2(self.handler2)
                    self._check(deadline)
                self.conns.append(c.conn)
            self.poll = self.clients[0].poll
            self.send = self.conns[0].write

    def _poll_all(self) -> None:
        if self.poll2 is not None:
            self.poll2(self.handler2)
        for c in self.clients:
            c.poll(self.handler)

    def _check(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise loops.LoopError(
                f"could not connect to {self.spec.server_ip}:{self.spec.port}"
                f" ({self.handler.lost or 'no answer'})")
        if self.handler.lost and self.efvitcp:
            raise loops.LoopError(f"connect failed: {self.handler.lost}")

    def close(self) -> None:
        h = self.handler
        h.got = 0
        for conn in self.conns:
            try:
                if self.efvitcp:
                    conn.send_fin()
                else:
                    conn.close("bench done")
            except Exception:  # already gone: nothing to close
                pass
        end = time.monotonic() + 0.5
        while time.monotonic() < end and (not self.efvitcp or h.conns):
            self._poll_all()
            if not self.efvitcp:
                break
        for c in self.clients:
            closer = getattr(c, "close", None)
            if self.efvitcp and closer is not None:
                closer()


def make_sim_server(spec: WorkerSpec) -> Any:
    if spec.kind == "efvi-pollnet":
        return make_server(replace(spec, server_ip="0.0.0.0"))[0]
    from pollnet.backends.efvi import SimWire, TcpServer

    wire = SimWire(static_arp=True)
    return TcpServer(efvi_options(spec, "server", spec.max_conns), port=EFVI_PORT,
                     wire=wire)


def open_client(spec: WorkerSpec, handler: Counter, streams: int = 1
                ) -> tuple[ClientSide, WorkerSpec, Any]:
    """(connected client, the spec it connected with, the sim wire's in-process server or
    None): on the sim wire the server runs in this process, at EFVI_PORT."""
    sim_server = make_sim_server(spec) if spec.link == "sim" else None
    if sim_server is not None:
        spec = replace(spec, port=EFVI_PORT, server_ip="127.0.0.1")
    return ClientSide(spec, handler, streams=streams, wire_peer=sim_server), spec, sim_server
