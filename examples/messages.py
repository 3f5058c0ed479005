"""A length-prefixed message app: each message is a 4-byte big-endian length and a body.
The client sends requests ("add a b"), the server answers each with the sum; partial
messages stay in the receive buffer through `on_tcp_data`'s return value (the bytes left
unconsumed come back first next time). Runs on any backend by changing only the config:

    python examples/messages.py examples/configs/efvi-sim.toml
"""

from __future__ import annotations

import struct
import sys

from _common import config_from_argv, main_of, pair, run

from pollnet import PollConnection

HEADER = struct.Struct("!I")
REQUESTS = [(i, i * 7) for i in range(200)]


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def parse(data: memoryview, on_message: object) -> int:
    """Call on_message(body) for every complete message; return the bytes left."""
    pos, end = 0, len(data)
    while end - pos >= HEADER.size:
        (size,) = HEADER.unpack_from(data, pos)
        if end - pos - HEADER.size < size:
            break
        on_message(bytes(data[pos + HEADER.size : pos + HEADER.size + size]))  # type: ignore[operator]
        pos += HEADER.size + size
    return end - pos


class Server:
    def on_tcp_data(self, conn: PollConnection, data: memoryview) -> int:
        def answer(body: bytes) -> None:
            _, a, b = body.split()
            conn.write(frame(b"%d" % (int(a) + int(b))), more=True)

        left = parse(data, answer)
        conn.write(b"")  # flush what `more` held back
        return left


class Client:
    def __init__(self) -> None:
        self.answers: list[int] = []

    def on_tcp_connected(self, conn: PollConnection) -> None:
        # Write the requests in awkward pieces: the server sees partial messages.
        stream = b"".join(frame(b"add %d %d" % r) for r in REQUESTS)
        for i in range(0, len(stream), 37):
            conn.write(stream[i : i + 37])

    def on_tcp_data(self, conn: PollConnection, data: memoryview) -> int:
        return parse(data, lambda body: self.answers.append(int(body)))


def main() -> int:
    cfg = config_from_argv(sys.argv)
    server, client = pair(cfg)
    sh, ch = Server(), Client()
    ok = run(lambda: len(ch.answers) >= len(REQUESTS),
             lambda: server.poll(sh), lambda: client.poll(ch))
    client.close("done")
    server.close()
    if not ok or ch.answers != [a + b for a, b in REQUESTS]:
        print(f"messages FAILED on {cfg.backend}: {len(ch.answers)} answers")
        return 1
    print(f"messages OK on {cfg.backend}: {len(REQUESTS)} requests answered")
    return 0


if __name__ == "__main__":
    sys.exit(main_of(main))
