"""`pollnet bench`: latency (sockperf's ladder), throughput, connection rate, idle poll
cost and memory per connection, every backend side by side in one run.

With no arguments it picks the best this machine allows: as root a private namespace pair
on a veth and every row that works there; otherwise loopback and the sim link.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from pollnet.bench import netns
from pollnet.bench.report import PLOT_MISSING, have_matplotlib, plot, table, write_full_log
from pollnet.bench.results import BenchError, Params, Report
from pollnet.bench.rows import MATRIX, MODES, Row, RowSpecError, default_rows, parse_row, parse_rows
from pollnet.bench.runner import Bench

from .common import RuntimeProblem


def _parse_rows(ctx: click.Context, param: click.Parameter, value: str | None) -> list[Row] | None:
    if value is None:
        return None
    try:
        return parse_rows(value)
    except RowSpecError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _efvi_knobs(items: tuple[str, ...]) -> dict[str, Any]:
    """--efvi KNOB=VALUE pairs, checked against the [efvi] config model. VALUE is read as
    the environment overrides are (JSON when it parses: `delayed_ack_ms=0` is the int 0);
    a dotted KNOB sets a field of a sub-section (`sim.loss=0.01`)."""
    from pydantic import ValidationError

    from pollnet.config import EfviOptions, text_value

    knobs: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KNOB=VALUE", param_hint="--efvi")
        if key in ("link", "interface", "local_ip"):
            raise click.BadParameter(f"{key} is chosen per row", param_hint="--efvi")
        *path, leaf = key.strip().split(".")
        where = knobs
        for part in path:
            where = where.setdefault(part, {})
            if not isinstance(where, dict):
                raise click.BadParameter(f"{key}: {part} is not a section", param_hint="--efvi")
        where[leaf] = text_value(value.strip())
    try:
        checked = EfviOptions(**knobs)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise click.BadParameter(f"{loc}: {first['msg']}", param_hint="--efvi") from None
    dumped = checked.model_dump()
    return {k: dumped[k] for k in knobs}


class _Lines:
    """Progress as plain lines (stderr is not a terminal but --progress asked for it): a
    row's start, every tenth of it, its end."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.shown: dict[str, int] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        step = max(1, total // 10)
        last = self.shown.get(label)
        if last is not None and done < total and done - last < step:
            return
        self.shown[label] = done
        click.echo(f"bench {self.mode} {label}: {done:,}/{total:,}", err=True)


class _Bars:
    """One progress bar per row on stderr."""

    def __init__(self, bar: Progress, mode: str) -> None:
        self.bar = bar
        self.mode = mode
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.bar.add_task(f"{self.mode} {label}", total=total)
        self.bar.update(self.tasks[label], completed=done, total=total)


@click.command("bench")
@click.option("--backends", "rows", callback=_parse_rows, default=None, metavar="ROWS",
              help="Rows side by side, comma separated: socket, efvi:<link> (the efvitcp "
                   "API; links sim, af_packet, af_xdp, efvi), efvi-pollnet:<link> (the pollnet "
                   "API), native:<link> (the C loop), tcpdirect, sockperf, iperf3, python-busy, "
                   "asyncio, uvloop.")
@click.option("--backend", type=click.Choice(["socket", "efvi", "tcpdirect"]), default=None,
              help="One backend (efvi means efvi:sim); same as --backends NAME.")
@click.option("--matrix", is_flag=True,
              help="Every row there is; the ones that cannot run here show why.")
@click.option("--mode", type=click.Choice([*MODES, "all"]), default="latency",
              show_default=True, help="What to measure.")
@click.option("-n", "--count", type=click.IntRange(min=1, max=100_000_000), default=100_000,
              show_default=True, help="Round trips measured per row (latency).")
@click.option("-s", "--size", type=click.IntRange(min=1, max=65536), default=64,
              show_default=True, help="Bytes per message.")
@click.option("--warmup", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Round trips first, not measured (the first one is reported as 'cold').")
@click.option("--warmup-sec", type=click.FloatRange(min=0, max=3600), default=0.0,
              help="Also warm up for at least this many seconds.")
@click.option("-t", "--duration", type=click.FloatRange(min=0, max=3600), default=0.0,
              help="Stop each row after this many seconds (latency: or at --count).")
@click.option("--mps", type=click.IntRange(min=0, max=10_000_000), default=0,
              help="Messages per second (0: back to back).")
@click.option("--full-rtt", is_flag=True,
              help="Report the full round trip (default: half, as sockperf).")
@click.option("--streams", type=click.IntRange(min=1, max=1000), default=1, show_default=True,
              help="Connections for throughput (and memory) modes.")
@click.option("--peer", type=click.Choice(["pollnet", "sockperf"]), default="pollnet",
              show_default=True, help="Echo server: ours, or `sockperf server --tcp`.")
@click.option("--net", type=click.Choice(["auto", "netns", "loopback"]), default="auto",
              show_default=True,
              help="auto: a private veth namespace pair as root, else loopback.")
@click.option("--mtu", type=click.IntRange(min=576, max=9000), default=None,
              help="The veth's MTU at both ends (default 1500); e.g. 9000 for jumbo frames, "
                   "which raw:<link> rows measure beside 1,514 B ones.")
@click.option("--wide", is_flag=True,
              help="Every latency column (the whole ladder, samples, cold, msgs/s); the "
                   "default fits 100 columns.")
@click.option("--json", "as_json", is_flag=True,
              help="Print everything as JSON on stdout (with histograms).")
@click.option("--full-log", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write one CSV row per sample to FILE.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, writable=True),
              default=None, help="Latency-by-percentile plot to FILE.png (needs matplotlib).")
@click.option("--tcpdirect-library", default="libonload_zf.so", show_default=True,
              metavar="PATH", help="The TCPDirect library for the tcpdirect row (e.g. the "
              "look-alike libzf_shim.so of native/tcpdirect_shim).")
@click.option("--efvi", "efvi_knobs", multiple=True, metavar="KNOB=VALUE",
              help="An efvi knob for efvi/native rows, e.g. --efvi delayed_ack_ms=0 "
                   "(repeatable; any [efvi] config key).")
@click.option("--no-pin", is_flag=True, help="Do not pin client and server to separate CPUs.")
@click.option("--timeout", type=click.FloatRange(min=1, max=86400), default=300.0,
              show_default=True, help="Give up on a row after this many seconds.")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr (default: when stderr is a terminal).")
def bench(
    rows: list[Row] | None,
    backend: str | None,
    matrix: bool,
    mode: str,
    count: int,
    size: int,
    warmup: int,
    warmup_sec: float,
    duration: float,
    mps: int,
    full_rtt: bool,
    streams: int,
    peer: str,
    net: str,
    mtu: int | None,
    wide: bool,
    as_json: bool,
    full_log: str | None,
    plot_path: str | None,
    tcpdirect_library: str,
    efvi_knobs: tuple[str, ...],
    no_pin: bool,
    timeout: float,
    progress: bool | None,
) -> None:
    """Measure every backend side by side; each row's ratio is to the kernel socket row
    measured in the same run. Latency is reported as sockperf does (half round trip, µs)."""
    chosen = (rows is not None) + (backend is not None) + matrix
    if chosen > 1:
        raise click.UsageError("give one of --backends, --backend and --matrix")
    if plot_path is not None and not have_matplotlib():
        raise click.UsageError(PLOT_MISSING)
    if (full_log or plot_path) and mode != "latency":
        raise click.UsageError("--full-log and --plot need --mode latency")
    if peer == "sockperf" and size < 14:
        raise click.BadParameter("sockperf messages are at least 14 bytes (its header)",
                                 param_hint="--size")
    if mps and mode != "latency":
        raise click.UsageError("--mps paces ping-pong: it needs --mode latency")

    if matrix:
        selected = [parse_row(n) for n in MATRIX]
    elif backend is not None:
        selected = [parse_row("efvi:sim" if backend == "efvi" else backend)]
    elif rows is not None:
        selected = rows
    else:
        ok = net != "loopback" and netns.available()[0]
        selected = default_rows(ok)

    efvi = _efvi_knobs(efvi_knobs)
    modes = list(MODES) if mode == "all" else [mode]
    reports: list[Report] = []
    show = sys.stderr.isatty() if progress is None else progress
    err = Console(stderr=True)
    try:
        for m in modes:
            params = Params(mode=m, size=size, count=count, warmup=warmup,
                            warmup_sec=warmup_sec, duration=duration, mps=mps,
                            full_rtt=full_rtt, streams=streams, peer=peer, pin=not no_pin,
                            net=net, timeout=timeout, tcpdirect_library=tcpdirect_library,
                            efvi=efvi, mtu=mtu or 0)
            if show and not err.is_terminal:
                reports.append(Bench(params, _Lines(m)).run(selected))
                continue
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=err, transient=True,
                          disable=not show) as bar:
                reports.append(Bench(params, _Bars(bar, m)).run(selected))
    except BenchError as exc:
        raise RuntimeProblem(str(exc)) from None
    except netns.NetnsError as exc:
        raise RuntimeProblem(f"network namespaces: {exc}") from None
    except KeyboardInterrupt:
        netns.cleanup_all()
        err.print("interrupted: namespaces removed")
        sys.exit(130)

    if not matrix and rows is None and backend is None:
        # The default shows what works here; --matrix shows the rest with reasons.
        for rep in reports:
            rep.rows = [r for r in rep.rows if r.status != "unavailable"]
    if full_log:
        with open(full_log, "w", newline="") as f:
            write_full_log(reports[0], f)
    if plot_path:
        plot(reports[0], plot_path)
    if as_json:
        data = [r.as_dict() for r in reports]
        click.echo(json.dumps(data[0] if len(data) == 1 else {"reports": data}))
    else:
        out = Console(width=None if sys.stdout.isatty() else 230)
        for rep in reports:
            out.print(table(rep, wide))
    if all(r.status != "ok" for rep in reports for r in rep.rows):
        raise RuntimeProblem("no row could run: " + "; ".join(
            f"{r.row.name}: {r.reason}" for rep in reports for r in rep.rows))
    # A row that should have run and failed fails the command, in any mode (a row that
    # cannot run here is only "unavailable": its reason is in the table).
    failed = [(rep.params.mode, r) for rep in reports for r in rep.rows if r.status == "failed"]
    if failed:
        raise RuntimeProblem(f"{len(failed)} row(s) failed: " + "; ".join(
            f"{r.row.name} ({mode}): {r.reason}" for mode, r in failed))
