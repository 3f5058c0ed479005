"""Whether the real TCPDirect ran here: the tcpdirect tests taking `td_config`, and the
behaviour suite's `tcpdirect:real` row, run on the real libonload_zf.so in TCPDirect's
emulator only when POLLNET_TCPDIRECT_LIBRARY names one, and test_abi.py's "real" rows
only when TCPDirect's headers are found. These tests are where their absence is
counted, once each, with the reason."""

from __future__ import annotations

import pytest

from tcpdirect.shim import real_emulator, real_library
from tcpdirect.test_abi import NO_REAL_HEADERS, real_headers


def test_the_real_library_is_named_and_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from pollnet.backends.tcpdirect import zf

    library = real_library()  # skips, naming POLLNET_TCPDIRECT_LIBRARY, when unset
    with real_emulator(monkeypatch):  # zf_init (once a process) needs its ZF_ATTR
        zf.load(str(library))


def test_the_real_headers_are_found() -> None:
    # test_abi.py's "real" rows compile against them
    if real_headers() is None:
        pytest.skip(NO_REAL_HEADERS)
