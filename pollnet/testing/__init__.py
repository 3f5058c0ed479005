"""Test helpers for applications built on pollnet (the pytest fixtures are in `plugin`)."""

from pollnet.testing.handlers import EchoHandler, RecordingHandler
from pollnet.testing.loopback import (
    EchoServer,
    Pair,
    PairMaker,
    free_port,
    loopback_config,
    with_sections,
)
from pollnet.testing.polling import poll_for, poll_until

__all__ = [
    "EchoHandler",
    "EchoServer",
    "Pair",
    "PairMaker",
    "RecordingHandler",
    "free_port",
    "loopback_config",
    "poll_for",
    "poll_until",
    "with_sections",
]
