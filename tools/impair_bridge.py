#!/usr/bin/env python3
"""impair_bridge: forward Ethernet frames between two interfaces with seeded faults.

`tc netem` does not exist in this kernel, so tests put this between two namespaces:
run it in a third namespace that holds one end of each of two veth pairs,

    ip netns exec BR python3 tools/impair_bridge.py --if pa --if pb \\
        --loss 0.05 --duplicate 0.01 --reorder 0.02 --delay-ms 1 --seed 7 --duration 60

and every frame that arrives on one interface leaves on the other, unless it is lost;
it may be duplicated, delayed (delay + uniform jitter), held back by --reorder-ms so
later frames overtake it, or corrupted (one random bit flipped past the Ethernet header,
so the receiver's IP/TCP checksums must catch it). Each direction draws its faults from
its own random stream (seed, direction), so the same frames in the same order meet the
same fate in every run, whatever the other direction does.

Bounded: it exits after --duration seconds (default 60, at most 3600) or --max-frames
frames, or on SIGTERM/SIGINT. Its counters go to --stats (JSON, rewritten every 100 ms
and at exit) and to stdout at exit:
    {"a>b": {"received", "forwarded", "lost", "duplicated", "reordered", "delayed",
             "corrupted", "too_big", "send_errors"}, "b>a": {...}, "running": bool}
("a" is the first --if, "b" the second; forwarded counts frames sent, duplicates included.)

The ends should send complete, MTU-sized frames: turn off TSO/GSO and TX checksum offload
on the veths of the namespaces it joins (ethtool -K IF tso off gso off tx off), or the
kernel hands it GSO super-frames (counted as too_big and dropped) and CHECKSUM_PARTIAL
frames that the far kernel rejects. tests/netns/netns.py's Bridged does all of this.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4


class Direction:
    def __init__(self, name: str, rx: socket.socket, tx: socket.socket, seed: int) -> None:
        self.name = name
        self.rx = rx
        self.tx = tx
        # Its own stream: the fate of a->b frames never depends on b->a traffic.
        self.rng = random.Random(f"{seed}/{name}")
        self.c = dict.fromkeys(
            ("received", "forwarded", "lost", "duplicated", "reordered", "delayed",
             "corrupted", "too_big", "send_errors"), 0)


def open_if(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind((ifname, ETH_P_ALL))
    ifindex = socket.if_nametoindex(ifname)
    mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
    s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
    s.setblocking(False)
    return s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--if", dest="ifs", action="append", required=True,
                    help="an interface; give exactly two")
    ap.add_argument("--loss", type=float, default=0.0, help="probability a frame is lost")
    ap.add_argument("--duplicate", type=float, default=0.0,
                    help="probability a frame is sent twice")
    ap.add_argument("--reorder", type=float, default=0.0,
                    help="probability a frame is held back by --reorder-ms")
    ap.add_argument("--reorder-ms", type=float, default=5.0)
    ap.add_argument("--corrupt", type=float, default=0.0,
                    help="probability one bit past the Ethernet header is flipped")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay")
    ap.add_argument("--jitter-ms", type=float, default=0.0,
                    help="uniform extra delay in [0, jitter]")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds to run (<= 3600)")
    ap.add_argument("--max-frames", type=int, default=0, help="stop after this many (0: no limit)")
    ap.add_argument("--stats", type=Path, help="JSON counters, rewritten every 100 ms")
    a = ap.parse_args(argv)
    if len(a.ifs) != 2:
        ap.error("give exactly two --if")
    for name in ("loss", "duplicate", "reorder", "corrupt"):
        v = getattr(a, name)
        if not 0.0 <= v <= 1.0:
            ap.error(f"--{name} {v}: must be a probability in [0, 1]")
    if not 0 < a.duration <= 3600:
        ap.error("--duration must be in (0, 3600] seconds")

    s0, s1 = open_if(a.ifs[0]), open_if(a.ifs[1])
    dirs = [Direction("a>b", s0, s1, a.seed), Direction("b>a", s1, s0, a.seed)]
    by_fd = {s0.fileno(): dirs[0], s1.fileno(): dirs[1]}
    mtu = {s: int(Path(f"/sys/class/net/{n}/mtu").read_text()) for s, n in ((s0, a.ifs[0]),
                                                                           (s1, a.ifs[1]))}
    heap: list[tuple[float, int, Direction, bytes]] = []
    seq = 0
    stop = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def write_stats(running: bool) -> None:
        if a.stats is None:
            return
        doc = {d.name: d.c for d in dirs}
        doc["running"] = running  # type: ignore[assignment]
        tmp = a.stats.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, a.stats)

    def send(d: Direction, frame: bytes) -> None:
        if len(frame) > mtu[d.tx] + 14:
            d.c["too_big"] += 1
            return
        try:
            d.tx.send(frame)
            d.c["forwarded"] += 1
        except OSError:
            d.c["send_errors"] += 1

    poller = select.poll()
    for s in (s0, s1):
        poller.register(s, select.POLLIN)
    start = time.monotonic()
    end = start + a.duration
    next_stats = 0.0
    total = 0
    delay = a.delay_ms / 1000.0
    jitter = a.jitter_ms / 1000.0
    hold = a.reorder_ms / 1000.0
    while not stop:
        now = time.monotonic()
        if now >= end or (a.max_frames and total >= a.max_frames):
            break
        while heap and heap[0][0] <= now:
            _, _, d, frame = heapq.heappop(heap)
            send(d, frame)
        if now >= next_stats:
            write_stats(True)
            next_stats = now + 0.1
        timeout = min(end, next_stats) - now
        if heap:
            timeout = min(timeout, heap[0][0] - now)
        events = poller.poll(max(0, int(timeout * 1000)) if timeout > 0.001 else 0)
        for fd, _ in events:
            d = by_fd[fd]
            for _ in range(64):
                try:
                    frame, addr = d.rx.recvfrom(65536)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                total += 1
                d.c["received"] += 1
                r = d.rng
                # Draw every decision for every frame, so one fault's probability never
                # shifts the stream another fault sees.
                lost = r.random() < a.loss
                dup = r.random() < a.duplicate
                reord = r.random() < a.reorder
                extra = r.random() * jitter
                bad = r.random() < a.corrupt
                where = r.random()
                if lost:
                    d.c["lost"] += 1
                    continue
                if bad and len(frame) > 14:
                    bit = 14 * 8 + int(where * (len(frame) - 14) * 8)
                    buf = bytearray(frame)
                    buf[bit // 8] ^= 1 << (bit % 8)
                    frame = bytes(buf)
                    d.c["corrupted"] += 1
                wait = delay + extra + (hold if reord else 0.0)
                if reord:
                    d.c["reordered"] += 1
                copies = 2 if dup else 1
                if dup:
                    d.c["duplicated"] += 1
                for _ in range(copies):
                    if wait <= 0:
                        send(d, frame)
                    else:
                        d.c["delayed"] += 1
                        seq += 1
                        heapq.heappush(heap, (time.monotonic() + wait, seq, d, frame))
    # Frames still in flight are sent: a stopped bridge loses nothing it accepted.
    for _, _, d, frame in sorted(heap, key=lambda e: (e[0], e[1])):
        send(d, frame)
    write_stats(False)
    print(json.dumps({d.name: d.c for d in dirs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
