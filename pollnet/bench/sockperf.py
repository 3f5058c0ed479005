"""sockperf's TCP message format, so `pollnet echo-server` answers `sockperf ping-pong
--tcp` and `pollnet bench --peer sockperf` talks to `sockperf server --tcp`.

Every sockperf message starts with a 14-byte header in network byte order: a 64-bit
sequence number, 16 bits of flags (1 = sent by the client, 2 = the sender wants a reply,
4 = warm-up message) and the 32-bit length of the whole message, header included. Over
TCP messages follow back to back; the length frames them. A server answers a message
that asks for a reply with the same bytes, the client flag cleared.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections.abc import Sequence

HEADER = struct.Struct("!QHI")
HEADER_SIZE = HEADER.size  # 14
FLAG_CLIENT = 1
FLAG_PONG_REQUEST = 2
FLAG_WARMUP = 4
_KNOWN_FLAGS = FLAG_CLIENT | FLAG_PONG_REQUEST | FLAG_WARMUP
MAX_MESSAGE = 65536  # sockperf's own message size limit (--msg-size)


def message(size: int, seq: int = 0, flags: int = FLAG_CLIENT | FLAG_PONG_REQUEST) -> bytearray:
    """A client message of `size` bytes (at least the header), zeros after the header."""
    if not HEADER_SIZE <= size <= MAX_MESSAGE:
        raise ValueError(f"a sockperf message is {HEADER_SIZE}..{MAX_MESSAGE} bytes, not {size}")
    buf = bytearray(size)
    HEADER.pack_into(buf, 0, seq, flags, size)
    return buf


def looks_like_sockperf(head: bytes | memoryview) -> bool:
    """Whether the first bytes of a stream are a sockperf client header."""
    if len(head) < HEADER_SIZE:
        return False
    _, flags, length = HEADER.unpack_from(head, 0)
    return bool(flags & FLAG_CLIENT) and not flags & ~_KNOWN_FLAGS and (
        HEADER_SIZE <= length <= MAX_MESSAGE
    )


class Responder:
    """Splits one connection's stream into sockperf messages and produces the replies.

    `feed(view)` returns (reply bytes to write or None, bytes left unconsumed: a partial
    message waits for the rest). The reply buffer is reused: write it before the next call.
    """

    __slots__ = ("_out", "messages")

    def __init__(self) -> None:
        self._out = bytearray(MAX_MESSAGE * 4)
        self.messages = 0

    def feed(self, data: memoryview) -> tuple[memoryview | None, int]:
        off = 0
        end = len(data)
        out = self._out
        used = 0
        unpack = HEADER.unpack_from
        while end - off >= HEADER_SIZE:
            seq, flags, length = unpack(data, off)
            if length < HEADER_SIZE or length > MAX_MESSAGE:
                raise ValueError(f"not a sockperf message (length {length})")
            if end - off < length:
                break
            if flags & FLAG_PONG_REQUEST:
                if used + length > len(out):
                    break  # write these replies first; the rest comes back next time
                out[used:used + length] = data[off:off + length]
                HEADER.pack_into(out, used, seq, flags & ~FLAG_CLIENT, length)
                used += length
            self.messages += 1
            off += length
        return (memoryview(out)[:used] if used else None), end - off


def which() -> str | None:
    return shutil.which("sockperf")


_LINE = re.compile(
    r"--->\s+(?:<(MAX|MIN)>\s+observation|percentile\s+([\d.]+))\s*=\s*([\d.]+)"
)
_AVG = re.compile(r"avg-(?:latency|rtt)=\s*([\d.]+)\s*\(std-dev=([\d.]+)")
_COUNT = re.compile(r"\[Valid Duration\].*?SentMessages=(\d+);\s*ReceivedMessages=(\d+)")
_DURATION = re.compile(r"\[Valid Duration\]\s*RunTime=([\d.]+)\s*sec")


def parse_report(text: str) -> dict[str, object]:
    """sockperf ping-pong's summary: ladder (µs), avg, stddev, count, runtime."""
    ladder: dict[str, float] = {}
    for m in _LINE.finditer(text):
        label = m.group(1).lower() if m.group(1) else m.group(2).rstrip("0").rstrip(".")
        ladder[label] = float(m.group(3))
    avg = _AVG.search(text)
    count = _COUNT.search(text)
    runtime = _DURATION.search(text)
    if not ladder or avg is None:
        raise ValueError("no latency summary in sockperf's output")
    return {
        "ladder": ladder,
        "mean": float(avg.group(1)),
        "stddev": float(avg.group(2)),
        "count": int(count.group(2)) if count else 0,
        "elapsed_s": float(runtime.group(1)) if runtime else 0.0,
    }


def server_cmd(ip: str, port: int, cpu: int | None, nonblocked: bool = True) -> list[str]:
    cmd = ["sockperf", "server", "--tcp", "-i", ip, "-p", str(port)]
    if nonblocked:
        cmd.append("--nonblocked")
    return _pinned(cmd, cpu)


def client_cmd(ip: str, port: int, size: int, seconds: float, cpu: int | None,
               mps: int = 0, nonblocked: bool = True, extra: Sequence[str] = ()) -> list[str]:
    cmd = ["sockperf", "ping-pong", "--tcp", "-i", ip, "-p", str(port),
           "-m", str(max(size, HEADER_SIZE)), "-t", str(max(1, round(seconds)))]
    if nonblocked:
        cmd.append("--nonblocked")
    cmd += ["--mps", str(mps)] if mps else ["--mps", "max"]
    return _pinned([*cmd, *extra], cpu)


def _pinned(cmd: list[str], cpu: int | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


def run(cmd: Sequence[str], timeout: float) -> str:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip()[-300:]}")
    return r.stdout + r.stderr
