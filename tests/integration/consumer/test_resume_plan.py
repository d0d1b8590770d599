"""A `resume` looks all its conversations up in ONE query (issue 11): membership and head of every
named id at once, however many of them are unknown; nothing more is read for a conversation
with nothing missing. (Before, each id cost its own membership and head queries: 20 resumes of
1,500 random ids took seconds of PostgreSQL work and slowed other users' history.)"""

from __future__ import annotations

import uuid

import pytest

from rtm.consumer.adapters.postgres_queries import PostgresMessageQueries
from rtm.consumer.domain.exceptions import ConversationNotVisible, Unavailable
from rtm.consumer.services import ReadService
from tests.integration.consumer.test_history_plan import RecordingDatabase
from tests.support.db import create_conversation, opened_database


async def test_a_resume_of_a_thousand_ids_is_one_query(database_url: str) -> None:
    user, peer, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    quiet = await create_conversation(database_url, [user, peer])
    busy = await create_conversation(database_url, [user, peer])
    foreign = await create_conversation(database_url, [stranger, peer])
    unknown = [uuid.uuid4() for _ in range(997)]
    async with opened_database(database_url, Unavailable) as database:
        async with database.connection() as conn:
            await conn.execute(
                "INSERT INTO messaging.conversation_heads (conversation_id, last_seq)"
                " VALUES ($1, 7), ($2, 3)",
                busy,
                foreign,
            )
        recording = RecordingDatabase(database)
        reads = ReadService(
            PostgresMessageQueries(recording),  # type: ignore[arg-type]
            max_recovery=1000,
        )
        heads = await reads.visible_heads(user, [*unknown, quiet, foreign, busy])
        assert len(recording.queries) == 1
        assert heads == {quiet: 0, busy: 7}
        # Caught up already: recovering with the head in hand reads nothing more.
        recovery = await reads.recover(user, busy, 7, head=heads[busy])
        assert (recovery.messages, recovery.last_seq, recovery.recovered) == ([], 7, True)
        assert len(recording.queries) == 1


async def test_a_gap_fill_checks_membership_and_head_in_one_query(database_url: str) -> None:
    user, stranger = uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [stranger, uuid.uuid4()])
    async with opened_database(database_url, Unavailable) as database:
        recording = RecordingDatabase(database)
        reads = ReadService(
            PostgresMessageQueries(recording),  # type: ignore[arg-type]
            max_recovery=1000,
        )
        with pytest.raises(ConversationNotVisible):
            await reads.recover(user, conversation, 0)
    assert len(recording.queries) == 1
