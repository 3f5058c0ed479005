"""Whether the real TCPDirect library ran here: the tcpdirect tests taking `td_config`,
and the behaviour suite's `tcpdirect:real` row, run on the real libonload_zf.so in
TCPDirect's emulator only when POLLNET_TCPDIRECT_LIBRARY names one. This test is where
its absence is counted, once, with the reason."""

from __future__ import annotations

from tests.tcpdirect.shim import real_library


def test_the_real_library_is_named_and_loads() -> None:
    from pollnet.backends.tcpdirect import zf

    zf.load(str(real_library()))  # skips, naming POLLNET_TCPDIRECT_LIBRARY, when unset
