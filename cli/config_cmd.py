"""`pollnet config check FILE`."""

from __future__ import annotations

import json

import click

from pollnet.config import load_config

from .common import clean_errors


@click.group("config")
def config_group() -> None:
    """Work with config files."""


@config_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--show", is_flag=True, help="Print the effective config (with defaults) as JSON.")
def check(path: str, show: bool) -> None:
    """Validate PATH (plus POLLNET_* environment overrides); exit 2 if it is wrong."""
    with clean_errors():
        cfg = load_config(path)
    if show:
        click.echo(json.dumps(cfg.model_dump(mode="json"), indent=2))
    else:
        click.echo(f"{path}: ok (backend = {cfg.backend})")
