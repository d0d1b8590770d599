"""The PostgreSQL conversation repository on a real database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from rtm.local.process import free_port
from rtm.producer.adapters.postgres import PostgresConversationRepository, PostgresDatabase
from rtm.producer.domain.exceptions import Unavailable
from rtm.producer.domain.model import Conversation, ConversationKind
from rtm.producer.domain.rules import direct_key

NOW = datetime(2026, 11, 24, 1, 2, 3, 456000, tzinfo=UTC)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[PostgresDatabase]:
    database = PostgresDatabase(database_url, pool_size=4, timeout=2.0)
    database.start()
    await asyncio.wait_for(database.ready.wait(), 10)
    yield database
    await database.close()


@pytest.fixture
def repository(database: PostgresDatabase) -> PostgresConversationRepository:
    return PostgresConversationRepository(database)


def conversation(kind: ConversationKind, *members: uuid.UUID) -> Conversation:
    return Conversation(
        uuid.uuid4(),
        kind,
        "t" if kind is ConversationKind.GROUP else None,
        tuple(sorted(members, key=str)),
        members[0],
        NOW,
    )


async def test_created_group_reads_back_with_sorted_members_and_last_seq(
    repository: PostgresConversationRepository, database_url: str
) -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    group = conversation(ConversationKind.GROUP, a, b, c)
    outcome = await repository.create(group, None)
    assert outcome.created
    assert await repository.get(group.id) == group
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO messaging.conversation_heads (conversation_id, last_seq) VALUES ($1, 12)",
            group.id,
        )
    finally:
        await conn.close()
    found = await repository.get(group.id)
    assert found is not None
    assert found.last_seq == 12
    assert await repository.get(uuid.uuid4()) is None


async def test_direct_conversation_is_unique_and_restores_a_member_who_left(
    repository: PostgresConversationRepository,
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    first = conversation(ConversationKind.DIRECT, a, b)
    key = direct_key(first.members)
    assert (await repository.create(first, key)).created
    again = await repository.create(conversation(ConversationKind.DIRECT, b, a), key)
    assert not again.created
    assert again.conversation.id == first.id
    assert again.restored == ()
    assert await repository.remove_member(first.id, b)
    restored = await repository.create(conversation(ConversationKind.DIRECT, b, a), key)
    assert restored.restored == (b,)
    assert restored.conversation.has_member(b)


async def test_concurrent_creations_of_one_pair_yield_one_conversation(
    repository: PostgresConversationRepository,
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    attempts = [conversation(ConversationKind.DIRECT, a, b) for _ in range(4)]
    key = direct_key(attempts[0].members)
    outcomes = await asyncio.gather(*(repository.create(c, key) for c in attempts))
    assert sum(o.created for o in outcomes) == 1
    assert len({o.conversation.id for o in outcomes}) == 1


async def test_check_send_reports_membership_and_stored_duplicates_in_one_query(
    repository: PostgresConversationRepository, database_url: str
) -> None:
    a, b, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    group = conversation(ConversationKind.GROUP, a, b)
    await repository.create(group, None)
    client, message = uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO messaging.messages (message_id, conversation_id, seq, sender_id,"
            " client_msg_id, body, sent_at, stream_seq) VALUES ($1, $2, 1, $3, $4, 'x', $5, 7)",
            message,
            group.id,
            a,
            client,
            NOW,
        )
    finally:
        await conn.close()
    member = await repository.check_send(group.id, a, uuid.uuid4())
    assert (member.is_member, member.stored) == (True, None)
    outsider = await repository.check_send(group.id, stranger, uuid.uuid4())
    missing = await repository.check_send(uuid.uuid4(), a, uuid.uuid4())
    assert outsider == missing
    assert not outsider.is_member
    stored = await repository.check_send(group.id, a, client)
    assert stored.stored is not None
    assert (stored.stored.message_id, stored.stored.stream_seq) == (message, 7)
    assert stored.stored.accepted_at == NOW
    other_sender = await repository.check_send(group.id, b, client)
    assert other_sender.stored is None


async def test_membership_changes_are_idempotent(
    repository: PostgresConversationRepository,
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    group = conversation(ConversationKind.GROUP, a)
    await repository.create(group, None)
    assert not await repository.is_member(group.id, b)
    assert await repository.add_member(group.id, b)
    assert not await repository.add_member(group.id, b)
    assert await repository.is_member(group.id, b)
    assert await repository.remove_member(group.id, b)
    assert not await repository.remove_member(group.id, b)
    assert not await repository.is_member(uuid.uuid4(), a)


async def test_unreachable_database_is_unavailable_not_a_crash() -> None:
    database = PostgresDatabase(
        f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", pool_size=1, timeout=0.5
    )
    database.start()
    try:
        await asyncio.sleep(0.3)
        assert await database.check() is not None
        with pytest.raises(Unavailable):
            await PostgresConversationRepository(database).is_member(uuid.uuid4(), uuid.uuid4())
    finally:
        await database.close()
