"""The pollnet level sends segments as large as the interface's MTU allows (issue 14):
over a veth with MTU 3000 our stack's MSS is 2960, which the Linux kernel at the other end
sees in the segments it receives, and every byte arrives intact."""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import time

import pytest
from netns.netns import Pair as NetnsPair

import pollnet
from efvi_adapter.kernel import kernel_listener, require_link
from pollnet.testing import RecordingHandler, poll_until

MTU = 3000
TOTAL = 1_000_000


def _rcv_mss(sock: socket.socket) -> int:
    """tcpi_rcv_mss: the largest segment the kernel saw from us (struct tcp_info)."""
    return int(struct.unpack_from("I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO,
                                                        104), 20)[0])


@pytest.mark.parametrize("link", ["af_packet", "af_xdp"])
@pytest.mark.parametrize("efvi, mss", [({}, MTU - 40),
                                       ({"mtu": 1500, "send_buf_size": 0}, 960)])
def test_segments_fill_the_interfaces_mtu(link: str, efvi: dict[str, object], mss: int
                                          ) -> None:
    require_link(link)
    with NetnsPair(offload=False) as topo:
        for ns in (topo.a.name, topo.b.name):
            subprocess.run(["ip", "-n", ns, "link", "set", "pn0", "mtu", str(MTU)], check=True)
        listener, cfg = kernel_listener(topo, link, **efvi)
        client = pollnet.create_client(cfg)
        handler = RecordingHandler()
        try:
            assert poll_until(lambda: bool(handler.connected), (client, handler))
            sock, _ = listener.accept()
            sock.setblocking(False)
            payload = bytes(i * 7 % 251 for i in range(TOTAL))
            conn = handler.connected[0]
            sent = 0
            got = bytearray()
            deadline = time.monotonic() + 20
            while len(got) < TOTAL and time.monotonic() < deadline:
                if sent < TOTAL:
                    sent += conn.write_some(payload[sent:sent + 65536])
                client.poll(handler)
                with contextlib.suppress(BlockingIOError):
                    got += sock.recv(1 << 20)
            assert bytes(got) == payload
            assert _rcv_mss(sock) == mss
            sock.close()
        finally:
            client.close()
            listener.close()
