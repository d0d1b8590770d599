"""Closing connections when their token expires: one timer per server, not one per connection.

Why: a timer per connection (an asyncio `TimerHandle`, or a task sleeping until the expiry) is
about 0.5 KB of every idle connection (1.5 KB for a task); the idle benchmark holds thousands of
them (issue 13). `TokenExpiry` keeps a heap entry per connection instead (~0.1 KB) and one timer,
armed for the earliest expiry, in the style of `rtm.shared.picows_server.Keepalive`.

An `auth` frame moves a connection's expiry, usually later. The heap is not searched then: an
entry whose time came is checked against the connection's *current* expiry before closing it
(`Expiring.token_expires_at`), and pushed back when the token was refreshed meanwhile. Only an
expiry moved earlier needs a new entry at once (`watch` again); the old one is then marked dead.
A connection that goes is marked dead too (`forget`), so the heap does not keep it alive.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from typing import Protocol

# The longest the timer sleeps at once: the loop's clock is monotonic, expiries are wall-clock
# times; waking at least this often bounds how far the two may drift apart before a check.
MAX_SLEEP_S = 60.0
# Dead heap entries tolerated beyond as many as there are live ones (see `_drop_dead`).
_SLACK = 64


class Expiring(Protocol):
    """A connection whose token expires."""

    def token_expires_at(self) -> float:
        """When the connection's current token expires (a POSIX timestamp)."""
        ...

    def token_expired(self) -> None:
        """Its token has expired: close it (4505)."""
        ...


class _Entry:
    """One heap entry; `target` None once dead (forgotten, or replaced by an earlier one)."""

    __slots__ = ("at", "target")

    def __init__(self, at: float, target: Expiring) -> None:
        self.at = at
        self.target: Expiring | None = target

    def __lt__(self, other: _Entry) -> bool:
        return self.at < other.at


class TokenExpiry:
    """Calls `token_expired` of each watched connection once its current token's expiry has
    passed (never before; late by the loop's latency), from one timer for all of them."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._heap: list[_Entry] = []
        self._entries: dict[Expiring, _Entry] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # the wall-clock time the timer is armed for

    def __len__(self) -> int:
        """Connections watched."""
        return len(self._entries)

    def watch(self, target: Expiring) -> None:
        """Watch `target` until `forget`; again after its token changed, if it may expire
        earlier than before (a later expiry is found when the old one comes)."""
        at = target.token_expires_at()
        entry = self._entries.get(target)
        if entry is not None:
            if entry.at <= at:
                return  # the old entry comes first and will push the new time
            entry.target = None
            self._drop_dead()
        self._push(_Entry(at, target))

    def forget(self, target: Expiring) -> None:
        """Stop watching `target` (it has gone); its entry stays in the heap, dead, until due
        or until the dead outnumber the live (`_drop_dead`)."""
        entry = self._entries.pop(target, None)
        if entry is not None:
            entry.target = None
        if not self._entries and self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._heap.clear()
        else:
            self._drop_dead()

    def _drop_dead(self) -> None:
        """Rebuild the heap without its dead entries once they outnumber the live ones: with
        connections coming and going faster than tokens expire, they would pile up for a
        token's lifetime. Amortised O(1) per entry; in place (`expire_due` holds the list)."""
        heap = self._heap
        if len(heap) > 2 * len(self._entries) + _SLACK:
            heap[:] = [entry for entry in heap if entry.target is not None]
            heapq.heapify(heap)

    def _push(self, entry: _Entry) -> None:
        assert entry.target is not None
        self._entries[entry.target] = entry
        heapq.heappush(self._heap, entry)
        if self._timer is None or entry.at < self._timer_at:
            self._arm()

    def _arm(self) -> None:
        """Arm the timer for the earliest live entry (none: stop)."""
        heap = self._heap
        while heap and heap[0].target is None:
            heapq.heappop(heap)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not heap:
            return
        at = heap[0].at
        delay = min(max(at - self._clock(), 0.0), MAX_SLEEP_S)
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        try:
            self.expire_due(self._clock())
        finally:  # a close that raised must not stop the watch of the others
            self._arm()

    def expire_due(self, now: float) -> None:
        """Close every watched connection whose current token has expired by `now`; push back
        those whose token was refreshed since their entry was made."""
        heap = self._heap
        while heap and heap[0].at <= now:
            entry = heapq.heappop(heap)
            target = entry.target
            if target is None:
                continue
            current = target.token_expires_at()
            if current > now:
                entry.target = None
                self._push_quietly(_Entry(current, target))
                continue
            del self._entries[target]
            entry.target = None
            target.token_expired()

    def _push_quietly(self, entry: _Entry) -> None:
        """`_push` without arming: `_fire` arms once the due entries are handled."""
        assert entry.target is not None
        self._entries[entry.target] = entry
        heapq.heappush(self._heap, entry)
