"""PostgreSQL implementation of `MessageStore`: one transaction per batch.

Ownership is fenced here, in the same row as the offset: `claim` writes the new owner's token
into the partition's offset row unless a newer token is there already, and every batch
transaction locks that row and checks it still holds the worker's token and offset. A worker that
lost its partition therefore cannot commit, however late it runs and whatever it fetched.

The transaction locks the partition's offset row (the fence), skips messages already stored,
locks the heads of the conversations involved and reads their members, inserts the new messages
with `unnest` (one statement for the whole batch, not one per message), and moves the heads and
the offset. Unique constraints remain the final word on duplicates.

Connections come from `rtm.shared.postgres.PostgresDatabase`: a claim and a batch are each one
bounded use, an outage raises `Unavailable` within the database timeout, and a connection whose
use ended in any exception (`Fenced` and `OffsetMoved` included) is terminated, which rolls its
transaction back. A batch whose COMMIT got no answer may have committed: the worker restarts
and its claim reads the offset that really is committed.
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
from rtm.consumer.domain.numbering import number_batch
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
        senders = [p.message.sender_id for p in pending]
        client_ids = [p.message.client_msg_id for p in pending]
        async with self._db.transaction() as conn:
            fence = await conn.fetchrow(_FENCE, partition, senders, client_ids)
            if fence is None:
                raise Fenced(partition, token, None)
            holder = FenceToken(int(fence["fence_epoch"]), int(fence["fence_revision"]))
            if holder != token:
                raise Fenced(partition, token, holder)
            found = int(fence["stream_seq"])
            if found != expected_offset:
                raise OffsetMoved(partition, expected_offset, found)
            batch = StoredBatch([], {})
            if pending:
                batch = await self._number(conn, pending, fence)
            stored = batch.messages
            stream_seqs = {p.message.message_id: p.stream_seq for p in pending}
            last_at = {m.conversation_id: m.sent_at for m in stored}
            heads = {m.conversation_id: m.seq for m in stored}
            await conn.execute(
                _WRITE,
                [m.message_id for m in stored],
                [m.conversation_id for m in stored],
                [m.seq for m in stored],
                [m.sender_id for m in stored],
                [m.client_msg_id for m in stored],
                [m.body for m in stored],
                [m.sent_at for m in stored],
                [stream_seqs[m.message_id] for m in stored],
                list(heads),
                list(heads.values()),
                [last_at[c] for c in heads],
                partition,
                end.seq,
                end.check,
            )
            return batch

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

    async def _number(
        self, conn: asyncpg.Connection, pending: Sequence[Pending], fence: asyncpg.Record
    ) -> StoredBatch:
        conversations = sorted({p.message.conversation_id for p in pending})
        head_rows = await conn.fetch(_LOCK_HEADS, conversations)
        stored, new_heads, skipped = number_batch(
            pending,
            already_stored=set(zip(fence["senders"] or [], fence["client_ids"] or [], strict=True)),
            heads={r["conversation_id"]: int(r["last_seq"]) for r in head_rows},
        )
        members = {
            r["conversation_id"]: list(r["members"])
            for r in head_rows
            if r["conversation_id"] in new_heads
        }
        return StoredBatch(stored, members, skipped)


def _claim(row: asyncpg.Record) -> Claim:
    check = row["offset_check"]
    position = StreamPosition(int(row["stream_seq"]), None if check is None else int(check))
    return Claim(position, tuple(row["last_batch"]))


async def _holder(conn: asyncpg.Connection, partition: int) -> FenceToken | None:
    row = await conn.fetchrow(_HOLDER, partition)
    return None if row is None else FenceToken(int(row[0]), int(row[1]))


# One batch is one transaction of three statements (five round trips with BEGIN and COMMIT):
# the fence, the heads, the writes. Every round trip counts: a worker's batches are serial.

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

# Lock the partition's offset row (the fence against a worker that lost its partition) and find
# which sends of the batch are stored already.
_FENCE = """
SELECT o.stream_seq, o.fence_epoch, o.fence_revision, e.senders, e.client_ids
FROM messaging.partition_offsets AS o,
     LATERAL (SELECT array_agg(m.sender_id) AS senders, array_agg(m.client_msg_id) AS client_ids
              FROM messaging.messages AS m
              JOIN unnest($2::uuid[], $3::uuid[]) AS k(sender_id, client_msg_id)
              USING (sender_id, client_msg_id)) AS e
WHERE o.partition = $1
FOR UPDATE OF o
"""

# Create missing heads of existing conversations, lock every head, read the members to deliver
# to. Heads created by `fresh` are invisible to `known` (one snapshot): the union has each once.
_LOCK_HEADS = """
WITH fresh AS (
    INSERT INTO messaging.conversation_heads (conversation_id)
    SELECT c.id FROM messaging.conversations AS c WHERE c.id = ANY($1::uuid[])
    ON CONFLICT DO NOTHING
    RETURNING conversation_id, last_seq
), known AS (
    SELECT conversation_id, last_seq FROM messaging.conversation_heads
    WHERE conversation_id = ANY($1::uuid[]) ORDER BY conversation_id FOR UPDATE
)
SELECT h.conversation_id, h.last_seq,
       ARRAY(SELECT mb.user_id FROM messaging.members AS mb
             WHERE mb.conversation_id = h.conversation_id) AS members
FROM (SELECT * FROM known UNION ALL SELECT * FROM fresh) AS h
"""

# Insert the numbered messages, move the heads and the offset (with the checksum of the payload
# there, and the ids this batch stored: see migrations/0003). Unique constraints stay the final
# word on duplicates: a violation aborts the whole transaction.
_WRITE = """
WITH inserted AS (
    INSERT INTO messaging.messages
        (message_id, conversation_id, seq, sender_id, client_msg_id, body, sent_at, stream_seq)
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::uuid[],
                         $6::text[], $7::timestamptz[], $8::bigint[])
), moved AS (
    UPDATE messaging.conversation_heads AS h
    SET last_seq = v.last_seq, last_message_at = v.at
    FROM unnest($9::uuid[], $10::bigint[], $11::timestamptz[]) AS v(id, last_seq, at)
    WHERE h.conversation_id = v.id
)
UPDATE messaging.partition_offsets
SET stream_seq = $13, offset_check = $14, last_batch = $1::uuid[], updated_at = now()
WHERE partition = $12
"""
