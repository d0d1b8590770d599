"""History pages are served from the (conversation_id, seq) index, never a table scan."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from rtm.consumer.adapters.postgres_queries import PostgresMessageQueries
from rtm.consumer.domain.exceptions import Unavailable
from rtm.shared.postgres import PostgresDatabase
from tests.support.db import create_conversation, opened_database


class RecordingConnection:
    """Runs queries on a real connection and keeps them, so the test can EXPLAIN the exact SQL."""

    def __init__(
        self, conn: asyncpg.Connection, queries: list[tuple[str, tuple[Any, ...]]]
    ) -> None:
        self.conn = conn
        self.queries = queries

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        self.queries.append((sql, args))
        return list(await self.conn.fetch(sql, *args))


class RecordingDatabase:
    """A `PostgresDatabase` whose connections record the queries run on them."""

    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database
        self.queries: list[tuple[str, tuple[Any, ...]]] = []

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[RecordingConnection]:
        async with self.database.connection(timeout) as conn:
            yield RecordingConnection(conn, self.queries)


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


@pytest.mark.parametrize(
    "paging",
    [{}, {"before_seq": 800}, {"after_seq": 300}, {"after_seq": 300, "before_seq": 800}],
    ids=["newest", "before_seq", "after_seq", "window"],
)
async def test_every_history_page_is_an_index_range_scan(
    database_url: str, paging: dict[str, int]
) -> None:
    members = [uuid.uuid4(), uuid.uuid4()]
    conversations = [await create_conversation(database_url, members) for _ in range(10)]
    async with opened_database(database_url, Unavailable) as database:
        async with database.connection() as conn:
            await conn.execute(
                "INSERT INTO messaging.messages (message_id, conversation_id, seq, sender_id,"
                " client_msg_id, body, sent_at, stream_seq)"
                " SELECT gen_random_uuid(), c, s, $2, gen_random_uuid(), 'body', now(), s"
                " FROM unnest($1::uuid[]) AS c, generate_series(1, 1000) AS s",
                conversations,
                members[0],
            )
            await conn.execute("ANALYZE messaging.messages")
        recording = RecordingDatabase(database)
        queries = PostgresMessageQueries(recording)  # type: ignore[arg-type]
        page = await queries.page(
            conversations[3],
            before_seq=paging.get("before_seq"),
            after_seq=paging.get("after_seq"),
            limit=50,
        )
        assert len(page.messages) == 50
        sql, args = recording.queries[-1]
        async with database.connection() as conn:
            raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    nodes = plan_nodes(json.loads(raw)[0]["Plan"])
    kinds = {node["Node Type"] for node in nodes}
    assert "Seq Scan" not in kinds, kinds
    assert any(
        node["Node Type"] in ("Index Scan", "Index Only Scan", "Index Scan Backward")
        and node.get("Index Name") == "messages_conversation_seq"
        for node in nodes
    ), nodes


async def test_after_and_before_together_page_the_window_between_them(database_url: str) -> None:
    """`after_seq < seq < before_seq`, ascending; `has_more` looks forward within the window."""
    members = [uuid.uuid4(), uuid.uuid4()]
    conversation = await create_conversation(database_url, members)
    async with opened_database(database_url, Unavailable) as database:
        async with database.connection() as conn:
            await conn.execute(
                "INSERT INTO messaging.messages (message_id, conversation_id, seq, sender_id,"
                " client_msg_id, body, sent_at, stream_seq)"
                " SELECT gen_random_uuid(), $1, s, $2, gen_random_uuid(), 'body', now(), s"
                " FROM generate_series(1, 20) AS s",
                conversation,
                members[0],
            )
        queries = PostgresMessageQueries(database)
        whole = await queries.page(conversation, before_seq=16, after_seq=10, limit=50)
        first = await queries.page(conversation, before_seq=16, after_seq=10, limit=3)
        empty = await queries.page(conversation, before_seq=11, after_seq=10, limit=3)
    assert ([m.seq for m in whole.messages], whole.has_more) == ([11, 12, 13, 14, 15], False)
    assert ([m.seq for m in first.messages], first.has_more) == ([11, 12, 13], True)
    assert (empty.messages, empty.has_more) == ([], False)
