"""What a socket or tcpdirect client or server gives its compiled poll() to call back.

pollnet._pnfast.compiled_poll reads connections in C and calls the owner's Python only
when there is work for it: `_rebind` when poll() gets another handler, `_poll_py` for
everything but reading (connecting, accepting, timeouts), `_drain_now` for disconnect
notices. `_fast` is the owner's PollState (None where the Python path runs), which
`_sync` keeps in step after Python changed what it reads.
"""

from __future__ import annotations

from typing import Any

from pollnet.handler import HandlerCache, HandlerMethods


class CompiledPollOwner:
    _handlers: HandlerCache
    _fast: Any

    def _rebind(self, handler: object) -> None:
        methods = self._handlers.get(handler)
        self._fast.handler = handler
        self._fast.on_data = methods.on_data

    def _drain_now(self) -> None:
        methods = self._handlers.methods
        assert methods is not None
        try:
            self._drain(methods)
        finally:
            self._sync()

    def _drain(self, methods: HandlerMethods) -> None:
        raise NotImplementedError

    def _sync(self) -> None:
        """Tell `_fast` what changed (nothing to tell by default)."""
