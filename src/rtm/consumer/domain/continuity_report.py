"""The result of a whole continuity check (`rtm verify`), built up as the check goes.

A report holds counts and, for each kind of problem, a bounded sample of the ids: a run over a
stream of millions must not hold millions of ids to say that something is wrong, and a person
reads the first few anyway. `ContinuityTally` accumulates; `ContinuityReport` is the frozen
outcome (see `rtm.consumer.domain.continuity` for what each finding means).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from rtm.consumer.domain.continuity import (
    EntryFindings,
    MissingMessage,
    NotStored,
    OrderProblem,
    Outcome,
    StoredTwice,
    distinct_stored_twice,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sample(Generic[T]):
    """The first `len(items)` of `count` findings."""

    items: tuple[T, ...] = ()
    count: int = 0


@dataclass(slots=True)
class _Collector(Generic[T]):
    limit: int
    items: list[T] = field(default_factory=list)
    count: int = 0

    def extend(self, found: Iterable[T]) -> None:
        for item in found:
            self.count += 1
            if len(self.items) < self.limit:
                self.items.append(item)

    def sample(self) -> Sample[T]:
        return Sample(tuple(self.items), self.count)


@dataclass(frozen=True, slots=True)
class ContinuityReport:
    """What `rtm verify` (and `verify_continuity`) found.

    Problems (each one makes the check fail): `missing`, `stored_twice`, `out_of_order`.
    Accounted for (not problems): `resent`, `pending`, `conversation_gone`, `undecodable`.
    Counts: `checked` JetStream messages in `stream_first_seq..stream_last_seq`, of which
    `stored` were found stored as themselves; `rows_checked` rows of `conversations_checked`
    conversations. `committed`: each partition's committed offset when the check began.
    """

    stream_first_seq: int
    stream_last_seq: int
    committed: Mapping[int, int]
    checked: int
    stored: int
    resent: int
    pending: int
    conversation_gone: Sample[NotStored]
    undecodable: Sample[NotStored]
    missing: Sample[MissingMessage]
    stored_twice: Sample[StoredTwice]
    out_of_order: Sample[OrderProblem]
    rows_checked: int
    conversations_checked: int

    @property
    def problems(self) -> int:
        return self.missing.count + self.stored_twice.count + self.out_of_order.count

    @property
    def clean(self) -> bool:
        return self.problems == 0


class ContinuityTally:
    """Adds findings up as a check goes; keeps at most `limit` ids of each kind."""

    def __init__(self, limit: int) -> None:
        self.outcomes: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self._missing = _Collector[MissingMessage](limit)
        self._gone = _Collector[NotStored](limit)
        self._undecodable = _Collector[NotStored](limit)
        self._twice = _Collector[StoredTwice](limit)
        self._order = _Collector[OrderProblem](limit)
        self._twice_seen: set[frozenset[uuid.UUID]] = set()

    @property
    def checked(self) -> int:
        return sum(self.outcomes.values())

    @property
    def problems(self) -> int:
        return self._missing.count + self._twice.count + self._order.count

    def add_entries(self, found: EntryFindings) -> None:
        for outcome, count in found.outcomes.items():
            self.outcomes[outcome] += count
        self._missing.extend(found.missing)
        self.add_stored_twice(found.stored_twice)
        for item in found.not_stored:
            target = self._gone if item.outcome is Outcome.CONVERSATION_GONE else self._undecodable
            target.extend([item])

    def add_stored_twice(self, found: Iterable[StoredTwice]) -> None:
        self._twice.extend(distinct_stored_twice(found, self._twice_seen))

    def add_order(self, found: Iterable[OrderProblem]) -> None:
        self._order.extend(found)

    def report(
        self,
        *,
        stream_first_seq: int,
        stream_last_seq: int,
        committed: Mapping[int, int],
        rows_checked: int,
        conversations_checked: int,
    ) -> ContinuityReport:
        return ContinuityReport(
            stream_first_seq=stream_first_seq,
            stream_last_seq=stream_last_seq,
            committed=dict(committed),
            checked=self.checked,
            stored=self.outcomes[Outcome.STORED],
            resent=self.outcomes[Outcome.RESENT],
            pending=self.outcomes[Outcome.PENDING],
            conversation_gone=self._gone.sample(),
            undecodable=self._undecodable.sample(),
            missing=self._missing.sample(),
            stored_twice=self._twice.sample(),
            out_of_order=self._order.sample(),
            rows_checked=rows_checked,
            conversations_checked=conversations_checked,
        )
