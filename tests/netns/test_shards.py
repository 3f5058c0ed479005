"""Sharding (issue 16): two stacks on one interface behind one address and port.
af_xdp: one per RX queue. A veth made with two queues delivers each frame on the RX queue
of the TX queue the kernel sent it from (its per-socket hash), so the kernel's clients
spread over both; the one XDP program steers each frame to the socket of the queue it
arrived on. af_packet: the two sockets form a fanout group that splits flows by hash.
Either way a connection lives wholly on one stack. A kernel listener on the same
interface, on the kernel's own address, is served beside them."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

import pollnet
from pollnet.config import config_from_dict
from pollnet.testing import EchoHandler

from .netns import Pair

pytestmark = pytest.mark.netns

PORT, KERNEL_PORT, CLIENTS = 7001, 7002, 200

# Namespace b: CLIENTS kernel connections to our address (each sends its own bytes and
# checks they come back), and a few to the kernel's listener in a beside them.
CLIENTS_SCRIPT = """
import json, random, selectors, socket, sys
ours, kernel = sys.argv[1], sys.argv[2]
n, port, kport = (int(a) for a in sys.argv[3:6])
sel = selectors.DefaultSelector()
want, got, errors = {}, {}, []
for i in range(n + 5):
    to = (ours, port) if i < n else (kernel, kport)
    s = socket.create_connection(to, timeout=20)
    s.setblocking(False)
    data = random.Random(i).randbytes(700)
    s.sendall(data)
    want[s], got[s] = data, bytearray()
    sel.register(s, selectors.EVENT_READ)
left = len(want)
while left:
    events = sel.select(timeout=20)
    if not events:
        errors.append(f"{left} connections got no answer in 20 s")
        break
    for key, _ in events:
        s = key.fileobj
        try:
            b = s.recv(4096)
        except OSError as exc:
            errors.append(repr(exc)); b = b""
        got[s] += b
        if len(got[s]) >= len(want[s]) or not b:
            sel.unregister(s); left -= 1
            if bytes(got[s]) != want[s]:
                errors.append(f"bytes differ on {s.getsockname()}")
            s.close()
print(json.dumps({"ok": len(want) - len(errors), "errors": errors[:5]}), flush=True)
"""

KERNEL_ECHO = """
import socket, sys, threading
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], int(sys.argv[2]))); ls.listen(64)
print("ready", flush=True)
def serve(c):
    while (b := c.recv(4096)):
        c.sendall(b)
    c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


@pytest.mark.parametrize("link", ["af_xdp", "af_packet"])
def test_two_shards_behind_one_address(netns_pair_queues: Any, link: str) -> None:
    from pollnet.backends.efvi.core import binding as _core

    if link == "af_xdp" and not _core.has("pn_af_xdp_link_create"):
        pytest.skip("no af_xdp link in this build of pollnet._pncore")
    t: Pair = netns_pair_queues(2)
    ours = t.free_ip(3)
    servers, handlers = [], []
    for q in (0, 1):
        cfg = config_from_dict({
            "backend": "efvi",
            "efvi": {"link": link, "interface": "pn0", "local_ip": ours, "queue": q,
                     "shards": 2, "max_conn_cnt": CLIENTS + 16},
            "server": {"interface": f"{t.a.name}/pn0", "listen_ip": ours, "port": PORT,
                       "max_conns": CLIENTS + 8},
        })
        servers.append(pollnet.create_server(cfg))
        handlers.append(EchoHandler())
    echo = t.a.python(KERNEL_ECHO, t.pa.ip, str(KERNEL_PORT), stdout=subprocess.PIPE,
                      text=True)
    assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
    clients = t.b.python(CLIENTS_SCRIPT, ours, t.pa.ip, str(CLIENTS), str(PORT),
                         str(KERNEL_PORT), stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while clients.poll() is None and time.monotonic() < deadline:
        for srv, h in zip(servers, handlers, strict=True):
            srv.poll(h)
    assert clients.stdout is not None
    out = json.loads(clients.stdout.read().strip().splitlines()[-1])
    stats = [srv.stats() for srv in servers]  # type: ignore[attr-defined]
    for srv in servers:
        srv.close()
    assert out == {"ok": CLIENTS + 5, "errors": []}, out
    served = [len(h.connected) for h in handlers]
    assert sum(served) == CLIENTS and min(served) > 0, served
    assert [s["TcpOutRsts"] for s in stats] == [0, 0], stats
