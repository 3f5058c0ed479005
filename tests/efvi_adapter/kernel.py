"""A kernel peer for our efvi client: a listener of namespace a's kernel and the config of
a pollnet client that reaches it from namespace b on a real link."""

from __future__ import annotations

import socket

from netns.netns import Pair as NetnsPair
from netns.netns import require_link

from pollnet.config import AnyConfig, config_from_dict

__all__ = ["kernel_listener", "require_link"]


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
