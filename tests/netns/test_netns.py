"""The namespace helpers themselves: addresses, reachability, teardown."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import require_netns
from .netns import Pair, sweep_stale

pytestmark = pytest.mark.netns

UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7))
print("ready", flush=True)
s.settimeout(10)
data, peer = s.recvfrom(2048)
s.sendto(data, peer)
"""

UDP_ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"hello", (sys.argv[1], 7))
print(s.recvfrom(2048)[0].decode())
"""


def test_pair_reaches_across_the_veth(netns_pair: Pair) -> None:
    t = netns_pair
    assert t.pa.ip.startswith("10.") and t.pb.ip.startswith("10.")
    srv = t.b.python(UDP_ECHO, t.pb.ip, stdout=subprocess.PIPE, text=True)
    assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
    out = t.a.run(["python3", "-c", UDP_ASK, t.pb.ip]).stdout.strip()
    assert out == "hello"


def test_the_host_never_sees_the_test_interfaces(netns_pair: Pair) -> None:
    host = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert netns_pair.pa.ip not in host
    assert "pn0" not in subprocess.run(["ip", "-o", "link"], capture_output=True,
                                       text=True).stdout


def test_close_deletes_namespaces_and_their_processes() -> None:
    require_netns()
    t = Pair()
    names = [ns.name for ns in t.namespaces.values()]
    sleeper = t.a.popen(["sleep", "600"])
    t.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in listed for n in names)
    assert sleeper.poll() is not None


def test_names_are_unique_per_topology() -> None:
    require_netns()
    with Pair() as t1, Pair() as t2:
        assert t1.a.name != t2.a.name and t1.tag != t2.tag


def test_sweep_removes_namespaces_of_dead_processes() -> None:
    require_netns()
    dead = "pnt999999999x1a"  # no such pid
    subprocess.run(["ip", "netns", "add", dead], check=True)
    assert dead in sweep_stale()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert dead not in listed
