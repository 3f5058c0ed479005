"""The `pollnet` command: exit codes, messages, JSON output."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pollnet.cli.main import cli

SIM_EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "configs" / "efvi-sim.toml")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_help_and_version(runner: CliRunner) -> None:
    assert runner.invoke(cli, ["--help"]).exit_code == 0
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and "0.1.0" in result.output


def test_unknown_command_and_option_are_usage_errors(runner: CliRunner) -> None:
    assert runner.invoke(cli, ["frobnicate"]).exit_code == 2
    assert runner.invoke(cli, ["bench", "--no-such-option"]).exit_code == 2
    assert runner.invoke(cli, ["bench", "--count", "0"]).exit_code == 2
    assert runner.invoke(cli, ["echo-server", "--backend", "pigeon"]).exit_code == 2


def test_config_check_ok(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('backend = "socket"\n[server]\nport = 4000\n')
    result = runner.invoke(cli, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output and "socket" in result.output
    shown = runner.invoke(cli, ["config", "check", "--show", str(path)])
    assert shown.exit_code == 0
    assert json.loads(shown.output)["server"]["port"] == 4000


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[client]\nserver_port = 70000\n", "client.server_port = 70000"),
        ('backend = "nope"\n', "socket, efvi, tcpdirect"),
        ("[efvi]\nlink = 'sim'\n", "[efvi] is only allowed"),
        ("[client\n", "not valid TOML"),
    ],
)
def test_config_check_errors_exit_2_without_traceback(
    runner: CliRunner, tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = runner.invoke(cli, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_config_check_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["config", "check", str(tmp_path / "none.toml")])
    assert result.exit_code == 2
    assert "not found" in result.output


def test_echo_server_with_a_bad_config_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"server": {"max_conns": 0}}')
    result = runner.invoke(cli, ["echo-server", "--config", str(path)])
    assert result.exit_code == 2
    assert "server.max_conns" in result.output


def test_echo_server_port_option_is_validated(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["echo-server", "--port", "99999"])
    assert result.exit_code == 2
    # The flag is named, not the file or "defaults" it did not come from.
    assert result.output.startswith("Error: --port 99999: server.port = 99999 is invalid")


def test_unavailable_backend_is_a_clean_error(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "td.toml"
    path.write_text('backend = "tcpdirect"\n[tcpdirect]\nlibrary = "/nonexistent/libzf.so"\n')
    result = runner.invoke(cli, ["echo-server", "--config", str(path), "--port", "0"])
    # Either the backend says it cannot run here, or (where it can) it would serve:
    # this config points at a library that does not exist, so it must fail cleanly.
    assert result.exit_code in (1, 2)
    assert "Traceback" not in result.output
    assert "Error:" in result.output


def test_info_lists_every_backend(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["info", "--json"])
    assert result.exit_code == 0
    names = [p["name"] for p in json.loads(result.output)["probes"]]
    for expected in ("socket", "efvi link=sim", "efvi link=af_xdp", "efvi link=af_packet",
                     "efvi link=efvi", "tcpdirect"):
        assert expected in names
    table = runner.invoke(cli, ["info"])
    assert table.exit_code == 0 and "socket" in table.output


def test_bench_json_small_count(runner: CliRunner) -> None:
    before = os.sched_getaffinity(0)
    result = runner.invoke(cli, ["bench", "--backends", "socket", "--net", "loopback", "--json",
                                 "-n", "200", "--warmup", "20", "-s", "32"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    row = data["rows"][0]
    assert row["row"] == "socket" and row["status"] == "ok"
    assert data["params"]["count"] == 200 and data["params"]["size"] == 32
    lat = row["latency"]
    assert lat["count"] == 200 and lat["rtt"] == "half"
    ladder = lat["ladder"]
    assert ladder["min"] <= ladder["50"] <= ladder["90"] <= ladder["99"] <= ladder["max"]
    assert lat["msgs_per_sec"] > 0
    assert os.sched_getaffinity(0) == before  # the bench itself never pins this process


def test_bench_table(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["bench", "--backends", "socket", "--net", "loopback",
                                 "-n", "100", "--warmup", "0", "--no-pin", "--wide"])
    assert result.exit_code == 0, result.output
    for label in ("samples", "MIN", "50", "90", "99", "99.9", "MAX", "msgs/s", "cold"):
        assert label in result.output


def test_python_dash_m_pollnet() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pollnet", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "0.1.0" in result.stdout


def test_bench_with_an_unavailable_backend(runner: CliRunner) -> None:
    from pollnet.probe import probe_all

    if next(p for p in probe_all() if p.name == "tcpdirect").available:
        pytest.skip("TCPDirect is installed here")
    result = runner.invoke(cli, ["bench", "--backend", "tcpdirect", "-n", "10"])
    assert result.exit_code == 1
    assert "tcpdirect" in result.output and "libonload_zf" in result.output
    assert "Traceback" not in result.output


def test_bench_progress_goes_to_stderr(runner: CliRunner) -> None:
    result = runner.invoke(
        cli, ["bench", "--backends", "socket", "--net", "loopback", "--json", "--progress",
              "-n", "50", "--warmup", "0", "--no-pin"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"][0]["latency"]["count"] == 50


def test_info_stats_prints_the_cores_counters(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text('backend = "efvi"\n[server]\nport = 5000\n[efvi]\nlink = "sim"\n'
                    'syn_cookies = "always"\n')
    result = runner.invoke(cli, ["info", "--stats", "--config", str(path), "--seconds", "0.05",
                                 "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)["stats"]
    for name in ("frames_in", "TcpExtSyncookiesSent", "TcpExtSyncookiesRecv",
                 "TcpExtSyncookiesFailed", "TcpExtTCPChallengeACK", "TcpRetransSegs",
                 "TcpOutRsts", "TcpInRsts", "drop_bad_csum"):
        assert stats[name] == 0
    table = runner.invoke(cli, ["info", "--stats", "--config", str(path), "--seconds", "0"])
    assert table.exit_code == 0 and "TcpExtSyncookiesSent" in table.output
    wrong = runner.invoke(cli, ["info", "--stats", "--backend", "socket", "--seconds", "0"])
    assert wrong.exit_code == 2 and 'needs backend = "efvi"' in wrong.output


def test_echo_server_echoes_two_bytes_at_once() -> None:
    # A plain peer (nc sending "hi") gets its bytes back at once: deciding whether a
    # peer speaks sockperf must not hold back fewer than a sockperf header's 14 bytes.
    proc = subprocess.Popen(
        [sys.executable, "-m", "pollnet", "echo-server", "--backend", "socket",
         "--listen-ip", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, line + (proc.stderr.read() if proc.stderr else "")
        with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=10) as s:
            s.sendall(b"hi")
            assert s.recv(16) == b"hi"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_echo_server_refuses_the_sim_link(runner: CliRunner) -> None:
    # Nothing outside the process can reach a server on the in-process wire: say so
    # instead of printing a "listening on" line nobody can use.
    result = runner.invoke(cli, ["echo-server", "--config", SIM_EXAMPLE])
    assert result.exit_code == 2
    assert result.output.startswith(
        'Error: echo-server with efvi link = "sim": the sim link is a wire inside this process')


def test_info_stats_accepts_the_shipped_sim_example(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["info", "--stats", "--json", "--seconds", "0.05",
                                 "--config", SIM_EXAMPLE])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["local_ip"] == "127.0.0.1" and data["port"] > 0
    assert data["stats"]["TcpActiveOpens"] == 0


@pytest.mark.parametrize("link", ["af_packet", "af_xdp"])
def test_a_missing_interface_is_named(runner: CliRunner, tmp_path: Path, link: str) -> None:
    path = tmp_path / "nope.toml"
    path.write_text(f'backend = "efvi"\n[efvi]\nlink = "{link}"\ninterface = "nope0"\n'
                    '[server]\nlisten_ip = "127.0.0.1"\nport = 0\n')
    result = runner.invoke(cli, ["echo-server", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(
        "Error: efvi.interface = 'nope0': no such network interface here"), result.output


@pytest.mark.parametrize("text, line", [
    ('backend = "efvi"\n[efvi]\nlink = "af_xdp"\ninterface = "nope0"\nlocal_ip = "10.9.9.9"\n',
     "efvi.interface = 'nope0' (link = 'af_xdp', xdp_mode = 'auto'): no interface nope0"),
    ('[server]\nlisten_ip = "10.99.99.99"\n',
     "server.listen_ip = '10.99.99.99': cannot bind it (Cannot assign requested address)"),
    ('backend = "tcpdirect"\n[tcpdirect]\nlibrary = "/nonexistent/libzf.so"\n',
     "tcpdirect.library = '/nonexistent/libzf.so': /nonexistent/libzf.so does not load"),
])
def test_config_check_live_names_what_this_machine_lacks(
        runner: CliRunner, tmp_path: Path, text: str, line: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert runner.invoke(cli, ["config", "check", str(path)]).exit_code == 0  # valid
    result = runner.invoke(cli, ["config", "check", "--live", str(path)])
    assert result.exit_code == 1, result.output
    assert "valid, but not here" in result.output and line in result.output, result.output


def test_config_check_live_ok_here(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nlisten_ip = "127.0.0.1"\n[client]\nlocal_ip = "127.0.0.1"\n')
    result = runner.invoke(cli, ["config", "check", "--live", str(path)])
    assert result.exit_code == 0, result.output
    assert "ok (backend = socket, and here)" in result.output


def _shard_config(tmp_path: Path) -> str:
    path = tmp_path / "shards.toml"
    path.write_text('backend = "efvi"\n[efvi]\nlink = "af_packet"\ninterface = "lo"\n')
    return str(path)


@pytest.mark.parametrize("args, says", [
    (["--cpu", "0"], "give the shards' CPUs with --cpus"),
    (["--cpus", "0,x"], "'0,x': give CPU numbers separated by commas"),
    (["--cpus", ","], "no CPU given"),
])
def test_echo_server_shards_options_are_checked_before_any_shard_starts(
    runner: CliRunner, tmp_path: Path, args: list[str], says: str
) -> None:
    result = runner.invoke(cli, ["echo-server", "--config", _shard_config(tmp_path),
                                 "--shards", "2", *args])
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_echo_server_shards_names_a_shard_that_does_not_start(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Shard 0 fails (an interface that does not exist): the helper says which shard and
    why, and starts no other."""
    path = tmp_path / "shards.toml"
    path.write_text('backend = "efvi"\n[efvi]\nlink = "af_packet"\ninterface = "nosuch0"\n')
    result = runner.invoke(cli, ["echo-server", "--config", str(path), "--shards", "2"])
    assert result.exit_code == 1, result.output
    assert "shard 0 did not start" in result.output and "nosuch0" in result.output
