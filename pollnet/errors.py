"""The exceptions pollnet raises on purpose. Everything else is a bug."""

from __future__ import annotations


class PollnetError(Exception):
    """Base of every error pollnet raises deliberately."""


class ConfigError(PollnetError, ValueError):
    """A config file, dict or environment override is wrong.

    The message is one readable paragraph naming the field path, the bad value and what is
    allowed; the CLI prints it as it is (exit code 2), never a traceback.
    """


class BackendUnavailable(PollnetError):
    """The configured backend cannot run here; the message says why and what to install."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"backend {backend!r} is not available: {reason}")
        self.backend = backend
        self.reason = reason



class TransportError(PollnetError):
    """A transport could not be set up (bind, listen, device, library); says which and why."""


class HandlerError(PollnetError, ValueError):
    """A handler broke the contract (e.g. `on_tcp_data` returned something that is not
    a count of unconsumed bytes). Raised from `poll()`; the connection is kept and the
    bytes concerned are presented again on the next poll."""
