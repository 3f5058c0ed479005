"""`python -m pollnet.tools`: tcpstream on a pcap, and UDP receive/send on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pollnet.tools.pcap import PcapWriter

from .frames_util import tcp_frame
from .test_tcpstream import C, S, handshake


def test_tcpstream_command(tmp_path: Path) -> None:
    with PcapWriter(tmp_path / "c.pcap") as w:
        for i, f in enumerate([*handshake(), tcp_frame(C, S, 1006, b"world"),
                               tcp_frame(C, S, 1001, b"hello")]):
            w.write(f, i)
    r = subprocess.run([sys.executable, "-m", "pollnet.tools", "tcpstream",
                        str(tmp_path / "c.pcap"), "--dump", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    (row,) = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert row["client"] == "10.0.0.1:40000" and row["client_to_server"]["bytes"] == 10
    assert row["client_to_server"]["out_of_order_segments"] == 1
    assert (tmp_path / "out" / "0-c2s.bin").read_bytes() == b"helloworld"


def test_tcpstream_command_on_a_bad_file(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"nope")
    r = subprocess.run([sys.executable, "-m", "pollnet.tools", "tcpstream", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "not a pcap file" in r.stderr


def test_udp_commands_on_loopback() -> None:
    rx = subprocess.Popen([sys.executable, "-m", "pollnet.tools", "udp-recv", "6411",
                           "--count", "3", "--seconds", "20"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        assert rx.stderr is not None and "listening" in rx.stderr.readline()
        subprocess.run([sys.executable, "-m", "pollnet.tools", "udp-send", "127.0.0.1", "6411",
                        "a", "bb", "ccc"], check=True, timeout=60)
        out, _ = rx.communicate(timeout=30)
        got = [json.loads(ln) for ln in out.splitlines()]
        assert [g["data"] for g in got] == ["a", "bb", "ccc"]
    finally:
        rx.kill()
