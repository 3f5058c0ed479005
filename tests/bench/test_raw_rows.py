"""raw:<link> rows: a link's frame capacity without TCP, counted at the receiving end of
the veth (frames the sink saw, not frames the sender queued)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pollnet.bench import netns, raw
from pollnet.bench.rows import parse_row, unavailable_reason
from pollnet.cli.main import cli


def _bench(*args: str) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(cli, ["bench", "--json", "--mode", "throughput", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_frame_sizes_are_the_standard_frame_and_the_largest() -> None:
    assert raw.frame_sizes(1500) == [1514]
    assert raw.frame_sizes(9000) == [1514, 9014]
    assert raw.frame_sizes(1000) == [1014]


def test_sizes_are_measured_at_the_sink_and_losses_counted() -> None:
    sent = [{"frame_len": 1514, "frames": 1000, "tx_ring_full": 3},
            {"frame_len": 9014, "frames": 500, "tx_ring_full": 0}]
    received = [{"frame_len": 1514, "frames": 901, "first_ns": 0, "last_ns": 900_000_000},
                {"frame_len": 9014, "frames": 500, "first_ns": 10, "last_ns": 499_000_010}]
    f = raw.figures(sent, received)
    assert f["frames_per_s"] == pytest.approx(1000.0)      # 900 gaps in 0.9 s
    assert f["mb_per_s"] == pytest.approx(1000.0 * 1514 / 1e6)
    assert f["lost_frames"] == 99 and f["tx_ring_full"] == 3
    assert f["max_frame_len"] == 9014 and f["max_frame_frames_per_s"] == pytest.approx(1000.0)
    assert f["max_frame_lost_frames"] == 0
    # nothing arrived at a size: no rate, every frame lost
    f = raw.figures(sent[:1], [])
    assert f["frames_per_s"] == 0.0 and f["lost_frames"] == 1000


def test_the_sim_wire_and_other_modes_say_why_not() -> None:
    data = _bench("--backends", "socket,raw:sim", "--net", "loopback", "-t", "0.2")
    assert data["rows"][1]["status"] == "unavailable"
    assert "the sim wire is memory, not a NIC" in data["rows"][1]["reason"]
    result = CliRunner().invoke(cli, ["bench", "--json", "--backends", "socket,raw:af_xdp",
                                      "--net", "loopback", "-n", "50", "--warmup", "5"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["rows"][1]
    assert row["status"] == "unavailable", row
    assert row["reason"] in ("raw rows measure a link's frame capacity (--mode throughput)",
                             unavailable_reason(parse_row("raw:af_xdp"), netns=False))


@pytest.mark.netns
@pytest.mark.parametrize("link", ["af_xdp", "af_packet"])
def test_raw_row_counts_frames_at_the_far_end(link: str) -> None:
    ok, why = netns.available()
    if not ok:
        pytest.skip(why)
    row = parse_row(f"raw:{link}")
    reason = unavailable_reason(row, netns=True)
    if reason:
        pytest.skip(f"raw:{link}: {reason}")
    data = _bench("--backends", f"raw:{link}", "--net", "netns", "-t", "0.4", "--timeout", "60")
    (r,) = data["rows"]
    assert r["status"] == "ok", r
    f = r["figures"]
    assert f["frame_len"] == 1514        # the bench's veth has a 1,500 B MTU
    assert f["frames_per_s"] > 1000      # the sink saw frames, at a rate
    assert f["mb_per_s"] == pytest.approx(f["frames_per_s"] * 1514 / 1e6)
    assert 0 <= f["lost_frames"] < f["sent_frames"]
