"""The traffic shapes of rooms, direct and fanout, and the rate ladders their ramps climb.

Pure data, apart from the scenarios that drive it, so that the unit tests can check the shapes
the options make without starting anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtm.bench.options import Options

ROOMS_LADDER = (250, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 10_000, 12_000,
                15_000, 20_000, 25_000, 30_000)  # fmt: skip
ROOMS_TARGET_RATE = 1000.0  # issue 6: "at 1,000 msgs/s p99 ≤ 10 ms and ack p50 ≤ 2 ms"
FANOUT_LADDER = (5, 10, 20, 30, 40, 60, 80, 100, 150, 200, 300, 400, 600, 800)


@dataclass(frozen=True, slots=True)
class Shape:
    """A traffic shape: `groups` conversations of `size` members, `senders` of them sending."""

    name: str
    kind: str  # "group" or "direct"
    size: int
    groups: int
    senders: int
    ladder: tuple[float, ...]

    @property
    def receivers(self) -> int:
        return self.size * self.groups

    def describe(self) -> str:
        if self.name == "fanout":
            return f"1 group of {self.size}, {self.senders} senders"
        if self.name == "direct":
            return f"{self.groups} direct pairs"
        return f"{self.receivers} receivers, rooms of {self.size}"


def shape_for(name: str, options: Options) -> Shape:
    """The shape of traffic scenario `name` at the scale `options` ask for."""
    n = options.connections
    if name == "rooms":
        size = max(2, min(options.room_size, n))
        return Shape("rooms", "group", size, max(1, n // size), size, ROOMS_LADDER)
    if name == "direct":
        return Shape("direct", "direct", 2, max(1, n // 2), 2, ROOMS_LADDER)
    if name == "fanout":
        return Shape("fanout", "group", n, 1, max(1, min(options.fanout_senders, n)), FANOUT_LADDER)
    raise ValueError(name)
