"""The one boundary with the compiled core, `pollnet._pncore` (cffi, API mode).

cffi objects are untyped: `Any` lives here and in the attributes that hold C pointers,
nowhere else. Everything above this module sees ints, strings, bytes and dataclasses.

`POLLNET_CORE_MODULE=/path/to/_pncore.so` loads the core from that file instead (the
sanitised build of scripts/pytest-asan.sh uses it).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from pollnet import _modload
from pollnet.backends.efvi.errors import (
    ConnectionClosedError,
    ConnectionTableFull,
    EfviError,
    LinkError,
    TryAgain,
)
from pollnet.errors import BackendUnavailable

_MODULE = "pollnet._pncore"


def _load() -> tuple[Any, Any, str]:
    try:
        mod = _modload.load(_MODULE, "POLLNET_CORE_MODULE")
    except ImportError as exc:
        return None, None, f"{_MODULE} is not built ({exc})"
    return mod.ffi, mod.lib, ""


ffi: Any
lib: Any
ffi, lib, LOAD_ERROR = _load()


def available() -> bool:
    """True when the compiled core imports."""
    return lib is not None


def require() -> tuple[Any, Any]:
    """(ffi, lib), or BackendUnavailable naming the fix."""
    if lib is None:
        raise BackendUnavailable(
            "efvi",
            f"{LOAD_ERROR}; build it with `pip install -e .` from the repository "
            "(needs a C compiler and cffi)",
        )
    return ffi, lib


def has(name: str) -> bool:
    """Whether the compiled core has this function (real links are optional)."""
    return lib is not None and hasattr(lib, name)


def constants(prefix: str) -> dict[str, int]:
    """`{name: value}` of the header's enum constants whose name matches `prefix`
    (a regex anchored at the start), e.g. `PN_EV_`."""
    if lib is None:
        return {}
    pat = re.compile(prefix)
    return {n: int(getattr(lib, n)) for n in dir(lib) if pat.match(n)}


def c_string(buf: Any) -> str:
    """A NUL-terminated C char array as str."""
    return str(ffi.string(buf).decode("utf-8", "replace"))


def ip_to_int(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


def int_to_ip(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def struct_dict(ctype: str, obj: Any) -> dict[str, int]:
    """Every field of a C struct of integers as a dict."""
    return {name: int(getattr(obj, name)) for name, _ in ffi.typeof(ctype).fields}


@dataclass(frozen=True, slots=True)
class AcceptTarget:
    """What the accept callback's `ctx` handle points to: a callable (ip, port) -> bool
    and a place to park an exception it raised (re-raised after pn_poll returns)."""

    decide: Any
    errors: list[BaseException]


def _pn_py_accept(ctx: Any, remote_ip: int, remote_port: int) -> int:
    target: AcceptTarget = ffi.from_handle(ctx)
    try:
        return 1 if target.decide(int_to_ip(remote_ip), remote_port) else 0
    except BaseException as exc:  # raised again by poll(), after C returns
        target.errors.append(exc)
        return 0


if lib is not None:
    ffi.def_extern(name="_pn_py_accept")(_pn_py_accept)


_ERROR_NAMES: dict[int, str] = {v: k for k, v in constants(r"PN_E[A-Z]+$").items()}


def core_error(code: int, what: str, hint: str = "") -> EfviError:
    """The exception for a negative PN_E* `code` returned while doing `what`."""
    symbol = _ERROR_NAMES.get(code, f"error {code}")
    text = c_string(lib.pn_strerror(code)) if lib is not None else symbol
    cls = _ERROR_CLASSES.get(symbol, EfviError)
    msg = f"{what}: {text} ({symbol})"
    return cls(msg + (f"; {hint}" if hint else ""), code, symbol)


_ERROR_CLASSES: dict[str, type[EfviError]] = {
    "PN_EBADCONN": ConnectionClosedError,
    "PN_ENOCONN": ConnectionTableFull,
    "PN_EAGAIN": TryAgain,
    "PN_ELINK": LinkError,
}
