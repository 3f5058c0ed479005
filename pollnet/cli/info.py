"""`pollnet info`: which backends and links this machine can run, and why not;
`--stats`: the native core's counters of an efvi server stack from a config."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from pollnet import __version__
from pollnet.probe import InterfaceProbe, interface_probes, probe_all

from .common import ConfigProblem, clean_errors, config_options, load


@click.command("info")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--stats", "show_stats", is_flag=True,
              help="Run an efvi server stack from --config (its [efvi] and [server]) for "
                   "--seconds, then print the core's counters (nstat names).")
@click.option("--seconds", type=click.FloatRange(0.0, 60.0), default=1.0, show_default=True,
              help="With --stats: how long the stack listens and polls.")
@click.option("--interface", "interfaces", multiple=True, metavar="IF",
              help="Only this interface in the per-interface table (repeatable).")
@config_options
def info(as_json: bool, show_stats: bool, seconds: float, interfaces: tuple[str, ...],
         config_path: str | None, backend: str | None) -> None:
    """Show what this machine can run and, per interface, which efvi links and modes work
    there and why not (or, with --stats, a stack's counters)."""
    if show_stats:
        _stats(config_path, backend, seconds, as_json)
        return
    probes = probe_all()
    ifaces = interface_probes(list(interfaces) or None)
    if as_json:
        click.echo(json.dumps({"version": __version__, "probes": [p.as_dict() for p in probes],
                               "interfaces": [i.as_dict() for i in ifaces]}))
        return
    table = Table(title=f"pollnet {__version__} on this machine")
    table.add_column("backend / requirement")
    table.add_column("available")
    table.add_column("why", overflow="fold")
    for p in probes:
        table.add_row(p.name, "[green]yes[/]" if p.available else "[red]no[/]", p.detail)
    console = Console()
    console.print(table)
    if ifaces:
        console.print(_interface_table(ifaces))


def _interface_table(ifaces: list[InterfaceProbe]) -> Table:
    table = Table(title="efvi links per interface (this network namespace)")
    table.add_column("interface")
    table.add_column("link / mode")
    table.add_column("works")
    table.add_column("why", overflow="fold")
    for i in ifaces:
        facts = (f"{i.name}\n{i.driver or '?'} mtu {i.mtu}" + (f"\n{i.ipv4}" if i.ipv4 else ""))
        for n, m in enumerate(i.modes):
            table.add_row(facts if n == 0 else "", f"{m.link} {m.mode}",
                          "[green]yes[/]" if m.works else "[red]no[/]", m.why)
    return table


class _Listener:
    """Accepts every connection and discards what arrives (the stats run's handler)."""

    def on_tcp_data(self, conn: Any, data: Any) -> int:
        return 0


def _stats(config_path: str | None, backend: str | None, seconds: float, as_json: bool) -> None:
    with clean_errors():
        cfg = load(config_path, backend)
        if cfg.backend != "efvi":
            raise ConfigProblem(f'--stats needs backend = "efvi" (the config has "{cfg.backend}")')
        from pollnet.backends.efvi.adapter.server import EfviTcpServer
        from pollnet.factory import create_server

        # The server an application would get from this config (the pollnet level: the
        # sim link's 127.0.0.1 names, port 0 for a free port), then its stack's counters.
        server = create_server(cfg)
        assert isinstance(server, EfviTcpServer)
        try:
            handler = _Listener()
            end = time.monotonic() + seconds
            while True:
                server.poll(handler)
                if time.monotonic() >= end:
                    break
            counters = server.stats()
            ip, port = server.address
        finally:
            server.close()
    if as_json:
        click.echo(json.dumps({"seconds": seconds, "local_ip": ip, "port": port,
                               "stats": counters}))
        return
    table = Table(title=f"efvi stack {ip}:{port} after {seconds:g} s")
    table.add_column("counter")
    table.add_column("value", justify="right")
    for name, value in counters.items():
        table.add_row(name, str(value))
    Console().print(table)
