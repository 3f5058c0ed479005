"""The `pollnet` command group."""

from __future__ import annotations

import click

from pollnet import __version__

from .bench import bench
from .config_cmd import config_group
from .echo_server import echo_server
from .info import info


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pollnet")
def cli() -> None:
    """pollnet: busy-polled non-blocking TCP with interchangeable transports."""


cli.add_command(echo_server)
cli.add_command(bench)
cli.add_command(info)
cli.add_command(config_group)


def main() -> None:
    cli(prog_name="pollnet")
