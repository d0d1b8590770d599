"""The PostgreSQL conversation repository on a real database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import asyncpg
import pytest

from rtm.local.process import free_port
from rtm.producer.adapters.postgres import PostgresConversationRepository
from rtm.producer.domain.exceptions import Unavailable, UnknownUsers
from rtm.producer.domain.model import Conversation, ConversationKind
from rtm.producer.domain.rules import direct_key
from rtm.shared.postgres import PostgresDatabase
from tests.support.db import register_users

NOW = datetime(2026, 11, 24, 1, 2, 3, 456000, tzinfo=UTC)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[PostgresDatabase]:
    database = PostgresDatabase(database_url, pool_size=4, timeout=2.0, unavailable=Unavailable)
    database.start()
    await asyncio.wait_for(database.ready.wait(), 10)
    yield database
    await database.close()


Users = Callable[[int], list[uuid.UUID]]


@pytest.fixture
def users(database_url: str) -> Users:
    """`n` new users, registered (members must be users)."""

    def make(n: int) -> list[uuid.UUID]:
        made = [uuid.uuid4() for _ in range(n)]
        register_users(database_url, made)
        return made

    return make


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
    repository: PostgresConversationRepository, users: Users, database_url: str
) -> None:
    a, b, c = users(3)
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
    users: Users,
) -> None:
    a, b = users(2)
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
    users: Users,
) -> None:
    a, b = users(2)
    attempts = [conversation(ConversationKind.DIRECT, a, b) for _ in range(4)]
    key = direct_key(attempts[0].members)
    outcomes = await asyncio.gather(*(repository.create(c, key) for c in attempts))
    assert sum(o.created for o in outcomes) == 1
    assert len({o.conversation.id for o in outcomes}) == 1


async def test_check_send_reports_members_and_stored_duplicates_in_one_query(
    repository: PostgresConversationRepository, users: Users, database_url: str
) -> None:
    a, b, stranger = users(3)
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
    assert (member.members, member.stored) == (frozenset({a, b}), None)
    assert member.is_member(a)
    outsider = await repository.check_send(group.id, stranger, uuid.uuid4())
    assert not outsider.is_member(stranger)
    missing = await repository.check_send(uuid.uuid4(), a, uuid.uuid4())
    assert (missing.members, missing.stored) == (None, None)
    assert not missing.is_member(a)
    stored = await repository.check_send(group.id, a, client, timeout=0.5)
    assert stored.stored is not None
    assert (stored.stored.message_id, stored.stored.stream_seq) == (message, 7)
    assert stored.stored.accepted_at == NOW
    other_sender = await repository.check_send(group.id, b, client)
    assert other_sender.stored is None
    assert await repository.stored_send(a, client, timeout=0.5) == stored.stored
    assert await repository.stored_send(b, client) is None


async def test_concurrent_checks_share_batched_queries_and_each_gets_its_own_answer(
    repository: PostgresConversationRepository, users: Users, database_url: str
) -> None:
    a, b, c, stranger = users(4)
    group, other = (
        conversation(ConversationKind.GROUP, a, b),
        conversation(ConversationKind.GROUP, a, c),
    )
    await repository.create(group, None)
    await repository.create(other, None)
    client, message = uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO messaging.messages (message_id, conversation_id, seq, sender_id,"
            " client_msg_id, body, sent_at, stream_seq) VALUES ($1, $2, 1, $3, $4, 'x', $5, 9)",
            message,
            other.id,
            a,
            client,
            NOW,
        )
    finally:
        await conn.close()
    missing = uuid.uuid4()
    asked = [
        (group.id, a, uuid.uuid4()),
        (group.id, stranger, uuid.uuid4()),
        (other.id, a, client),
        (other.id, c, uuid.uuid4()),
        (missing, a, uuid.uuid4()),
        (group.id, a, client),  # the stored send, asked for another conversation
    ]
    checks = await asyncio.gather(*(repository.check_send(*key) for key in asked))
    stored = await asyncio.gather(
        repository.stored_send(a, client, timeout=0.5),
        repository.stored_send(b, client, timeout=0.5),
    )

    assert [check.members for check in checks] == [
        frozenset({a, b}),
        frozenset({a, b}),
        frozenset({a, c}),
        frozenset({a, c}),
        None,
        frozenset({a, b}),
    ]
    found = [None if check.stored is None else check.stored.message_id for check in checks]
    assert found == [None, None, message, None, None, message]
    assert stored[0] is not None
    assert stored[0].message_id == message
    assert stored[1] is None


async def test_members_of_a_conversation_everyone_left_is_empty_not_missing(
    repository: PostgresConversationRepository,
    users: Users,
) -> None:
    (a,) = users(1)
    group = conversation(ConversationKind.GROUP, a)
    await repository.create(group, None)
    assert await repository.members(group.id) == frozenset({a})
    await repository.remove_member(group.id, a)
    assert await repository.members(group.id, timeout=0.5) == frozenset()
    assert await repository.members(uuid.uuid4()) is None


async def test_membership_changes_are_idempotent(
    repository: PostgresConversationRepository,
    users: Users,
) -> None:
    a, b = users(2)
    group = conversation(ConversationKind.GROUP, a)
    await repository.create(group, None)
    assert await repository.members(group.id) == frozenset({a})
    assert await repository.add_member(group.id, b)
    assert not await repository.add_member(group.id, b)
    assert await repository.members(group.id) == frozenset({a, b})
    assert await repository.remove_member(group.id, b)
    assert not await repository.remove_member(group.id, b)
    assert await repository.members(group.id) == frozenset({a})


async def test_unreachable_database_is_unavailable_not_a_crash() -> None:
    database = PostgresDatabase(
        f"postgresql://postgres@127.0.0.1:{free_port()}/nothing",
        pool_size=1,
        timeout=0.5,
        unavailable=Unavailable,
    )
    database.start()
    try:
        await asyncio.sleep(0.3)
        assert await database.check() is not None
        with pytest.raises(Unavailable):
            await PostgresConversationRepository(database).members(uuid.uuid4())
    finally:
        await database.close()


async def test_a_read_given_a_timeout_is_unavailable_past_it_and_the_pool_survives(
    repository: PostgresConversationRepository, users: Users, database_url: str
) -> None:
    """The short lookup of the send path: PostgreSQL blocked (a table lock) costs `timeout`."""
    (a,) = users(1)
    group = conversation(ConversationKind.GROUP, a)
    await repository.create(group, None)
    locker = await asyncpg.connect(database_url)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE messaging.messages IN ACCESS EXCLUSIVE MODE")
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(Unavailable):
                await repository.stored_send(a, uuid.uuid4(), timeout=0.2)
            assert loop.time() - started < 1.0
    finally:
        await locker.close()
    assert await repository.stored_send(a, uuid.uuid4(), timeout=0.5) is None
    assert await repository.members(group.id) == frozenset({a})


async def test_members_who_are_no_users_are_refused_and_nothing_is_stored(
    repository: PostgresConversationRepository, users: Users
) -> None:
    a, b = users(2)
    ghost = uuid.uuid4()
    group = conversation(ConversationKind.GROUP, a, b, ghost)
    with pytest.raises(UnknownUsers) as refused:
        await repository.create(group, None)
    assert refused.value.user_ids == (ghost,)
    assert await repository.get(group.id) is None
    stored = conversation(ConversationKind.GROUP, a, b)
    await repository.create(stored, None)
    with pytest.raises(UnknownUsers):
        await repository.add_member(stored.id, ghost)
    assert await repository.members(stored.id) == frozenset({a, b})
