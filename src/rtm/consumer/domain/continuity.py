"""Continuity: is every acked message stored, once, in order? The comparison, without I/O.

JetStream is the record of what was acked: the producer acks a send only once JetStream holds
it. A partition's committed offset (`messaging.partition_offsets`) says "every message of this
partition up to here has been processed". So an acked message is **missing** when JetStream
holds it at or below its partition's committed offset and PostgreSQL holds neither its
`message_id` nor its `(sender_id, client_msg_id)`: no worker will ever look at it again, and as
`seq` stays dense no client can notice (issue #10).

Not everything JetStream holds is meant to be stored; these are accounted for, not lost:
- **resent**: JetStream accepted the same `(sender_id, client_msg_id)` again past its duplicate
  window (under a new `message_id`), or holds one message twice: one copy is stored;
- **pending**: above its partition's committed offset, not processed yet;
- **conversation gone**: the conversation no longer exists (its rows went with it);
- **undecodable**: a payload or subject our producer did not write; the consumer skips it.
They are counted and listed apart, so that an operator can judge them.

Stored rows are checked as well: **stored twice** (one JetStream message behind two rows, or two
rows naming one stream sequence) and **out of order** (per conversation, seq order must be
stream order and seqs dense from 1 up to the conversation's head, `conversation_heads.last_seq`).

`rtm verify` and the consumer's continuity auditor both feed these functions what they read
(`rtm.consumer.services.continuity`); neither has a comparison of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from enum import StrEnum

from rtm.shared.contract import MESSAGE_SUBJECT_PREFIX, AcceptedMessage


class Outcome(StrEnum):
    """What became of one message JetStream holds."""

    STORED = "stored"
    RESENT = "resent"
    PENDING = "pending"
    CONVERSATION_GONE = "conversation_gone"
    UNDECODABLE = "undecodable"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One message of RTM_MESSAGES. `partition` is None when the subject is not
    `rtm.msg.<partition>.<conversation_id>`, `message` None when the payload does not decode."""

    stream_seq: int
    partition: int | None
    message: AcceptedMessage | None


def stream_entry(stream_seq: int, subject: str, payload: bytes) -> StreamEntry:
    """Parse a raw JetStream message; never raises (a bad one is `undecodable`)."""
    partition: int | None = None
    prefix = MESSAGE_SUBJECT_PREFIX + "."
    if subject.startswith(prefix):
        number, _, conversation = subject[len(prefix) :].partition(".")
        if number.isdigit() and conversation and "." not in conversation:
            partition = int(number)
    try:
        message: AcceptedMessage | None = AcceptedMessage.decode(payload)
    except (ValueError, KeyError, TypeError, AttributeError):  # AttributeError: a non-str id
        message = None
    return StreamEntry(stream_seq, partition, message)


@dataclass(frozen=True, slots=True)
class StoredRow:
    """A row of `messaging.messages`, without its body (bodies are never compared or logged)."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    sender_id: uuid.UUID
    client_msg_id: uuid.UUID
    stream_seq: int


@dataclass(frozen=True, slots=True)
class Evidence:
    """What PostgreSQL says about some stream entries.

    `rows`: every row holding one of the entries' message ids or `(sender, client_msg_id)` keys;
    `conversations`: those of the entries' conversations that exist.
    """

    rows: Sequence[StoredRow] = ()
    conversations: Set[uuid.UUID] = frozenset()


@dataclass(frozen=True, slots=True)
class MissingMessage:
    """An acked message that is lost: processed (its partition committed past it), not stored."""

    stream_seq: int
    partition: int
    committed_offset: int
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    sender_id: uuid.UUID
    client_msg_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class NotStored:
    """A message legitimately not stored (conversation gone, undecodable), listed for review."""

    stream_seq: int
    partition: int | None
    outcome: Outcome
    message_id: uuid.UUID | None
    conversation_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class StoredTwice:
    """Rows that are one message stored more than once."""

    message_ids: tuple[uuid.UUID, ...]
    stream_seqs: tuple[int, ...]
    reason: str


class OrderKind(StrEnum):
    GAP = "gap"  # a seq between 1 and the head has no row
    REVERSED = "reversed"  # a higher seq holds an earlier stream message
    HEAD = "head"  # the conversation's head disagrees with its rows


@dataclass(frozen=True, slots=True)
class OrderProblem:
    """A conversation whose seqs are not dense stream order up to its head."""

    conversation_id: uuid.UUID
    seq: int
    kind: OrderKind
    detail: str
    message_id: uuid.UUID | None = None


@dataclass(slots=True)
class EntryFindings:
    """What `check_entries` found in a run of stream entries."""

    outcomes: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    missing: list[MissingMessage] = field(default_factory=list)
    not_stored: list[NotStored] = field(default_factory=list)
    stored_twice: list[StoredTwice] = field(default_factory=list)
    stored: list[StoredRow] = field(default_factory=list)  # the rows of the `stored` outcomes


def is_due(entry: StreamEntry, committed: Mapping[int, int]) -> bool:
    """Processed already: a decodable entry at or below its partition's committed offset."""
    if entry.partition is None or entry.message is None:
        return False
    return entry.stream_seq <= committed.get(entry.partition, 0)


def check_entries(
    entries: Iterable[StreamEntry], committed: Mapping[int, int], evidence: Evidence
) -> EntryFindings:
    """Classify each entry (see the module docstring).

    Args:
        entries: messages JetStream holds, in any order.
        committed: the committed offset of each partition (a partition missing here has
            processed nothing: offset 0).
        evidence: PostgreSQL's rows for the entries that are due (`is_due`), and which of
            their conversations exist.

    Returns:
        Counts per outcome; each missing message; the legitimately unstored ones; entries
        behind two rows; and the rows of the stored entries (for the order check).
    """
    by_id = {row.message_id: row for row in evidence.rows}
    by_key = {(row.sender_id, row.client_msg_id): row for row in evidence.rows}
    found = EntryFindings()
    for entry in entries:
        outcome = _outcome(entry, committed, by_id, by_key, evidence.conversations)
        found.outcomes[outcome] += 1
        message = entry.message
        if outcome is Outcome.UNDECODABLE or outcome is Outcome.CONVERSATION_GONE:
            found.not_stored.append(
                NotStored(
                    entry.stream_seq,
                    entry.partition,
                    outcome,
                    message.message_id if message else None,
                    message.conversation_id if message else None,
                )
            )
        if message is None or entry.partition is None or outcome is Outcome.PENDING:
            continue
        if outcome is Outcome.MISSING:
            found.missing.append(
                MissingMessage(
                    entry.stream_seq,
                    entry.partition,
                    committed.get(entry.partition, 0),
                    message.message_id,
                    message.conversation_id,
                    message.sender_id,
                    message.client_msg_id,
                )
            )
            continue
        own = by_id.get(message.message_id)
        other = by_key.get((message.sender_id, message.client_msg_id))
        if own is not None and other is not None and own.message_id != other.message_id:
            found.stored_twice.append(
                StoredTwice(
                    (own.message_id, other.message_id),
                    (entry.stream_seq,),
                    "one JetStream message, two rows (its message_id and its client_msg_id)",
                )
            )
        if outcome is Outcome.STORED and own is not None:
            found.stored.append(own)
    return found


def _outcome(
    entry: StreamEntry,
    committed: Mapping[int, int],
    by_id: Mapping[uuid.UUID, StoredRow],
    by_key: Mapping[tuple[uuid.UUID, uuid.UUID], StoredRow],
    conversations: Set[uuid.UUID],
) -> Outcome:
    message = entry.message
    if message is None or entry.partition is None:
        return Outcome.UNDECODABLE
    if not is_due(entry, committed):
        return Outcome.PENDING
    own = by_id.get(message.message_id)
    if own is not None and own.stream_seq == entry.stream_seq:
        return Outcome.STORED
    if own is not None or (message.sender_id, message.client_msg_id) in by_key:
        return Outcome.RESENT
    if message.conversation_id not in conversations:
        return Outcome.CONVERSATION_GONE
    return Outcome.MISSING


def rows_sharing_stream_seq(rows: Iterable[StoredRow]) -> list[StoredTwice]:
    """Rows that name the same stream sequence: one JetStream message stored more than once."""
    by_seq: dict[int, dict[uuid.UUID, StoredRow]] = {}
    for row in rows:
        by_seq.setdefault(row.stream_seq, {})[row.message_id] = row
    return [
        StoredTwice(
            tuple(sorted(group)), (stream_seq,), "two rows for one JetStream message (stream_seq)"
        )
        for stream_seq, group in sorted(by_seq.items())
        if len(group) > 1
    ]


def distinct_stored_twice(
    found: Iterable[StoredTwice], seen: set[frozenset[uuid.UUID]]
) -> list[StoredTwice]:
    """`found` less the sets of rows already in `seen`, which it extends: one pair of rows can
    be found by both rules (one message behind two rows that also share its stream sequence)."""
    fresh: list[StoredTwice] = []
    for item in found:
        rows = frozenset(item.message_ids)
        if rows not in seen:
            seen.add(rows)
            fresh.append(item)
    return fresh


class SequenceCheck:
    """One conversation's rows, fed in seq order from `first_seq`: dense, in stream order, within
    the head. A whole conversation starts at 1 and must end at its head (`complete`); a window
    of it (the auditor's) starts anywhere and may end below the head.

    Two rows with the same stream sequence are not reported here: `rows_sharing_stream_seq` does.
    """

    __slots__ = ("_conversation", "_expected", "_head", "_last", "_problems", "_top")

    def __init__(self, conversation_id: uuid.UUID, head: int | None, first_seq: int = 1) -> None:
        self._conversation = conversation_id
        self._head = head
        self._expected = first_seq
        self._last: StoredRow | None = None
        self._top = 0
        self._problems: list[OrderProblem] = []

    def add(self, row: StoredRow) -> None:
        if row.seq > self._expected:
            self._problem(self._expected, OrderKind.GAP, _no_row(self._expected, row.seq - 1))
        last = self._last
        if last is not None and row.stream_seq < last.stream_seq:
            self._problem(
                row.seq,
                OrderKind.REVERSED,
                f"seq {row.seq} holds stream_seq {row.stream_seq}, seq {last.seq} a later "
                f"{last.stream_seq}",
                row.message_id,
            )
        self._expected = max(self._expected, row.seq + 1)
        self._top = max(self._top, row.seq)
        self._last = row

    def finish(self, *, complete: bool) -> list[OrderProblem]:
        """The problems found; `complete`: the rows fed were all the conversation's rows."""
        head = self._head
        if self._last is not None and head is None:
            self._problem(self._top, OrderKind.HEAD, "rows but no conversation_heads row")
        elif head is not None and self._top > head:
            self._problem(self._top, OrderKind.HEAD, f"seq {self._top} is above the head {head}")
        elif complete and head is not None and self._top < head:
            self._problem(self._top + 1, OrderKind.GAP, _no_row(self._top + 1, head))
        return self._problems

    def _problem(
        self, seq: int, kind: OrderKind, detail: str, message_id: uuid.UUID | None = None
    ) -> None:
        self._problems.append(OrderProblem(self._conversation, seq, kind, detail, message_id))


def _no_row(first: int, last: int) -> str:
    return f"seq {first} has no row" if first == last else f"seqs {first}..{last} have no row"


def check_order(
    rows: Iterable[StoredRow], head: int | None, *, first_seq: int = 1, complete: bool = True
) -> list[OrderProblem]:
    """`SequenceCheck` over the rows of one conversation (sorted here by seq)."""
    ordered = sorted(rows, key=lambda row: row.seq)
    if not ordered:
        return []
    check = SequenceCheck(ordered[0].conversation_id, head, first_seq)
    for row in ordered:
        check.add(row)
    return check.finish(complete=complete)


class ConversationScan:
    """Every stored row, fed in `(conversation_id, seq)` order with its conversation's head:
    one `SequenceCheck` per conversation, so a scan holds one conversation's state at a time."""

    __slots__ = ("_check", "_current", "conversations", "rows")

    def __init__(self) -> None:
        self._current: uuid.UUID | None = None
        self._check: SequenceCheck | None = None
        self.conversations = 0
        self.rows = 0

    def add(self, row: StoredRow, head: int | None) -> list[OrderProblem]:
        """Problems of the conversation that ended before `row` (usually none)."""
        ended: list[OrderProblem] = []
        if row.conversation_id != self._current:
            ended = self.finish()
            self._current = row.conversation_id
            self._check = SequenceCheck(row.conversation_id, head)
            self.conversations += 1
        assert self._check is not None
        self._check.add(row)
        self.rows += 1
        return ended

    def finish(self) -> list[OrderProblem]:
        """Problems of the last conversation fed."""
        check, self._check = self._check, None
        return check.finish(complete=True) if check is not None else []
