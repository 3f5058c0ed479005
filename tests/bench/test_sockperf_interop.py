"""sockperf against us: `sockperf ping-pong --tcp` measures `pollnet echo-server`, and
`pollnet bench --peer sockperf` measures against `sockperf server --tcp`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pollnet.bench import sockperf

pytestmark = pytest.mark.skipif(sockperf.which() is None,
                                reason="sockperf is not installed (apt-get install sockperf)")


def _cpus() -> tuple[list[str], list[str]]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return [], []
    return ["taskset", "-c", str(cpus[1])], ["taskset", "-c", str(cpus[0])]


def test_sockperf_ping_pong_against_our_echo_server() -> None:
    server_pin, client_pin = _cpus()
    server = subprocess.Popen(
        [*server_pin, sys.executable, "-m", "pollnet", "echo-server", "--listen-ip",
         "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "listening on" in line, line + (server.stderr.read() if server.stderr else "")
        port = int(line.rsplit(":", 1)[1])
        out = sockperf.run([*client_pin, "sockperf", "ping-pong", "--tcp", "-i", "127.0.0.1",
                            "-p", str(port), "-m", "100", "-t", "1", "--mps", "max"],
                           timeout=60)
        rep = sockperf.parse_report(out)
        assert int(rep["count"]) > 0  # type: ignore[call-overload]
        assert "# dropped messages = 0" in out and "out-of-order messages = 0" in out
        ladder = rep["ladder"]
        assert isinstance(ladder, dict) and ladder["max"] >= ladder["50"] >= ladder["min"] > 0
    finally:
        server.terminate()
        server.communicate(timeout=10)


def test_bench_against_sockperf_server() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pollnet", "bench", "--peer", "sockperf", "--backends", "socket",
         "--net", "loopback", "-n", "2000", "--warmup", "100", "--json"],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)["rows"][0]
    assert row["status"] == "ok", row
    assert row["latency"]["count"] == 2000
    assert json.loads(r.stdout)["params"]["peer"] == "sockperf"


def test_responder_frames_and_replies() -> None:
    a = sockperf.message(20, seq=7)
    b = sockperf.message(16, seq=8, flags=sockperf.FLAG_CLIENT)  # no reply wanted
    c = sockperf.message(30, seq=9)
    stream = bytes(a + b + c)
    resp = sockperf.Responder()
    assert sockperf.looks_like_sockperf(stream)
    assert not sockperf.looks_like_sockperf(bytes(64))
    out, left = resp.feed(memoryview(stream[:-5]))  # the last message is incomplete
    assert left == 25 and out is not None
    assert bytes(out) == bytes(sockperf.message(20, seq=7, flags=sockperf.FLAG_PONG_REQUEST))
    out, left = resp.feed(memoryview(stream[36:]))
    assert left == 0 and out is not None and len(out) == 30
    assert sockperf.HEADER.unpack_from(out) == (9, sockperf.FLAG_PONG_REQUEST, 30)
    with pytest.raises(ValueError):
        sockperf.message(10)
