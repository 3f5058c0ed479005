"""The compiled per-message path, `pollnet._pnfast` (native/ext/pnfast.c), if it runs here.

`FAST` is the module bound to the loaded core (`_core`), or None: then the efvi backend
uses its Python path, which has the same semantics (the behaviour suite runs on both) and
`WHY` says why. `POLLNET_PURE_PYTHON=1` chooses the Python path on purpose;
`POLLNET_FAST_MODULE=/path/to/_pnfast.so` loads that file (the sanitised build of
scripts/pytest-asan.sh).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

from pollnet.backends.efvi import _core
from pollnet.connection import byte_view
from pollnet.handler import checked_remaining

_MODULE = "pollnet._pnfast"


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get("POLLNET_PURE_PYTHON", "") not in ("", "0"):
        return None, "POLLNET_PURE_PYTHON is set"
    if _core.lib is None:
        return None, "the core is not built"
    path = os.environ.get("POLLNET_FAST_MODULE", "")
    try:
        if path:
            spec = importlib.util.spec_from_file_location(_MODULE, path)
            if spec is None or spec.loader is None:
                return None, f"POLLNET_FAST_MODULE={path} is not a loadable module"
            mod = importlib.util.module_from_spec(spec)
            sys.modules[_MODULE] = mod
            spec.loader.exec_module(mod)
        else:
            mod = importlib.import_module(_MODULE)
    except ImportError as exc:
        return None, f"{_MODULE} is not built ({exc})"
    if _core.ffi.sizeof("pn_event") != mod.EVENT_SIZE:
        return None, (f"{_MODULE} was built for another core (pn_event is "
                      f"{mod.EVENT_SIZE} bytes there, {_core.ffi.sizeof('pn_event')} here): "
                      "rebuild with `pip install -e .`")
    ffi, lib = _core.ffi, _core.lib
    mod.bind_core(address(ffi.addressof(lib, "pn_poll")), address(ffi.addressof(lib, "pn_send")),
                  address(ffi.addressof(lib, "pn_set_user_timer")), byte_view,
                  checked_remaining)
    return mod, ""


def address(pointer: object) -> int:
    """A C pointer (cffi) as the integer the compiled module takes."""
    return int(_core.ffi.cast("uintptr_t", pointer))


FAST, WHY = _load()


def describe() -> str:
    """For `pollnet info`: which per-message path the efvi backend runs."""
    return "compiled (pollnet._pnfast)" if FAST is not None else f"Python ({WHY})"
