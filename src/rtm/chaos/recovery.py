"""How long each fault hurt (pure): recovery time, longest ack pause, spreads per kind.

Definitions (the report states them too); all times are on the run's clock:

* **recovery**: from the end of a fault (the SIGKILL or SIGTERM is sent; a freeze's SIGCONT is
  sent) until every conversation that has messages created after that moment has had one of
  them delivered to one of its receivers. That is when the whole path works again for everyone:
  a sender reaches the producer, JetStream stores, the partition's owner stores in PostgreSQL and
  fans out, a consumer instance delivers. Messages created before the fault and delayed by it do
  not count (a batch already in flight would end the measure early). It includes up to one
  interval between two messages of a conversation (about conversations / rate s). None: some
  such conversation had nothing delivered, ever.
* **ack pause**: the longest time no sender got any ack, from the start of the fault until the
  next fault starts (or the load ends).
* **back after**: the process hit is ready again (a new process, by the supervisor's readiness
  probe), counted from the end of the fault; measured by `rtm.chaos.inject`.
* **rejoin stall**: for a consumer instance that is back, the longest time from creation to first
  delivery of any message created in the `REJOIN_WINDOW_S` after it was ready again: partitions
  move back to it then (the others hand them over), and this is what that costs the messages.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

REJOIN_WINDOW_S = 5.0


@dataclass(frozen=True, slots=True)
class Created:
    """A message of the run: its conversation, when it was created (due), when first delivered."""

    conversation: str
    at: float
    delivered: float | None


class DeliveryIndex:
    """Per conversation, the earliest delivery among messages created at or after a moment.

    Messages are sorted by creation time with a suffix minimum of their delivery times, so each
    question costs a binary search per conversation.
    """

    def __init__(self, messages: Iterable[Created]) -> None:
        grouped: dict[str, list[Created]] = defaultdict(list)
        for message in messages:
            grouped[message.conversation].append(message)
        self._created: dict[str, list[float]] = {}
        self._delivered: dict[str, list[float | None]] = {}
        self._earliest: dict[str, list[float]] = {}
        for conversation, items in grouped.items():
            items.sort(key=lambda m: m.at)
            earliest = [math.inf] * (len(items) + 1)
            for i in range(len(items) - 1, -1, -1):
                delivered = items[i].delivered
                earliest[i] = min(earliest[i + 1], math.inf if delivered is None else delivered)
            self._created[conversation] = [m.at for m in items]
            self._delivered[conversation] = [m.delivered for m in items]
            self._earliest[conversation] = earliest

    def recovery(self, since: float, until: float) -> float | None:
        """Recovery after `since` (see the module docstring), over messages created before
        `until` (the end of the load). 0.0 when no conversation had traffic in between."""
        worst = 0.0
        for conversation, created in self._created.items():
            first = bisect.bisect_left(created, since)
            if first == len(created) or created[first] >= until:
                continue  # no traffic in this conversation after the fault
            delivered = self._earliest[conversation][first]
            if math.isinf(delivered):
                return None
            worst = max(worst, delivered - since)
        return worst

    def worst_latency(self, since: float, until: float) -> float | None:
        """The longest creation-to-first-delivery time of the messages created in
        [`since`, `until`); None when one of them was never delivered, 0.0 when there are none."""
        worst = 0.0
        for conversation, created in self._created.items():
            first = bisect.bisect_left(created, since)
            last = bisect.bisect_left(created, until)
            for at, delivered in zip(
                created[first:last], self._delivered[conversation][first:last], strict=True
            ):
                if delivered is None:
                    return None
                worst = max(worst, delivered - at)
        return worst


def longest_pause(times: Sequence[float], since: float, until: float) -> float:
    """The longest interval between `since` and `until` with none of the sorted `times`."""
    if until <= since:
        return 0.0
    first = bisect.bisect_right(times, since)
    last = bisect.bisect_left(times, until)
    inside = [since, *times[first:last], until]
    return max(b - a for a, b in itertools.pairwise(inside))


@dataclass(frozen=True, slots=True)
class Spread:
    count: int
    min: float
    median: float
    max: float


def spread(values: Iterable[float]) -> Spread | None:
    """min / median / max of `values` (None when there are none)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return Spread(len(ordered), ordered[0], statistics.median(ordered), ordered[-1])
