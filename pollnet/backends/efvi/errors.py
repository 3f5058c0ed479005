"""Errors of the efvi backend: every negative PN_E* code from the C core becomes one of
these, with a message that names the thing (connection, port, timer, link) and the fix."""

from __future__ import annotations

from pollnet.errors import PollnetError


class EfviError(PollnetError):
    """A call into the efvi backend's C core failed.

    `code` is the core's negative PN_E* value and `symbol` its name ("PN_ENOCONN");
    0 and "" for errors found in Python before calling C.
    """

    def __init__(self, message: str, code: int = 0, symbol: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.symbol = symbol


class ConnectionClosedError(EfviError):
    """The connection is closed (or its conn_id no longer names a live connection):
    after on_connection_closed/reset/timeout/refused or `close()` it must not be used."""


class ConnectionTableFull(EfviError):
    """No free connection slot (max_conn_cnt reached)."""


class TryAgain(EfviError):
    """Temporarily impossible (e.g. the link's transmit ring is full): poll() and retry."""


class LinkError(EfviError):
    """The link failed (its message says why)."""
