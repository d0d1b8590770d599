"""PostgreSQL implementation of `MessageStore`: one transaction per batch.

The transaction locks the partition's offset row (the fence), skips messages already stored,
locks the heads of the conversations involved, inserts the new messages with `unnest` (one
statement for the whole batch, not one per message), moves the heads and the offset, and reads
the members to deliver to. Unique constraints remain the final word on duplicates.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

import asyncpg

from rtm.consumer.domain.exceptions import OffsetMoved
from rtm.consumer.domain.model import Pending, StoredBatch
from rtm.consumer.domain.numbering import number_batch


class PostgresMessageStore:
    """`MessageStore` on the `messaging` schema."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def load_offset(self, partition: int) -> int:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO messaging.partition_offsets (partition) VALUES ($1)"
                " ON CONFLICT DO NOTHING",
                partition,
            )
            value = await conn.fetchval(
                "SELECT stream_seq FROM messaging.partition_offsets WHERE partition = $1",
                partition,
            )
            return int(value)

    async def store_batch(
        self, partition: int, expected_offset: int, new_offset: int, pending: Sequence[Pending]
    ) -> StoredBatch:
        async with self._pool.acquire() as conn, conn.transaction():
            found = await conn.fetchval(
                "SELECT stream_seq FROM messaging.partition_offsets"
                " WHERE partition = $1 FOR UPDATE",
                partition,
            )
            if found is None or int(found) != expected_offset:
                raise OffsetMoved(partition, expected_offset, -1 if found is None else int(found))
            batch = await self._insert(conn, pending)
            await conn.execute(
                "UPDATE messaging.partition_offsets SET stream_seq = $2, updated_at = now()"
                " WHERE partition = $1",
                partition,
                new_offset,
            )
            return batch

    async def _insert(self, conn: asyncpg.Connection, pending: Sequence[Pending]) -> StoredBatch:
        if not pending:
            return StoredBatch([], {})
        senders = [p.message.sender_id for p in pending]
        client_ids = [p.message.client_msg_id for p in pending]
        conversations = sorted({p.message.conversation_id for p in pending})
        existing = await conn.fetch(
            "SELECT m.sender_id, m.client_msg_id FROM messaging.messages m"
            " JOIN unnest($1::uuid[], $2::uuid[]) AS k(sender_id, client_msg_id)"
            " USING (sender_id, client_msg_id)",
            senders,
            client_ids,
        )
        await conn.execute(
            "INSERT INTO messaging.conversation_heads (conversation_id)"
            " SELECT c.id FROM messaging.conversations c WHERE c.id = ANY($1::uuid[])"
            " ON CONFLICT DO NOTHING",
            conversations,
        )
        head_rows = await conn.fetch(
            "SELECT conversation_id, last_seq FROM messaging.conversation_heads"
            " WHERE conversation_id = ANY($1::uuid[]) ORDER BY conversation_id FOR UPDATE",
            conversations,
        )
        stored, new_heads, skipped = number_batch(
            pending,
            already_stored={(r["sender_id"], r["client_msg_id"]) for r in existing},
            heads={r["conversation_id"]: int(r["last_seq"]) for r in head_rows},
        )
        if not stored:
            return StoredBatch([], {}, skipped)
        stream_seqs = {p.message.message_id: p.stream_seq for p in pending}
        await conn.execute(
            "INSERT INTO messaging.messages"
            " (message_id, conversation_id, seq, sender_id, client_msg_id, body, sent_at,"
            " stream_seq)"
            " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::uuid[],"
            " $6::text[], $7::timestamptz[], $8::bigint[])",
            [m.message_id for m in stored],
            [m.conversation_id for m in stored],
            [m.seq for m in stored],
            [m.sender_id for m in stored],
            [m.client_msg_id for m in stored],
            [m.body for m in stored],
            [m.sent_at for m in stored],
            [stream_seqs[m.message_id] for m in stored],
        )
        last_at = {m.conversation_id: m.sent_at for m in stored}
        heads = list(new_heads.items())
        await conn.execute(
            "UPDATE messaging.conversation_heads h"
            " SET last_seq = v.last_seq, last_message_at = v.at"
            " FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) AS v(id, last_seq, at)"
            " WHERE h.conversation_id = v.id",
            [conversation for conversation, _ in heads],
            [seq for _, seq in heads],
            [last_at[conversation] for conversation, _ in heads],
        )
        member_rows = await conn.fetch(
            "SELECT conversation_id, user_id FROM messaging.members"
            " WHERE conversation_id = ANY($1::uuid[])",
            list(new_heads),
        )
        members: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for row in member_rows:
            members[row["conversation_id"]].append(row["user_id"])
        return StoredBatch(stored, dict(members), skipped)
