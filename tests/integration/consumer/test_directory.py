"""The contacts query presence uses: one query for every changed user, local contacts only."""

from __future__ import annotations

import uuid

from rtm.consumer.adapters.postgres_queries import PostgresConversationDirectory
from rtm.consumer.domain.exceptions import Unavailable
from tests.support.db import create_conversation, opened_database


async def test_contacts_among_returns_each_users_contacts_within_the_given_set(
    database_url: str,
) -> None:
    a, b, c, d, e, lonely = (uuid.uuid4() for _ in range(6))
    await create_conversation(database_url, [a, b, c])
    await create_conversation(database_url, [a, d], kind="direct")
    await create_conversation(database_url, [d, e])
    async with opened_database(database_url, Unavailable) as database:
        directory = PostgresConversationDirectory(database)
        found = await directory.contacts_among([a, d, lonely], among=[a, b, d, e])
        assert found == {a: {b, d}, d: {a, e}, lonely: set()}
        assert await directory.contacts_among([b], among=[c]) == {b: {c}}
        assert await directory.contacts_among([b], among=[]) == {b: set()}
        assert await directory.contacts_among([], among=[a]) == {}
