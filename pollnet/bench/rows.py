"""What a bench row is (`socket`, `efvi:af_xdp`, `native:sim`, `tcpdirect`, `sockperf`)
and whether it can run here; when it cannot, the reason replaces its numbers."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from pollnet.bench import pyloops, sockperf

MODES = ("latency", "throughput", "connect", "idle", "overhead", "memory")


@dataclass(frozen=True)
class RowKind:
    """What one kind of row is: whether it runs our stack (and so takes `:<link>`), at
    which API level, which modes it measures (and why not the others), whether it
    brings its own peer (then --peer sockperf does not apply), and how its server and
    client start: `worker` (our bench worker on each side, or one for the sim wire),
    `sockperf` or `iperf3` (the outside tool on both sides), `raw` (our workers sending
    and counting frames on the link, no TCP: pollnet/bench/raw.py)."""

    name: str
    stack: bool = False       # our TCP stack on a link: `:<link>` (default sim), [efvi]
    efvitcp: bool = False     # driven at the efvitcp level (TcpClient/TcpServer or C)
    modes: tuple[str, ...] = MODES
    only_why: str = ""        # why the modes it lacks are not measured
    own_peer: bool = False
    label: str = "{name}"     # its table label ({name}, {link})
    driver: str = "worker"    # worker | sockperf | iperf3 | raw: Bench.driver()


ROW_KINDS: dict[str, RowKind] = {k.name: k for k in (
    RowKind("socket"),
    RowKind("efvi", stack=True, efvitcp=True),
    RowKind("efvi-pollnet", stack=True, label="efvi:{link} (pollnet API)"),
    RowKind("native", stack=True, efvitcp=True, modes=("latency",), own_peer=True,
            label="native loop:{link}",
            only_why="the native loop measures latency (ping-pong in C); efvi:<link> rows "
                     "measure this mode, and their idle figures include pn_poll in C"),
    RowKind("tcpdirect"),
    RowKind("sockperf", modes=("latency",), only_why="sockperf rows measure latency only",
            label="sockperf (kernel)", driver="sockperf"),
    RowKind("iperf3", modes=("throughput",), own_peer=True, driver="iperf3",
            only_why="iperf3 rows measure throughput only"),
    *(RowKind(k, modes=("latency",), own_peer=True, only_why=f"{k} rows measure latency only")
      for k in pyloops.KINDS),
    RowKind("raw", stack=True, modes=("throughput",), own_peer=True, driver="raw",
            label="raw frames:{link}",
            only_why="raw rows measure a link's frame capacity (--mode throughput)"),
)}
KINDS = tuple(ROW_KINDS)
LINKS = ("sim", "af_packet", "af_xdp", "efvi")
REAL_LINKS = ("af_packet", "af_xdp")
# Everything --matrix tries, in table order (the socket baseline first).
MATRIX = (
    "socket",
    "efvi:af_xdp",
    "efvi:af_packet",
    "efvi:sim",
    "efvi:efvi",
    "efvi-pollnet:af_xdp",
    "efvi-pollnet:af_packet",
    "efvi-pollnet:sim",
    "tcpdirect",
    "native:af_xdp",
    "native:af_packet",
    "native:sim",
    "sockperf",
    "iperf3",
    "raw:af_xdp",
    "raw:af_packet",
    "python-busy",
    "asyncio",
    "uvloop",
)


class RowSpecError(ValueError):
    """A --backends entry that names nothing we know."""


@dataclass(frozen=True)
class Row:
    name: str  # as the user wrote it, normalised
    kind: str
    link: str | None = None

    @property
    def needs_netns(self) -> bool:
        return self.link in REAL_LINKS or self.link == "efvi"

    @property
    def in_process(self) -> bool:
        """Client and server share one process (the sim wire)."""
        return self.link == "sim"

    @property
    def spec(self) -> RowKind:
        return ROW_KINDS[self.kind]

    @property
    def label(self) -> str:
        return self.spec.label.format(name=self.name, link=self.link)


def parse_rows(text: str) -> list[Row]:
    rows: list[Row] = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        rows.append(parse_row(item))
    if not rows:
        raise RowSpecError("no rows given: e.g. --backends socket,efvi:sim")
    names = [r.name for r in rows]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise RowSpecError(f"row {sorted(dup)[0]!r} given twice")
    return rows


def parse_row(item: str) -> Row:
    kind, _, link = item.partition(":")
    if kind not in KINDS:
        raise RowSpecError(
            f"unknown row {item!r}: rows are socket, efvi:<link>, efvi-pollnet:<link>, "
            f"native:<link>, raw:<link>, tcpdirect, sockperf, iperf3, python-busy, asyncio, "
            f"uvloop "
            f"(links: {', '.join(LINKS)})")
    if ROW_KINDS[kind].stack:
        link = link or "sim"
        if link not in LINKS:
            raise RowSpecError(f"unknown link {link!r} in {item!r}; links: {', '.join(LINKS)}")
        return Row(f"{kind}:{link}", kind, link)
    if link:
        raise RowSpecError(f"{kind!r} takes no link (got {item!r})")
    return Row(kind, kind)


def unavailable_reason(row: Row, netns: bool, netns_why: str = "",
                       tcpdirect_library: str = "libonload_zf.so") -> str:
    """Why `row` cannot run here ("" when it can)."""
    if row.kind == "socket":
        return ""
    if row.kind in pyloops.KINDS:
        return pyloops.unavailable(row.kind)
    if row.kind == "sockperf":
        if sockperf.which() is None:
            return "sockperf is not installed (apt-get install sockperf)"
        return ""
    if row.kind == "iperf3":
        return "" if shutil.which("iperf3") else "iperf3 is not installed (apt-get install iperf3)"
    if row.kind == "tcpdirect":
        from pollnet.probe import probe_all

        probe = next(p for p in probe_all(tcpdirect_library) if p.name == "tcpdirect")
        return "" if probe.available else probe.detail
    # efvi / native: the compiled core first.
    from pollnet.backends.efvi.core import binding as _core

    if not _core.available():
        return f"the native core is not built ({_core.LOAD_ERROR}); pip install -e ."
    if row.kind == "efvi-pollnet":
        from pollnet.errors import PollnetError
        from pollnet.factory import backend_module

        try:
            mod = backend_module("efvi")
        except PollnetError as exc:
            return f"the efvi pollnet-level adapter does not load: {exc}"
        if not hasattr(mod, "create_client"):
            return "the efvi pollnet-level adapter is not there yet"
    if row.kind == "raw" and row.link == "sim":
        return ("the sim wire is memory, not a NIC: raw rows measure a real link's capacity "
                "(raw:af_xdp, raw:af_packet)")
    if row.kind == "native" and not _core.has("pn_bench_pingpong"):
        return "this build of the core has no bench loop (native/src/bench_loop.c)"
    if row.link == "efvi":
        from pollnet.probe import solarflare_interfaces

        nics = solarflare_interfaces()
        return ("the efvi link is not implemented in this build" if nics
                else "no Solarflare NIC here (the efvi link needs ef_vi hardware)")
    if row.link in REAL_LINKS:
        fn = {"af_packet": "pn_af_packet_link_create", "af_xdp": "pn_af_xdp_link_create"}
        if not _core.has(fn[row.link]):
            return f"the core was built without the {row.link} link (native/build_links.py)"
        if not netns:
            return netns_why or "needs a private veth between network namespaces (run as root)"
    return ""


def default_rows(netns: bool) -> list[Row]:
    """`pollnet bench` with no arguments: every row that makes sense on this net."""
    if netns:
        names = ["socket", "efvi-pollnet:af_xdp", "efvi:af_xdp", "efvi:af_packet", "efvi:sim",
                 "tcpdirect", "native:af_xdp", "native:af_packet", "native:sim", "sockperf",
                 *pyloops.KINDS]
    else:
        names = ["socket", "efvi-pollnet:sim", "efvi:sim", "tcpdirect", "native:sim", "sockperf",
                 *pyloops.KINDS]
    if os.environ.get("POLLNET_BENCH_ROWS"):
        return parse_rows(os.environ["POLLNET_BENCH_ROWS"])
    return [parse_row(n) for n in names]
