"""A short bench run per available row producing valid JSON, every mode once, and the
outputs (--full-log CSV). No test asserts a time: only shapes and counts."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pollnet.bench.rows import Row, parse_row, unavailable_reason
from pollnet.cli.main import cli

SHORT = ["-n", "300", "--warmup", "20", "--net", "loopback", "--timeout", "60"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _bench(runner: CliRunner, *args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(cli, ["bench", "--json", *args])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "pollnet-bench/1"
    return data  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "name", ["socket", "efvi:sim", "efvi-pollnet:sim", "native:sim", "tcpdirect", "sockperf",
             "python-busy", "asyncio", "uvloop"])
def test_short_latency_run_per_row(runner: CliRunner, name: str) -> None:
    why = unavailable_reason(parse_row(name), netns=False)
    if why:
        pytest.skip(f"{name}: {why}")
    data = _bench(runner, "--backends", name, *SHORT)
    (row,) = data["rows"]
    assert row["status"] == "ok", row
    lat = row["latency"]
    ladder = list(lat["ladder"].values())
    assert ladder == sorted(ladder, reverse=True)  # MAX down to MIN
    if name != "sockperf":
        assert lat["count"] == 300
        assert sum(b["count"] for b in lat["histogram"]["buckets"]) == 300
        assert lat["cold"] > 0


def test_python_rows_measure_latency_only(runner: CliRunner) -> None:
    data = _bench(runner, "--backends", "socket,python-busy", "--mode", "connect", "-t", "0.2",
                  *SHORT)
    assert data["rows"][1]["status"] == "unavailable"
    assert data["rows"][1]["reason"] == "python-busy rows measure latency only"


def test_a_missing_uvloop_is_a_reason_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    why = unavailable_reason(parse_row("uvloop"), netns=False)
    assert why == "uvloop is not installed: pip install 'pollnet[uvloop]'"


def test_unavailable_rows_carry_their_reason(runner: CliRunner) -> None:
    data = _bench(runner, "--backends", "socket,efvi:af_xdp", *SHORT)
    sock, xdp = data["rows"]
    assert sock["status"] == "ok" and sock["ratio_to_socket"]["p50"] == 1.0
    assert xdp["status"] == "unavailable" and xdp["reason"]
    assert "latency" not in xdp


@pytest.mark.parametrize("mode", ["throughput", "connect", "idle", "memory"])
def test_each_mode_on_socket(runner: CliRunner, mode: str) -> None:
    data = _bench(runner, "--backends", "socket", "--mode", mode, "-t", "0.2", *SHORT)
    (row,) = data["rows"]
    assert row["status"] == "ok", row
    assert row["figures"]
    assert data["params"]["mode"] == mode


@pytest.mark.parametrize("mode", ["throughput", "idle", "memory"])
def test_each_mode_on_sim(runner: CliRunner, mode: str) -> None:
    if unavailable_reason(parse_row("efvi:sim"), netns=False):
        pytest.skip("the native core is not built")
    data = _bench(runner, "--backends", "efvi:sim", "--mode", mode, "-t", "0.2", *SHORT)
    assert data["rows"][0]["status"] == "ok", data["rows"][0]


def test_full_log_has_one_row_per_sample(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    _bench(runner, "--backends", "socket", "--full-log", str(path), "--full-rtt", *SHORT)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 300
    assert rows[0]["row"] == "socket" and rows[0]["rtt"] == "full"
    assert float(rows[0]["latency_us"]) == pytest.approx(int(rows[0]["rtt_ns"]) / 1000,
                                                         abs=1e-3)


def test_mps_and_duration_and_warmup_seconds(runner: CliRunner) -> None:
    data = _bench(runner, "--backends", "socket", "--mps", "20000", "--warmup-sec", "0.05",
                  "-t", "0.05", *SHORT)
    lat = data["rows"][0]["latency"]
    assert 0 < lat["count"] <= 300


def test_default_without_root_is_loopback_and_sim(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pollnet.bench import netns

    monkeypatch.setattr(netns, "available", lambda: (False, "needs root"))
    data = _bench(runner, "-n", "200", "--warmup", "10", "--timeout", "60")
    assert data["network"]["kind"] == "loopback"
    names = [r["row"] for r in data["rows"]]
    assert names[0] == "socket"
    assert set(names) <= {"socket", "efvi:sim", "efvi-pollnet:sim", "tcpdirect", "native:sim",
                          "sockperf", "python-busy", "asyncio", "uvloop"}
    assert all(r["status"] == "ok" for r in data["rows"])  # the default hides what cannot run


def test_plot_writes_a_png(runner: CliRunner, tmp_path: Path) -> None:
    from pollnet.bench.report import have_matplotlib

    if not have_matplotlib():
        pytest.skip("matplotlib is not installed (pip install 'pollnet[plot]')")
    path = tmp_path / "p.png"
    _bench(runner, "--backends", "socket", "--plot", str(path), *SHORT)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_workers_run_the_per_message_path_the_bench_was_told(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Config overrides stay out of the workers (a row's config is its own), the build's
    # choices go in: without them POLLNET_PURE_PYTHON=1 measured the compiled path.
    from pollnet.bench.children import child_env

    monkeypatch.setenv("POLLNET_PURE_PYTHON", "1")
    monkeypatch.setenv("POLLNET_FAST_MODULE", "/x/_pnfast.so")
    monkeypatch.setenv("POLLNET_CLIENT__SERVER_PORT", "1")
    env = child_env()
    assert env["POLLNET_PURE_PYTHON"] == "1" and env["POLLNET_FAST_MODULE"] == "/x/_pnfast.so"
    assert "POLLNET_CLIENT__SERVER_PORT" not in env


def test_a_failed_row_fails_the_command_in_every_mode(
        runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    from pollnet.bench import results as bench_results
    from pollnet.bench import runner as bench_runner

    real = bench_runner.Bench.run_worker_row

    def broken(self: bench_runner.Bench, row: object, mode: str) -> object:
        if getattr(row, "name", "") == "efvi:sim":
            raise bench_results.BenchError("the row broke")
        return real(self, row, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(bench_runner.Bench, "run_worker_row", broken)
    result = runner.invoke(cli, ["bench", "--backends", "socket,efvi:sim", "--mode", "all",
                                 "-t", "0.2", *SHORT])
    assert result.exit_code == 1, result.output
    assert "row(s) failed: efvi:sim (latency): the row broke" in result.output
    assert "efvi:sim (idle): the row broke" in result.output


def test_efvi_knobs_are_read_as_values(runner: CliRunner) -> None:
    # --efvi delayed_ack_ms=0 (the --help example) was refused as "not a valid integer".
    data = _bench(runner, "--backends", "efvi:sim", "--efvi", "delayed_ack_ms=0",
                  "--efvi", "sim.delay_us=5", *SHORT)
    assert data["params"]["efvi"]["delayed_ack_ms"] == 0
    assert data["params"]["efvi"]["sim"]["delay_us"] == 5
    assert data["rows"][0]["status"] == "ok"


def test_the_table_fits_100_columns_and_names_rows_as_typed(runner: CliRunner) -> None:
    args = ["bench", "--backends", "socket,efvi-pollnet:sim,efvi:af_xdp", *SHORT]
    narrow = runner.invoke(cli, args)
    assert narrow.exit_code == 0, narrow.output
    table = [line for line in narrow.output.splitlines() if line.startswith(("┃", "│", "┏"))]
    assert table and max(len(line) for line in table) <= 100, narrow.output
    assert "…" not in narrow.output
    assert "│ efvi-pollnet:sim " in narrow.output  # the spelling --backends takes
    wide = runner.invoke(cli, [*args, "--wide"])
    assert wide.exit_code == 0, wide.output
    assert "samples" in wide.output and "99.999" in wide.output and "msgs/s" in wide.output


def test_overhead_compares_each_api_with_c_on_its_own_transport(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # efvi-pollnet rows were compared with sockperf (kernel TCP): a negative "cost".
    from pollnet.bench import results as bench_results
    from pollnet.bench import runner as bench_runner

    asked: list[str] = []

    def fake(self: bench_runner.Bench, row: Row, mode: str = ""
             ) -> bench_results.RowResult:
        # Each row is measured in latency mode, and the run's own mode stays what it is.
        assert (mode, self.p.mode) == ("latency", "overhead")
        asked.append(row.name)
        return bench_results.RowResult(row, "unavailable", "not measured here")

    monkeypatch.setattr(bench_runner.Bench, "run_row", fake)
    params = bench_results.Params(mode="overhead", size=64, count=10, warmup=0, warmup_sec=0.0,
                                 duration=0.0, mps=0, full_rtt=False, streams=1,
                                 peer="pollnet", pin=False, net="loopback", timeout=10.0,
                                 tcpdirect_library="x", efvi={})
    bench = bench_runner.Bench.__new__(bench_runner.Bench)
    bench.p = params
    rows = [parse_row(n) for n in ("efvi-pollnet:sim", "efvi:sim", "socket", "python-busy")]
    bench_runner.Bench.run_overhead(bench, rows)
    assert asked == ["native:sim", "efvi-pollnet:sim", "efvi:sim", "sockperf", "socket",
                     "python-busy"]


@pytest.mark.parametrize("mode", ["latency", "connect"])
def test_forced_progress_into_a_pipe_prints_lines(runner: CliRunner, mode: str) -> None:
    # Into a pipe, --progress printed nothing (rich draws no bar there), and modes other
    # than latency never showed any.
    result = runner.invoke(cli, ["bench", "--backends", "socket", "--mode", mode, "-t", "0.2",
                                 "--progress", *SHORT])
    assert result.exit_code == 0, result.output
    try:
        err = result.stderr
    except ValueError:  # click < 8.2 mixes stderr into output
        err = result.output
    done = "300/300" if mode == "latency" else "1/1"
    assert f"bench {mode} socket: {done}" in err, err


def test_memory_on_a_real_link_pollnet_row_says_why_it_cannot(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # It failed every time instead: "queue 0 already has an AF_XDP socket" (50 clients,
    # 50 stacks, one interface queue).
    from pollnet.bench import results as bench_results
    from pollnet.bench import runner as bench_runner

    monkeypatch.setattr(bench_runner, "unavailable_reason", lambda *a, **k: "")
    bench = bench_runner.Bench.__new__(bench_runner.Bench)
    bench.p = bench_results.Params(mode="memory", size=64, count=10, warmup=0, warmup_sec=0.0,
                                  duration=0.0, mps=0, full_rtt=False, streams=1,
                                  peer="pollnet", pin=False, net="netns", timeout=10.0,
                                  tcpdirect_library="x", efvi={})
    bench.pair, bench.netns_why, bench.children = None, "", []
    res = bench.run_row(parse_row("efvi-pollnet:af_xdp"))
    assert res.status == "unavailable"
    assert res.reason.startswith("50 connections need 50 pollnet-level clients")
