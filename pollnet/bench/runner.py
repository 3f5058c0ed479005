"""Runs bench rows side by side: for each row an echo server process and a client process
(both `pollnet.bench.worker`), pinned to different CPUs, in a private namespace pair when
the machine allows, else on loopback. The sim rows run in one process (the wire is
in-process). This process only waits on pipes: it never spins.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from array import array
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pollnet.bench import netns, raw, sockperf
from pollnet.bench.children import Child, pick_cpus, worker_cmd
from pollnet.bench.results import BenchError, Params, Report, RowResult, add_ratios, machine
from pollnet.bench.rows import REAL_LINKS, Row, parse_row, unavailable_reason
from pollnet.bench.spec import WorkerSpec
from pollnet.bench.stats import LatencyStats, latency_stats

Progress = Callable[[str, int, int], None]


class Bench:
    def __init__(self, params: Params, progress: Progress | None = None) -> None:
        self.p = params
        self.progress = progress
        self.pair: netns.VethPair | None = None
        self.netns_why = ""
        self.children: list[Child] = []
        self.client_cpu, self.server_cpu = pick_cpus(params.pin)

    # network ---------------------------------------------------------

    def open_network(self) -> dict[str, Any]:
        want = self.p.net
        if want in ("auto", "netns"):
            ok, why = netns.available()
            if ok:
                self.pair = netns.VethPair.create(mtu=self.p.mtu)
                return {"kind": "netns", "rtt": "veth between two private namespaces",
                        **self.pair.describe()}
            if want == "netns":
                raise BenchError(f"--net netns: {why}")
            self.netns_why = f"needs a veth between private namespaces: {why}"
        if self.p.mtu:
            raise BenchError(f"--mtu {self.p.mtu} sets the veth's MTU, and there is no veth "
                             "here (--net loopback, or no private namespaces): drop --mtu")
        return {"kind": "loopback", "rtt": "127.0.0.1 in this namespace"}

    def close(self) -> None:
        for c in self.children:
            c.stop()
        self.children.clear()
        if self.pair is not None:
            self.pair.close()
            self.pair = None

    # rows ------------------------------------------------------------

    def run(self, rows: list[Row]) -> Report:
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            network = self.open_network()
            if self.p.mode == "overhead":
                results = self.run_overhead(rows)
            else:
                results = [self.run_row(r) for r in rows]
        finally:
            self.close()
        add_ratios(results, self.p.mode)
        return Report(self.p, network, results, started, machine())

    def run_overhead(self, rows: list[Row]) -> list[RowResult]:
        """Per-message cost of the Python API: each row's p50 round trip against a C
        program on the same transport in the same run (efvi:<link> and efvi-pollnet:<link>
        against the native loop on that link; the kernel rows against sockperf),
        halved: a round trip is one message handled on each side (receive + send)."""
        refs: dict[str, RowResult] = {}
        out = []
        for row in rows:
            if row.kind in ("native", "sockperf"):
                continue
            ref_row = (parse_row(f"native:{row.link}") if row.spec.stack
                       else parse_row("sockperf"))
            if ref_row.name not in refs:
                refs[ref_row.name] = self.run_row(ref_row, "latency")
            mine = self.run_row(row, "latency")
            ref = refs[ref_row.name]
            if mine.status != "ok" or mine.latency is None:
                out.append(mine)
                continue
            if ref.status != "ok" or ref.latency is None:
                out.append(RowResult(row, "unavailable",
                                     f"no C reference ({ref_row.label}): {ref.reason}"))
                continue
            half = 2.0 if self.p.full_rtt else 1.0  # p50 as a half round trip, µs
            api, c = mine.latency.p50 / half, ref.latency.p50 / half
            out.append(RowResult(row, figures={
                "api_p50_half_us": api, "c_p50_half_us": c,
                "overhead_ns_per_msg": (api - c) * 1000.0}))
        return out

    def run_row(self, row: Row, mode: str = "") -> RowResult:
        """One row in `mode` (default: the run's)."""
        mode = mode or self.p.mode
        kind = row.spec
        why = unavailable_reason(row, self.pair is not None, self.netns_why,
                                 self.p.tcpdirect_library)
        if not why and mode not in kind.modes:
            why = kind.only_why
        streams = max(self.p.streams, 50) if mode == "memory" else self.p.streams
        if not why and row.kind == "efvi-pollnet" and row.link in REAL_LINKS and streams > 1:
            # Each pollnet-level client is one connection on a stack of its own, and a
            # real link takes one stack per interface queue (af_xdp) and address.
            why = (f"{streams} connections need {streams} pollnet-level clients, each a "
                   f"stack on its own {row.link} link; one interface queue takes one: the "
                   f"efvi:{row.link} row measures many connections on one stack")
        if not why and self.p.peer == "sockperf" and kind.own_peer:
            why = "--peer sockperf: this row has its own peer"
        if not why and self.p.peer == "sockperf" and row.in_process:
            why = "--peer sockperf: the sim wire has no kernel peer"
        if why:
            return RowResult(row, "unavailable", why)
        if self.pair is not None:
            mixed = kind.stack and self.p.peer == "sockperf"
            self.pair.set_tx_offload(not mixed)
        # Only the latency client reports how far it got: the other modes (and sockperf)
        # show a row starting and ending.
        steps = self.progress is not None and mode != "latency"
        try:
            if steps and self.progress is not None:
                self.progress(row.label, 0, 1)
            return self.driver(kind.driver)(row, mode)
        except BenchError as exc:
            return RowResult(row, "failed", str(exc))
        finally:
            if steps and self.progress is not None:
                self.progress(row.label, 1, 1)
            for c in self.children:
                c.stop()
            self.children.clear()

    def driver(self, name: str) -> Callable[[Row, str], RowResult]:
        """How a RowKind.driver starts its server and client and measures."""
        return {"worker": self.run_worker_row, "sockperf": self.run_sockperf,
                "iperf3": self.run_iperf3, "raw": self.run_raw}[name]

    def _ips(self, row: Row) -> tuple[str, str]:
        """(client ip, server ip) for this row."""
        if self.pair is None:
            return "127.0.0.1", "127.0.0.1"
        if row.spec.stack and row.link != "sim":
            # A user-space stack takes an address the kernel does not hold; a kernel peer
            # (sockperf) keeps the kernel's.
            server = self.pair.b_ip if self.p.peer == "sockperf" else self.pair.own_ip("b")
            return self.pair.own_ip("a"), server
        return self.pair.a_ip, self.pair.b_ip

    def _ifname(self, side: str) -> str:
        return "lo" if self.pair is None else self.pair.ifname(side)

    def _cmd(self, side: str, cmd: list[str]) -> list[str]:
        return netns.in_ns(self.pair, side, cmd)

    def start_server(self, row: Row, base: WorkerSpec, mode: str) -> tuple[str, int]:
        if self.p.peer == "sockperf":
            port = 11111
            ip = base.server_ip
            cmd = sockperf.server_cmd(ip, port, self.server_cpu)
            child = Child(self._cmd("b", cmd), "sockperf server")
            self.children.append(child)
            time.sleep(0.5)  # sockperf prints nothing reliable when ready
            if child.proc.poll() is not None:
                err = child.proc.stderr.read() if child.proc.stderr else ""
                raise BenchError(f"sockperf server did not start: {err.strip()[-300:]}")
            return ip, port
        # Throughput's server discards (one direction, as iperf3); the others echo.
        spec = replace(base, role="server", cpu=self.server_cpu,
                       sink=mode == "throughput")
        child = Child(self._cmd("b", worker_cmd(spec)), f"{row.name} echo server")
        self.children.append(child)
        for tag, line in child.lines(timeout=30):
            if tag == "out" and line.startswith("READY "):
                got_ip, got_port = line.split()[1:3]
                return got_ip, int(got_port)
            if tag == "out" and line.startswith("ERROR "):
                raise BenchError(f"echo server: {line[6:]}")
        raise BenchError(f"echo server did not start: {child.tail() or 'no output'}")

    def run_worker_row(self, row: Row, mode: str) -> RowResult:
        p = self.p
        client_ip, server_ip = self._ips(row)
        config: dict[str, Any] = {}
        if row.kind == "tcpdirect":
            config = {"tcpdirect": {"library": p.tcpdirect_library}}
        base = WorkerSpec(
            role="client", kind=row.kind, link=row.link, size=p.size,
            client_ip=client_ip, server_ip=server_ip,
            ifname=None if self.pair is None else self.pair.a_if,
            peer=p.peer, streams=p.streams, max_conns=max(64, p.streams + 8), config=config,
            efvi=p.efvi if row.spec.stack else {},
        )
        with tempfile.TemporaryDirectory(prefix="pollnet-bench-") as tmp:
            samples_path = str(Path(tmp) / "samples.bin")
            if not row.in_process:
                server_base = replace(base, ifname=None if self.pair is None else self.pair.b_if)
                if row.kind == "tcpdirect":
                    server_base = replace(server_base, config={
                        **config, "server": {"interface": self._ifname("b")}})
                    base = replace(base, config={
                        **config, "client": {"interface": self._ifname("a")}})
                _, port = self.start_server(row, server_base, mode)
            else:
                port = 0
            duration_ns = int(p.duration * 1e9)
            if mode in ("throughput", "connect") and not p.duration:
                duration_ns = 2_000_000_000 if mode == "throughput" else 1_000_000_000
            spec = replace(
                base, mode=mode, port=port, cpu=self.client_cpu, count=p.count,
                warmup=p.warmup, warmup_ns=int(p.warmup_sec * 1e9), duration_ns=duration_ns,
                interval_ns=int(1e9 / p.mps) if p.mps else 0, samples_path=samples_path,
                streams=max(p.streams, 50) if mode == "memory" else p.streams,
            )
            result = self._run_client(row, spec)
            if mode != "latency":
                return RowResult(row, figures={k: v for k, v in result.items()
                                               if isinstance(v, int | float)})
            samples = array("q")
            with open(samples_path, "rb") as f:
                samples.frombytes(f.read())
        if not samples:
            return RowResult(row, "failed", "no samples")
        stats = latency_stats(samples, int(result["elapsed_ns"]), cold_ns=int(result["cold_ns"]),
                              full_rtt=p.full_rtt)
        return RowResult(row, latency=stats, samples=samples)

    def _run_client(self, row: Row, spec: WorkerSpec) -> dict[str, Any]:
        child = Child(self._cmd("a", worker_cmd(spec)), f"{row.name} client")
        self.children.append(child)
        result: dict[str, Any] | None = None
        for tag, line in child.lines(timeout=self.p.timeout):
            if tag == "err" and line.startswith("PROGRESS ") and self.progress is not None:
                done, total = (int(x) for x in line.split()[1:3])
                self.progress(row.label, done, total)
            elif tag == "out" and line.startswith("RESULT "):
                result = json.loads(line[7:])
            elif tag == "out" and line.startswith("ERROR "):
                raise BenchError(line[6:])
        child.proc.wait()
        if result is None:
            raise BenchError(f"the client ended without a result: {child.tail() or 'no output'}")
        return result

    def run_iperf3(self, row: Row, mode: str) -> RowResult:
        """iperf3, kernel TCP one stream (or --streams), the throughput reference."""
        p = self.p
        server_ip = self._ips(row)[1]
        port = "5201"
        pin_s = ["-A", str(self.server_cpu)] if self.server_cpu is not None else []
        pin_c = ["-A", str(self.client_cpu)] if self.client_cpu is not None else []
        srv = Child(self._cmd("b", ["iperf3", "-s", "-1", "-B", server_ip, "-p", port,
                                    *pin_s]), "iperf3 server")
        self.children.append(srv)
        time.sleep(0.5)
        seconds = max(1, round(p.duration or 2))
        cmd = ["iperf3", "-c", server_ip, "-p", port, "-t", str(seconds), "-J",
               "-P", str(p.streams), *pin_c]
        r = subprocess.run(self._cmd("a", cmd), capture_output=True, text=True,
                           timeout=seconds + 30)
        if r.returncode != 0:
            raise BenchError(f"iperf3 failed: {(r.stderr or r.stdout).strip()[-300:]}")
        end = json.loads(r.stdout)["end"]["sum_received"]
        mb = float(end["bytes"]) / float(end["seconds"]) / 1e6
        return RowResult(row, figures={"mb_per_s": mb, "msgs_per_s": mb * 1e6 / p.size,
                                       "streams": float(p.streams)})

    def run_sockperf(self, row: Row, mode: str) -> RowResult:
        """sockperf ping-pong against sockperf server, kernel to kernel (--nonblocked)."""
        p = self.p
        server_ip = self._ips(row)[1]
        port = 11111
        srv = Child(self._cmd("b", sockperf.server_cmd(server_ip, port, self.server_cpu)),
                    "sockperf server")
        self.children.append(srv)
        time.sleep(0.5)
        seconds = p.duration or max(1.0, min(10.0, p.count / 50_000))
        cmd = sockperf.client_cmd(server_ip, port, p.size, seconds, self.client_cpu, p.mps)
        if self.progress is not None:
            self.progress(row.label, 0, 1)
        try:
            text = sockperf.run(self._cmd("a", cmd), timeout=seconds + 30)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            raise BenchError(str(exc)) from None
        rep = sockperf.parse_report(text)
        if self.progress is not None:
            self.progress(row.label, 1, 1)
        ladder = dict(rep["ladder"])  # type: ignore[call-overload]
        scale = 2.0 if p.full_rtt else 1.0  # sockperf reports half round trips
        stats = LatencyStats(
            count=int(rep["count"]),  # type: ignore[call-overload]
            rtt="full" if p.full_rtt else "half",
            mean=float(rep["mean"]) * scale,  # type: ignore[arg-type]
            stddev=float(rep["stddev"]) * scale,  # type: ignore[arg-type]
            ladder={k: float(v) * scale for k, v in ladder.items()},
            cold=None,
            msgs_per_sec=int(rep["count"]) / float(rep["elapsed_s"])  # type: ignore[call-overload, arg-type]
            if rep["elapsed_s"] else 0.0,
            elapsed_s=float(rep["elapsed_s"]),  # type: ignore[arg-type]
        )
        return RowResult(row, latency=stats)

    def run_raw(self, row: Row, mode: str) -> RowResult:
        """raw:<link>: a sink worker on b counts the frames a sender worker on a sends."""
        p = self.p
        client_ip, server_ip = self._ips(row)
        spec = WorkerSpec(role="server", kind="raw", link=row.link, client_ip=client_ip,
                          server_ip=server_ip, ifname=self._ifname("b"),
                          cpu=self.server_cpu, efvi=p.efvi)
        sink = Child(self._cmd("b", worker_cmd(spec)), f"{row.name} sink")
        self.children.append(sink)
        lines = sink.lines(timeout=self.p.timeout)
        ready = next((line for tag, line in lines
                      if tag == "out" and line.startswith(("READY ", "ERROR "))), "")
        if not ready.startswith("READY "):
            raise BenchError(f"raw sink: {ready[6:] or sink.tail() or 'no output'}")
        mac, mtu = ready.split()[3:5]
        sent = self._run_client(row, replace(
            spec, role="client", mode="throughput", ifname=self._ifname("a"),
            cpu=self.client_cpu, peer_mac=mac, peer_mtu=int(mtu),
            duration_ns=int((p.duration or 2.0) * 1e9)))
        sink.proc.terminate()
        got = next((json.loads(line[7:]) for tag, line in lines
                    if tag == "out" and line.startswith("RESULT ")), None)
        if got is None:
            raise BenchError(f"raw sink ended without its counts: {sink.tail() or 'no output'}")
        figures = raw.figures(sent["sent"], got["received"])
        figures["msgs_per_s"] = figures["frames_per_s"]
        return RowResult(row, figures=figures)
