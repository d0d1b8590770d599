"""The message store's batch transaction on a real PostgreSQL: fence, numbering, duplicates."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from rtm.consumer.adapters import postgres_store
from rtm.consumer.adapters.postgres_queries import PostgresMessageQueries
from rtm.consumer.adapters.postgres_store import PostgresMessageStore
from rtm.consumer.domain.exceptions import Fenced, OffsetMoved, Unavailable
from rtm.consumer.domain.model import Claim, FenceToken, Pending, StreamPosition
from rtm.shared.contract import AcceptedMessage
from tests.support.db import create_conversation, opened_database, stored_messages

PARTITION = 3
TOKEN = FenceToken(1, 10)


@pytest.fixture(params=["small batches", "large batches"])
async def store(
    database_url: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[PostgresMessageStore]:
    """Every test runs through both functions: `store_small_batch` (the batches of these tests
    are small) and, with the threshold at 0, `store_batch` itself."""
    if request.param == "large batches":
        monkeypatch.setattr(postgres_store, "SMALL_BATCH", 0)
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


# The numbering rules (dense per conversation, in stream order, a send never twice) and the
# interleavings a one-statement batch must survive: it is PostgreSQL's to number, under the
# fence, and the unique constraints stay the final word.


async def test_seqs_continue_each_head_in_stream_order_whatever_order_they_are_given_in(
    database_url: str, store: PostgresMessageStore
) -> None:
    user = uuid.uuid4()
    a = await create_conversation(database_url, [user])
    b = await create_conversation(database_url, [user])
    await store.claim(PARTITION, TOKEN)
    await store.store_batch(
        PARTITION, TOKEN, 0, at(4), [pending(n, a, user) for n in range(1, 5)]
    )  # a's head is 4, b has none yet

    given = [pending(12, a, user), pending(10, a, user), pending(11, b, user)]
    batch = await store.store_batch(PARTITION, TOKEN, 4, at(12), given)

    assert [(m.conversation_id, m.seq) for m in batch.messages] == [(a, 5), (b, 1), (a, 6)]
    assert batch.messages[0].message_id == given[1].message.message_id  # stream seq 10 first
    assert batch.members == {a: [user], b: [user]}


async def test_a_send_repeated_within_one_batch_is_stored_once_at_its_first_delivery(
    database_url: str, store: PostgresMessageStore
) -> None:
    user = uuid.uuid4()
    conversation = await create_conversation(database_url, [user])
    again = uuid.uuid4()
    await store.claim(PARTITION, TOKEN)
    first = pending(1, conversation, user, again)
    batch = await store.store_batch(
        PARTITION,
        TOKEN,
        0,
        at(3),
        [first, pending(2, conversation, user, again), pending(3, conversation, user)],
    )
    assert [(m.message_id, m.seq) for m in batch.messages] == [
        (first.message.message_id, 1),
        (batch.messages[1].message_id, 2),
    ]
    assert batch.skipped == 1
    assert [r["seq"] for r in await stored_messages(database_url)] == [1, 2]


async def test_the_same_client_msg_id_from_two_senders_is_two_messages(
    database_url: str, store: PostgresMessageStore
) -> None:
    a, b, client = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [a, b])
    await store.claim(PARTITION, TOKEN)
    batch = await store.store_batch(
        PARTITION,
        TOKEN,
        0,
        at(2),
        [pending(1, conversation, a, client), pending(2, conversation, b, client)],
    )
    assert [m.seq for m in batch.messages] == [1, 2]


async def test_two_batches_racing_from_one_offset_commit_only_one(
    database_url: str, store: PostgresMessageStore
) -> None:
    """Two workers with the same token (a restart racing its predecessor's last batch): the
    offset row serialises them and the second finds the offset moved, storing nothing."""
    user = uuid.uuid4()
    conversation = await create_conversation(database_url, [user])
    await store.claim(PARTITION, TOKEN)
    results = await asyncio.gather(
        store.store_batch(PARTITION, TOKEN, 0, at(2), [pending(1, conversation, user)]),
        store.store_batch(PARTITION, TOKEN, 0, at(2), [pending(2, conversation, user)]),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["OffsetMoved", "StoredBatch"]
    assert [r["seq"] for r in await stored_messages(database_url)] == [1]
    assert await offset(database_url) == 2


async def test_a_head_behind_the_stored_messages_fails_the_batch_and_stores_nothing(
    database_url: str, store: PostgresMessageStore
) -> None:
    """Numbering from a wrong head (a head written by someone else, a stale cache) must fail
    the batch on the unique (conversation_id, seq), never store a second message at a seq."""
    user = uuid.uuid4()
    conversation = await create_conversation(database_url, [user])
    await store.claim(PARTITION, TOKEN)
    await store.store_batch(PARTITION, TOKEN, 0, at(1), [pending(1, conversation, user)])
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE messaging.conversation_heads SET last_seq = 0 WHERE conversation_id = $1",
            conversation,
        )
    finally:
        await conn.close()

    with pytest.raises(asyncpg.UniqueViolationError):
        await store.store_batch(PARTITION, TOKEN, 1, at(2), [pending(2, conversation, user)])

    assert [r["seq"] for r in await stored_messages(database_url)] == [1]
    assert await offset(database_url) == 1


async def test_a_fenced_batch_leaves_no_trace_and_names_the_holder(
    database_url: str, store: PostgresMessageStore
) -> None:
    user = uuid.uuid4()
    conversation = await create_conversation(database_url, [user])
    newer = FenceToken(TOKEN.epoch, TOKEN.revision + 1)
    with pytest.raises(Fenced):  # the partition was never claimed: nobody may commit
        await store.store_batch(PARTITION, TOKEN, 0, at(1), [pending(1, conversation, user)])
    await store.claim(PARTITION, TOKEN)
    await store.claim(PARTITION, newer)

    with pytest.raises(Fenced) as fenced:
        await store.store_batch(PARTITION, TOKEN, 0, at(1), [pending(1, conversation, user)])

    assert f"holder {newer}" in str(fenced.value)
    assert await stored_messages(database_url) == []
    assert await offset(database_url) == 0
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM messaging.conversation_heads") == 0
    finally:
        await conn.close()


async def read_markers(database_url: str) -> dict[tuple[uuid.UUID, uuid.UUID], int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT conversation_id, user_id, seq FROM messaging.read_markers")
    finally:
        await conn.close()
    return {(r["conversation_id"], r["user_id"]): int(r["seq"]) for r in rows}


async def test_a_sender_has_read_its_own_messages_and_its_marker_never_moves_back(
    database_url: str, store: PostgresMessageStore
) -> None:
    # Issue 14: the sender's own messages are never unread; the batch moves its read marker to
    # its last message of the batch, in the same statement, never backwards.
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    first = await create_conversation(database_url, [a, b])
    second = await create_conversation(database_url, [b, c])
    await store.claim(PARTITION, TOKEN)
    conn = await asyncpg.connect(database_url)
    try:  # c has read further than its coming message (a marker ahead, e.g. from another device)
        await conn.execute(
            "INSERT INTO messaging.read_markers (conversation_id, user_id, seq) VALUES ($1, $2, 9)",
            second,
            c,
        )
    finally:
        await conn.close()

    await store.store_batch(
        PARTITION,
        TOKEN,
        0,
        at(5),
        [
            pending(1, first, a),
            pending(2, first, b),
            pending(3, first, a),
            pending(4, second, c),
            pending(5, second, b),
        ],
    )

    assert await read_markers(database_url) == {
        (first, a): 3,
        (first, b): 2,
        (second, c): 9,  # never backwards
        (second, b): 2,
    }
    async with opened_database(database_url, Unavailable) as database:
        queries = PostgresMessageQueries(database)
        mine = await queries.conversation(first, a)
        theirs = await queries.conversation(first, b)
    assert mine is not None
    assert theirs is not None
    assert (mine.last_seq, mine.read_seq, mine.unread_count) == (3, 3, 0)
    assert (theirs.read_seq, theirs.unread_count) == (2, 1)  # a's message 3 is b's unread


async def test_a_fenced_batch_moves_no_read_marker(
    database_url: str, store: PostgresMessageStore
) -> None:
    user = uuid.uuid4()
    conversation = await create_conversation(database_url, [user])
    await store.claim(PARTITION, TOKEN)
    await store.claim(PARTITION, FenceToken(TOKEN.epoch, TOKEN.revision + 1))

    with pytest.raises(Fenced):
        await store.store_batch(PARTITION, TOKEN, 0, at(1), [pending(1, conversation, user)])

    assert await read_markers(database_url) == {}
