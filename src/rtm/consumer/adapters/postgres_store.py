"""PostgreSQL implementation of `MessageStore`: one transaction per batch.

Ownership is fenced here, in the same row as the offset: `claim` writes the new owner's token
into the partition's offset row unless a newer token is there already, and every batch
transaction locks that row and checks it still holds the worker's token and offset. A worker that
lost its partition therefore cannot commit, however late it runs and whatever it fetched.

A batch is one call of the server-side function `messaging.store_batch`
(migrations/0007_store_batch.sql, 0008_sender_read_marker.sql; a small batch calls it through
`messaging.store_small_batch`, 0009, for cached plans), one statement and so one round
trip and one implicit transaction: it locks the partition's offset row (the fence) and checks
token and offset, skips sends already stored (or repeated within the batch) and messages to
conversations that do not exist, locks the heads of the conversations involved, numbers the rest
densely in stream order, inserts them, moves each sender's read marker to its last own message
of the batch (never backwards: a sender's own messages are never unread), and moves the heads
and the offset. The numbering is PostgreSQL's, under the fence and the head locks, so nothing a
worker remembers can number wrongly; unique constraints remain the final word on duplicates and
seqs.

Connections come from `rtm.shared.postgres.PostgresDatabase`: a claim and a batch are each one
bounded use, an outage raises `Unavailable` within the database timeout, and a connection whose
use ended in any exception (`Fenced` and `OffsetMoved` included) is terminated. A batch whose
answer was lost may have committed: the worker restarts and its claim reads the offset that
really is committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from rtm.consumer.domain.exceptions import Fenced, OffsetMoved
from rtm.consumer.domain.model import (
    Claim,
    FenceToken,
    Pending,
    StoredBatch,
    StoredMessage,
    StreamPosition,
)
from rtm.shared.postgres import PostgresDatabase


class PostgresMessageStore:
    """`MessageStore` on the `messaging` schema."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    async def claim(self, partition: int, token: FenceToken) -> Claim:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(_CLAIM, partition, token.epoch, token.revision)
            if row is None:
                raise Fenced(partition, token, await _holder(conn, partition))
            return _claim(row)

    async def rewind(self, partition: int, token: FenceToken) -> Claim:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(_REWIND, partition, token.epoch, token.revision)
            if row is None:
                raise Fenced(partition, token, await _holder(conn, partition))
            return _claim(row)

    async def store_batch(
        self,
        partition: int,
        token: FenceToken,
        expected_offset: int,
        end: StreamPosition,
        pending: Sequence[Pending],
    ) -> StoredBatch:
        messages = [p.message for p in pending]
        async with self._db.connection() as conn:  # one statement: its own transaction
            try:
                rows = await conn.fetch(
                    _STORE_SMALL if len(messages) <= SMALL_BATCH else _STORE_LARGE,
                    partition,
                    token.epoch,
                    token.revision,
                    expected_offset,
                    end.seq,
                    end.check,
                    [m.message_id for m in messages],
                    [m.conversation_id for m in messages],
                    [m.sender_id for m in messages],
                    [m.client_msg_id for m in messages],
                    [m.body for m in messages],
                    [m.accepted_at for m in messages],
                    [p.stream_seq for p in pending],
                )
            except asyncpg.RaiseError as exc:
                raise _refusal(exc, partition, token, expected_offset) from exc
        stored: list[StoredMessage] = []
        members: dict[uuid.UUID, list[uuid.UUID]] = {}
        for index, seq, conversation_members in rows:
            message = messages[index - 1]
            stored.append(
                StoredMessage(
                    message.message_id,
                    message.conversation_id,
                    seq,
                    message.sender_id,
                    message.client_msg_id,
                    message.body,
                    message.accepted_at,
                )
            )
            if conversation_members is not None:
                members[message.conversation_id] = conversation_members
        return StoredBatch(stored, members, len(pending) - len(stored))

    async def load_batch(self, message_ids: Sequence[uuid.UUID]) -> StoredBatch:
        async with self._db.connection() as conn:
            rows = await conn.fetch(_RELOAD, list(message_ids))
        messages = [
            StoredMessage(
                r["message_id"],
                r["conversation_id"],
                int(r["seq"]),
                r["sender_id"],
                r["client_msg_id"],
                r["body"],
                r["sent_at"],
            )
            for r in rows
        ]
        members = {r["conversation_id"]: list(r["members"]) for r in rows}
        return StoredBatch(messages, members)


def _claim(row: asyncpg.Record) -> Claim:
    check = row["offset_check"]
    position = StreamPosition(int(row["stream_seq"]), None if check is None else int(check))
    return Claim(position, tuple(row["last_batch"]))


async def _holder(conn: asyncpg.Connection, partition: int) -> FenceToken | None:
    row = await conn.fetchrow(_HOLDER, partition)
    return None if row is None else FenceToken(int(row[0]), int(row[1]))


def _refusal(
    exc: asyncpg.RaiseError, partition: int, token: FenceToken, expected_offset: int
) -> Exception:
    """`messaging.store_batch` refused the batch: `Fenced` (DETAIL: the holder's token, empty
    when the partition has no row) or `OffsetMoved` (DETAIL: the committed offset)."""
    detail = exc.detail or ""
    if exc.message == "rtm:fenced":
        epoch, _, revision = detail.partition(":")
        holder = FenceToken(int(epoch), int(revision)) if revision else None
        return Fenced(partition, token, holder)
    if exc.message == "rtm:offset_moved":
        return OffsetMoved(partition, expected_offset, int(detail))
    return RuntimeError(f"messaging.store_batch raised {exc.message!r}")


# Make a token the partition's fence unless a newer one is there; the committed offset comes back
# (nothing when fenced out). The upsert waits for a batch transaction holding the row, then sees
# its result: a new owner starts exactly where the last commit ended.
_CLAIM = """
INSERT INTO messaging.partition_offsets AS o (partition, fence_epoch, fence_revision)
VALUES ($1, $2, $3)
ON CONFLICT (partition) DO UPDATE
SET fence_epoch = excluded.fence_epoch, fence_revision = excluded.fence_revision
WHERE (o.fence_epoch, o.fence_revision) <= (excluded.fence_epoch, excluded.fence_revision)
RETURNING o.stream_seq, o.offset_check, o.last_batch
"""

# The stream no longer holds what the offset says (created again, or its tail lost): start over
# from its beginning. Messages stored already are skipped as duplicates when they come again.
_REWIND = """
UPDATE messaging.partition_offsets
SET stream_seq = 0, offset_check = NULL, last_batch = '{}', updated_at = now()
WHERE partition = $1 AND fence_epoch = $2 AND fence_revision = $3
RETURNING stream_seq, offset_check, last_batch
"""

# Stored messages by id with their conversations' members, in conversation and seq order.
_RELOAD = """
SELECT m.message_id, m.conversation_id, m.seq, m.sender_id, m.client_msg_id, m.body, m.sent_at,
       ARRAY(SELECT mb.user_id FROM messaging.members AS mb
             WHERE mb.conversation_id = m.conversation_id) AS members
FROM messaging.messages AS m
WHERE m.message_id = ANY($1::uuid[])
ORDER BY m.conversation_id, m.seq
"""

_HOLDER = """
SELECT fence_epoch, fence_revision FROM messaging.partition_offsets WHERE partition = $1
"""

# The whole batch (migrations/0007_store_batch.sql, 0008): fence and offset checked, duplicates
# and unknown conversations skipped, heads locked, dense seqs, rows, heads, senders' read markers
# and offset written; one
# row per stored message comes back (its index in the arrays, its seq, its conversation's
# members on the conversation's first row). One round trip and one implicit transaction.
_STORE = """
SELECT idx, seq, members FROM messaging.{function}(
    $1::integer, $2::bigint, $3::bigint, $4::bigint, $5::bigint, $6::bigint, $7::uuid[],
    $8::uuid[], $9::uuid[], $10::uuid[], $11::text[], $12::timestamptz[], $13::bigint[])
"""
# A batch of up to SMALL_BATCH messages goes through the same function with generic plans
# (migrations/0009_store_small_batch.sql): planning store_batch's statements for each call costs
# more than running them for a batch of two; for larger batches the plans for its actual sizes win.
SMALL_BATCH = 4
_STORE_SMALL = _STORE.format(function="store_small_batch")
_STORE_LARGE = _STORE.format(function="store_batch")
