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
from pollnet.probe import probe_all

from .common import ConfigProblem, clean_errors, config_options, load


@click.command("info")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--stats", "show_stats", is_flag=True,
              help="Run an efvi server stack from --config (its [efvi] and [server]) for "
                   "--seconds, then print the core's counters (nstat names).")
@click.option("--seconds", type=click.FloatRange(0.0, 60.0), default=1.0, show_default=True,
              help="With --stats: how long the stack listens and polls.")
@config_options
def info(as_json: bool, show_stats: bool, seconds: float, config_path: str | None,
         backend: str | None) -> None:
    """Show what this machine can run (or, with --stats, a stack's counters)."""
    if show_stats:
        _stats(config_path, backend, seconds, as_json)
        return
    probes = probe_all()
    if as_json:
        click.echo(json.dumps({"version": __version__, "probes": [p.as_dict() for p in probes]}))
        return
    table = Table(title=f"pollnet {__version__} on this machine")
    table.add_column("backend / requirement")
    table.add_column("available")
    table.add_column("why", overflow="fold")
    for p in probes:
        table.add_row(p.name, "[green]yes[/]" if p.available else "[red]no[/]", p.detail)
    Console().print(table)


class _Listener:
    """Accepts every connection and discards what arrives (the stats run's handler)."""

    def on_data(self, conn: Any, data: Any) -> int:
        return 0


def _stats(config_path: str | None, backend: str | None, seconds: float, as_json: bool) -> None:
    with clean_errors():
        cfg = load(config_path, backend)
        if cfg.backend != "efvi":
            raise ConfigProblem(f'--stats needs backend = "efvi" (the config has "{cfg.backend}")')
        from pollnet.backends.efvi.server import TcpServer

        server = TcpServer(cfg.efvi, port=cfg.server.port)
        try:
            handler = _Listener()
            end = time.monotonic() + seconds
            while True:
                server.poll(handler)
                if time.monotonic() >= end:
                    break
            counters = server.stats()
        finally:
            server.close()
    if as_json:
        click.echo(json.dumps({"seconds": seconds, "local_ip": server.local_ip,
                               "port": cfg.server.port, "stats": counters}))
        return
    table = Table(title=f"efvi stack {server.local_ip}:{cfg.server.port} after {seconds:g} s")
    table.add_column("counter")
    table.add_column("value", justify="right")
    for name, value in counters.items():
        table.add_row(name, str(value))
    Console().print(table)
