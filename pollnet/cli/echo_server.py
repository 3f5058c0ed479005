"""`pollnet echo-server`: a busy-polled echo server (the benchmark's peer)."""

from __future__ import annotations

import os
import sys

import click

from pollnet.bench.echo import serve_forever
from pollnet.factory import create_server

from .common import ConfigProblem, clean_errors, config_options, load
from .shards import run_shards


@click.command("echo-server")
@config_options
@click.option("--listen-ip", default=None, help="Address to listen on ([server] listen_ip).")
@click.option("--port", type=int, default=None, help="Port ([server] port); 0 picks a free one.")
@click.option("--max-conns", type=int, default=None, help="[server] max_conns.")
@click.option("--cpu", type=int, default=None, help="Pin this process to one CPU.")
@click.option("--shards", type=click.IntRange(1, 64), default=None,
              help="[efvi] shards: without --queue, start this many echo-server processes, "
              "one per RX queue, behind one address and port.")
@click.option("--queue", type=int, default=None, help="[efvi] queue: this shard's RX queue.")
@click.option("--cpus", default=None,
              help="With --shards: the shards' CPUs, e.g. 0,1 (default: those allowed).")
def echo_server(
    config_path: str | None,
    backend: str | None,
    listen_ip: str | None,
    port: int | None,
    max_conns: int | None,
    cpu: int | None,
    shards: int | None,
    queue: int | None,
    cpus: str | None,
) -> None:
    """Echo every byte back, busy-polling until SIGINT/SIGTERM.

    Prints "listening on IP:PORT" once ready (once per shard with --shards).
    """
    with clean_errors():
        cfg = load(
            config_path,
            backend,
            server={"listen_ip": listen_ip, "port": port, "max_conns": max_conns},
            efvi={"shards": shards, "queue": queue},
        )
        if shards is not None and shards > 1 and queue is None:
            if cpu is not None:
                raise click.BadParameter("give the shards' CPUs with --cpus", param_hint="--cpu")
            given = {"--config": config_path, "--backend": backend, "--listen-ip": listen_ip,
                     "--max-conns": max_conns}
            argv = [a for k, v in given.items() if v is not None for a in (k, str(v))]
            run_shards(argv, shards, cpus, port)
            return
        if cfg.backend == "efvi" and cfg.efvi.link == "sim":
            raise ConfigProblem(
                'echo-server with efvi link = "sim": the sim link is a wire inside this '
                "process, so nothing outside it could reach the server; use link = "
                '"af_packet" or "af_xdp" with an interface, or backend = "socket"'
            )
        if cpu is not None:
            try:
                os.sched_setaffinity(0, {cpu})
            except (OSError, ValueError) as exc:
                raise click.BadParameter(
                    f"cannot pin to CPU {cpu}: {exc}", param_hint="--cpu"
                ) from None
        server = create_server(cfg)
        ip, bound = server.address
        click.echo(f"pollnet echo-server: {cfg.backend} backend listening on {ip}:{bound}")
        sys.stdout.flush()  # the "listening" line must reach a piped reader now
        handler = serve_forever(server)
        click.echo(f"pollnet echo-server: stopped after {handler.conns} connection(s)", err=True)
