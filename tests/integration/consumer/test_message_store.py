"""The message store's batch transaction on a real PostgreSQL: fence, numbering, duplicates."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from rtm.consumer.adapters.postgres_store import PostgresMessageStore
from rtm.consumer.domain.exceptions import Fenced, OffsetMoved, Unavailable
from rtm.consumer.domain.model import Claim, FenceToken, Pending, StreamPosition
from rtm.shared.contract import AcceptedMessage
from tests.support.db import create_conversation, opened_database, stored_messages

PARTITION = 3
TOKEN = FenceToken(1, 10)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresMessageStore]:
    async with opened_database(database_url, Unavailable) as database:
        yield PostgresMessageStore(database)


def at(stream_seq: int) -> StreamPosition:
    """Where a batch ends (the checksum is the store's to keep, not to compute)."""
    return StreamPosition(stream_seq, 1000 + stream_seq)


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
    assert (await store.claim(PARTITION, TOKEN)).position.seq == 0

    batch = await store.store_batch(
        PARTITION,
        TOKEN,
        0,
        at(4),
        [pending(1, first, a), pending(2, second, c), pending(3, first, b), pending(4, second, b)],
    )

    assert [(m.conversation_id, m.seq) for m in batch.messages] == [
        (first, 1),
        (second, 1),
        (first, 2),
        (second, 2),
    ]
    assert {k: set(v) for k, v in batch.members.items()} == {first: {a, b}, second: {b, c}}
    later = await store.store_batch(PARTITION, TOKEN, 4, at(5), [pending(5, first, a)])
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
    await store.claim(PARTITION, TOKEN)
    await store.store_batch(PARTITION, TOKEN, 0, at(1), [pending(1, conversation, a)])

    with pytest.raises(OffsetMoved):
        await store.store_batch(PARTITION, TOKEN, 0, at(2), [pending(2, conversation, a)])

    assert len(await stored_messages(database_url)) == 1
    assert await offset(database_url) == 1


async def test_stored_duplicates_and_unknown_conversations_are_skipped_and_the_offset_moves(
    database_url: str, store: PostgresMessageStore
) -> None:
    a = uuid.uuid4()
    conversation = await create_conversation(database_url, [a])
    client = uuid.uuid4()
    await store.claim(PARTITION, TOKEN)
    await store.store_batch(PARTITION, TOKEN, 0, at(1), [pending(1, conversation, a, client)])

    batch = await store.store_batch(
        PARTITION,
        TOKEN,
        1,
        at(4),
        [
            pending(2, conversation, a, client),  # resent after the dedup window
            pending(3, uuid.uuid4(), a),  # no such conversation
            pending(4, conversation, a),
        ],
    )

    assert [m.seq for m in batch.messages] == [2]
    assert batch.skipped == 2
    assert await offset(database_url) == 4
    only_skipped = await store.store_batch(
        PARTITION, TOKEN, 4, at(5), [pending(5, conversation, a, client)]
    )
    assert only_skipped.messages == []
    assert only_skipped.skipped == 1
    assert await offset(database_url) == 5
    assert [r["seq"] for r in await stored_messages(database_url)] == [1, 2]


async def test_a_newer_owner_fences_out_the_older_one_whatever_it_holds(
    database_url: str, store: PostgresMessageStore
) -> None:
    a = uuid.uuid4()
    conversation = await create_conversation(database_url, [a])
    newer = FenceToken(TOKEN.epoch, TOKEN.revision + 5)
    assert (await store.claim(PARTITION, TOKEN)).position.seq == 0
    await store.store_batch(PARTITION, TOKEN, 0, at(1), [pending(1, conversation, a)])

    assert (await store.claim(PARTITION, newer)).position.seq == 1
    with pytest.raises(Fenced):  # the old owner's next batch, though its offset is right
        await store.store_batch(PARTITION, TOKEN, 1, at(2), [pending(2, conversation, a)])
    with pytest.raises(Fenced):  # nor can it claim the partition back
        await store.claim(PARTITION, TOKEN)
    assert (
        await store.claim(PARTITION, newer)
    ).position.seq == 1  # the owner itself may claim again
    assert len(await stored_messages(database_url)) == 1
    # a bucket created again starts a newer epoch, whatever its revisions
    assert (await store.claim(PARTITION, FenceToken(TOKEN.epoch + 1, 1))).position.seq == 1


async def test_a_claim_waits_for_the_batch_in_flight_and_starts_after_it(
    database_url: str, store: PostgresMessageStore
) -> None:
    await store.claim(PARTITION, TOKEN)
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():  # an old owner's batch, mid-commit: it holds the row
            await conn.execute(
                "SELECT 1 FROM messaging.partition_offsets WHERE partition = $1 FOR UPDATE",
                PARTITION,
            )
            claiming = asyncio.create_task(
                store.claim(PARTITION, FenceToken(TOKEN.epoch, TOKEN.revision + 1))
            )
            await asyncio.sleep(0.3)
            assert not claiming.done()
            await conn.execute(
                "UPDATE messaging.partition_offsets SET stream_seq = 7 WHERE partition = $1",
                PARTITION,
            )
        assert (await asyncio.wait_for(claiming, 5)).position.seq == 7
    finally:
        await conn.close()


async def test_a_claim_names_where_the_last_commit_ended_and_what_it_stored(
    database_url: str, store: PostgresMessageStore
) -> None:
    """A new owner sends the last batch's fan-out again (its owner may have died before it
    went out): the claim names that batch's messages, which load back with their members."""
    a, b = uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [a, b])
    assert await store.claim(PARTITION, TOKEN) == Claim(StreamPosition(0, None), ())
    await store.store_batch(PARTITION, TOKEN, 0, at(1), [pending(1, conversation, a)])
    last = await store.store_batch(
        PARTITION, TOKEN, 1, at(3), [pending(2, conversation, b), pending(3, conversation, a)]
    )

    newer = FenceToken(TOKEN.epoch, TOKEN.revision + 1)
    claim = await store.claim(PARTITION, newer)
    assert claim.position == at(3)
    assert set(claim.last_batch) == {m.message_id for m in last.messages}
    again = await store.load_batch(claim.last_batch)
    assert again.messages == last.messages  # in seq order, bodies and all
    assert {k: set(v) for k, v in again.members.items()} == {conversation: {a, b}}

    # a batch that stores nothing leaves nothing to send again
    await store.store_batch(PARTITION, newer, 3, at(4), [pending(4, uuid.uuid4(), a)])
    assert (await store.claim(PARTITION, newer)).last_batch == ()


async def test_a_rewind_starts_the_partition_over_and_only_its_owner_may_do_it(
    database_url: str, store: PostgresMessageStore
) -> None:
    a = uuid.uuid4()
    conversation = await create_conversation(database_url, [a])
    client = uuid.uuid4()
    await store.claim(PARTITION, TOKEN)
    await store.store_batch(PARTITION, TOKEN, 0, at(7), [pending(7, conversation, a, client)])
    with pytest.raises(Fenced):
        await store.rewind(PARTITION, FenceToken(TOKEN.epoch, TOKEN.revision - 1))

    assert await store.rewind(PARTITION, TOKEN) == Claim(StreamPosition(0, None), ())
    # the stream's first message is the stored one, under a new sequence: skipped, not doubled
    batch = await store.store_batch(
        PARTITION,
        TOKEN,
        0,
        at(1),
        [pending(1, conversation, a, client), pending(2, conversation, a)],
    )
    assert ([m.seq for m in batch.messages], batch.skipped) == ([2], 1)
    assert [r["seq"] for r in await stored_messages(database_url)] == [1, 2]
