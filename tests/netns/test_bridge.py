"""tools/impair_bridge.py: frames cross it with the configured, seeded faults, counted."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .netns import BRIDGE, Bridged

pytestmark = pytest.mark.netns

N = 1000

RECEIVER = """
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind((sys.argv[1], 9000))
print("ready", flush=True)
got, t_end = [], time.monotonic() + 20
s.settimeout(1.5)
while time.monotonic() < t_end:
    try:
        data, _ = s.recvfrom(2048)
    except socket.timeout:
        if got:
            break
        continue
    got.append((int.from_bytes(data[:4], "big"), time.monotonic_ns()))
print(json.dumps(got))
"""

SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n = int(sys.argv[2])
for i in range(n):
    s.sendto(i.to_bytes(4, "big") + bytes(96), (sys.argv[1], 9000))
    if i % 20 == 19:
        time.sleep(0.001)
"""


def transfer(t: Bridged, n: int = N) -> list[tuple[int, int]]:
    """n numbered datagrams a -> b through the bridge; (seq, arrival ns) as received."""
    rx = t.b.python(RECEIVER, t.pb.ip, stdout=subprocess.PIPE, text=True)
    assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
    t.a.run([sys.executable, "-c", SENDER, t.pb.ip, str(n)])
    out, _ = rx.communicate(timeout=30)
    return [(int(s), int(ts)) for s, ts in json.loads(out)]


def test_loss_rate_is_counted_and_close_to_the_setting(
    netns_bridged: Callable[..., Bridged],
) -> None:
    t = netns_bridged(loss=0.2, seed=7)
    got = transfer(t)
    st = t.stats(final=True)["a>b"]
    assert st["received"] == N
    assert st["lost"] + st["forwarded"] == N
    assert len(got) == st["forwarded"]          # every frame it forwarded arrived
    assert abs(st["lost"] - 0.2 * N) < 5 * (N * 0.2 * 0.8) ** 0.5  # within 5 sigma


def test_the_same_seed_loses_the_same_frames(netns_bridged: Callable[..., Bridged]) -> None:
    runs = []
    for seed in (11, 11, 12):
        t = netns_bridged(loss=0.1, seed=seed)
        runs.append({s for s, _ in transfer(t, 400)})
        t.close()
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_duplicates_are_counted(netns_bridged: Callable[..., Bridged]) -> None:
    t = netns_bridged(duplicate=0.1, seed=3)
    got = transfer(t, 500)
    st = t.stats(final=True)["a>b"]
    assert st["duplicated"] > 0
    assert len(got) == 500 + st["duplicated"] == st["forwarded"]
    assert {s for s, _ in got} == set(range(500))


def test_reordering_lets_later_frames_overtake(netns_bridged: Callable[..., Bridged]) -> None:
    t = netns_bridged(reorder=0.05, reorder_ms=20, seed=5)
    got = transfer(t, 500)
    st = t.stats(final=True)["a>b"]
    order = [s for s, _ in got]
    assert sorted(order) == list(range(500))     # nothing lost
    assert st["reordered"] > 0
    assert order != sorted(order)                # and some arrived late


def test_delay_holds_every_frame(netns_bridged: Callable[..., Bridged]) -> None:
    t = netns_bridged(delay_ms=30, seed=1)
    rx = t.b.python(RECEIVER, t.pb.ip, stdout=subprocess.PIPE, text=True)
    assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
    sent = time.monotonic_ns()
    t.a.run([sys.executable, "-c", SENDER, t.pb.ip, "1"])
    out, _ = rx.communicate(timeout=30)
    (_, arrived), = json.loads(out)
    # Both clocks are this machine's CLOCK_MONOTONIC.
    assert arrived - sent >= 30_000_000
    assert t.stats(final=True)["a>b"]["delayed"] == 1


def test_corruption_flips_one_bit(netns_bridged: Callable[..., Bridged]) -> None:
    """Corrupted datagrams fail the receiver's checksums: the kernel drops exactly them."""
    t = netns_bridged(corrupt=0.1, seed=9)
    got = transfer(t, 500)
    st = t.stats(final=True)["a>b"]
    assert st["corrupted"] > 0
    # A flip in the UDP checksum's coverage is always caught; one in the IP header too (a
    # flip elsewhere in it, e.g. TTL, would still be caught by the header checksum).
    assert len(got) == 500 - st["corrupted"]


def test_bridge_stops_by_itself_after_its_duration(
    netns_bridged: Callable[..., Bridged],
) -> None:
    t = netns_bridged(duration=1.0)
    t.bridge.wait(timeout=10)
    assert t.bridge.returncode == 0
    assert t.stats()["running"] is False


def test_bridge_refuses_bad_settings(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(BRIDGE), "--if", "x", "--if", "y", "--loss", "2"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--loss" in r.stderr
