"""TcpStream on captures of our own stack on the sim link: the sim wire records every frame
it carries (pn_sim_wire_pcap), loss/reordering/duplication included, and the reassembled
streams must be exactly what each side sent. native/tests/tools/simcap.c drives the two
stacks in virtual time (it needs only a C compiler, not the Python binding)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pollnet.tools import TcpStreams

REPO = Path(__file__).resolve().parents[2]
NATIVE = REPO / "native"
SIMCAP = NATIVE / "build" / "tools" / "simcap"
REAL_LINKS = {"link_af_packet.c", "link_af_xdp.c", "link_efvi.c"}


def client_bytes(n: int) -> bytes:
    return bytes((i * 131 + i // 977) & 255 for i in range(n))


def server_bytes(n: int) -> bytes:
    return bytes((i * 7 + 3) & 255 for i in range(n))


@pytest.fixture(scope="module")
def simcap() -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (apt-get install build-essential)")
    core = sorted(str(p) for p in (NATIVE / "src").glob("*.c") if p.name not in REAL_LINKS)
    SIMCAP.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE",
                        f"-I{NATIVE / 'include'}", f"-I{NATIVE / 'src'}", "-o", str(SIMCAP),
                        str(NATIVE / "tests" / "tools" / "simcap.c"), *core, "-lm"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("building simcap failed:\n" + r.stderr)
    return SIMCAP


def capture(binary: Path, out: Path, n: int, m: int, seed: int, loss: float, reorder: float,
            dup: float) -> None:
    r = subprocess.run([str(binary), str(out), str(n), str(m), str(seed), str(loss),
                        str(reorder), str(dup)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr


def test_clean_wire(simcap: Path, tmp_path: Path) -> None:
    pcap = tmp_path / "clean.pcap"
    capture(simcap, pcap, 100_000, 30_000, 1, 0.0, 0.0, 0.0)
    streams = TcpStreams.from_pcap(pcap)
    (conn,) = streams.connections
    assert conn.client == ("10.0.0.1", conn.client[1]) and conn.server == ("10.0.0.2", 80)
    assert bytes(conn.client_to_server.data) == client_bytes(100_000)
    assert bytes(conn.server_to_client.data) == server_bytes(30_000)
    assert conn.closed and not conn.reset
    assert conn.client_to_server.complete and conn.server_to_client.complete
    assert conn.client_to_server.retransmitted_bytes == 0


@pytest.mark.parametrize("seed", [3, 11])
def test_lossy_reordering_duplicating_wire(simcap: Path, tmp_path: Path, seed: int) -> None:
    """The wire's capture holds every frame it was given, dropped ones included, so it shows
    retransmissions, duplicates and reordering; the streams still come out exact."""
    pcap = tmp_path / "faults.pcap"
    capture(simcap, pcap, 300_000, 120_000, seed, 0.03, 0.05, 0.03)
    (conn,) = TcpStreams.from_pcap(pcap).connections
    up, down = conn.client_to_server, conn.server_to_client
    assert bytes(up.data) == client_bytes(300_000) and up.complete and up.conflicts == 0
    assert bytes(down.data) == server_bytes(120_000) and down.complete
    assert up.retransmitted_bytes + down.retransmitted_bytes > 0


def test_python_sim_api_capture(tmp_path: Path) -> None:
    """The same through the efvi backend's Python sim API, when the core is built."""
    from pollnet.backends.efvi.core import binding as _core

    if not _core.available():
        pytest.skip(f"{_core.LOAD_ERROR}; build the C core with `pip install -e .`")
    from pollnet.backends.efvi import SimDriver, SimWire, TcpClient, TcpServer
    from pollnet.backends.efvi.efvitcp.handler import EfviHandler
    from pollnet.config import EfviOptions

    payload = client_bytes(50_000)

    class Server(EfviHandler):
        got = bytearray()

        def on_data(self, conn, data):  # type: ignore[no-untyped-def]
            self.got += bytes(data)
            return 0

    class Client(EfviHandler):
        def on_connection_established(self, conn):  # type: ignore[no-untyped-def]
            conn.send(payload)

    pcap = tmp_path / "py.pcap"
    wire = SimWire(seed=5, pcap=str(pcap), static_arp=True)
    opts = EfviOptions(max_conn_cnt=4, recv_buf_cnt=256)
    server, client = TcpServer(opts, port=80, wire=wire), TcpClient(opts, wire=wire)
    sh, ch = Server(), Client()
    drive = SimDriver(wire, (server, sh), (client, ch))
    client.connect(server.local_ip, 80)
    drive.run_until(lambda: len(sh.got) >= len(payload), timeout_ms=60_000)
    del drive, client, server, wire
    (conn,) = TcpStreams.from_pcap(pcap).find(80)
    assert bytes(conn.client_to_server.data) == payload
