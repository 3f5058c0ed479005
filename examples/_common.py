"""What the examples share: loading the config named on the command line, pointing the
client at the server when the port is chosen at run time, and a bounded poll loop."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pollnet
from pollnet.config import AnyConfig, config_from_dict, load_config


def main_of(main: Callable[[], int | None]) -> int | None:
    """Run an example's main(): pollnet's deliberate errors (a wrong config, a backend
    this machine cannot run) are one line on stderr and exit status 1, no traceback."""
    try:
        return main()
    except pollnet.PollnetError as exc:
        print(f"{Path(sys.argv[0]).name}: {exc}", file=sys.stderr)
        return 1


def config_from_argv(argv: Sequence[str]) -> AnyConfig:
    if len(argv) < 2:
        sys.exit(f"usage: {argv[0]} CONFIG.toml   (examples/configs/ has one per backend)")
    return load_config(argv[1])


def pair(cfg: AnyConfig) -> tuple[pollnet.PollTcpServer, pollnet.PollTcpClient]:
    """A server, and a client aimed at it (at the port the server really got)."""
    server = pollnet.create_server(cfg)
    data = cfg.model_dump()
    data["client"]["server_port"] = server.address[1]
    client = pollnet.create_client(config_from_dict(data))
    return server, client


def run(done: Callable[[], bool], *polls: Callable[[], object], timeout: float = 10.0) -> bool:
    """Busy-poll until done() (True) or `timeout` seconds (False)."""
    deadline = time.monotonic() + timeout
    n = 0
    while not done():
        for poll in polls:
            poll()
        n += 1
        if n & 255 == 0 and time.monotonic() > deadline:
            return False
    return True
