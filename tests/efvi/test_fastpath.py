"""The compiled per-message path (pollnet._pnfast): it is the one that runs unless
POLLNET_PURE_PYTHON says otherwise, and its Connection.send keeps the Python path's
contract (the rest of tests/efvi and the behaviour suite run on both paths: scripts/test.sh
has a stage with POLLNET_PURE_PYTHON=1)."""

from __future__ import annotations

import os
from array import array

import pytest
from efvi_util import make_net

from pollnet.backends.efvi import ConnectionClosedError
from pollnet.backends.efvi.core import fast as _fast

PURE = os.environ.get("POLLNET_PURE_PYTHON", "") not in ("", "0")


def test_the_compiled_path_runs_unless_told_not_to() -> None:
    n = make_net()
    if PURE:
        assert _fast.FAST is None and "POLLNET_PURE_PYTHON" in _fast.WHY
        assert "Python (POLLNET_PURE_PYTHON" in _fast.describe()
        return
    # Built by `pip install -e .` (setup.py); a build that lost it must not pass quietly.
    assert _fast.FAST is not None, _fast.WHY
    assert type(n.client.poll).__name__ == "builtin_function_or_method"
    assert _fast.describe() == "compiled (pollnet._pnfast)"
    c, _ = n.connect()
    assert isinstance(c, _fast.FAST.CoreConn)


def test_send_counts_bytes_of_any_buffer() -> None:
    n = make_net()
    c, s = n.connect()
    assert c.send(memoryview(b"abcdefgh").cast("I")) == 8
    assert c.send(array("i", [1, 2])) == 8
    assert c.send(bytearray(b"xy"), more=False) == 2
    assert c.send(data=b"z", more=True) == 1
    assert c.send(b"") == 0
    assert n.drive.run_until(lambda: len(n.sh.data[s.conn_id]) == 19)


def test_send_refuses_what_is_not_bytes() -> None:
    n = make_net()
    c, _ = n.connect()
    with pytest.raises(TypeError, match=r"send\(\) takes a bytes-like object .*not 'str'"):
        c.send("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c.send()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        c.send(b"a", False, 1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        c.send(b"a", bogus=1)  # type: ignore[call-arg]


def test_send_on_a_closed_connection_names_it() -> None:
    n = make_net()
    c, _ = n.connect()
    c.close()
    with pytest.raises(ConnectionClosedError, match=r"send on connection \d+ to .*closed"):
        c.send(b"abc")
    with pytest.raises(ConnectionClosedError):
        c.send("text")  # type: ignore[arg-type]


def test_a_kept_bound_poll_keeps_its_client_alive() -> None:
    # poll is a method like any other: holding `client.poll` holds the client (a compiled
    # poll that only knew its owner weakly raised ReferenceError here).
    from pollnet.config import config_from_dict
    from pollnet.factory import create_client, create_server

    cfg = {"backend": "efvi", "efvi": {"link": "sim"},
           "server": {"listen_ip": "127.0.0.1", "port": 40123},
           "client": {"server_ip": "127.0.0.1", "server_port": 40123}}
    server = create_server(config_from_dict(cfg))
    poll = create_client(config_from_dict(cfg)).poll
    connected: list[object] = []

    class H:
        def on_tcp_connected(self, conn: object) -> None:
            connected.append(conn)

    h = H()
    for _ in range(1000):
        poll(h)
        server.poll(object())
        if connected:
            break
    assert connected
    server.close()


@pytest.mark.parametrize(("now_ns", "error"), [(-1, OverflowError), (2**64, OverflowError),
                                               (1.5, TypeError), ("1", TypeError)])
def test_poll_refuses_a_time_that_is_not_a_uint64(now_ns: object, error: type) -> None:
    """Both paths: a negative or too large now_ns, or one that is no integer, raises."""
    n = make_net()
    with pytest.raises(error):
        n.client.poll(n.ch, now_ns)  # type: ignore[arg-type]


def test_poll_takes_any_uint64_time() -> None:
    """Times of one to three 30-bit digits, up to 2**64 - 1, go through (the compiled
    path reads them without the byte-array conversion)."""
    n = make_net()
    for now_ns in (0, 5, 2**40 + 3, 2**63 - 1, 2**63, 2**64 - 1):
        n.client.poll(n.ch, now_ns)
