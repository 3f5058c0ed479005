"""The efvi params of `backend_config`: `efvi:sim` (the process-wide sim wire, same
loopback config as the socket backend) and `efvi:af_packet` / `efvi:af_xdp` (root: the
server's stack in one namespace, the client's in the other, on a veth pair).

Some behaviour tests use a kernel socket on 127.0.0.1 as the peer; no efvi stack can
reach the kernel's loopback, so those test/backend combinations skip, saying so
(`skip_kernel_loopback_peer`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pollnet.config import AnyConfig
from pollnet.testing import loopback_config

KERNEL_PEER_TESTS = {
    "test_connect_timeout": "its peer is a kernel listener with a full backlog on 127.0.0.1",
    "test_write_retries_until_a_full_socket_takes_everything": (
        "its peer is a kernel socket on 127.0.0.1 drained by a thread"
    ),
}


ONE_POLL_APART = {
    "test_camel_case_handler": (
        "it uses the server's connection as soon as the client is connected; two stacks "
        "polled in turn learn of a connection one poll apart (the server on the "
        "client's ACK), where the kernel completes both ends at once"
    ),
}


def efvi_config(request: pytest.FixtureRequest, link: str) -> Iterator[AnyConfig]:
    name = request.node.originalname
    if name in KERNEL_PEER_TESTS:
        pytest.skip(f"efvi:{link}: {KERNEL_PEER_TESTS[name]}; an efvi stack cannot reach the "
                    "kernel's loopback (the efvi adapter tests cover this behaviour with an "
                    "efvi peer)")
    if name in ONE_POLL_APART:
        pytest.skip(f"efvi:{link}: {ONE_POLL_APART[name]}")
    if link == "sim":
        yield loopback_config("efvi", efvi={"link": "sim"})
        return
    raise AssertionError(f"unknown efvi link {link}")
