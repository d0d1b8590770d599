"""What `rtm bench` was asked: the scenario names in their running order, and the options.

A module of its own, below everything else in the package: the command line builds `Options`,
and every scenario module reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

SCENARIOS = ("idle", "resume", "rooms", "direct", "fanout", "baseline", "pipeline", "socketio")
TRAFFIC = ("rooms", "direct", "fanout")


@dataclass
class Options:
    """Everything `rtm bench` was asked (see `rtm.bench.cli` for the meaning of each)."""

    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    rate: float | None = None
    ramp: bool = False
    duration: float | None = None
    connections: int = 1000
    room_size: int = 10
    idle_connections: int | None = None
    idle_per_user: int = 10
    fanout_senders: int = 20
    p99_ms: float = 50.0
    fanout_p99_ms: float = 100.0
    max_steps: int = 12
    workers: int = 2
    body_chars: int = 100
    resume_messages: int = 1000
    resume_rounds: int = 5
    per_connection_rate: float = 20.0
    nats_seconds: float | None = None
    node: bool = True  # socketio: also Node's socket.io, when node and npm are there

    @property
    def step_seconds(self) -> float:
        return self.duration if self.duration is not None else 5.0

    @property
    def idle_seconds(self) -> float:
        return self.duration if self.duration is not None else 25.0

    @property
    def idle_count(self) -> int:
        return self.idle_connections if self.idle_connections is not None else 10 * self.connections

    def p99_threshold(self, scenario: str) -> float:
        """The p99 delivery latency (ms) a ramp step of `scenario` must keep: issue 13 judges
        fan-out to a group of 1,000 at p99 ≤ 100 ms (each message is 1,000 socket writes, the
        last receiver's wait included), rooms and direct at 50 ms."""
        return self.fanout_p99_ms if scenario == "fanout" else self.p99_ms

    def ramping(self) -> bool:
        """Ramp unless only a fixed --rate was given."""
        return self.ramp or self.rate is None


def ordered(names: Sequence[str]) -> list[str]:
    """`names` in the order the scenarios run (`SCENARIOS`), whatever order they were given in."""
    return [name for name in SCENARIOS if name in names]
