"""In-memory implementations of the continuity ports, for unit tests of the service and the
auditor: a stream, the stored rows, and the audited positions, as plain lists and dicts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rtm.consumer.domain.continuity import Evidence, StoredRow, StreamEntry
from rtm.consumer.domain.continuity_ports import HeadedRow, StreamBounds
from rtm.consumer.domain.exceptions import ContinuityUnavailable
from rtm.shared.contract import AcceptedMessage


class InMemoryStreamHistory:
    """`StreamHistory` over a list of entries (kept in stream order)."""

    def __init__(self, entries: Sequence[StreamEntry] = ()) -> None:
        self.entries = sorted(entries, key=lambda e: e.stream_seq)
        self.on_read: Callable[[], None] | None = None
        self.reads = 0

    async def bounds(self) -> StreamBounds:
        if not self.entries:
            return StreamBounds(0, 0, 0)
        return StreamBounds(
            self.entries[0].stream_seq, self.entries[-1].stream_seq, len(self.entries)
        )

    async def read(
        self, *, partition: int | None, after_seq: int, up_to_seq: int, batch: int
    ) -> AsyncGenerator[list[StreamEntry], None]:
        self.reads += 1
        if self.on_read is not None:
            self.on_read()
        chosen = [
            e
            for e in self.entries
            if after_seq < e.stream_seq <= up_to_seq
            and (partition is None or e.partition == partition)
        ]
        for start in range(0, len(chosen), batch):
            yield chosen[start : start + batch]


@dataclass
class InMemoryStoredHistory:
    """`StoredHistory` over rows, heads, existing conversations and committed offsets."""

    rows: list[StoredRow] = field(default_factory=list)
    heads: dict[uuid.UUID, int] = field(default_factory=dict)
    conversations: set[uuid.UUID] = field(default_factory=set)
    committed: dict[int, int] = field(default_factory=dict)
    down: bool = False

    def _check_up(self) -> None:
        if self.down:
            raise ContinuityUnavailable("PostgreSQL: connection refused")

    async def committed_offsets(self) -> dict[int, int]:
        self._check_up()
        return dict(self.committed)

    async def evidence(self, entries: Sequence[StreamEntry]) -> Evidence:
        self._check_up()
        ids = {e.message.message_id for e in entries if e.message}
        keys = {(e.message.sender_id, e.message.client_msg_id) for e in entries if e.message}
        rows = [
            r for r in self.rows if r.message_id in ids or (r.sender_id, r.client_msg_id) in keys
        ]
        return Evidence(rows, frozenset(self.conversations))

    async def rows_between(
        self, spans: Mapping[uuid.UUID, tuple[int, int]], known: Collection[uuid.UUID] = ()
    ) -> tuple[list[StoredRow], dict[uuid.UUID, int]]:
        rows = [
            r
            for r in self.rows
            if r.conversation_id in spans
            and spans[r.conversation_id][0] <= r.seq <= spans[r.conversation_id][1]
            and r.message_id not in known
        ]
        return rows, {c: h for c, h in self.heads.items() if c in spans}

    async def all_rows(self, batch: int) -> AsyncGenerator[list[HeadedRow], None]:
        ordered = sorted(self.rows, key=lambda r: (r.conversation_id, r.seq))
        for start in range(0, len(ordered), batch):
            yield [HeadedRow(r, self.heads.get(r.conversation_id)) for r in ordered[start:][:batch]]

    async def heads_without_rows(self) -> list[tuple[uuid.UUID, int]]:
        with_rows = {r.conversation_id for r in self.rows}
        return [(c, h) for c, h in self.heads.items() if h > 0 and c not in with_rows]

    async def rows_sharing_stream_seq(self) -> list[StoredRow]:
        counts: dict[int, int] = {}
        for row in self.rows:
            counts[row.stream_seq] = counts.get(row.stream_seq, 0) + 1
        return [r for r in self.rows if counts[r.stream_seq] > 1]


class InMemoryAuditPositions:
    """`AuditPositions` in a dict, compare-and-set like the real one."""

    def __init__(self) -> None:
        self.positions: dict[int, int] = {}

    async def audited(self, partition: int) -> int:
        return self.positions.get(partition, 0)

    async def advance(self, partition: int, expected: int, new: int) -> bool:
        if self.positions.get(partition, 0) != expected:
            return False
        self.positions[partition] = new
        return True


def accepted(conversation: uuid.UUID, sender: uuid.UUID, body: str = "a body") -> AcceptedMessage:
    return AcceptedMessage(
        uuid.uuid4(), conversation, sender, uuid.uuid4(), body, datetime(2025, 1, 1, tzinfo=UTC)
    )


def stored_as(entry: StreamEntry, seq: int) -> StoredRow:
    """The row the consumer writes for `entry`."""
    message = entry.message
    assert message is not None
    return StoredRow(
        message.message_id,
        message.conversation_id,
        seq,
        message.sender_id,
        message.client_msg_id,
        entry.stream_seq,
    )


def consumed(
    entries: Sequence[StreamEntry], stored: InMemoryStoredHistory, *, lose: Sequence[int] = ()
) -> None:
    """Store `entries` the way the consumer does (dense seqs per conversation, in stream order)
    except the stream seqs in `lose`, and commit each partition up to its last entry."""
    for entry in sorted(entries, key=lambda e: e.stream_seq):
        assert entry.message is not None
        assert entry.partition is not None
        stored.conversations.add(entry.message.conversation_id)
        stored.committed[entry.partition] = entry.stream_seq
        if entry.stream_seq in lose:
            continue
        conversation = entry.message.conversation_id
        seq = stored.heads.get(conversation, 0) + 1
        stored.heads[conversation] = seq
        stored.rows.append(stored_as(entry, seq))
