"""Python memory per message through the pollnet API, measured with tracemalloc: client
and server in one thread (the pairs of callgrind_inprocess.py), N round trips after a
warm-up, then what stayed allocated (blocks and bytes, total and per message) and the
peak above the start (what a message needs while it is handled: its memoryview).

    python benchmarks/allocs_per_message.py [ROW ...] [-n N]     # default: every row, 1,000,000

Rows: socket, efvi:sim, efvi-pollnet:sim, tcpdirect (see callgrind_inprocess.py).
POLLNET_PURE_PYTHON=1 measures the Python per-message path instead of the compiled one.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from callgrind_inprocess import pair, path_name, round_trips, rows_and_count


def measure(row: str, n: int) -> str:
    p = pair(row)
    round_trips(p, 10_000)  # warm: every object a steady state needs exists now
    gc.collect()
    gc.disable()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    round_trips(p, n)
    _, peak = tracemalloc.get_traced_memory()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    # Not the messages': tracemalloc's own bookkeeping and this script's.
    mine = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    before, after = before.filter_traces(mine), after.filter_traces(mine)
    gc.enable()
    diff = [d for d in after.compare_to(before, "lineno") if d.count_diff or d.size_diff]
    blocks = sum(d.count_diff for d in diff)
    size = sum(d.size_diff for d in diff)
    lines = [f"{row} ({path_name()} per-message path), {n:,} round trips: {blocks:+,} blocks "
             f"{size:+,} bytes still allocated ({blocks / n:+.6f} blocks per round trip); "
             f"peak {peak - base:,} bytes above the start"]
    for d in sorted(diff, key=lambda d: -abs(d.size_diff))[:5]:
        lines.append(f"    {d}")
    return "\n".join(lines)


def main() -> None:
    rows, n = rows_and_count(sys.argv[1:], 1_000_000)
    for row in rows:
        print(measure(row, n), flush=True)


if __name__ == "__main__":
    main()
