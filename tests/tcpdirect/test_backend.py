"""The tcpdirect backend's pollnet behaviours, over loopback, on the look-alike library."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pollnet
from pollnet.api import PollConnection
from pollnet.backends.tcpdirect.client import TcpdirectTcpClient
from pollnet.backends.tcpdirect.server import TcpdirectTcpServer
from pollnet.config import AnyConfig, TcpdirectConfig
from pollnet.errors import BackendUnavailable, ConfigError
from pollnet.testing import (
    Pair,
    RecordingHandler,
    free_port,
    poll_for,
    poll_until,
    with_sections,
)
from tcpdirect.shim import tcpdirect_config


def test_factory_makes_tcpdirect_objects(td_config: AnyConfig) -> None:
    server = pollnet.create_server(td_config)
    client = pollnet.create_client(td_config)
    assert isinstance(server, TcpdirectTcpServer)
    assert isinstance(client, TcpdirectTcpClient)
    assert server.address == (td_config.server.listen_ip, td_config.server.port)
    server.close()
    assert server.is_closed


def test_connect_and_echo_both_ways(td_config: AnyConfig) -> None:
    pair = Pair(td_config)
    assert pair.client_conn.peername == pair.server.address
    peer = pair.server_conn.peername
    assert peer is not None and peer[0] == (td_config.client.local_ip or "127.0.0.1")
    assert pair.client.write(b"ping")
    assert poll_until(lambda: pair.server_handler.received == b"ping", pair)
    assert pair.server_conn.write(b"pong")
    assert poll_until(lambda: pair.client_handler.received == b"pong", pair)
    pair.close()


def test_client_connects_from_local_ip(shim_library: Path) -> None:
    port = free_port()
    cfg = tcpdirect_config(shim_library, client={"local_ip": "127.0.0.3", "local_port": port})
    pair = Pair(cfg)
    assert pair.server_conn.peername == ("127.0.0.3", port)
    pair.close()
    cfg = tcpdirect_config(shim_library, client={"local_ip": "127.0.0.3"})
    pair = Pair(cfg)
    peer = pair.server_conn.peername
    assert peer is not None and peer[0] == "127.0.0.3"
    pair.close()


def test_bulk_transfer_arrives_whole_and_in_order(td_config: AnyConfig) -> None:
    pair = Pair(td_config)
    data = bytes(range(256)) * 800  # 200 KiB: many packets, partial sends
    assert pair.client.write(data)
    assert poll_until(lambda: len(pair.server_handler.received) >= len(data), pair)
    assert pair.server_handler.received == data
    # Packets were lent one at a time (the shim's packets are at most 1460 bytes).
    assert max(len(p) for p in pair.server_handler.presented) <= 1460
    pair.close()


def test_write_queues_what_the_library_cannot_take_and_polls_send_it(
    td_config: AnyConfig,
) -> None:
    # The server is polled by this same thread, so while write() runs nobody drains the
    # path: a write that waited for room would never return. It queues instead.
    pair = Pair(td_config)
    big = bytes(i % 251 for i in range(8 << 20))
    assert pair.client.write(big)
    assert pair.client_conn.write_some(b"x") == 0  # queued bytes go first
    assert pair.client.write(b"tail")  # behind the queue, in order
    assert poll_until(lambda: len(pair.server_handler.received) >= len(big) + 4, pair,
                      timeout=60)
    assert pair.server_handler.received == big + b"tail"
    pair.close()


def test_close_sends_the_queued_bytes_before_the_fin(td_config: AnyConfig) -> None:
    pair = Pair(td_config)
    big = bytes(i % 249 for i in range(4 << 20))
    assert pair.client.write(big)
    pair.client_conn.close("done")
    assert poll_until(lambda: len(pair.server_handler.disconnected) == 1, pair, timeout=60)
    assert pair.server_handler.received == big
    assert pair.server_handler.disconnected[0].last_error == "remote close"
    pair.close()


def test_remaining_bytes_come_back_in_front_of_new_ones(td_config: AnyConfig) -> None:
    # Consume whole 4-byte records only; the rest must be presented again, first.
    handler = RecordingHandler(remaining=lambda conn, data: len(data) % 4)
    pair = Pair(td_config, server_handler=handler)
    pair.client.write(b"abcdef")
    assert poll_until(lambda: handler.received == b"abcd", pair)
    pair.client.write(b"gh")
    assert poll_until(lambda: handler.received == b"abcdefgh", pair)
    assert handler.presented[-1] == b"efgh"  # kept "ef" (copied out of the lent packet)
    # Keeping bytes across many packets still delivers everything exactly once.
    blob = bytes(range(251)) * 41
    pair.client.write(blob)
    assert poll_until(lambda: len(handler.received) >= 8 + len(blob) // 4 * 4, pair)
    assert handler.received == (b"abcdefgh" + blob)[: len(handler.received)]
    pair.close()


def test_unconsumed_bytes_filling_the_buffer_close_the_connection(
    shim_library: Path,
) -> None:
    cfg = tcpdirect_config(shim_library, server={"recv_buf_size": 1000})
    handler = RecordingHandler(remaining=lambda conn, data: len(data))  # consume nothing
    pair = Pair(cfg, server_handler=handler)
    pair.client.write(b"x" * 3000)
    assert poll_until(lambda: len(handler.disconnected) == 1, pair)
    assert "recv buffer full" in handler.disconnected[0].last_error
    assert pair.server.conn_count == 0
    pair.close()


def test_refused_then_reconnects_when_the_server_appears(shim_library: Path) -> None:
    cfg = tcpdirect_config(shim_library, client={"conn_retry_sec": 0.001})
    client = pollnet.create_client(cfg)
    ch = RecordingHandler()
    assert poll_until(lambda: ch.connect_failed >= 2, (client, ch))
    assert "refused" in client.last_error.lower()
    assert ch.connected == []
    server = pollnet.create_server(cfg)
    sh = RecordingHandler()
    assert poll_until(lambda: bool(ch.connected and sh.connected), (server, sh), (client, ch))
    assert client.is_connected and client.last_error == ""
    client.close()
    server.close()
    poll_for(3, (server, sh), (client, ch))


def test_connect_in_progress_is_polled_until_the_timeout(shim_library: Path) -> None:
    # A kernel listener whose accept queue is full drops our SYN: the connect stays in
    # SYN_SENT, and each poll returns at once until conn_timeout_sec has passed.
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        for _ in range(2):  # the first fills the queue, the second waits like ours
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            fillers.append(sock)
        try:
            cfg = tcpdirect_config(
                shim_library,
                client={"server_port": port, "conn_timeout_sec": 0.3, "conn_retry_sec": 0},
            )
            client = pollnet.create_client(cfg)
            ch = RecordingHandler()
            polls = [0]

            def poll() -> None:
                polls[0] += 1
                client.poll(ch)

            assert poll_until(lambda: ch.connect_failed == 1, poll)
            assert client.last_error == "connect timeout"
            assert polls[0] > 10  # never blocked inside one poll
            client.free()
        finally:
            for sock in fillers:
                sock.close()


def test_server_serves_at_most_max_conns(shim_library: Path) -> None:
    cfg = tcpdirect_config(shim_library, server={"max_conns": 2})
    server = pollnet.create_server(cfg)
    sh = RecordingHandler()
    clients = [pollnet.create_client(cfg) for _ in range(3)]
    handlers = [RecordingHandler() for _ in clients]
    targets = [(server, sh), *zip(clients, handlers, strict=True)]
    assert poll_until(lambda: len(sh.connected) == 2, *targets)
    poll_for(200, *targets)
    assert server.conn_count == 2 and len(sh.connected) == 2
    waiting = [h for h in handlers if not h.connected]
    # The third handshake completed in the listener's queue; it is accepted on a free slot.
    assert len(waiting) <= 1
    sh.connected[0].close("make room")
    assert poll_until(lambda: len(sh.connected) == 3, *targets)
    assert server.conn_count == 2
    assert len(sh.disconnected) == 1
    seen: list[PollConnection] = []
    server.foreach_conn(seen.append)
    assert len(seen) == 2
    for client in clients:
        client.close()
    server.close()
    poll_for(3, *targets)


def test_send_and_recv_timeouts_fire_per_idle_period(shim_library: Path) -> None:
    cfg = tcpdirect_config(shim_library, client={"send_timeout_sec": 1.0, "recv_timeout_sec": 2.0})
    pair = Pair(cfg)
    ch = pair.client_handler
    t0 = time.monotonic_ns()  # then an explicit clock: the test waits for nothing
    pair.client.poll(ch, now_ns=t0)
    pair.client.poll(ch, now_ns=t0 + 1_100_000_000)
    assert (ch.send_timeouts, ch.recv_timeouts) == (1, 0)
    pair.client.poll(ch, now_ns=t0 + 2_300_000_000)
    assert (ch.send_timeouts, ch.recv_timeouts) == (2, 1)
    pair.client.write(b"x")  # sending restarts the send clock only
    pair.client.poll(ch, now_ns=t0 + 3_000_000_000)
    assert (ch.send_timeouts, ch.recv_timeouts) == (2, 1)
    pair.close()


def test_write_some_and_write_nonblock_when_the_peer_stops_reading(td_config: AnyConfig) -> None:
    pair = Pair(td_config)
    conn = pair.client_conn
    chunk = b"z" * 65536
    # The server is not polled: nothing is read, so the send path fills up.
    sent = 0
    for _ in range(2000):
        n = conn.write_some(chunk)
        if n == 0:
            break
        sent += n
    assert n == 0 and sent > 0 and conn.is_connected
    assert not conn.write_nonblock(chunk)
    assert not conn.is_connected
    assert "write_nonblock" in conn.last_error
    assert conn.write_some(b"x") == -1
    assert poll_until(lambda: len(pair.client_handler.disconnected) == 1, pair)
    pair.close()


def test_write_with_more_is_delivered(td_config: AnyConfig) -> None:
    pair = Pair(td_config)
    assert pair.client.write(b"head-", more=True)
    assert pair.client.write(bytearray(b"body-"), more=True)
    assert pair.client.write(memoryview(b"xxtail")[2:])
    assert poll_until(lambda: pair.server_handler.received == b"head-body-tail", pair)
    pair.close()


def test_peer_close_disconnects_exactly_once(td_config: AnyConfig) -> None:
    pair = Pair(td_config)
    pair.server_conn.write(b"last words")
    pair.server_conn.close("server done")
    assert poll_until(lambda: len(pair.client_handler.disconnected) == 1, pair)
    poll_for(100, pair)
    assert len(pair.client_handler.disconnected) == 1
    assert len(pair.server_handler.disconnected) == 1
    assert pair.client_handler.received == b"last words"  # data before the FIN
    assert pair.client.last_error == "remote close"
    assert pair.server_handler.disconnected[0].last_error == "server done"
    pair.close()


def test_peer_reset_is_a_recv_error(shim_library: Path) -> None:
    # A kernel server that closes with RST (SO_LINGER 0). Look-alike only: the emulator
    # the real library runs in here carries no frames to or from kernel sockets.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        cfg = tcpdirect_config(shim_library, client={"server_port": listener.getsockname()[1]})
        client = pollnet.create_client(cfg)
        ch = RecordingHandler()
        assert poll_until(lambda: bool(ch.connected), (client, ch))
        peer, _ = listener.accept()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        peer.close()
        assert poll_until(lambda: len(ch.disconnected) == 1, (client, ch))
        assert "reset" in client.last_error.lower()
        client.free()


def test_close_from_inside_on_tcp_data_returns_the_packet_first(td_config: AnyConfig) -> None:
    # zft_free must wait for zft_zc_recv_done: the shim counts it as a violation otherwise.
    handler = RecordingHandler(on_data=lambda conn, data: conn.close("seen enough"))
    pair = Pair(td_config, server_handler=handler)
    pair.client.write(b"one")
    assert poll_until(lambda: len(handler.disconnected) == 1, pair)
    assert handler.disconnected[0].last_error == "seen enough"
    pair.close()


def test_server_close_from_a_callback_frees_after_the_poll(td_config: AnyConfig) -> None:
    server = pollnet.create_server(td_config)
    handler = RecordingHandler(on_data=lambda conn, data: server.close("stop"))
    client = pollnet.create_client(td_config)
    ch = RecordingHandler(on_connected=lambda conn: conn.write(b"hi"))
    assert poll_until(lambda: server.is_closed, (server, handler), (client, ch))
    assert poll_until(lambda: len(ch.disconnected) == 1, (server, handler), (client, ch))
    assert len(handler.disconnected) == 1
    client.free()


# ---------------------------------------------------------------- setup errors


def test_missing_library_is_one_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "libonload_zf.so"
    cfg = tcpdirect_config(missing)
    with pytest.raises(BackendUnavailable) as info:
        pollnet.create_client(cfg)
    text = str(info.value)
    assert str(missing) in text
    assert "Onload" in text and "TCPDirect" in text and "tcpdirect.library" in text
    assert info.value.backend == "tcpdirect"
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_default_library_name_missing_here() -> None:
    cfg = tcpdirect_config("libonload_zf.so", client={"server_port": free_port()})
    with pytest.raises(BackendUnavailable, match=r"libonload_zf\.so"):
        pollnet.create_server(cfg)


def test_not_a_tcpdirect_library(tmp_path: Path) -> None:
    cfg = tcpdirect_config("libc.so.6")
    with pytest.raises(BackendUnavailable, match="lacks zf_init"):
        pollnet.create_client(cfg)


def test_listening_on_all_addresses_is_a_config_error(shim_library: Path) -> None:
    cfg = tcpdirect_config(shim_library, server={"listen_ip": "0.0.0.0"})
    with pytest.raises(ConfigError, match=r"server\.listen_ip = '0\.0\.0\.0'"):
        pollnet.create_server(cfg)


def test_listen_on_a_port_in_use_is_a_transport_error(td_config: AnyConfig) -> None:
    first = pollnet.create_server(td_config)
    with pytest.raises(pollnet.TransportError, match="Address already in use"):
        pollnet.create_server(td_config)
    first.close()


def test_missing_interface_names_the_field(shim_library: Path) -> None:
    cfg = tcpdirect_config(shim_library, client={"interface": ""})
    with pytest.raises(ConfigError, match=r"client\.interface = ''"):
        pollnet.create_client(cfg)


def test_zf_attr_environment_is_applied_by_the_library(
    shim_library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZF_ATTR", "interface=lo;max_tcp_endpoints=8")
    cfg = tcpdirect_config(shim_library, client={"interface": ""}, server={"interface": ""})
    pair = Pair(cfg)
    assert pair.client.is_connected
    pair.close()


def test_malformed_zf_attr_is_a_config_error(
    shim_library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZF_ATTR", "interface")
    with pytest.raises(ConfigError, match="ZF_ATTR"):
        pollnet.create_client(tcpdirect_config(shim_library))


def test_zf_attr_the_library_refuses_fails_zf_init_as_a_config_error(
    td_config: AnyConfig,
) -> None:
    # zf_init (once a process) parses ZF_ATTR itself: a fresh process meets it there.
    code = (
        "import sys, pollnet\n"
        "from tcpdirect.shim import tcpdirect_config\n"
        "try:\n"
        "    pollnet.create_client(tcpdirect_config(sys.argv[1]))\n"
        "except pollnet.ConfigError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    assert isinstance(td_config, TcpdirectConfig)
    tests_root = str(Path(__file__).resolve().parents[1])  # where tcpdirect.shim imports from
    env = {**os.environ, "ZF_ATTR": "no_such_attribute=1", "PYTHONPATH": tests_root}
    done = subprocess.run([sys.executable, "-c", code, td_config.tcpdirect.library],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "ZF_ATTR = 'no_such_attribute=1'" in done.stdout


def test_an_interface_the_host_lacks_names_the_field(td_config: AnyConfig) -> None:
    cfg = with_sections(td_config, client={"interface": "nosuch0"})
    with pytest.raises(ConfigError, match=r"^client\.interface = 'nosuch0': no such interface"):
        pollnet.create_client(cfg)


def test_an_attribute_out_of_range_names_the_attributes(td_config: AnyConfig) -> None:
    # The look-alike refuses it when set, the real library only at zf_stack_alloc.
    cfg = with_sections(td_config, tcpdirect={"attributes": {"max_tcp_endpoints": 100000}})
    with pytest.raises(ConfigError, match=r"^tcpdirect\.attributes.*max_tcp_endpoints.*100000"):
        pollnet.create_server(cfg)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"no_such_attribute": 1}, "not an attribute"),
        ({"max_tcp_endpoints": 1000}, "out of range"),
        ({"max_tcp_endpoints": "many"}, "takes an integer"),
    ],
)
def test_bad_attributes_name_the_attribute(
    shim_library: Path, attributes: dict[str, object], message: str
) -> None:
    cfg = tcpdirect_config(shim_library, tcpdirect={"attributes": attributes})
    name = next(iter(attributes))
    with pytest.raises(ConfigError, match=rf"tcpdirect\.attributes\.{name} .*{message}"):
        pollnet.create_client(cfg)


def test_config_attributes_reach_the_stack(shim_library: Path) -> None:
    # One TCP zocket per stack: a second connection cannot be accepted.
    cfg = tcpdirect_config(shim_library, tcpdirect={"attributes": {"max_tcp_endpoints": 1}})
    server = pollnet.create_server(cfg)
    sh = RecordingHandler()
    clients = [pollnet.create_client(cfg) for _ in range(2)]
    handlers = [RecordingHandler() for _ in clients]
    targets = [(server, sh), *zip(clients, handlers, strict=True)]
    assert poll_until(lambda: len(sh.connected) == 1, *targets)
    poll_for(200, *targets)
    assert len(sh.connected) == 1
    for client in clients:
        client.free()
    server.close()


def test_a_freed_client_delivers_its_disconnect_and_stays_down(td_config: AnyConfig) -> None:
    pair = Pair(td_config)
    client = pair.client
    assert isinstance(client, TcpdirectTcpClient)
    client.free()
    ch = pair.client_handler
    poll_for(3, pair)
    assert len(ch.disconnected) == 1 and ch.disconnected[0].last_error == "client freed"
    client.allow_reconnect()
    poll_for(50, pair)
    assert not client.is_connected and ch.connect_failed == 0
    assert poll_until(lambda: len(pair.server_handler.disconnected) == 1, pair)
    pair.close()


def test_views_are_the_librarys_packets_until_bytes_are_kept(td_config: AnyConfig) -> None:
    owners: list[type] = []
    keep = [2]  # leave 2 bytes unconsumed once, then consume everything

    def remaining(conn: PollConnection, data: memoryview) -> int:
        owners.append(type(data.obj))
        return keep.pop() if keep else 0

    handler = RecordingHandler(remaining=remaining)
    pair = Pair(td_config, server_handler=handler)
    pair.client.write(b"abcd")
    assert poll_until(lambda: handler.received == b"ab", pair)
    pair.client.write(b"ef")
    assert poll_until(lambda: handler.received == b"abcdef", pair)
    pair.client.write(b"gh")
    assert poll_until(lambda: handler.received == b"abcdefgh", pair)
    # Zero-copy (a view of the library's packet: over a cffi buffer on the Python path,
    # over the memory itself on the compiled one), then the connection's own buffer while
    # bytes are kept, then zero-copy again.
    lent = ("buffer", "NoneType")
    kinds = [t.__name__ for t in owners]
    assert kinds[0] in lent and kinds[1] == "bytearray" and kinds[2] in lent, kinds
    assert handler.presented == [b"abcd", b"cdef", b"gh"]
    pair.close()


def test_an_interface_name_too_long_for_the_library_names_the_field(shim_library: Path) -> None:
    cfg = tcpdirect_config(shim_library, server={"interface": "x" * 80})
    with pytest.raises(ConfigError, match=r"^server\.interface = 'x+': invalid value"):
        pollnet.create_server(cfg)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    buf_size=st.integers(min_value=16, max_value=3000),
    chunks=st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=8),
    keep=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=8),
)
def test_remaining_bytes_contract_holds_for_any_split(
    shim_library: Path, buf_size: int, chunks: list[int], keep: list[float]
) -> None:
    """Whatever the packet boundaries and however much the handler leaves, every view
    starts with the bytes left last time, fits recv_buf_size, and the consumed bytes are
    exactly the stream."""
    stream = bytes(i * 7 % 251 for i in range(sum(chunks)))
    calls = [0]
    kept = [b""]
    drain = [False]

    def remaining(conn: PollConnection, data: memoryview) -> int:
        view = bytes(data)
        assert view.startswith(kept[0]) and len(view) <= buf_size
        calls[0] += 1
        left = 0 if drain[0] else min(int(keep[calls[0] % len(keep)] * len(view)), buf_size // 2)
        kept[0] = view[len(view) - left :]
        return left

    handler = RecordingHandler(remaining=remaining)
    pair = Pair(tcpdirect_config(shim_library, server={"recv_buf_size": buf_size}), handler)
    pos = 0
    for size in chunks:
        assert pair.client.write(stream[pos : pos + size])
        pos += size
    assert poll_until(lambda: len(handler.received) + len(kept[0]) >= len(stream), pair)
    drain[0] = True
    pair.client.write(b"!")  # one more byte presents what is kept, now consumed whole
    assert poll_until(lambda: len(handler.received) == len(stream) + 1, pair)
    assert bytes(handler.received) == stream + b"!"
    assert handler.disconnected == []
    pair.close()


def test_the_compiled_receive_and_send_run_unless_told_not_to() -> None:
    import os

    from pollnet import _fast
    from pollnet.backends.tcpdirect.connection import TcpdirectConnection

    if os.environ.get("POLLNET_PURE_PYTHON", "") not in ("", "0"):
        assert _fast.FAST is None
        return
    assert _fast.FAST is not None, _fast.WHY
    assert issubclass(TcpdirectConnection, _fast.FAST.TdConnCore)


def test_poll_itself_is_compiled_and_stays_in_c_while_connected(shim_library: Path) -> None:
    """A connected client's and a serving server's poll() run the reactor (or muxer) and
    read from C: their Python poll runs for connecting and accepting only."""
    from pollnet import _fast
    from pollnet.backends.tcpdirect.stack import Stack

    if _fast.FAST is None:
        pytest.skip(f"the Python path runs here ({_fast.WHY})")
    assert issubclass(Stack, _fast.FAST.TdStackCore)
    for cls in (TcpdirectTcpClient, TcpdirectTcpServer):
        assert type(cls.__dict__["poll"]).__name__ == "method_descriptor"
    cfg = tcpdirect_config(shim_library)
    server, client = pollnet.create_server(cfg), pollnet.create_client(cfg)
    sh = RecordingHandler(on_data=lambda conn, data: conn.write(data))
    ch = RecordingHandler()
    assert poll_until(lambda: client.is_connected and server.conn_count == 1,
                      (server, sh), (client, ch))
    python_polls = {"client": 0, "server": 0}
    for name, owner in (("client", client), ("server", server)):
        def counted(handler: object, now_ns: int | None, name: str = name,
                    real: object = owner._poll_py) -> None:  # type: ignore[attr-defined]
            python_polls[name] += 1
            real(handler, now_ns)  # type: ignore[operator]

        owner._poll_py = counted  # type: ignore[attr-defined]
    for i in range(50):
        assert client.write(b"m%02d" % i)
        assert poll_until(lambda i=i: len(ch.received) == 3 * (i + 1),  # type: ignore[misc]
                          (server, sh), (client, ch))
    assert bytes(ch.received) == b"".join(b"m%02d" % i for i in range(50))
    assert python_polls == {"client": 0, "server": 0}
    client.free()
    server.close()


class _RaisesOnce:
    """Raises in the first on_tcp_data it gets; records per connection what it consumed."""

    def __init__(self) -> None:
        self.raised = False
        self.got: dict[int, bytes] = {}

    def on_tcp_data(self, conn: PollConnection, data: memoryview) -> int:
        if not self.raised:
            self.raised = True
            raise RuntimeError("handler bug")
        self.got[id(conn)] = self.got.get(id(conn), b"") + bytes(data)
        return 0


def test_a_raising_handler_loses_no_other_connections_news(shim_library: Path) -> None:
    """TCPDirect's muxer reports a zocket once (edge-triggered): when one connection's
    handler raises, the others reported in the same zf_muxer_wait are still read at the
    next polls, without new bytes from their peers."""
    cfg = tcpdirect_config(shim_library)
    server = pollnet.create_server(cfg)
    clients = [pollnet.create_client(cfg) for _ in range(3)]
    chs = [RecordingHandler() for _ in clients]
    sh = _RaisesOnce()
    assert poll_until(lambda: server.conn_count == 3 and all(c.is_connected for c in clients),
                      (server, sh), *zip(clients, chs, strict=True))
    for i, client in enumerate(clients):
        assert client.write(b"from%d" % i)
    for client, ch in zip(clients, chs, strict=True):
        client.poll(ch)
    time.sleep(0.05)  # all three have reached the server's side
    with pytest.raises(RuntimeError, match="handler bug"):
        server.poll(sh)
    assert poll_until(lambda: sorted(sh.got.values()) == [b"from0", b"from1", b"from2"],
                      (server, sh)), sh.got
    for client in clients:
        client.free()
    server.close()


def test_client_free_from_inside_on_tcp_data_waits_for_the_packet(td_config: AnyConfig) -> None:
    """free() from a handler while the library lends the packet being read: the stack is
    freed once the packet is back (before, zf_stack_free ran under the read: a crash)."""
    server = pollnet.create_server(td_config)
    client = pollnet.create_client(td_config)
    sh = RecordingHandler(on_data=lambda conn, data: conn.write(data))
    ch = RecordingHandler(on_data=lambda conn, data: client.free())
    assert poll_until(lambda: client.is_connected and server.conn_count == 1,
                      (server, sh), (client, ch))
    assert client.write(b"hello")
    assert poll_until(lambda: len(ch.disconnected) == 1, (server, sh), (client, ch))
    assert bytes(ch.received) == b"hello"
    assert client.last_error == "client freed"
    for _ in range(100):  # a freed client only polls: no reactor, no reconnect
        client.poll(ch)
    assert len(ch.disconnected) == 1 and not client.is_connected
    server.close()
