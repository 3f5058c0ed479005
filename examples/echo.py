"""Echo: a server that writes back what it receives, and a client that sends messages
and checks the echoes. Runs on any backend by changing only the config file:

    python examples/echo.py examples/configs/socket.toml
    python examples/echo.py examples/configs/efvi-sim.toml

Both ends run in this process (the sim wire is in-process), each polled in turn.
"""

from __future__ import annotations

import sys

from _common import config_from_argv, main_of, pair, run

from pollnet import PollConnection

MESSAGES = [b"hello", b"pollnet " * 100, bytes(range(256)) * 20, b"bye"]


class EchoServer:
    def on_tcp_connected(self, conn: PollConnection) -> None:
        print(f"server: connection from {conn.peername}")

    def on_tcp_data(self, conn: PollConnection, data: memoryview) -> int:
        conn.write(data)  # zero-copy view in, copied once into the send path
        return 0

    def on_tcp_disconnect(self, conn: PollConnection) -> None:
        print(f"server: {conn.peername} left ({conn.last_error})")


class EchoClient:
    def __init__(self) -> None:
        self.expected = b"".join(MESSAGES)
        self.echoed = bytearray()
        self.connected = False

    def on_tcp_connected(self, conn: PollConnection) -> None:
        self.connected = True
        for message in MESSAGES:
            conn.write(message)

    def on_tcp_data(self, conn: PollConnection, data: memoryview) -> int:
        self.echoed += data
        return 0

    def on_tcp_connect_failed(self) -> None:
        print("client: connect failed, retrying")


def main() -> int:
    cfg = config_from_argv(sys.argv)
    server, client = pair(cfg)
    sh, ch = EchoServer(), EchoClient()
    ok = run(lambda: len(ch.echoed) >= len(ch.expected),
             lambda: server.poll(sh), lambda: client.poll(ch))
    client.close("done")
    run(lambda: server.conn_count == 0, lambda: server.poll(sh), lambda: client.poll(ch),
        timeout=2.0)
    server.close()
    if not ok or bytes(ch.echoed) != ch.expected:
        print(f"echo FAILED on {cfg.backend}: {len(ch.echoed)} of {len(ch.expected)} bytes")
        return 1
    print(f"echo OK on {cfg.backend}: {len(ch.expected)} bytes in {len(MESSAGES)} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main_of(main))
