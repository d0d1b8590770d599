"""The statements run for every send probe their indexes, even when PostgreSQL planned them while
`messaging.messages` was empty (issue 13).

Such a statement is planned once per connection and its plan kept: the producer's prepared
lookups once PostgreSQL settles on a generic plan, `messaging.store_small_batch` always (0009).
Planned on the empty table of a new database, a join hashed a sequential scan of it and went on
scanning on every call as the table grew: most of PostgreSQL's CPU in a 20-second benchmark on a
fresh system. Each test plans a statement on an empty table, fills the table, runs the statement
again in a transaction, and reads that transaction's own counters (`pg_stat_xact_user_tables`):
no sequential scan of `messaging.messages`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from rtm.consumer.adapters.postgres_store import PostgresMessageStore
from rtm.consumer.domain.exceptions import Unavailable
from rtm.consumer.domain.model import FenceToken
from rtm.producer.adapters import postgres as producer_postgres
from tests.support.db import create_conversation, opened_database

FILL = 5_000  # rows: a sequential scan of them is no longer the cheapest plan
PARTITION = 0
TOKEN = FenceToken(1, 1)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection (plans are per connection) to a fresh database, with autovacuum off for
    messages: an ANALYZE in the middle of a test would plan again and hide the cached plan."""
    connection = await asyncpg.connect(database_url)
    await connection.execute("ALTER TABLE messaging.messages SET (autovacuum_enabled = off)")
    try:
        yield connection
    finally:
        await connection.close()


async def fill_messages(conn: asyncpg.Connection, conversation: uuid.UUID) -> None:
    await conn.execute(
        """
        INSERT INTO messaging.messages
            (message_id, conversation_id, seq, sender_id, client_msg_id, body, sent_at,
             stream_seq)
        SELECT gen_random_uuid(), $1, g, gen_random_uuid(), gen_random_uuid(), 'filler', now(),
               1000000 + g
        FROM generate_series(1, $2::integer) AS g
        """,
        conversation,
        FILL,
    )


async def scans_of_messages(conn: asyncpg.Connection) -> int:
    """Sequential scans of messaging.messages in the current transaction, so far."""
    return int(
        await conn.fetchval(
            "SELECT seq_scan FROM pg_stat_xact_user_tables"
            " WHERE relid = 'messaging.messages'::regclass"
        )
    )


async def store_small_batch(
    conn: asyncpg.Connection,
    conversation: uuid.UUID,
    sender: uuid.UUID,
    after: int,
) -> list[asyncpg.Record]:
    """Two messages after stream seq `after`, as the consumer stores a small batch."""
    seqs = [after + 1, after + 2]
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT idx, seq FROM messaging.store_small_batch(
            $1::integer, $2::bigint, $3::bigint, $4::bigint, $5::bigint, $6::bigint, $7::uuid[],
            $8::uuid[], $9::uuid[], $10::uuid[], $11::text[], $12::timestamptz[], $13::bigint[])
        """,
        PARTITION,
        TOKEN.epoch,
        TOKEN.revision,
        after,
        seqs[-1],
        0,
        [uuid.uuid4() for _ in seqs],
        [conversation for _ in seqs],
        [sender for _ in seqs],
        [uuid.uuid4() for _ in seqs],
        [f"body {s}" for s in seqs],
        [datetime.now(UTC) for _ in seqs],
        seqs,
    )
    return rows


async def test_the_consumers_small_batches_probe_messages_by_key(
    database_url: str, conn: asyncpg.Connection
) -> None:
    sender = uuid.uuid4()
    conversation = await create_conversation(database_url, [sender, uuid.uuid4()])
    other = await create_conversation(database_url, [sender])
    async with opened_database(database_url, Unavailable) as database:
        await PostgresMessageStore(database).claim(PARTITION, TOKEN)
    assert len(await store_small_batch(conn, conversation, sender, 0)) == 2  # planned: empty

    await fill_messages(conn, other)
    async with conn.transaction():
        stored = await store_small_batch(conn, conversation, sender, 2)
        scans = await scans_of_messages(conn)

    assert [row["seq"] for row in stored] == [3, 4]
    assert scans == 0


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("_STORED_SENDS", 2),  # the "already stored?" lookup of a member's send
        ("_CHECK_SENDS", 3),  # membership and stored copy, for a send not cached yet
    ],
)
async def test_the_producers_send_lookups_probe_messages_by_key(
    database_url: str, conn: asyncpg.Connection, name: str, arguments: int
) -> None:
    """A generic plan forced at once: PostgreSQL chose one by itself after a few executions
    with several sends each."""
    sender = uuid.uuid4()
    conversation = await create_conversation(database_url, [sender])
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    statement = await conn.prepare(getattr(producer_postgres, name))
    keys = [[conversation] * 3, [sender] * 3, [uuid.uuid4() for _ in range(3)]][-arguments:]
    await statement.fetch(*keys)  # planned now, while messages is empty

    await fill_messages(conn, conversation)
    async with conn.transaction():
        await statement.fetch(*keys)
        scans = await scans_of_messages(conn)

    assert scans == 0
