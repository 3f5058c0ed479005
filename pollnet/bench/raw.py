"""raw:<link> rows: a link's frame capacity with no TCP, so that every throughput figure
can be read against its physical limit. Both sides run in bench workers, as the other
rows do: the server opens the link on its side of the veth and counts the UDP frames that
arrive (`pn_bench_raw_sink`); the client opens its link and sends as fast as the transmit
ring takes them (`pn_bench_raw_send`), at 1,514 B (a 1,500 B MTU's full frame) and at the
largest frame the link carries here, for half the duration each. The frames are the
link's own: the same rings, kicks and copies the stack's segments pay, without the stack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pollnet.bench.spec import WorkerSpec

PORT = 9            # UDP discard, at both ends
ETH_HLEN = 14
STANDARD_FRAME = 1514  # what a 1,500 B MTU carries


def _open(spec: WorkerSpec, side: str) -> Any:
    """The link of this side of the veth, as the row's TCP stacks would open it."""
    from pollnet.backends.efvi.link.open import open_link
    from pollnet.bench.sides import efvi_options

    opts = efvi_options(spec, side)
    return open_link(opts, wire=None, local_ip=opts.local_ip)


def frame_sizes(mtu: int) -> list[int]:
    """1,514 B (or the whole frame a smaller MTU allows) and the largest frame."""
    largest = mtu + ETH_HLEN
    return sorted({min(STANDARD_FRAME, largest), largest})


def serve(spec: WorkerSpec, ready: Callable[[str], None], stopped: Callable[[], bool]
          ) -> dict[str, Any]:
    """Count what arrives until stopped; the counts per frame size."""
    from pollnet.backends.efvi.core import binding as _core

    ffi, lib = _core.require()
    link = _open(spec, "server")
    try:
        ready(f"{spec.server_ip} {PORT} {link.mac.hex(':')} {link.mtu}")
        out = ffi.new("pn_bench_raw_sink_result *")
        while not stopped():
            if lib.pn_bench_raw_sink(link.ptr, PORT, 200_000_000, out) < 0:
                raise RuntimeError(f"raw sink: {link.last_error() or 'link error'}")
        return {"received": [_core.struct_dict("pn_bench_raw_result", r)
                             for r in out.size if r.frames],
                "other_frames": int(out.other_frames)}
    finally:
        link.close()


def send(spec: WorkerSpec) -> dict[str, Any]:
    """Send at each frame size for its share of duration_ns; what went out per size."""
    from pollnet.backends.efvi.core import binding as _core

    ffi, lib = _core.require()
    link = _open(spec, "client")
    try:
        sizes = frame_sizes(min(link.mtu, spec.peer_mtu or link.mtu))
        p = ffi.new("pn_bench_raw_params *")
        p.dst_mac = bytes.fromhex(spec.peer_mac.replace(":", ""))
        p.port = PORT
        p.src_ip = _core.ip_to_int(spec.client_ip)
        p.dst_ip = _core.ip_to_int(spec.server_ip)
        p.duration_ns = (spec.duration_ns or 2_000_000_000) // len(sizes)
        sent = []
        for size in sizes:
            p.frame_len = size
            res = ffi.new("pn_bench_raw_result *")
            rc = lib.pn_bench_raw_send(link.ptr, p, res)
            if rc < 0:
                raise RuntimeError(f"raw send of {size} B frames on {link.describe()}: "
                                   f"{_core.c_string(lib.pn_strerror(rc))}"
                                   f" {link.last_error()}".rstrip())
            sent.append(_core.struct_dict("pn_bench_raw_result", res))
            p.first_seq = p.first_seq + res.frames
        return {"sent": sent, "link_stats": link.stats()}
    finally:
        link.close()


def figures(sent: list[dict[str, int]], received: list[dict[str, int]]) -> dict[str, float]:
    """The row's figures: per frame size, what arrived per second (the capacity) and what
    was lost; `mb_per_s` and `frames_per_s` are the 1,514 B ones (or the smallest size)."""
    got = {r["frame_len"]: r for r in received}
    out: dict[str, float] = {}
    for i, s in enumerate(sent):
        size = s["frame_len"]
        r = got.get(size, {})
        span = (r.get("last_ns", 0) - r.get("first_ns", 0)) / 1e9
        frames = r.get("frames", 0)
        rate = (frames - 1) / span if span > 0 and frames > 1 else 0.0
        key = "" if i == 0 else "max_frame_"
        out["max_frame_len" if i else "frame_len"] = float(size)
        out[f"{key}frames_per_s"] = rate
        out[f"{key}mb_per_s"] = rate * size / 1e6
        out[f"{key}sent_frames"] = float(s["frames"])
        out[f"{key}lost_frames"] = float(max(0, s["frames"] - frames))
        out[f"{key}tx_ring_full"] = float(s["tx_ring_full"])
    return out
