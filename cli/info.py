"""`pollnet info`: which backends and links this machine can run, and why not."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from pollnet import __version__
from pollnet.probe import probe_all


@click.command("info")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(as_json: bool) -> None:
    """Show what this machine can run."""
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
