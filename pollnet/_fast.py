"""The compiled per-message path, `pollnet._pnfast` (native/ext/), if it runs here.

`FAST` is the module, or None: then every backend uses its Python path, which has the same
semantics (the behaviour suite runs on both) and `WHY` says why. `POLLNET_PURE_PYTHON=1`
chooses the Python path on purpose; `POLLNET_FAST_MODULE=/path/to/_pnfast.so` loads that
file (the sanitised build of scripts/pytest-asan.sh). The efvi backend binds it to its
core (pollnet/backends/efvi/core/fast.py).
"""

from __future__ import annotations

import os
from types import ModuleType

from pollnet import _modload

_MODULE = "pollnet._pnfast"


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get("POLLNET_PURE_PYTHON", "") not in ("", "0"):
        return None, "POLLNET_PURE_PYTHON is set"
    try:
        mod = _modload.load(_MODULE, "POLLNET_FAST_MODULE")
    except ImportError as exc:
        return None, f"{_MODULE} is not built ({exc}); build it with `pip install -e .`"
    from pollnet.connection import byte_view
    from pollnet.handler import checked_remaining

    mod.set_helpers(byte_view, checked_remaining)
    return mod, ""


FAST, WHY = _load()


def describe(why: str = "") -> str:
    """For `pollnet info`: which per-message path runs (`why`: a backend's own reason)."""
    if FAST is not None and not why:
        return "compiled (pollnet._pnfast)"
    return f"Python ({why or WHY})"
