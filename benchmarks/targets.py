"""Issue 6's targets, each a ratio measured in one invocation, repeated R times (the
machine is noisy: every repetition is printed, and the median decides met/missed).

    python benchmarks/targets.py [-r 3] [-n 100000] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def bench(*args: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pollnet", "bench", "--json", "--no-progress", *args]
    print("+", " ".join(cmd), file=sys.stderr)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode not in (0, 1):
        raise SystemExit(f"pollnet bench failed:\n{r.stderr}")
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def row(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    for r in data["rows"]:
        if r["row"] == name and r["status"] == "ok":
            return r  # type: ignore[no-any-return]
    return None


def lat(data: dict[str, Any], name: str, key: str) -> float | None:
    r = row(data, name)
    return None if r is None else float(r["latency"]["ladder"][key])


def fig(data: dict[str, Any], name: str, key: str) -> float | None:
    r = row(data, name)
    return None if r is None or key not in r.get("figures", {}) else float(r["figures"][key])


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def native_allocs() -> str:
    subprocess.run(["make", "-s", "-C", str(HERE / "native")], check=False,
                   capture_output=True)
    exe = HERE / "native" / "build" / "alloc_check"
    if not exe.exists():
        return "not built"
    r = subprocess.run([str(exe), "100000", "pipe"], capture_output=True, text=True,
                       timeout=300)
    return r.stdout.splitlines()[0] if r.stdout else r.stderr.strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-r", "--repeat", type=int, default=3)
    ap.add_argument("-n", "--count", default="100000")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    runs: dict[str, list[float | None]] = {k: [] for k in (
        "T1 efvi-pollnet:af_xdp p50 / socket p50 (<= 0.8)",
        "T1 efvi-pollnet:af_xdp p99 / socket p99 (<= 1.0)",
        "T1' efvi:af_xdp (efvitcp API) p50 / socket p50 (<= 0.8)",
        "T1' efvi:af_xdp (efvitcp API) p99 / socket p99 (<= 1.0)",
        "T2 native:af_xdp p50 / sockperf p50 (<= 0.7)",
        "T3 idle poll efvi:sim, Python API, ns (<= 150)",
        "T3 idle poll efvi:sim, pn_poll in C, ns (<= 150)",
        "T5 efvi:af_xdp MB/s / iperf3 MB/s, one stream (>= 0.8)",
        "T5 efvi:af_xdp MB/s / socket MB/s, one stream (>= 0.8)",
    )}
    keys = list(runs)
    for _ in range(args.repeat):
        d = bench("--backends", "socket,efvi-pollnet:af_xdp,efvi:af_xdp,native:af_xdp,sockperf",
                  "-n", args.count)
        runs[keys[0]].append(ratio(lat(d, "efvi-pollnet:af_xdp", "50"), lat(d, "socket", "50")))
        runs[keys[1]].append(ratio(lat(d, "efvi-pollnet:af_xdp", "99"), lat(d, "socket", "99")))
        runs[keys[2]].append(ratio(lat(d, "efvi:af_xdp", "50"), lat(d, "socket", "50")))
        runs[keys[3]].append(ratio(lat(d, "efvi:af_xdp", "99"), lat(d, "socket", "99")))
        runs[keys[4]].append(ratio(lat(d, "native:af_xdp", "50"), lat(d, "sockperf", "50")))
        i = bench("--mode", "idle", "--backends", "efvi:sim", "--net", "loopback")
        runs[keys[5]].append(fig(i, "efvi:sim", "ns_per_poll"))
        runs[keys[6]].append(fig(i, "efvi:sim", "native_ns_per_poll"))
        t = bench("--mode", "throughput", "--backends", "socket,efvi:af_xdp,iperf3",
                  "-s", "16384", "-t", "2")
        runs[keys[7]].append(ratio(fig(t, "efvi:af_xdp", "mb_per_s"), fig(t, "iperf3", "mb_per_s")))
        runs[keys[8]].append(ratio(fig(t, "efvi:af_xdp", "mb_per_s"), fig(t, "socket", "mb_per_s")))

    def verdict(name: str, med: float) -> str:
        bound = float(name.rsplit(" ", 1)[1].strip("()<=> "))
        ok = med >= bound if ">=" in name else med <= bound
        return "met" if ok else "missed"

    lines = ["| target | runs | median | verdict |", "|---|---|---:|---|"]
    for name, vals in runs.items():
        got = [v for v in vals if v is not None]
        if not got:
            lines.append(f"| {name} | n/a | - | not measurable here |")
            continue
        med = statistics.median(got)
        shown = ", ".join(f"{v:.2f}" for v in got)
        lines.append(f"| {name} | {shown} | {med:.2f} | {verdict(name, med)} |")
    lines.append(f"| T4 allocations per message in the core (0) | {native_allocs()} | | |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "targets.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
