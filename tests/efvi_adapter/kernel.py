"""A kernel peer for our efvi client: a listener of namespace a's kernel and the config of
a pollnet client that reaches it from namespace b on a real link."""

from __future__ import annotations

import socket

import pytest
from netns.netns import Pair as NetnsPair
from netns.netns import available as netns_available

from pollnet.config import AnyConfig, config_from_dict


def require_link(link: str) -> None:
    """Skip, saying why, unless private namespaces and this build's `link` are here."""
    ok, why = netns_available()
    if not ok:
        pytest.skip(why)
    from pollnet.backends.efvi.core import binding as _core

    if link == "af_xdp" and not _core.has("pn_af_xdp_link_create"):
        pytest.skip("no af_xdp link in this build of pollnet._pncore")


def kernel_listener(topo: NetnsPair, link: str, **efvi: object) -> tuple[socket.socket, AnyConfig]:
    """(listening kernel socket in namespace a, client config aimed at it)."""
    from pollnet.backends.efvi.adapter.base import in_netns

    with in_netns(topo.a.name):
        listener = socket.socket()
    listener.bind((topo.pa.ip, 0))
    listener.listen(1)
    cfg = config_from_dict({
        "backend": "efvi",
        "efvi": {"link": link, "interface": "pn0", "local_ip": topo.free_ip(4), **efvi},
        "client": {"server_ip": topo.pa.ip, "server_port": listener.getsockname()[1],
                   "interface": f"{topo.b.name}/pn0", "conn_retry_sec": 0},
    })
    return listener, cfg
