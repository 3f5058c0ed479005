"""Regenerates benchmarks/RESULTS.md and the README's performance table.

    python benchmarks/run_all.py            # full run (about 2 minutes)
    python benchmarks/run_all.py --quick    # fewer samples (a smoke run)
    python benchmarks/run_all.py --no-readme

Every figure comes from `pollnet bench --json` (one invocation per mode, so each table's
ratios are to the socket row of the same run) plus `benchmarks/native/alloc_check`
(allocations and C round trip of the core on a fixed-ring link). The raw JSON of each run
is kept next to RESULTS.md in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
RAW = HERE / "results"
README = ROOT / "README.md"
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"

LATENCY_ROWS = ("socket,efvi-pollnet:af_xdp,efvi:af_xdp,efvi:af_packet,efvi:sim,native:af_xdp,"
                "native:af_packet,native:sim,sockperf,python-busy,asyncio,uvloop,tcpdirect,"
                "efvi:efvi")
THROUGHPUT_ROWS = "socket,efvi:af_xdp,efvi:af_packet,efvi:sim,iperf3"
MODE_ROWS = "socket,efvi:af_xdp,efvi:af_packet,efvi:sim"


REUSE = False  # --from-json: rebuild the tables from benchmarks/results/ without running


def bench(name: str, *args: str) -> dict[str, Any]:
    if REUSE:
        return json.loads((RAW / f"{name}.json").read_text())  # type: ignore[no-any-return]
    cmd = [sys.executable, "-m", "pollnet", "bench", "--json", "--no-progress", *args]
    print("+", " ".join(cmd), file=sys.stderr)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode not in (0, 1):
        raise SystemExit(f"{name}: pollnet bench failed:\n{r.stderr}")
    data: dict[str, Any] = json.loads(r.stdout)
    RAW.mkdir(exist_ok=True)
    (RAW / f"{name}.json").write_text(json.dumps(data, indent=1))
    return data


def shim_library() -> str:
    """The TCPDirect look-alike (native/tcpdirect_shim), built into benchmarks/native/build."""
    out = HERE / "native" / "build"
    if REUSE:
        return str(out / "libzf_shim.so")
    r = subprocess.run(["sh", str(ROOT / "native" / "tcpdirect_shim" / "build.sh"), str(out)],
                       capture_output=True, text=True)
    return r.stdout.strip().splitlines()[-1] if r.returncode == 0 and r.stdout.strip() else ""


def native_check() -> str:
    make = subprocess.run(["make", "-s", "-C", str(HERE / "native")], capture_output=True,
                          text=True)
    if make.returncode != 0:
        return f"(native check not built: {make.stderr.strip()[-200:]})"
    exe = HERE / "native" / "build" / "alloc_check"
    out = []
    for link in ("pipe", "sim", "sim-faults"):
        r = subprocess.run([str(exe), "200000", link], capture_output=True, text=True,
                           timeout=300)
        out.append(r.stdout.strip())
    return "\n".join(out)


def fmt(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def latency_table(data: dict[str, Any]) -> str:
    head = ("| row | samples | mean | stddev | MAX | 99.999 | 99.99 | 99.9 | 99 | 90 | 75 | 50 "
            "| 25 | MIN | cold | xsocket p50 | xsocket p99 |\n|---|" + "---:|" * 16)
    lines = [head]
    notes = []
    for r in data["rows"]:
        if r["status"] != "ok":
            notes.append(f"{r['label']}: {r.get('reason', '')}")
            lines.append(f"| {r['label']} | n/a ({len(notes)}) |" + " |" * 15)
            continue
        s = r["latency"]
        lad = s["ladder"]
        ratio = r.get("ratio_to_socket", {})
        ladder = " | ".join(f"**{fmt(lad[k])}**" if k == "50" else fmt(lad[k], 1 if k == "max"
                                                                      else 2)
                           for k in ("max", "99.999", "99.99", "99.9", "99", "90", "75", "50",
                                     "25", "min"))
        lines.append(
            f"| {r['label']} | {s['count']:,} | {fmt(s['mean'])} | {fmt(s['stddev'])} | "
            f"{ladder} | {fmt(s['cold'])} | {fmt(ratio.get('p50'))} | "
            f"{fmt(ratio.get('p99'))} |")
    lines += [""] + [f"({i}) {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines)


def figures_table(data: dict[str, Any], cols: list[tuple[str, str, int]]) -> str:
    lines = ["| row | " + " | ".join(c[0] for c in cols) + " | xsocket |",
             "|---|" + "---:|" * (len(cols) + 1)]
    for r in data["rows"]:
        if r["status"] != "ok":
            lines.append(f"| {r['label']} | n/a: {r.get('reason', '')} |" + " |" * len(cols))
            continue
        f = r.get("figures", {})
        ratio = next(iter(r.get("ratio_to_socket", {}).values()), None)
        cells = [fmt(f.get(key), d) for _, key, d in cols]
        lines.append(f"| {r['label']} | " + " | ".join(cells) + f" | {fmt(ratio)} |")
    return "\n".join(lines)


def machine_line(data: dict[str, Any]) -> str:
    m = data["machine"]
    net = data["network"]
    return (f"{m['cpu'] or 'unknown CPU'}, {m['cpus']} CPUs, Linux {m['kernel']}, "
            f"Python {m['python']}; network: {net.get('rtt', net.get('kind'))}. "
            f"Measured {data['date']}.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--from-json", action="store_true",
                    help="rebuild RESULTS.md and the README table from benchmarks/results/")
    args = ap.parse_args()
    global REUSE
    REUSE = args.from_json
    n = "20000" if args.quick else "200000"
    t = "1" if args.quick else "3"
    lat = bench("latency", "--backends", LATENCY_ROWS, "-n", n)
    lat_full = bench("latency_sockperf_peer", "--peer", "sockperf", "--backends",
                     "socket,efvi:af_xdp,efvi:af_packet", "-n", n)
    thr = bench("throughput", "--mode", "throughput", "--backends", THROUGHPUT_ROWS,
                "-s", "16384", "-t", t)
    idle = bench("idle", "--mode", "idle", "--backends", MODE_ROWS)
    over = bench("overhead", "--mode", "overhead", "--backends", MODE_ROWS, "-n", n)
    conn = bench("connect", "--mode", "connect", "--backends", MODE_ROWS, "-t", "1")
    mem = bench("memory", "--mode", "memory", "--backends", MODE_ROWS)
    shim = shim_library()
    td = (bench("latency_tcpdirect_lookalike", "--backends", "socket,tcpdirect",
                "--tcpdirect-library", shim, "-n", n) if shim else None)
    native = (RAW / "alloc_check.txt").read_text() if REUSE else native_check()
    RAW.mkdir(exist_ok=True)
    (RAW / "alloc_check.txt").write_text(native)

    main_table = latency_table(lat)
    td_section = ""
    if td is not None:
        td_section = (
            "### tcpdirect through the look-alike library\n\n"
            "No TCPDirect here: `native/tcpdirect_shim`'s `libzf_shim.so` implements the "
            "TCPDirect API over kernel sockets, so this row shows the tcpdirect backend's "
            "Python/cffi cost on top of the kernel, not TCPDirect's speed.\n\n"
            f"{latency_table(td)}\n\n")
    doc = f"""# pollnet performance

Regenerate with `python benchmarks/run_all.py` (raw JSON in `benchmarks/results/`).

**Machine**: {machine_line(lat)}

Caveat: measured on a shared 2-vCPU KVM guest while other jobs ran; tails (99.9 and up)
and run-to-run ratios move by tens of percent. Every table's ratios are to the socket row
of the *same* run. Client and server are pinned to different CPUs.

## Latency: 64 B ping-pong, half round trip (µs), sockperf's ladder

`pollnet bench --backends {LATENCY_ROWS} -n {n}`

{main_table}

Rows: `socket` = the pollnet API on kernel TCP; `efvi:<link>` = our TCP stack through
the Python API (efvitcp level) on that link, both ends; `native loop:<link>` = the same
stack driven by the C loop of `native/src/bench_loop.c` (no Python per message), both
ends; `sockperf (kernel)` = `sockperf ping-pong --tcp --nonblocked` against `sockperf
server --tcp --nonblocked`, kernel to kernel.

### Against a kernel sockperf server (`--peer sockperf`)

{latency_table(lat_full)}

{td_section}## Throughput: one stream, 16 KiB writes, one direction (MB/s)

`pollnet bench --mode throughput --backends {THROUGHPUT_ROWS} -s 16384 -t {t}`

{figures_table(thr, [("MB/s", "mb_per_s", 1), ("msgs/s", "msgs_per_s", 0),
                     ("srtt µs (stack)", "srtt_us", 0), ("retransmits", "retrans_segs", 0)])}

## Idle poll cost (ns per poll with nothing to do)

{figures_table(idle, [("Python API", "ns_per_poll", 1), ("pn_poll in C", "native_ns_per_poll", 1)])}

## Per-message Python overhead (API p50 - C p50, half round trip)

{figures_table(over, [("API p50 µs", "api_p50_half_us", 3), ("C p50 µs", "c_p50_half_us", 3),
                      ("Python ns/msg", "overhead_ns_per_msg", 0)])}

## Connection setup rate

{figures_table(conn, [("conn/s", "conn_per_s", 0)])}

## Memory per connection

{figures_table(mem, [("Python heap B", "python_bytes_per_conn", 0),
                     ("kernel B", "kernel_bytes_per_conn", 0),
                     ("stack arena B", "native_bytes_per_conn", 0)])}

## Allocations per message in the core

`benchmarks/native/build/alloc_check 200000 pipe|sim|sim-faults` (two stacks in one thread,
`pn_bench_pingpong`, malloc/free wrapped by the linker):

```
{native}
```
"""
    targets = RAW / "targets.md"
    if targets.exists():
        doc += ("\n## Issue 6's targets (`python benchmarks/targets.py -r 3 --markdown`)\n\n"
                "Each ratio measured within one invocation, three invocations; the median "
                "decides.\n\n" + targets.read_text())
    RESULTS.write_text(doc)
    print(f"wrote {RESULTS}", file=sys.stderr)
    if not args.no_readme and README.exists():
        text = README.read_text()
        thr_table = figures_table(thr, [("MB/s", "mb_per_s", 1)])
        block = (f"{START}\n_{machine_line(lat)}_ (see benchmarks/RESULTS.md)\n\n"
                 "Latency, 64 B ping-pong, half round trip (µs). The `:sim` rows run client and "
                 "server in one process over the in-process sim wire, not the veth the other "
                 "rows cross: compare them with each other, not with the socket row.\n\n"
                 f"{main_table}\n\n"
                 "Bulk transfer beside it, one stream, 16 KiB writes (MB/s): our stack moves a "
                 "fraction of what the kernel moves over the same veth (issue 14 is on it).\n\n"
                 f"{thr_table}\n{END}")
        if START in text and END in text:
            text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text,
                          flags=re.S)
        else:
            text += ("\n## Performance\n\n`pollnet bench` (no arguments) measures this.\n\n"
                     f"{block}\n")
        README.write_text(text)
        print(f"updated {README}", file=sys.stderr)


if __name__ == "__main__":
    main()
