"""`pollnet bench`: ping-pong round trips against an echo server process."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pollnet.bench.pingpong import PingPongResult, run_pingpong

from .common import clean_errors, config_options, load


@click.command("bench")
@config_options
@click.option("-n", "--count", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Messages measured.")
@click.option("-s", "--size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Bytes per message.")
@click.option("--warmup", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Messages sent first and not measured.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--no-pin", is_flag=True, help="Do not pin client and server to separate CPUs.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
def bench(
    config_path: str | None,
    backend: str | None,
    count: int,
    size: int,
    warmup: int,
    as_json: bool,
    no_pin: bool,
    progress: bool | None,
) -> None:
    """Round-trip latency: N messages of M bytes, one at a time, through an echo server
    this command starts in a second process (socket backend on loopback by default)."""
    with clean_errors():
        # Without a config file the benchmark stays on loopback.
        listen_ip = None if config_path else "127.0.0.1"
        cfg = load(config_path, backend, server={"listen_ip": listen_ip})
        show = sys.stderr.isatty() if progress is None else progress
        stderr = Console(stderr=True)
        with Progress(
            TextColumn(f"ping-pong {size} B"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=stderr,
            transient=True,
            disable=not show,
        ) as bar:
            task = bar.add_task("bench", total=warmup + count)

            def on_progress(done: int, total: int) -> None:
                bar.update(task, completed=done)

            result = run_pingpong(cfg, count, size, warmup, pin=not no_pin, progress=on_progress)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
    else:
        Console().print(result_table(result))


def result_table(result: PingPongResult) -> Table:
    s = result.summary
    pin = (
        f"client CPU {result.client_cpu}, server CPU {result.server_cpu}"
        if result.client_cpu is not None
        else "unpinned"
    )
    table = Table(
        title=f"pollnet ping-pong RTT, {result.backend} backend, {result.size} B messages",
        caption=f"{s.count} measured after {result.warmup} warm-up; {pin}",
    )
    table.add_column("count", justify="right")
    for label, _ in s.ladder():
        table.add_column(f"{label} µs", justify="right")
    table.add_column("msgs/s", justify="right")
    table.add_row(
        str(s.count), *(f"{v:.2f}" for _, v in s.ladder()), f"{s.msgs_per_sec:,.0f}"
    )
    return table
