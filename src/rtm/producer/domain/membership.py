"""Pure pieces of the membership check: the cache of conversation members and the cooldown that
spares PostgreSQL (and our latency) while it is known to be unreachable.

Both are driven by an injected monotonic clock (seconds) and do no I/O.

`MembershipCache` holds `conversation → members` as read from PostgreSQL:

- an entry is *fresh* for `ttl` seconds after it was read, then *stale* for `stale_for` more
  seconds (used only when PostgreSQL cannot be asked), then forgotten;
- its size is bounded by the total number of member ids it holds (`max_members`), least recently
  used conversations first out;
- `invalidate` drops an entry (our own writes, other producers' events); a read that started
  before an invalidation of the same conversation is not stored (`token`/`fill`), so a slow read
  can never put back what the invalidation removed.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

Now = Callable[[], float]


class CheckEvent(StrEnum):
    """What the send path observed while checking a send (counted by the metrics)."""

    CACHE_HIT = "hit"  # fresh cached membership used
    CACHE_MISS = "miss"  # membership read from PostgreSQL (or tried to)
    CACHE_STALE = "stale"  # PostgreSQL unreachable: an expired cached membership used
    STORED_CHECK_SKIPPED = "stored_check_skipped"  # PostgreSQL unreachable: JetStream dedup only


@dataclass(frozen=True, slots=True)
class CachedMembers:
    """A cached membership; `fresh` until its TTL, stale after it."""

    members: frozenset[uuid.UUID]
    fresh: bool


@dataclass(slots=True)
class _Entry:
    members: frozenset[uuid.UUID]
    read_at: float
    epoch: int  # `expire_all` calls before it was read

    @property
    def weight(self) -> int:
        return max(1, len(self.members))


class MembershipCache:
    """Conversation members read from PostgreSQL (see the module docstring).

    Args:
        ttl: seconds an entry is fresh.
        stale_for: seconds past `ttl` an entry may still serve when PostgreSQL is unreachable.
        max_members: most member ids held in total (an entry weighs at least 1).
        now: monotonic clock, seconds.
    """

    def __init__(self, *, ttl: float, stale_for: float, max_members: int, now: Now) -> None:
        if ttl <= 0 or stale_for < 0 or max_members < 1:
            raise ValueError("ttl must be positive, stale_for non-negative, max_members >= 1")
        self._ttl = ttl
        self._stale_for = stale_for
        self._max_members = max_members
        self._now = now
        self._entries: OrderedDict[uuid.UUID, _Entry] = OrderedDict()
        self._weight = 0
        self._seq = 0  # counts invalidations
        self._invalidated: OrderedDict[uuid.UUID, int] = OrderedDict()  # last one per key
        self._floor = 0  # reads with a token below this are refused (their record was dropped)
        self._epoch = 0

    def lookup(self, conversation_id: uuid.UUID) -> CachedMembers | None:
        """The cached members, fresh or stale, or None (never read, forgotten or too old)."""
        entry = self._entries.get(conversation_id)
        if entry is None:
            return None
        age = self._now() - entry.read_at
        if age >= self._ttl + self._stale_for:
            self._drop(conversation_id)
            return None
        self._entries.move_to_end(conversation_id)
        fresh = age < self._ttl and entry.epoch == self._epoch
        return CachedMembers(entry.members, fresh)

    def token(self) -> int:
        """Take before reading PostgreSQL; hand it to `fill` with what was read."""
        return self._seq

    def fill(self, conversation_id: uuid.UUID, members: frozenset[uuid.UUID], token: int) -> bool:
        """Store what a read begun at `token` found; False (nothing stored) when the
        conversation was invalidated since, since the read may predate that change."""
        if token < self._floor or self._invalidated.get(conversation_id, -1) > token:
            return False
        self._drop(conversation_id)
        entry = _Entry(members, self._now(), self._epoch)
        self._entries[conversation_id] = entry
        self._weight += entry.weight
        while self._weight > self._max_members and len(self._entries) > 1:
            oldest = next(iter(self._entries))
            self._drop(oldest)
        return True

    def invalidate(self, conversation_id: uuid.UUID) -> None:
        """Forget a conversation whose membership changed (or may have)."""
        self._seq += 1
        self._drop(conversation_id)
        self._invalidated[conversation_id] = self._seq
        self._invalidated.move_to_end(conversation_id)
        # Remember as many invalidations as entries can exist; forgetting one raises the floor.
        while len(self._invalidated) > max(self._max_members, 1024):
            _, seq = self._invalidated.popitem(last=False)
            self._floor = max(self._floor, seq)

    def expire_all(self) -> None:
        """Mark every entry stale and refuse reads in flight: events may have been missed
        (the bus reconnected). Stale entries still serve while PostgreSQL is unreachable."""
        self._seq += 1
        self._floor = self._seq
        self._epoch += 1

    def _drop(self, conversation_id: uuid.UUID) -> None:
        entry = self._entries.pop(conversation_id, None)
        if entry is not None:
            self._weight -= entry.weight

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def weight(self) -> int:
        """Member ids held (entries with no member count as one)."""
        return self._weight


class Cooldown:
    """After a failure, `blocked` for `seconds`: lookups that have a fallback skip PostgreSQL
    meanwhile instead of each paying a timeout; a success ends it at once."""

    def __init__(self, seconds: float, now: Now) -> None:
        self._seconds = seconds
        self._now = now
        self._until = float("-inf")

    @property
    def blocked(self) -> bool:
        return self._now() < self._until

    def failed(self) -> None:
        self._until = self._now() + self._seconds

    def succeeded(self) -> None:
        self._until = float("-inf")
