"""`[client] local_ip` on the socket backend: the connection leaves from that address."""

from __future__ import annotations

from pollnet.testing import Pair, loopback_config


def test_socket_client_connects_from_local_ip() -> None:
    # 127.0.0.0/8 is all loopback on Linux: 127.0.0.3 is a distinct local source address.
    cfg = loopback_config("socket", client={"local_ip": "127.0.0.3"})
    pair = Pair(cfg)
    peer = pair.server_conn.peername
    assert peer is not None and peer[0] == "127.0.0.3"
    pair.close()


def test_socket_client_combines_local_ip_and_local_port() -> None:
    from pollnet.testing import free_port

    port = free_port()
    cfg = loopback_config("socket", client={"local_ip": "127.0.0.3", "local_port": port})
    pair = Pair(cfg)
    assert pair.server_conn.peername == ("127.0.0.3", port)
    pair.close()
