"""Runs several stacks on one sim wire in virtual time (the wire: link/sim.py).

    wire = SimWire(loss=0.1, seed=7)
    server = TcpServer(options, port=80, wire=wire)
    client = TcpClient(options, wire=wire)
    drive = SimDriver(wire, (server, server_handler), (client, client_handler))
    client.connect(server.local_ip, 80)
    drive.run_until(lambda: client_handler.done, timeout_ms=60_000)

The driver polls every stack, then jumps the wire's clock to the earliest frame arrival
or timer, so a minute of TCP timeouts takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable

from pollnet.backends.efvi.efvitcp.endpoint import EVENT_BATCH, Endpoint
from pollnet.backends.efvi.link.sim import NEVER, SimWire


class SimStalled(RuntimeError):
    """The simulation cannot make progress (a stack keeps reporting a timer in the past)."""


class SimDriver:
    """Runs the stacks on one wire in virtual time: poll all, then jump the clock to
    min(next frame arrival, next timer)."""

    def __init__(self, wire: SimWire, *members: tuple[Endpoint, object]) -> None:
        self.wire = wire
        self._members: list[tuple[Endpoint, object]] = list(members)
        self.steps = 0
        self._idle_rounds = 0

    def add(self, endpoint: Endpoint, handler: object) -> None:
        if endpoint.wire is not self.wire:
            raise ValueError("SimDriver.add: the endpoint is not on this driver's wire")
        self._members.append((endpoint, handler))

    @property
    def now_ns(self) -> int:
        return self.wire.now_ns

    def step(self, limit_ns: int = NEVER) -> bool:
        """Poll every stack once at the current time, then advance the clock to the next
        thing that happens, at most to `limit_ns`. False when nothing more happens before
        `limit_ns` (nothing at all with the default)."""
        wire = self.wire
        events = 0
        full = False
        for ep, handler in self._members:
            n = ep.poll(handler)
            events += n
            full = full or n == EVENT_BATCH
        self.steps += 1
        if full:  # more events queued in C: poll again at the same time
            return True
        now = wire.now_ns
        arrival = wire.next_arrival_ns()
        if arrival is None:
            arrival = NEVER
        timer = min((ep.next_timer_ns() or NEVER for ep, _ in self._members), default=NEVER)
        nxt = min(arrival, timer)
        if nxt <= now:
            # Frames due now, or a timer that polling did not clear. The latter with no
            # events and nothing arriving, over and over, is a core bug: say so.
            self._idle_rounds = self._idle_rounds + 1 if events == 0 and arrival > now else 0
            if self._idle_rounds > 1000:
                raise SimStalled(
                    f"the simulation is stuck at t={now} ns: a stack reports a timer due at "
                    f"{timer} ns that polling does not clear"
                )
            return True
        self._idle_rounds = 0
        target = min(nxt, limit_ns)
        if target <= now or nxt >= NEVER:  # the limit reached, or nothing will ever happen
            return False
        wire.now_ns = target
        return True

    def run_until(self, done: Callable[[], object], *, timeout_ms: float = 60_000) -> bool:
        """Step until `done()` is true (True); False when the virtual time reaches
        now + timeout_ms or nothing is left to happen first."""
        deadline = self.wire.now_ns + int(timeout_ms * 1_000_000)
        while not done():
            if not self.step(deadline):
                return bool(done())
        return True

    def run_for(self, ms: float) -> None:
        """Let `ms` of virtual time pass, handling everything that happens in it."""
        end = self.wire.now_ns + int(ms * 1_000_000)
        while self.step(end):
            pass
        if self.wire.now_ns < end:
            self.wire.now_ns = end
            self.step(end)
