"""The faults a chaos run injects and their seeded schedules (pure: no process, no clock).

    consumer-kill   SIGKILL of a consumer instance (the instances in turn)
    consumer-down   SIGKILL of a consumer instance that then stays down `pause` s before the
                    supervisor may start it again (a host lost, a pod rescheduled): longer than
                    the lease TTL, so its partitions move to the others and back
    consumer-term   SIGTERM of a consumer instance: a graceful stop, as in a rolling restart
    producer-kill   SIGKILL of the producer
    nats-kill       SIGKILL of nats-server (restarted on its data, `sync_interval: always`)
    postgres-kill   SIGKILL of PostgreSQL's postmaster (its backends die with it)
    postgres-stop   SIGSTOP of PostgreSQL (postmaster and every backend) for `pause` s, then
                    SIGCONT: a frozen database
    postmaster-stop SIGSTOP of the postmaster alone for `pause` s, then SIGCONT: open
                    connections keep working, new ones hang

Every killed process is restarted by the local supervisor (as systemd or Kubernetes would). A
frozen PostgreSQL is the nastier outage: connections stay open and queries hang instead of
failing, as on a stalled disk or a paused VM. Stopping the postmaster alone (`postmaster-stop`,
what signalling "PostgreSQL's PID" does) freezes only the making of new connections: its
backends go on serving the connections already open.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from rtm.chaos.errors import ChaosError


class FaultKind(StrEnum):
    CONSUMER_KILL = "consumer-kill"
    CONSUMER_DOWN = "consumer-down"
    CONSUMER_TERM = "consumer-term"
    PRODUCER_KILL = "producer-kill"
    NATS_KILL = "nats-kill"
    POSTGRES_KILL = "postgres-kill"
    POSTGRES_STOP = "postgres-stop"
    POSTMASTER_STOP = "postmaster-stop"


CONSUMER_FAULTS = frozenset(
    {FaultKind.CONSUMER_KILL, FaultKind.CONSUMER_DOWN, FaultKind.CONSUMER_TERM}
)

FREEZES = (FaultKind.POSTGRES_STOP, FaultKind.POSTMASTER_STOP)
LASTING = (*FREEZES, FaultKind.CONSUMER_DOWN)  # faults that last `pause` s
ALL_KINDS = tuple(FaultKind)
CONSUMER_KINDS = (FaultKind.CONSUMER_KILL, FaultKind.CONSUMER_DOWN, FaultKind.CONSUMER_TERM)
_FIXED_TARGETS = {
    FaultKind.PRODUCER_KILL: "producer",
    FaultKind.NATS_KILL: "nats",
    FaultKind.POSTGRES_KILL: "postgres",
    FaultKind.POSTGRES_STOP: "postgres",
    FaultKind.POSTMASTER_STOP: "postgres",
}


@dataclass(frozen=True, slots=True)
class PlannedFault:
    """`kind` on the process `target` (a `LocalSystem` name), `at` s after the load starts;
    `pause`: how long a freeze (`postgres-stop`, `postmaster-stop`) lasts, or a
    `consumer-down` stays down."""

    at: float
    kind: FaultKind
    target: str
    pause: float = 0.0

    @property
    def label(self) -> str:
        """`kill -9 consumer-2`, `SIGTERM consumer-1`, `SIGSTOP postgres 10s`."""
        if self.kind is FaultKind.POSTGRES_STOP:
            return f"SIGSTOP {self.target} {self.pause:g}s"
        if self.kind is FaultKind.POSTMASTER_STOP:
            return f"SIGSTOP postmaster {self.pause:g}s"
        if self.kind is FaultKind.CONSUMER_TERM:
            return f"SIGTERM {self.target}"
        if self.kind is FaultKind.CONSUMER_DOWN:
            return f"kill -9 {self.target}, down {self.pause:g}s"
        return f"kill -9 {self.target}"


def fault_rng(seed: int) -> random.Random:
    """The schedule's own random stream: fault options never change the messages a seed plans."""
    return random.Random(f"faults:{seed}")  # noqa: S311 - a replayable plan, not a secret


def parse_kinds(text: str) -> list[FaultKind]:
    """`consumer-kill,nats-kill` (or `all`) as kinds, in the order given, without repeats."""
    kinds: list[FaultKind] = []
    for word in (w.strip() for w in text.split(",")):
        if word == "all":
            chosen = list(ALL_KINDS)
        elif word in FaultKind.__members__.values():
            chosen = [FaultKind(word)]
        else:
            known = ", ".join(ALL_KINDS)
            raise ChaosError(f"unknown fault kind {word!r}: choose from {known}, all")
        kinds += [k for k in chosen if k not in kinds]
    if not kinds:
        raise ChaosError("no fault kind chosen")
    return kinds


class _Turns:
    """Consumer targets in turn, so that every instance is hit as often as the others."""

    def __init__(self, consumers: Sequence[str]) -> None:
        if not consumers:
            raise ChaosError("no consumer instance to inject faults into")
        self._consumers = list(consumers)
        self._next = 0

    def target(self, kind: FaultKind) -> str:
        if kind not in CONSUMER_KINDS:
            return _FIXED_TARGETS[kind]
        name = self._consumers[self._next % len(self._consumers)]
        self._next += 1
        return name


def random_schedule(
    rng: random.Random,
    *,
    duration: float,
    kinds: Sequence[FaultKind],
    consumers: Sequence[str],
    gap: tuple[float, float] = (15.0, 30.0),
    pause: float = 10.0,
    settle: float = 10.0,
) -> list[PlannedFault]:
    """Faults `gap` seconds apart (uniform; a freeze's gap starts when it ends).

    Kinds come in shuffled rounds (each chosen kind once per round), so a short run still sees
    every kind; consumers are hit in turn. No fault starts later than `settle` s before the end
    of the load (counting a freeze's pause), so the last one's recovery is measured under load.
    """
    low, high = gap
    if not 0 < low <= high:
        raise ChaosError(f"fault gap {low:g}-{high:g}: need 0 < min <= max")
    turns = _Turns(consumers)
    deck: list[FaultKind] = []
    planned: list[PlannedFault] = []
    at = rng.uniform(low, high)
    while True:
        if not deck:
            deck = list(kinds)
            rng.shuffle(deck)
        kind = deck[0]
        length = pause if kind in LASTING else 0.0
        if at + length + settle > duration:
            break
        deck.pop(0)
        planned.append(PlannedFault(at, kind, turns.target(kind), length))
        at += length + rng.uniform(low, high)
    return planned


def rotation_schedule(
    rng: random.Random,
    *,
    duration: float,
    consumers: Sequence[str],
    every: float = 10.0,
    extras: Sequence[FaultKind] = (
        FaultKind.PRODUCER_KILL,
        FaultKind.NATS_KILL,
        FaultKind.POSTGRES_KILL,
        FaultKind.POSTGRES_STOP,
        FaultKind.POSTMASTER_STOP,
    ),
    pause: float = 10.0,
    down_every: int = 0,
    down: float = 8.0,
    settle: float = 10.0,
) -> list[PlannedFault]:
    """SIGKILL of the consumers in turn every `every` s, and each of `extras` once, half-way
    between two consumer kills: the kills in a seeded order, then the freezes (the longest),
    the one after a freeze only once it has ended; all no later than `settle` s before the end
    of the load.

    Every `down_every`-th consumer kill (0: none) keeps the instance down `down` s. A consumer
    restarted within the lease TTL takes its own partitions back as their leases expire; one
    that stays down longer has them taken over by the others, which hand them back when it
    returns: the ownership handovers that a quick restart never exercises.
    """
    turns = _Turns(consumers)
    planned = []
    at, kills = every, 0
    while at + settle <= duration:
        kills += 1
        if down_every and kills % down_every == 0:
            kind, length = FaultKind.CONSUMER_DOWN, down
        else:
            kind, length = FaultKind.CONSUMER_KILL, 0.0
        planned.append(PlannedFault(at, kind, turns.target(kind), length))
        at += every
    others: list[FaultKind] = [k for k in extras if k not in LASTING]
    rng.shuffle(others)
    others += [k for k in extras if k in LASTING]
    at = 1.5 * every
    for kind in others:
        length = pause if kind in LASTING else 0.0
        if at + length + settle > duration:
            raise ChaosError(
                f"{duration:g}s of load is too short for {len(extras)} extra faults "
                f"every {every:g}s"
            )
        planned.append(PlannedFault(at, kind, turns.target(kind), length))
        at += every * (1 + math.ceil(length / every))
    return sorted(planned, key=lambda f: f.at)
