"""The compiled per-message path (pollnet._fast) bound to the efvi core this process loaded
(`_core`): `FAST` is the module ready for the efvi backend, or None with `WHY`."""

from __future__ import annotations

from types import ModuleType

from pollnet import _fast
from pollnet.backends.efvi.core import binding as _core


def address(pointer: object) -> int:
    """A C pointer (cffi) as the integer the compiled module takes."""
    return int(_core.ffi.cast("uintptr_t", pointer))


def _bind() -> tuple[ModuleType | None, str]:
    mod = _fast.FAST
    if mod is None:
        return None, _fast.WHY
    if _core.lib is None:
        return None, "the core is not built"
    ffi, lib = _core.ffi, _core.lib
    if ffi.sizeof("pn_event") != mod.EVENT_SIZE:
        return None, (f"{mod.__name__} was built for another core (pn_event is "
                      f"{mod.EVENT_SIZE} bytes there, {ffi.sizeof('pn_event')} here): "
                      "rebuild with `pip install -e .`")
    mod.bind_core(*(address(ffi.addressof(lib, name))
                    for name in ("pn_poll", "pn_send", "pn_set_user_timer", "pn_keep")))
    return mod, ""


FAST, WHY = _bind()


def describe() -> str:
    """For `pollnet info`: which per-message path the efvi backend runs."""
    return _fast.describe(WHY)
