"""`pollnet config check FILE`."""

from __future__ import annotations

import json

import click

from pollnet.config import load_config
from pollnet.livecheck import problems

from .common import RuntimeProblem, clean_errors


@click.group("config")
def config_group() -> None:
    """Work with config files."""


@config_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--show", is_flag=True, help="Print the effective config (with defaults) as JSON.")
@click.option("--live", is_flag=True,
              help="Also check this machine has what the config needs (addresses, "
                   "interface and link mode, library, huge pages); exit 1 if not.")
def check(path: str, show: bool, live: bool) -> None:
    """Validate PATH (plus POLLNET_* environment overrides); exit 2 if it is wrong."""
    with clean_errors():
        cfg = load_config(path)
    if show:
        click.echo(json.dumps(cfg.model_dump(mode="json"), indent=2))
    if live:
        found = problems(cfg)
        if found:
            raise RuntimeProblem(f"{path}: valid, but not here:\n" + "\n".join(
                f"  {line}" for line in found))
    if not show:
        click.echo(f"{path}: ok (backend = {cfg.backend}{', and here' if live else ''})")
