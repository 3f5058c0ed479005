"""The bench's outputs: the side-by-side rich table, the sockperf-style ladder text, the
per-sample CSV and the percentile plot."""

from __future__ import annotations

import csv
import importlib
import importlib.util
import math
from typing import IO, Any

from rich.table import Table

from pollnet.bench.results import Report, RowResult
from pollnet.bench.stats import LADDER

FIGURE_COLUMNS = {
    "throughput": (("MB/s", "mb_per_s", "{:,.1f}"), ("msgs/s", "msgs_per_s", "{:,.0f}"),
                   ("streams", "streams", "{:.0f}"),
                   # raw:<link> rows: the largest frame the link carries, and its rate
                   ("largest frame B", "max_frame_len", "{:,.0f}"),
                   ("MB/s there", "max_frame_mb_per_s", "{:,.1f}")),
    "connect": (("conn/s", "conn_per_s", "{:,.0f}"), ("connections", "connections", "{:.0f}")),
    "idle": (("ns/poll (API)", "ns_per_poll", "{:,.1f}"),
             ("ns/poll (C)", "native_ns_per_poll", "{:,.1f}")),
    "overhead": (("API p50 µs", "api_p50_half_us", "{:,.3f}"),
                 ("C p50 µs", "c_p50_half_us", "{:,.3f}"),
                 ("Python ns/msg", "overhead_ns_per_msg", "{:,.0f}")),
    "memory": (("Python B/conn", "python_bytes_per_conn", "{:,.0f}"),
               ("kernel B/conn", "kernel_bytes_per_conn", "{:,.0f}"),
               ("arena B/conn", "native_bytes_per_conn", "{:,.0f}")),
}


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.3f}" if v < 100 else f"{v:,.1f}"


# The latency columns that fit a 100-column terminal (sockperf's summary shows as few);
# --wide and --json have the whole ladder.
NARROW_LADDER = ("99.9", "99", "50", "min")


def table(report: Report, wide: bool = False) -> Table:
    """The report as a rich table: rows by the name one types (`efvi-pollnet:af_xdp`)."""
    p = report.params
    net = report.network.get("rtt", report.network.get("kind", ""))
    if p.mode == "latency":
        title = (f"pollnet bench: ping-pong latency, {p.size} B messages, "
                 f"{'full' if p.full_rtt else 'half'} round trip (µs)"
                 + (", peer sockperf server" if p.peer == "sockperf" else ""))
    else:
        title = f"pollnet bench: {p.mode}, {p.size} B messages"
    notes = [f"[{i}] {r.row.name}: {'failed: ' if r.status == 'failed' else ''}{r.reason}"
             for i, r in enumerate((r for r in report.rows if r.status != "ok"), 1)]
    if p.mode == "overhead":
        notes.insert(0, "compared with: efvi rows (both API levels) the native loop on their "
                        "link; socket, tcpdirect and the Python rows sockperf")
    caption = "\n".join([f"{report.date_line()}; {net}", *notes])
    t = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    t.add_column("row", no_wrap=True)
    ladder = [lab for lab, _ in LADDER if wide or lab in NARROW_LADDER]
    if p.mode == "latency":
        heads = [*(lab.upper() if lab in ("max", "min") else lab for lab in ladder)]
        if wide:
            heads = ["samples", "mean", "stddev", *heads, "cold", "msgs/s", "x sock p50",
                     "x sock p99"]
        else:
            heads = ["mean", *heads, "x sock p50"]
        for head in heads:
            t.add_column(head, justify="right")
    else:
        for head, _, _ in FIGURE_COLUMNS[p.mode]:
            t.add_column(head, justify="right")
        t.add_column("x socket", justify="right")
    note = 0
    for r in report.rows:
        if r.status != "ok":
            note += 1
        t.add_row(*_cells(r, p.mode, note, ladder, wide))
    return t


def _cells(r: RowResult, mode: str, note: int, ladder: list[str], wide: bool) -> list[str]:
    label = r.row.name
    ncols = ((len(ladder) + (8 if wide else 2)) if mode == "latency"
             else len(FIGURE_COLUMNS[mode]) + 1)
    if r.status != "ok":
        why = ("n/a" if r.status == "unavailable" else "failed") + f" [{note}]"
        return [label, why] + [""] * (ncols - 1)
    if mode == "latency":
        s = r.latency
        assert s is not None
        ratio = [f"{r.ratio[k]:.2f}" if k in r.ratio else "-" for k in ("p50", "p99")]
        lad = [_fmt(s.ladder.get(lab)) for lab in ladder]
        if not wide:
            return [label, _fmt(s.mean), *lad, ratio[0]]
        return [label, f"{s.count:,}", _fmt(s.mean), _fmt(s.stddev), *lad, _fmt(s.cold),
                f"{s.msgs_per_sec:,.0f}", *ratio]
    cells = [label]
    for _, key, fmt in FIGURE_COLUMNS[mode]:
        v = r.figures.get(key)
        cells.append(fmt.format(v) if v is not None else "-")
    cells.append(f"{next(iter(r.ratio.values())):.2f}" if r.ratio else "-")
    return cells


def ladder_text(r: RowResult) -> str:
    """sockperf's own layout for one row (what its users read)."""
    s = r.latency
    if s is None:
        return f"{r.row.label}: {r.reason}"
    lines = [f"{r.row.label}: {s.count} observations, {s.rtt} round trip (µs)",
             f"  avg-latency={s.mean:.3f} (std-dev={s.stddev:.3f})"]
    for lab, _ in LADDER:
        name = f"<{lab.upper()}> observation" if lab in ("max", "min") else f"percentile {lab}"
        lines.append(f"  ---> {name} = {s.ladder[lab]:8.3f}")
    if s.cold is not None:
        lines.append(f"  first (cold) sample = {s.cold:.3f}")
    return "\n".join(lines)


def write_full_log(report: Report, out: IO[str]) -> int:
    """One CSV row per sample: row, index, rtt_ns, latency_us (as reported). Rows count."""
    w = csv.writer(out)
    w.writerow(["row", "index", "rtt_ns", "latency_us", "rtt"])
    n = 0
    half = not report.params.full_rtt
    for r in report.rows:
        if r.samples is None:
            continue
        name = r.row.name
        for i, v in enumerate(r.samples):
            w.writerow([name, i, v, f"{v / 2000 if half else v / 1000:.3f}",
                        "half" if half else "full"])
            n += 1
    return n


def have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


PLOT_MISSING = ("--plot needs matplotlib, an optional extra: pip install 'pollnet[plot]' "
                "(or pip install matplotlib)")


def plot(report: Report, path: str) -> None:
    """Latency by percentile on a log 'nines' axis, one line per row."""
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")

    fig, ax = plt.subplots(figsize=(9, 5))
    ticks = [0.0, 90.0, 99.0, 99.9, 99.99, 99.999]
    for r in report.rows:
        if r.samples is None or not len(r.samples):
            continue
        ordered = sorted(r.samples)
        n = len(ordered)
        scale = 1e-3 if report.params.full_rtt else 0.5e-3
        xs, ys = [], []
        j = 0
        while True:  # 20 points per "nine", then the maximum
            tail = 10 ** (-j / 20)
            rank = min(n, max(1, math.ceil((1 - tail) * n)))
            xs.append(1.0 / tail)
            ys.append(ordered[rank - 1] * scale)
            if rank >= n:
                break
            j += 1
        ax.plot(xs, ys, label=r.row.label)
    ax.set_xscale("log")
    ax.set_xticks([1.0 / (1.0 - t / 100.0) for t in ticks])
    ax.set_xticklabels([f"{t:g}%" for t in ticks])
    ax.set_xlabel("percentile")
    ax.set_ylabel(f"latency, {'full' if report.params.full_rtt else 'half'} round trip (µs)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(f"pollnet bench, {report.params.size} B ping-pong ({report.date_line()})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
