"""PostgreSQL implementations of the continuity ports: `StoredHistory` and `AuditPositions`.

Every lookup is one statement for a whole chunk of stream messages (`= ANY` and `unnest` over
arrays), served by the unique indexes the consumer already has: the primary key for message
ids, `(sender_id, client_msg_id)` for resends, `(conversation_id, seq)` for runs of seqs. No
index was added for the check, so the consumer's inserts cost what they did. Only `rtm verify`
reads whole tables (the row scan, and rows sharing a stream sequence).

Connections come from `rtm.shared.postgres.PostgresDatabase` (the consumer's own, for the
auditor): every lookup is bounded by the database timeout, the whole-table reads of `rtm verify`
by `SCAN_TIMEOUT_S`, and an outage is `ContinuityUnavailable`, never a driver error.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import asyncpg

from rtm.consumer.domain.continuity import Evidence, StoredRow, StreamEntry
from rtm.consumer.domain.continuity_ports import HeadedRow
from rtm.consumer.domain.exceptions import ContinuityUnavailable, Unavailable
from rtm.shared.postgres import PostgresDatabase

_ROW_COLUMNS = "m.message_id, m.conversation_id, m.seq, m.sender_id, m.client_msg_id, m.stream_seq"
# The whole-table reads of `rtm verify` (every stored row, in one snapshot): bounded, so that a
# frozen server cannot hold the operator's command for ever, but far beyond a lookup's bound.
SCAN_TIMEOUT_S = 3600.0


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """An outage (`Unavailable`, from the database) or a statement PostgreSQL refused, as
    `ContinuityUnavailable`, once, here."""
    try:
        yield
    except Unavailable as exc:
        cause = exc.__cause__
        raise ContinuityUnavailable(f"PostgreSQL: {what}: {exc.message}: {cause!r}") from exc
    except asyncpg.PostgresError as exc:
        raise ContinuityUnavailable(f"PostgreSQL: {what}: {exc!r}") from exc


def _row(record: Any) -> StoredRow:
    return StoredRow(
        record["message_id"],
        record["conversation_id"],
        int(record["seq"]),
        record["sender_id"],
        record["client_msg_id"],
        int(record["stream_seq"]),
    )


class PostgresStoredHistory:
    """`StoredHistory` on the `messaging` schema."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    async def committed_offsets(self) -> dict[int, int]:
        with _translated("reading committed offsets"):
            async with self._db.connection() as conn:
                rows = await conn.fetch(
                    "SELECT partition, stream_seq FROM messaging.partition_offsets"
                )
        return {int(r["partition"]): int(r["stream_seq"]) for r in rows}

    async def evidence(self, entries: Sequence[StreamEntry]) -> Evidence:
        messages = [entry.message for entry in entries if entry.message is not None]
        ids = [m.message_id for m in messages]
        senders = [m.sender_id for m in messages]
        client_ids = [m.client_msg_id for m in messages]
        conversations = list({m.conversation_id for m in messages})
        with _translated("looking up stored messages"):
            async with self._db.connection() as conn:
                rows = await conn.fetch(_EVIDENCE, ids, senders, client_ids)
                existing = await conn.fetch(
                    "SELECT id FROM messaging.conversations WHERE id = ANY($1::uuid[])",
                    conversations,
                )
        return Evidence([_row(r) for r in rows], frozenset(r["id"] for r in existing))

    async def rows_between(
        self, spans: Mapping[uuid.UUID, tuple[int, int]], known: Collection[uuid.UUID] = ()
    ) -> tuple[list[StoredRow], dict[uuid.UUID, int]]:
        conversations = list(spans)
        with _translated("reading runs of seqs"):
            async with self._db.connection() as conn:
                rows = await conn.fetch(
                    _BETWEEN,
                    conversations,
                    [spans[c][0] for c in conversations],
                    [spans[c][1] for c in conversations],
                    list(known),
                )
                heads = await conn.fetch(
                    "SELECT conversation_id, last_seq FROM messaging.conversation_heads"
                    " WHERE conversation_id = ANY($1::uuid[])",
                    conversations,
                )
        return [_row(r) for r in rows], {r["conversation_id"]: int(r["last_seq"]) for r in heads}

    async def all_rows(self, batch: int) -> AsyncGenerator[list[HeadedRow], None]:
        # The deadline runs across the yields: `verify` does no I/O of its own while it checks
        # a batch of rows, so it can only fire while this generator waits for the next batch.
        # No `async with conn.transaction()`: its exit would send ROLLBACK over a connection
        # that just failed (`rtm.shared.postgres`).
        with _translated("scanning messages"):
            async with self._db.connection(SCAN_TIMEOUT_S) as conn:
                snapshot = conn.transaction(isolation="repeatable_read", readonly=True)
                await snapshot.start()
                cursor = await conn.cursor(_ALL_ROWS)
                while records := await cursor.fetch(batch):
                    yield [
                        HeadedRow(_row(r), None if r["head"] is None else int(r["head"]))
                        for r in records
                    ]
                await snapshot.commit()

    async def heads_without_rows(self) -> list[tuple[uuid.UUID, int]]:
        with _translated("reading conversation heads"):
            async with self._db.connection(SCAN_TIMEOUT_S) as conn:
                rows = await conn.fetch(_HEADS_WITHOUT_ROWS)
        return [(r["conversation_id"], int(r["last_seq"])) for r in rows]

    async def rows_sharing_stream_seq(self) -> list[StoredRow]:
        with _translated("looking for rows sharing a stream sequence"):
            async with self._db.connection(SCAN_TIMEOUT_S) as conn:
                rows = await conn.fetch(_SHARING_STREAM_SEQ)
        return [_row(r) for r in rows]


class PostgresAuditPositions:
    """`AuditPositions` in `messaging.continuity_audits` (migration 0004)."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    async def audited(self, partition: int) -> int:
        with _translated("reading the audited position"):
            async with self._db.connection() as conn:
                value = await conn.fetchval(
                    "SELECT audited_seq FROM messaging.continuity_audits WHERE partition = $1",
                    partition,
                )
        return 0 if value is None else int(value)

    async def advance(self, partition: int, expected: int, new: int) -> bool:
        with _translated("moving the audited position"):
            async with self._db.connection() as conn:
                moved = await conn.fetchval(_ADVANCE, partition, expected, new)
        return moved is not None


# The rows of a chunk's messages: by message_id (the primary key) or by (sender, client_msg_id)
# (its unique index), whichever the row was stored under.
_EVIDENCE = f"""
SELECT {_ROW_COLUMNS} FROM messaging.messages AS m WHERE m.message_id = ANY($1::uuid[])
UNION
SELECT {_ROW_COLUMNS} FROM messaging.messages AS m
JOIN unnest($2::uuid[], $3::uuid[]) AS k(sender_id, client_msg_id)
  ON m.sender_id = k.sender_id AND m.client_msg_id = k.client_msg_id
"""  # noqa: S608 - constant columns

# Per conversation, the rows with lo <= seq <= hi (range scans of (conversation_id, seq)) that
# the caller does not have yet: decoding rows is most of what a lookup costs us.
_BETWEEN = f"""
SELECT {_ROW_COLUMNS}
FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS s(conversation_id, lo, hi)
JOIN messaging.messages AS m
  ON m.conversation_id = s.conversation_id AND m.seq BETWEEN s.lo AND s.hi
LEFT JOIN unnest($4::uuid[]) AS k(message_id) ON k.message_id = m.message_id
WHERE k.message_id IS NULL
"""  # noqa: S608 - constant columns

_ALL_ROWS = f"""
SELECT {_ROW_COLUMNS}, h.last_seq AS head
FROM messaging.messages AS m
LEFT JOIN messaging.conversation_heads AS h ON h.conversation_id = m.conversation_id
ORDER BY m.conversation_id, m.seq
"""  # noqa: S608 - constant columns

_HEADS_WITHOUT_ROWS = """
SELECT h.conversation_id, h.last_seq FROM messaging.conversation_heads AS h
WHERE h.last_seq > 0
  AND NOT EXISTS (SELECT 1 FROM messaging.messages AS m WHERE m.conversation_id = h.conversation_id)
"""

_SHARING_STREAM_SEQ = f"""
SELECT {_ROW_COLUMNS} FROM messaging.messages AS m
WHERE m.stream_seq IN (SELECT stream_seq FROM messaging.messages
                       GROUP BY stream_seq HAVING count(*) > 1)
ORDER BY m.stream_seq, m.message_id
"""  # noqa: S608 - constant columns

# Compare-and-set: only from the position the caller read (the first audit creates the row).
_ADVANCE = """
INSERT INTO messaging.continuity_audits AS a (partition, audited_seq) VALUES ($1, $3)
ON CONFLICT (partition) DO UPDATE SET audited_seq = excluded.audited_seq, updated_at = now()
WHERE a.audited_seq = $2
RETURNING a.audited_seq
"""
