"""The message store's batch transaction on a real PostgreSQL: fence, numbering, duplicates."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from rtm.consumer.adapters.postgres_store import PostgresMessageStore
from rtm.consumer.domain.exceptions import OffsetMoved
from rtm.consumer.domain.model import Pending
from rtm.shared.contract import AcceptedMessage
from tests.support.db import create_conversation, stored_messages

PARTITION = 3


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresMessageStore]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        yield PostgresMessageStore(pool)
    finally:
        await pool.close()


def pending(
    stream_seq: int, conversation: uuid.UUID, sender: uuid.UUID, client: uuid.UUID | None = None
) -> Pending:
    message = AcceptedMessage(
        uuid.uuid4(),
        conversation,
        sender,
        client or uuid.uuid4(),
        f"body {stream_seq}",
        datetime.now(UTC),
    )
    return Pending(stream_seq, message)


async def offset(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT stream_seq FROM messaging.partition_offsets WHERE partition = $1",
                PARTITION,
            )
        )
    finally:
        await conn.close()


async def test_a_batch_is_numbered_densely_per_conversation_with_its_members(
    database_url: str, store: PostgresMessageStore
) -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    first = await create_conversation(database_url, [a, b])
    second = await create_conversation(database_url, [b, c])
    assert await store.load_offset(PARTITION) == 0

    batch = await store.store_batch(
        PARTITION,
        0,
        4,
        [pending(1, first, a), pending(2, second, c), pending(3, first, b), pending(4, second, b)],
    )

    assert [(m.conversation_id, m.seq) for m in batch.messages] == [
        (first, 1),
        (second, 1),
        (first, 2),
        (second, 2),
    ]
    assert {k: set(v) for k, v in batch.members.items()} == {first: {a, b}, second: {b, c}}
    later = await store.store_batch(PARTITION, 4, 5, [pending(5, first, a)])
    assert [(m.conversation_id, m.seq) for m in later.messages] == [(first, 3)]
    rows = await stored_messages(database_url)
    assert [(r["conversation_id"], r["seq"], r["stream_seq"]) for r in rows] == sorted(
        [(first, 1, 1), (first, 2, 3), (first, 3, 5), (second, 1, 2), (second, 2, 4)]
    )
    assert await offset(database_url) == 5


async def test_the_fence_refuses_a_stale_offset_and_stores_nothing(
    database_url: str, store: PostgresMessageStore
) -> None:
    a = uuid.uuid4()
    conversation = await create_conversation(database_url, [a])
    await store.load_offset(PARTITION)
    await store.store_batch(PARTITION, 0, 1, [pending(1, conversation, a)])

    with pytest.raises(OffsetMoved):
        await store.store_batch(PARTITION, 0, 2, [pending(2, conversation, a)])

    assert len(await stored_messages(database_url)) == 1
    assert await offset(database_url) == 1


async def test_stored_duplicates_and_unknown_conversations_are_skipped_and_the_offset_moves(
    database_url: str, store: PostgresMessageStore
) -> None:
    a = uuid.uuid4()
    conversation = await create_conversation(database_url, [a])
    client = uuid.uuid4()
    await store.load_offset(PARTITION)
    await store.store_batch(PARTITION, 0, 1, [pending(1, conversation, a, client)])

    batch = await store.store_batch(
        PARTITION,
        1,
        4,
        [
            pending(2, conversation, a, client),  # resent after the dedup window
            pending(3, uuid.uuid4(), a),  # no such conversation
            pending(4, conversation, a),
        ],
    )

    assert [m.seq for m in batch.messages] == [2]
    assert batch.skipped == 2
    assert await offset(database_url) == 4
    only_skipped = await store.store_batch(PARTITION, 4, 5, [pending(5, conversation, a, client)])
    assert only_skipped.messages == []
    assert only_skipped.skipped == 1
    assert await offset(database_url) == 5
    assert [r["seq"] for r in await stored_messages(database_url)] == [1, 2]
