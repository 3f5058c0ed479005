"""Sharding (issue 16): two stacks on one interface behind one address and port.
af_xdp: one per RX queue. A veth made with two queues delivers each frame on the RX queue
of the TX queue the kernel sent it from (its per-socket hash), so the kernel's clients
spread over both; the one XDP program steers each frame to the socket of the queue it
arrived on. af_packet: the two sockets form a fanout group that splits flows by hash.
Either way a connection lives wholly on one stack. A kernel listener on the same
interface, on the kernel's own address, is served beside them."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import pollnet
from pollnet.config import config_from_dict
from pollnet.testing import EchoHandler

from .netns import Pair, require_link

pytestmark = pytest.mark.netns

PORT, KERNEL_PORT, CLIENTS = 7001, 7002, 1000  # 500 a shard

# Namespace b: CLIENTS kernel connections to our address (each sends its own bytes and
# checks they come back), and a few to the kernel's listener in a beside them.
CLIENTS_SCRIPT = """
import json, random, resource, selectors, socket, sys
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a socket a client
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


def start_clients(t: Pair, ours: str) -> subprocess.Popen[str]:
    """The kernel listener in a, then CLIENTS kernel clients in b (and 5 to the listener)."""
    echo = t.a.python(KERNEL_ECHO, t.pa.ip, str(KERNEL_PORT), stdout=subprocess.PIPE,
                      text=True)
    assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
    return t.b.python(CLIENTS_SCRIPT, ours, t.pa.ip, str(CLIENTS), str(PORT),
                      str(KERNEL_PORT), stdout=subprocess.PIPE, text=True)


def clients_said(clients: subprocess.Popen[str], timeout: float = 60) -> Any:
    out, _ = clients.communicate(timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])


def our_address(t: Pair, address: str) -> str:
    """own: an address the kernel does not have, all the stacks'; shared: the kernel's
    own address, the stacks taking only their flows (each shard holds the port with a
    SO_REUSEPORT kernel socket, so the shards share it and a kernel program cannot)."""
    return t.free_ip(3) if address == "own" else t.pa.ip


@pytest.mark.parametrize("address", ["own", "shared"])
@pytest.mark.parametrize("link", ["af_xdp", "af_packet"])
def test_two_shards_behind_one_address(netns_pair_queues: Any, link: str,
                                       address: str) -> None:
    require_link(link)
    t: Pair = netns_pair_queues(2)
    ours = our_address(t, address)
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
    clients = start_clients(t, ours)
    deadline = time.monotonic() + 60
    while clients.poll() is None and time.monotonic() < deadline:
        for srv, h in zip(servers, handlers, strict=True):
            srv.poll(h)
    out = clients_said(clients)
    stats = [srv.stats() for srv in servers]  # type: ignore[attr-defined]
    for srv in servers:
        srv.close()
    assert out == {"ok": CLIENTS + 5, "errors": []}, out
    served = [len(h.connected) for h in handlers]
    assert sum(served) == CLIENTS and min(served) > 0, served
    assert [s["TcpOutRsts"] for s in stats] == [0, 0], stats


# Shards in separate processes: `pollnet echo-server`, one process a shard.

def shard_config(tmp_path: Path, link: str, ours: str) -> str:
    path = tmp_path / f"shards-{link}.toml"
    path.write_text(f"""backend = "efvi"
[efvi]
link = "{link}"
interface = "pn0"
local_ip = "{ours}"
max_conn_cnt = {CLIENTS + 16}
[server]
listen_ip = "{ours}"
port = {PORT}
max_conns = {CLIENTS + 8}
""")
    return str(path)


def echo_server(t: Pair, config: str, *args: str) -> subprocess.Popen[str]:
    """`pollnet echo-server` in namespace a, once it has said it listens (each shard)."""
    p = t.a.popen([sys.executable, "-m", "pollnet", "echo-server", "--config", config, *args],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    want = int(args[args.index("--shards") + 1]) if "--queue" not in args else 1
    for _ in range(want):
        line = p.stdout.readline()
        if "listening on" not in line:
            p.kill()
            raise AssertionError(f"echo-server did not start: {line}{p.communicate()[1]}")
    return p


def served(p: subprocess.Popen[str]) -> list[int]:
    """SIGTERM, then the connection count each shard reported as it stopped."""
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=20)
    return [int(n) for n in re.findall(r"(\d+) connection", err)]


@pytest.mark.parametrize("address", ["own", "shared"])
@pytest.mark.parametrize("link", ["af_xdp", "af_packet"])
def test_echo_server_runs_shards_in_processes(netns_pair_queues: Any, link: str,
                                              address: str, tmp_path: Path) -> None:
    require_link(link)
    t: Pair = netns_pair_queues(2)
    ours = our_address(t, address)
    server = echo_server(t, shard_config(tmp_path, link, ours), "--shards", "2")
    out = clients_said(start_clients(t, ours))
    counts = served(server)
    assert out == {"ok": CLIENTS + 5, "errors": []}, out
    assert len(counts) == 2 and sum(counts) == CLIENTS and min(counts) > 0, counts


def test_af_xdp_shards_outlive_the_process_that_attached(netns_pair_queues: Any,
                                                         tmp_path: Path) -> None:
    """Shard 0 attaches the XDP program, shard 1 (another process) joins it; shard 0 is
    killed and started again. The program must stay attached for shard 1 all along and
    shard 0 must join it again: every client is served, on both shards."""
    require_link("af_xdp")
    t: Pair = netns_pair_queues(2)
    ours = t.free_ip(3)
    config = shard_config(tmp_path, "af_xdp", ours)
    first = echo_server(t, config, "--shards", "2", "--queue", "0")
    second = echo_server(t, config, "--shards", "2", "--queue", "1")
    first.kill()
    first.wait()
    again = echo_server(t, config, "--shards", "2", "--queue", "0")
    out = clients_said(start_clients(t, ours))
    counts = served(again) + served(second)
    assert out == {"ok": CLIENTS + 5, "errors": []}, out
    assert sum(counts) == CLIENTS and min(counts) > 0, counts


@pytest.mark.parametrize("link", ["af_xdp", "af_packet"])
def test_a_shard_does_not_share_a_port_with_a_kernel_program(netns_pair_queues: Any,
                                                             link: str) -> None:
    """Shards share the kernel's address by holding their ports with SO_REUSEPORT
    sockets; a kernel program's socket without it keeps its port, and the shard says
    which and why (it said only "link error" before)."""
    require_link(link)
    t: Pair = netns_pair_queues(2)
    holder = t.a.python(
        "import socket, time\ns = socket.socket(); s.bind(('0.0.0.0', 7001)); s.listen()\n"
        "print('ready', flush=True); time.sleep(60)", stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    cfg = config_from_dict({
        "backend": "efvi",
        "efvi": {"link": link, "interface": "pn0", "local_ip": t.pa.ip, "queue": 0,
                 "shards": 2},
        "server": {"interface": f"{t.a.name}/pn0", "listen_ip": t.pa.ip, "port": PORT},
    })
    with pytest.raises(pollnet.PollnetError, match=r"bind .*:7001: Address already in use "
                       r"\(a kernel socket without SO_REUSEPORT"):
        pollnet.create_server(cfg)


# Client shards: two stacks, one address, each opening connections to a kernel server in
# b. Each must pick local ports whose replies come back to its own socket (af_packet: the
# fanout program's port rule). Prints, per shard, the connections whose bytes came back
# and those that failed (a reply on the wrong shard is reset there: a stranger's segment).
CLIENT_SHARDS = r"""
import json, random, sys, time
from pollnet.backends.efvi import TcpClient
from pollnet.config import EfviOptions
link, ip, peer, port, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

class H:
    def __init__(self):
        self.want, self.got, self.ok, self.failed = {}, {}, 0, []
    def on_connection_established(self, conn):
        data = random.Random(conn.local_port).randbytes(700)
        self.want[conn.local_port], self.got[conn.local_port] = data, b""
        conn.send(data)
    def on_data(self, conn, d):
        k = conn.local_port
        self.got[k] += bytes(d)
        if len(self.got[k]) >= 700:
            self.ok += self.got[k] == self.want[k]
            conn.send_fin()
        return 0
    def on_fin(self, conn, d): return 0
    def _fail(self, conn, why): self.failed.append(why)
    def on_connection_closed(self, conn): pass
    def on_connection_reset(self, conn): self._fail(conn, "reset")
    def on_connection_refused(self, conn): self._fail(conn, "refused")
    def on_connection_timeout(self, conn): self._fail(conn, "timeout")

shards = []
for q in (0, 1):
    c = TcpClient(EfviOptions(link=link, interface="pn0", local_ip=ip, queue=q, shards=2,
                              syn_retries=2), max_conns=n + 4)
    shards.append((c, H()))
for c, h in shards:
    for _ in range(n):
        c.connect(peer, port)
end = time.monotonic() + 20
while time.monotonic() < end and any(h.ok + len(h.failed) < n for _, h in shards):
    for c, h in shards:
        c.poll(h)
print(json.dumps([{"ok": h.ok, "failed": h.failed[:5],
                   "rsts": c.stats()["TcpOutRsts"]} for c, h in shards]))
for c, _ in shards:
    c.close()
"""


@pytest.mark.parametrize("link", ["af_packet"])
def test_client_shards_pick_ports_whose_replies_come_back(netns_pair_queues: Any,
                                                          link: str) -> None:
    require_link(link)
    t: Pair = netns_pair_queues(2)
    server = t.b.python(KERNEL_ECHO, t.pb.ip, str(PORT), stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    n = 40
    r = t.a.run([sys.executable, "-c", CLIENT_SHARDS, link, t.free_ip(3), t.pb.ip,
                 str(PORT), str(n)], timeout=90)
    said = json.loads(r.stdout.strip().splitlines()[-1])
    assert said == [{"ok": n, "failed": [], "rsts": 0}] * 2, said


AF_XDP_CLIENT_SHARD = r"""
import sys
from pollnet.backends.efvi import TcpClient
from pollnet.config import EfviOptions
c = TcpClient(EfviOptions(link="af_xdp", interface="pn0", local_ip=sys.argv[1], queue=0,
                          shards=2))
try:
    c.connect(sys.argv[2], 7)
    print("connected")
except Exception as exc:
    print(exc)
c.close()
"""


def test_af_xdp_client_shards_need_the_nics_rss(netns_pair_queues: Any) -> None:
    """On af_xdp the NIC picks a reply's RX queue (RSS): a client shard picks ports by
    the NIC's Toeplitz key and table. A veth has none -- its RX queue is the sender's TX
    queue -- so a connect is refused by name instead of left to have its replies reach
    another shard (the hash itself: native/tests/test_rss.c)."""
    require_link("af_xdp")
    t: Pair = netns_pair_queues(2)
    r = t.a.run([sys.executable, "-c", AF_XDP_CLIENT_SHARD, t.free_ip(3), t.pb.ip])
    assert "client shard on 'pn0' cannot tell its replies' RX queue (no RSS key or table " \
           "from its driver: Operation not supported): use link af_packet" in r.stdout, r.stdout
