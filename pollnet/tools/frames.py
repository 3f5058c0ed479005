"""Ethernet-frame receivers.

* `FrameReceiver`: an AF_PACKET socket on one interface (root / CAP_NET_RAW): every frame
  the interface sees, with the kernel's receive time, optionally into a pcap file.
* `LinkFrameReceiver`: the frames of any pollnet link, through the link interface itself
  (`pn_link` ops rx_burst / rx_release) of the compiled core: af_packet, af_xdp, efvi or a
  sim wire's endpoint; with efvi, hardware receive timestamps when the NIC gives them.
  The link is borrowed for the receiver's life: do not run a stack on it at the same time.

Both hand `handler(frame: memoryview, ts_ns: int)` frames valid only during the call, and
never block.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pollnet.tools.packets import PROTO_UDP, parse_frame
from pollnet.tools.pcap import PcapWriter

FrameHandler = Callable[[memoryview, int], None]
ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
_PACKET_OUTGOING = 4


class FrameReceiver:
    """Raw frames from interface `ifname` (both directions unless `outgoing=False`)."""

    def __init__(self, ifname: str, *, outgoing: bool = True, pcap: str | Path | None = None,
                 bufsize: int = 65536) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.sock.bind((ifname, ETH_P_ALL))
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise
        self.outgoing = outgoing
        self._buf = bytearray(bufsize)
        self._view = memoryview(self._buf)
        self._pcap = PcapWriter(pcap) if pcap is not None else None
        self.frames = 0

    def recv(self, handler: FrameHandler, max_frames: int = 64) -> int:
        n = 0
        while n < max_frames:
            try:
                size, anc, _, addr = self.sock.recvmsg_into([self._buf], 64)
            except (BlockingIOError, InterruptedError):
                break
            if not self.outgoing and addr[2] == _PACKET_OUTGOING:
                continue
            ts = 0
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                    sec, nsec = struct.unpack("qq", data[:16])
                    ts = sec * 1_000_000_000 + nsec
            n += 1
            self.frames += 1
            frame = self._view[:size]
            if self._pcap is not None:
                self._pcap.write(bytes(frame), ts or time.time_ns())
            handler(frame, ts)
        return n

    def close(self) -> None:
        self.sock.close()
        if self._pcap is not None:
            self._pcap.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class LinkFrameReceiver:
    """Frames from a pollnet link (a `pn_link *` of pollnet._pncore). `udp_only` passes on
    only IPv4/UDP frames (optionally to `udp_port`): UDP on a link without the kernel."""

    def __init__(self, link: Any, *, burst: int = 64, udp_only: bool = False,
                 udp_port: int | None = None, own: bool = False) -> None:
        from pollnet.backends.efvi.core import binding as _core

        self.ffi, self.lib = _core.require()
        self.link = link
        self.own = own
        self.burst = burst
        self._frames = self.ffi.new(f"pn_rx_frame[{burst}]")
        self.udp_only = udp_only or udp_port is not None
        self.udp_port = udp_port
        self.frames = 0

    @classmethod
    def open(cls, kind: str, ifname: str, **kw: Any) -> LinkFrameReceiver:
        """Open a real link (af_packet, af_xdp, efvi) on ifname, owned by the receiver."""
        from pollnet.backends.efvi.core import binding as _core

        ffi, lib = _core.require()
        p = ffi.new("pn_real_link_params *")
        name = ffi.new("char[]", ifname.encode())
        p.ifname = name
        p.own_ip = 1
        err = ffi.new("char[256]")
        create = getattr(lib, f"pn_{kind}_link_create", None)
        if create is None:
            raise ValueError(f"no {kind} link in this build of the core")
        link = create(p, err, 256)
        if link == ffi.NULL:
            raise OSError(ffi.string(err).decode(errors="replace"))
        return cls(link, own=True, **kw)

    def recv(self, handler: FrameHandler) -> int:
        ops = self.link.ops
        n = ops.rx_burst(self.link, time.monotonic_ns(), self._frames, self.burst)
        if n < 0:
            raise OSError(f"link receive failed: {self.ffi.string(self.link.err).decode()}")
        try:
            for i in range(n):
                f = self._frames[i]
                view = memoryview(self.ffi.buffer(f.data, f.len))
                if self.udp_only:
                    p = parse_frame(bytes(view))
                    if p is None or p.proto != PROTO_UDP or (
                            self.udp_port is not None and p.dst_port != self.udp_port):
                        continue
                self.frames += 1
                handler(view, int(f.hw_ts_ns))
        finally:
            if n > 0:
                ops.rx_release(self.link, self._frames, n)
        return int(n)

    def close(self) -> None:
        if self.own and self.link is not None:
            self.lib.pn_link_destroy(self.link)
        self.link = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
