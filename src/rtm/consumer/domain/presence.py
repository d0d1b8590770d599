"""Who is online, across consumer instances, from their events and heartbeats. Pure: no I/O, and
no wall clock either.

Every instance (one process: its `source` is unique per process) reports on core NATS:

- `online` / `offline` when a user's first socket opens / last socket closes on it, with the
  instance's current beat number;
- every heartbeat interval, a *heartbeat*: its beat number (counting up from 1) and the full list
  of its online users, split in chunks (`chunk` of `chunks`).

A user is online while at least one instance reports them. Without any wall clock, reports stop
counting in two ways:

- **missing from two full heartbeats** of a live instance (every chunk of both received): the
  offline event was lost;
- **silent instance**: every instance receives its *own* heartbeats back from NATS; a report not
  renewed while `missed + 1` of our own heartbeats came back is dropped (the instance died, or
  the chunk naming the user keeps being lost). Time is counted in our own heartbeats as we
  process them, so a saturated event loop, or a NATS outage on our side, never expires anybody
  by itself: what we process late, we process in the order it was published.

An offline event leaves a tombstone with its beat: chunks of a heartbeat taken before the user
left (beat <= the tombstone's) that arrive after it do not bring the user back. A beat number
lower than one already seen from a source means the process restarted with the same name: its
chunk bookkeeping starts over and its old users are kept only until two full heartbeats of the
new process omit them.

Announcements are coalesced: every change marks the user *pending*; `take_changes` returns the
pending users whose status differs from the one last announced (a user who left and came back
in between yields nothing) and records the new status as announced.

Events without a beat (instances of an older version) are handled by the silence rule only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Report:
    beat: int  # the source's beat in which the user was last reported (-1: unknown)
    heard: int  # our own heartbeat count when they were last reported


@dataclass(slots=True)
class _Source:
    heard: int  # our own heartbeat count when the source was last heard
    top: int = 0  # highest beat seen from it
    assembling: int = 0  # the heartbeat whose chunks are being received
    chunks_seen: set[int] = field(default_factory=set)
    last_full: int | None = None  # the last heartbeat received whole
    left: dict[uuid.UUID, int] = field(default_factory=dict)  # user → beat of their offline
    users: dict[uuid.UUID, _Report] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Expired:
    """Users dropped without an offline event, by reason."""

    unlisted: int = 0  # missing from two full heartbeats of their instance
    silent: int = 0  # not reported while `missed + 1` of our own heartbeats came back


@dataclass(frozen=True, slots=True)
class Change:
    user_id: uuid.UUID
    online: bool

    @property
    def status(self) -> str:
        return "online" if self.online else "offline"


class PresenceTracker:
    """Online users by reporting instance, expiring on missed heartbeats counted in our own."""

    def __init__(self, own_source: str, missed: int = 3) -> None:
        self._own = own_source
        self._missed = missed
        self._clock = 0  # how many of our own heartbeats came back
        self._own_top = 0
        self._sources: dict[str, _Source] = {}
        self._where: dict[uuid.UUID, set[str]] = {}  # user → sources reporting them
        self._pending: set[uuid.UUID] = set()
        self._announced: set[uuid.UUID] = set()  # users last announced online

    # -- reads ------------------------------------------------------------------------------

    def is_online(self, user_id: uuid.UUID) -> bool:
        return user_id in self._where

    def announced_online(self, user_id: uuid.UUID) -> bool:
        """Online as far as sockets have been told (what a new socket is told, too)."""
        return user_id in self._announced

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    # -- events -----------------------------------------------------------------------------

    def online(self, source: str, user_id: uuid.UUID, beat: int | None) -> None:
        entry = self._source(source)
        entry.left.pop(user_id, None)
        self._report(source, entry, user_id, beat)

    def offline(self, source: str, user_id: uuid.UUID, beat: int | None) -> None:
        entry = self._source(source)
        if beat is not None:
            entry.left[user_id] = beat
        self._drop(source, entry, user_id)

    def heartbeat(
        self,
        source: str,
        beat: int | None,
        user_ids: Iterable[uuid.UUID],
        chunk: int = 0,
        chunks: int = 1,
    ) -> Expired:
        """One chunk of a source's heartbeat; returns the users it made expire."""
        entry = self._source(source)
        if beat is None:
            for user in user_ids:
                self._report(source, entry, user, None)
            return self._tick() if source == self._own else Expired()
        self._restarted(entry, beat)
        if beat > entry.assembling:
            entry.assembling, entry.chunks_seen = beat, set()
            entry.left = {u: b for u, b in entry.left.items() if b >= beat}
        for user in user_ids:
            if entry.left.get(user, -1) < beat:
                self._report(source, entry, user, beat)
        unlisted = 0
        entry.chunks_seen.add(chunk)
        if len(entry.chunks_seen) >= chunks and entry.last_full != beat:
            previous, entry.last_full = entry.last_full, beat
            if previous is not None:
                gone = [u for u, r in entry.users.items() if r.beat < previous]
                for user in gone:
                    self._drop(source, entry, user)
                unlisted = len(gone)
        if source == self._own and beat > self._own_top:
            self._own_top = beat
            return Expired(unlisted, self._tick().silent)
        return Expired(unlisted)

    # -- announcements ----------------------------------------------------------------------

    def take_changes(self) -> list[Change]:
        """Pending users whose status differs from the one last announced; from now on they
        count as announced with their new status."""
        changes = []
        for user in self._pending:
            online = user in self._where
            if online != (user in self._announced):
                changes.append(Change(user, online))
                if online:
                    self._announced.add(user)
                else:
                    self._announced.discard(user)
        self._pending.clear()
        return changes

    def restore(self, changes: Iterable[Change]) -> None:
        """Announcing `changes` failed: undo them, so that the next `take_changes` retries."""
        for change in changes:
            if change.online:
                self._announced.discard(change.user_id)
            else:
                self._announced.add(change.user_id)
            self._pending.add(change.user_id)

    # -- internals --------------------------------------------------------------------------

    def _source(self, source: str) -> _Source:
        entry = self._sources.get(source)
        if entry is None:
            entry = self._sources[source] = _Source(heard=self._clock)
        entry.heard = self._clock
        return entry

    @staticmethod
    def _restarted(entry: _Source, beat: int) -> None:
        """A heartbeat numbered below the last one: the process restarted under the same name
        (heartbeats of one process arrive in order). Forget its beats, keep its users until two
        full heartbeats of the new process omit them. Change events do not count here: one
        published just before a heartbeat may arrive just after it, with the previous number."""
        if beat < entry.top:
            entry.assembling, entry.chunks_seen, entry.last_full = 0, set(), None
            entry.left.clear()
            for report in entry.users.values():
                report.beat = -1
        entry.top = beat

    def _report(self, source: str, entry: _Source, user: uuid.UUID, beat: int | None) -> None:
        report = entry.users.get(user)
        if report is None:
            entry.users[user] = _Report(-1 if beat is None else beat, self._clock)
            where = self._where.get(user)
            if where is None:
                self._where[user] = {source}
                self._pending.add(user)
            else:
                where.add(source)
        else:
            report.heard = self._clock
            if beat is not None and beat > report.beat:
                report.beat = beat

    def _drop(self, source: str, entry: _Source, user: uuid.UUID) -> None:
        if entry.users.pop(user, None) is None:
            return
        where = self._where[user]
        where.discard(source)
        if not where:
            del self._where[user]
            self._pending.add(user)

    def _tick(self) -> Expired:
        """One of our own heartbeats came back: drop reports not renewed for too long."""
        self._clock += 1
        oldest = self._clock - self._missed - 1
        silent = 0
        for source, entry in list(self._sources.items()):
            if entry.heard <= oldest and source != self._own:
                for user in list(entry.users):
                    self._drop(source, entry, user)
                    silent += 1
                del self._sources[source]
                continue
            stale = [u for u, r in entry.users.items() if r.heard <= oldest]
            for user in stale:
                self._drop(source, entry, user)
            silent += len(stale)
        return Expired(silent=silent)
