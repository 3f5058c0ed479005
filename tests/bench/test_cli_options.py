"""Every `pollnet bench` option: parsed, and a wrong value exits 2 with a clear message
(never a traceback). Nothing here runs a benchmark."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pollnet.bench import report
from pollnet.bench.rows import MATRIX, RowSpecError, parse_row, parse_rows
from pollnet.cli.main import cli


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--backends", "pigeon"], "unknown row 'pigeon'"),
        (["--backends", "efvi:wifi"], "unknown link 'wifi'"),
        (["--backends", "socket:lo"], "takes no link"),
        (["--backends", "socket,socket"], "given twice"),
        (["--backends", ","], "no rows given"),
        (["--backend", "pigeon"], "pigeon"),
        (["--backends", "socket", "--matrix"], "one of --backends, --backend and --matrix"),
        (["--backend", "socket", "--backends", "socket"], "one of"),
        (["--mode", "fastest"], "fastest"),
        (["-n", "0"], "--count"),
        (["--count", "x"], "--count"),
        (["-s", "0"], "--size"),
        (["--size", "65537"], "--size"),
        (["--warmup", "-1"], "--warmup"),
        (["--warmup-sec", "-1"], "--warmup-sec"),
        (["-t", "-2"], "--duration"),
        (["--mps", "-5"], "--mps"),
        (["--streams", "0"], "--streams"),
        (["--peer", "iperf"], "--peer"),
        (["--peer", "sockperf", "-s", "8"], "at least 14 bytes"),
        (["--net", "wifi"], "--net"),
        (["--timeout", "0"], "--timeout"),
        (["--full-log", "x.csv", "--mode", "idle"], "need --mode latency"),
        (["--mps", "100", "--mode", "throughput"], "needs --mode latency"),
        (["--progress", "--no-such"], "No such option"),
    ],
)
def test_bad_option_exits_2_with_a_message(runner: CliRunner, args: list[str],
                                           fragment: str) -> None:
    result = runner.invoke(cli, ["bench", *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output


def test_plot_without_matplotlib_is_a_clear_usage_error(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pollnet.cli.bench.have_matplotlib", lambda: False)
    result = runner.invoke(cli, ["bench", "--plot", "p.png"])
    assert result.exit_code == 2
    assert "matplotlib" in result.output and "pollnet[plot]" in result.output


def test_help_lists_every_option(runner: CliRunner) -> None:
    text = runner.invoke(cli, ["bench", "--help"]).output
    for opt in ("--backends", "--backend", "--matrix", "--mode", "--count", "--size",
                "--warmup", "--warmup-sec", "--duration", "--mps", "--full-rtt", "--streams",
                "--peer", "--net", "--json", "--full-log", "--plot", "--no-pin", "--timeout",
                "--progress"):
        assert opt in text


def test_row_parsing() -> None:
    rows = parse_rows(" socket , efvi:AF_XDP,efvi,native:sim,tcpdirect,sockperf")
    assert [r.name for r in rows] == ["socket", "efvi:af_xdp", "efvi:sim", "native:sim",
                                      "tcpdirect", "sockperf"]
    assert rows[1].needs_netns and not rows[2].needs_netns and rows[2].in_process
    assert parse_row("native:af_packet").label == "native loop:af_packet"
    assert parse_rows(",".join(MATRIX))[0].name == "socket"
    with pytest.raises(RowSpecError):
        parse_row("bogus")


def test_ladder_text_reads_like_sockperf() -> None:
    from pollnet.bench.results import RowResult
    from pollnet.bench.stats import latency_stats

    r = RowResult(parse_row("socket"), latency=latency_stats([1000, 3000], 1, cold_ns=5000))
    text = report.ladder_text(r)
    assert "---> <MAX> observation =    1.500" in text
    assert "---> percentile 99.999" in text and "first (cold) sample = 2.500" in text
