"""One server, 1,000 concurrent connections from several client stacks on one sim wire;
every byte accounted for in both directions."""

from __future__ import annotations

from efvi_util import PORT, Recorder, options

from pollnet.backends.efvi import Connection, SimDriver, SimWire, TcpClient, TcpServer

N_CONNS = 1000
N_CLIENTS = 5


class Echo(Recorder):
    def on_data(self, conn: Connection, data: memoryview) -> int:
        self.data[conn.conn_id] += data
        assert conn.send(data) == len(data)  # echo back, small enough to always fit
        return 0


def message(i: int) -> bytes:
    return f"conn {i:04d} says hello ".encode() * 3


def test_thousand_concurrent_connections() -> None:
    small = dict(conn_send_buf_cnt=4, conn_recv_buf_size=4096, recv_buf_cnt=1024,
                 max_time_wait_conn_cnt=N_CONNS)
    wire = SimWire(delay_us=100, static_arp=True)
    server = TcpServer(options(max_conn_cnt=N_CONNS, **small), port=PORT, wire=wire)
    sh = Echo()
    drive = SimDriver(wire, (server, sh))
    clients = []
    per = N_CONNS // N_CLIENTS
    for _ in range(N_CLIENTS):
        cl = TcpClient(options(**small), wire=wire, max_conns=per)
        ch = Recorder()
        drive.add(cl, ch)
        clients.append((cl, ch))
    conns: list[tuple[Connection, Recorder, bytes]] = []
    for k, (cl, ch) in enumerate(clients):
        for j in range(per):
            conn = cl.connect(server.local_ip, PORT)
            conns.append((conn, ch, message(k * per + j)))
    assert drive.run_until(lambda: sh.count("established") == N_CONNS, timeout_ms=60_000)
    assert server.conn_count == N_CONNS
    assert all(c.is_established for c, _, _ in conns)

    for conn, _, msg in conns:
        assert conn.send(msg) == len(msg)
    total = sum(len(m) for _, _, m in conns)
    assert drive.run_until(
        lambda: sum(len(v) for ch in (h for _, h in clients) for v in ch.data.values())
        == total, timeout_ms=60_000)
    # Every byte: the server got each connection's message exactly, and echoed it back.
    got_by_peer = {s.peername: bytes(sh.data[s.conn_id]) for s in sh.conns}
    for conn, ch, msg in conns:
        assert ch.data[conn.conn_id] == msg
        assert got_by_peer[conn.sockname] == msg

    # Close them all gracefully from the client side; the server answers with its FIN.
    for conn, _, _ in conns:
        conn.send_fin()

    class Closer(Echo):
        def on_fin(self, conn: Connection, data: memoryview) -> int:
            self.events.append(("fin", conn.conn_id))
            conn.send_fin()
            return 0

    closer = Closer()
    closer.conns, closer.data, closer.events = sh.conns, sh.data, sh.events
    drive._members[0] = (server, closer)
    assert drive.run_until(lambda: closer.count("closed") == N_CONNS, timeout_ms=60_000)
    assert sum(ch.count("closed") for _, ch in clients) == N_CONNS
    assert server.conn_count == 0
