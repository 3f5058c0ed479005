"""`python -m pollnet.tools COMMAND ...`: the tools from a shell.

  tcpstream PCAP [--port P] [--dump DIR]   each connection's streams (JSON lines); --dump
                                           writes DIR/<n>-c2s.bin and <n>-s2c.bin
  frames IFACE [--count N] [--pcap FILE]   raw frames of an interface (root), one per line
  udp-recv PORT [--group G] [--iface-ip IP] [--count N] [--seconds S]
  udp-send IP PORT MESSAGE... [--iface-ip IP] [--ttl T]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from pollnet.tools.frames import FrameReceiver
from pollnet.tools.packets import parse_frame
from pollnet.tools.pcap import PcapError
from pollnet.tools.tcpstream import Direction, TcpStreams
from pollnet.tools.udp import UdpReceiver, UdpSender


def _direction(d: Direction) -> dict[str, object]:
    return {"bytes": len(d.data), "sha256": hashlib.sha256(d.data).hexdigest(),
            "complete": d.complete, "holes": d.holes, "segments": d.segments,
            "retransmitted_bytes": d.retransmitted_bytes,
            "out_of_order_segments": d.out_of_order_segments, "conflicts": d.conflicts}


def cmd_tcpstream(a: argparse.Namespace) -> int:
    try:
        streams = TcpStreams.from_pcap(a.pcap)
    except (OSError, PcapError) as exc:
        print(f"tcpstream: {a.pcap}: {exc}", file=sys.stderr)
        return 1
    conns = streams.find(a.port) if a.port else streams.connections
    for i, c in enumerate(conns):
        row = {"n": i, "client": f"{c.client[0]}:{c.client[1]}",
               "server": f"{c.server[0]}:{c.server[1]}", "syn_seen": c.syn_seen,
               "closed": c.closed, "reset": c.reset,
               "client_to_server": _direction(c.client_to_server),
               "server_to_client": _direction(c.server_to_client)}
        print(json.dumps(row))
        if a.dump:
            out = Path(a.dump)
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{i}-c2s.bin").write_bytes(c.client_to_server.data)
            (out / f"{i}-s2c.bin").write_bytes(c.server_to_client.data)
    return 0


def cmd_frames(a: argparse.Namespace) -> int:
    seen = 0

    def on(frame: memoryview, ts: int) -> None:
        nonlocal seen
        seen += 1
        p = parse_frame(bytes(frame))
        what = "?" if p is None else (
            f"{p.src_ip}:{p.src_port} > {p.dst_ip}:{p.dst_port} proto {p.proto}"
            if p.src_ip else f"ethertype 0x{p.ethertype:04x}")
        print(f"{ts} len {len(frame)} {what}", flush=True)

    with FrameReceiver(a.iface, pcap=a.pcap) as rx:
        while a.count == 0 or seen < a.count:
            rx.recv(on)
    return 0


def cmd_udp_recv(a: argparse.Namespace) -> int:
    got = 0
    end = time.monotonic() + a.seconds if a.seconds else float("inf")

    def on(data: memoryview, src: tuple[str, int]) -> None:
        nonlocal got
        got += 1
        print(json.dumps({"from": f"{src[0]}:{src[1]}", "len": len(data),
                          "data": bytes(data).decode(errors="replace")}), flush=True)

    with UdpReceiver(a.port, group=a.group, iface_ip=a.iface_ip) as rx:
        print(f"listening on port {rx.port}", file=sys.stderr, flush=True)
        while (a.count == 0 or got < a.count) and time.monotonic() < end:
            rx.recv(on)
    return 0


def cmd_udp_send(a: argparse.Namespace) -> int:
    with UdpSender(a.ip, a.port, iface_ip=a.iface_ip, ttl=a.ttl) as tx:
        for m in a.message:
            while not tx.write(m.encode()):
                pass
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pollnet.tools", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tcpstream")
    p.add_argument("pcap")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dump", default="")
    p.set_defaults(fn=cmd_tcpstream)
    p = sub.add_parser("frames")
    p.add_argument("iface")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--pcap", default=None)
    p.set_defaults(fn=cmd_frames)
    p = sub.add_parser("udp-recv")
    p.add_argument("port", type=int)
    p.add_argument("--group", default=None)
    p.add_argument("--iface-ip", default="0.0.0.0")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--seconds", type=float, default=0.0)
    p.set_defaults(fn=cmd_udp_recv)
    p = sub.add_parser("udp-send")
    p.add_argument("ip")
    p.add_argument("port", type=int)
    p.add_argument("message", nargs="+")
    p.add_argument("--iface-ip", default=None)
    p.add_argument("--ttl", type=int, default=1)
    p.set_defaults(fn=cmd_udp_send)
    a = ap.parse_args(argv)
    rc: int = a.fn(a)
    return rc


if __name__ == "__main__":
    sys.exit(main())
