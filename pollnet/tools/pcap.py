"""A pcap reader and writer of our own (the classic libpcap format, not pcapng).

Reads microsecond (0xa1b2c3d4) and nanosecond (0xa1b23c4d) files in either byte order;
timestamps come out in nanoseconds. Link types: Ethernet (1) as is; Linux cooked capture
(113, `tcpdump -i any`) is turned into Ethernet-like frames (zero MACs + the protocol) so
one parser serves both. Truncated files end cleanly at the last whole record.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113

_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),
}


class PcapError(ValueError):
    """Not a pcap file, or one this reader does not handle."""


@dataclass(frozen=True)
class PcapRecord:
    ts_ns: int
    data: bytes      # the frame as Ethernet (cooked captures converted)
    orig_len: int    # length on the wire (> len(data) when the capture was truncated)


class PcapReader:
    """Iterate the records of a pcap file: `for rec in PcapReader(path): ...`."""

    def __init__(self, source: str | Path | BinaryIO) -> None:
        self._own = isinstance(source, str | Path)
        if isinstance(source, str | Path):
            self._f: BinaryIO = open(source, "rb")  # noqa: SIM115
        else:
            self._f = source
        head = self._f.read(24)
        if len(head) < 24 or head[:4] not in _MAGICS:
            self.close()
            raise PcapError("not a pcap file (bad magic); pcapng is not supported")
        self._endian, self._scale = _MAGICS[head[:4]]
        _, _, _, _, self.snaplen, self.linktype = struct.unpack(self._endian + "HHiIII",
                                                                head[4:])
        self.linktype &= 0x0FFFFFFF
        if self.linktype not in (LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL):
            self.close()
            raise PcapError(f"link type {self.linktype} not supported (Ethernet or Linux SLL)")

    def __iter__(self) -> Iterator[PcapRecord]:
        rec = struct.Struct(self._endian + "IIII")
        while True:
            h = self._f.read(16)
            if len(h) < 16:
                return
            sec, frac, incl, orig = rec.unpack(h)
            data = self._f.read(incl)
            if len(data) < incl:
                return
            if self.linktype == LINKTYPE_LINUX_SLL:
                if len(data) < 16:
                    continue
                data = bytes(12) + data[14:16] + data[16:]
                orig = max(orig - 2, 0)
            yield PcapRecord(sec * 1_000_000_000 + frac * self._scale, data, orig)

    def close(self) -> None:
        if self._own:
            self._f.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def read_pcap(path: str | Path) -> list[PcapRecord]:
    with PcapReader(path) as r:
        return list(r)


class PcapWriter:
    """Write Ethernet frames to a nanosecond pcap file."""

    def __init__(self, path: str | Path, snaplen: int = 65535) -> None:
        self._f = open(path, "wb")  # noqa: SIM115
        self.snaplen = snaplen
        self._f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, snaplen,
                                  LINKTYPE_ETHERNET))

    def write(self, frame: bytes, ts_ns: int) -> None:
        cap = frame[: self.snaplen]
        self._f.write(struct.pack("<IIII", ts_ns // 1_000_000_000, ts_ns % 1_000_000_000,
                                  len(cap), len(frame)))
        self._f.write(cap)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
