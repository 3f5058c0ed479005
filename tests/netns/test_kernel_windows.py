"""Our stack against a kernel peer whose receive window keeps closing (small socket
buffers, an application that reads only as fast as it can echo) while the bridge loses
frames: the case where a kernel retransmission carries an old sequence number, a new
ACK and a zero window.

A regression test for a TCP core bug found here (2026-11-26), fixed in tcp_in.c/tcp_out.c
and reproduced deterministically by native/tests/test_window.c:
  1. the core took window updates only from the newest segment (RFC 9293 3.10.7.4), so an
     old-sequence retransmission that acknowledged new data moved snd_una but left the old
     snd_wnd, and the stack sent past the peer's right edge; it now also takes the window
     from a segment whose ACK advances snd_una (as Linux's tcp_may_update_window);
  2. its ACKs carried snd_max, which Linux at a zero window finds unacceptable
     (tcp_sequence) and drops unread; they now carry min(snd_max, snd_una + snd_wnd) (as
     Linux's tcp_acceptable_seq).
The timeout is generous: with 4 KB socket buffers and 3% loss the peer itself is slow.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from .netns import Bridged
from .test_interop import BIN, PORT, _build, _need_bpf, _result

pytestmark = pytest.mark.netns

SLOW_ECHO = """
import socket, sys
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
ls.bind((sys.argv[1], int(sys.argv[2])))
ls.listen(1)
print("ready", flush=True)
ls.settimeout(30)
c, _ = ls.accept()
c.settimeout(20)
try:
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.shutdown(socket.SHUT_WR)
except OSError:
    pass
"""


@pytest.mark.parametrize("link", ["af_packet"])
def test_echo_with_a_closing_kernel_window_under_loss(netns_bridged: Callable[..., Bridged],
                                                      link: str) -> None:
    _build()
    _need_bpf(link, True)
    t = netns_bridged(loss=0.03, seed=3)
    srv = t.b.python(SLOW_ECHO, t.pb.ip, str(PORT), stdout=subprocess.PIPE, text=True)
    assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
    r = t.a.run([str(BIN), "--link", link, "--if", t.pa.ifname, "--ip", t.free_ip(), "--own",
                 "--connect", t.pb.ip, "--port", str(PORT), "--bytes", str(1 << 20),
                 "--timeout", "25"], check=False, timeout=60)
    srv.kill()
    ours = _result(r.stdout + r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ours["sha256_sent"] == ours["sha256_received"]
