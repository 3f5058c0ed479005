"""The efvi params of `backend_config`: `efvi:sim` (the process-wide sim wire, same
loopback config as the socket backend) and `efvi:af_packet` / `efvi:af_xdp` (root: the
server's stack in one namespace, the client's in the other, on a veth pair).

Some behaviour tests use a kernel socket on 127.0.0.1 as the peer; no efvi stack can
reach the kernel's loopback, so on efvi those tests assert that documented difference
instead (`kernel_loopback_unreachable`, docs/backends.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tcpdirect.shim import REAL_CLIENT_INTERFACE

import pollnet
from pollnet.backends.efvi.core import binding as _core
from pollnet.config import AnyConfig, TcpdirectConfig, config_from_dict
from pollnet.errors import ConfigError
from pollnet.testing import RecordingHandler, free_port, loopback_config, poll_until

# How an efvi client's connect to a kernel socket on 127.0.0.1 fails, per link: the sim
# wire has no listener on that port (the kernel's is not on it); a real link's stack
# refuses the kernel's loopback address outright.
_LOOPBACK_FAILURE = {
    "sim": "Connection refused",
    "af_packet": "127.0.0.1 is the kernel's loopback",
    "af_xdp": "127.0.0.1 is the kernel's loopback",
}


def kernel_loopback_unreachable(cfg: AnyConfig) -> str | None:
    """None where a client reaches a kernel socket on 127.0.0.1 (socket, tcpdirect on the
    look-alike); on efvi and in TCPDirect's emulator, the text its failed connect names
    (the documented difference)."""
    if isinstance(cfg, TcpdirectConfig) and cfg.client.interface == REAL_CLIENT_INTERFACE:
        return "connect timeout"  # the emulator's wire reaches no kernel socket
    if cfg.backend != "efvi":
        return None
    return _LOOPBACK_FAILURE[cfg.efvi.link]


def one_address_per_stack(cfg: AnyConfig) -> bool:
    """efvi on a real link: each client stack needs an address of its own on the
    interface, so a second client from one config (one efvi.local_ip) is refused."""
    return cfg.backend == "efvi" and cfg.efvi.link != "sim"


def assert_second_client_refused(cfg: AnyConfig) -> None:
    """The documented difference: the second client of one config is a ConfigError naming
    the address, while the first runs."""
    first = pollnet.create_client(cfg)
    try:
        with pytest.raises(ConfigError, match=r"efvi\.local_ip = .* another efvi stack of "
                                               r"this process has that address there"):
            pollnet.create_client(cfg)
    finally:
        first.close()


def assert_connect_fails(cfg: AnyConfig, why: str) -> None:
    """The client's connect fails once, with `why` in its last_error; never connects."""
    client = pollnet.create_client(cfg)
    handler = RecordingHandler()
    try:
        assert poll_until(lambda: handler.connect_failed == 1, (client, handler))
        assert handler.connected == [] and why in client.last_error, client.last_error
    finally:
        client.close()


# Tests that make only a client and expect a refusal: on a real link their peer is the
# kernel of the server's namespace (on the loopback the kernel refuses too).
REFUSING_PEER_TESTS = {
    "test_refused_connect_reports_failure",
    "test_retry_counted_in_attempts",
    "test_retry_disabled_then_allow_reconnect_gives_one_more",
    "test_camel_case_connect_failed",
}



def efvi_config(request: pytest.FixtureRequest, link: str) -> Iterator[AnyConfig]:
    name = request.node.originalname
    if link == "sim":
        yield loopback_config("efvi", efvi={"link": "sim"})
        return
    topo = request.getfixturevalue("efvi_netns")
    if link == "af_xdp" and not _core.has("pn_af_xdp_link_create"):
        pytest.skip("efvi:af_xdp: this build of pollnet._pncore has no af_xdp link "
                    "(install libxdp-dev libbpf-dev clang and rebuild)")
    port = free_port()
    server_ip, client_ip = topo.free_ip(3), topo.free_ip(4)
    target = server_ip
    if name in REFUSING_PEER_TESTS:
        target = topo.pa.ip  # the kernel of namespace a: it refuses ports nobody listens on
    yield config_from_dict({
        "backend": "efvi",
        "efvi": {"link": link, "interface": "pn0", "local_ip": client_ip,
                 "conn_send_buf_cnt": 64, "max_conn_cnt": 8},
        "server": {"listen_ip": server_ip, "port": port, "interface": f"{topo.a.name}/pn0"},
        "client": {"server_ip": target, "server_port": port, "conn_retry_sec": 0.01,
                   "interface": f"{topo.b.name}/pn0"},
    })
