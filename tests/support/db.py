"""Direct database helpers for tests that need rows without going through the producer, and the
services' own database handle for tests of their adapters."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import asyncpg
import psycopg

from rtm.shared.postgres import PostgresDatabase


@asynccontextmanager
async def opened_database(
    database_url: str, unavailable: type[Exception], *, pool_size: int = 2, timeout: float = 10.0
) -> AsyncIterator[PostgresDatabase]:
    """A `PostgresDatabase` with its pool open (as a service's composition root makes it),
    closed afterwards. `unavailable` is the service's own exception for an outage."""
    database = PostgresDatabase(
        database_url, pool_size=pool_size, timeout=timeout, unavailable=unavailable
    )
    await database.open()
    try:
        yield database
    finally:
        await database.close()


# Users as auth stores them (migrations/0002_auth.sql): members must be users (0006).
_REGISTER_USERS = """
INSERT INTO auth.users (id, username, display_name, password_hash, created_at)
SELECT id, 'u' || left(replace(id::text, '-', ''), 31), 'Test user', 'not a hash', now()
FROM unnest(%s::uuid[]) AS id
ON CONFLICT DO NOTHING
"""


def register_users(database_url: str, user_ids: Iterable[uuid.UUID]) -> None:
    """Make these users known to auth's table, as registering them would (idempotent)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(_REGISTER_USERS, (list(user_ids),))


async def register_users_async(conn: asyncpg.Connection, user_ids: Iterable[uuid.UUID]) -> None:
    """`register_users` on an open asyncpg connection."""
    await conn.execute(_REGISTER_USERS.replace("%s", "$1"), list(user_ids))


async def create_conversation(
    database_url: str,
    members: list[uuid.UUID],
    *,
    kind: str = "group",
    conversation: uuid.UUID | None = None,
) -> uuid.UUID:
    """A conversation of `members` (registered first), the first its creator; a new id unless
    `conversation` names one (a document's example id)."""
    conversation = conversation or uuid.uuid4()
    direct_key = ":".join(sorted(str(m) for m in members)) if kind == "direct" else None
    conn = await asyncpg.connect(database_url)
    try:
        await register_users_async(conn, members)
        await conn.execute(
            "INSERT INTO messaging.conversations (id, kind, title, direct_key, created_by)"
            " VALUES ($1, $2, $3, $4, $5)",
            conversation,
            kind,
            None if kind == "direct" else "test",
            direct_key,
            members[0],
        )
        await conn.executemany(
            "INSERT INTO messaging.members (conversation_id, user_id) VALUES ($1, $2)",
            [(conversation, m) for m in members],
        )
    finally:
        await conn.close()
    return conversation


async def stored_messages(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(
            await conn.fetch(
                "SELECT conversation_id, seq, sender_id, client_msg_id, body, stream_seq"
                " FROM messaging.messages ORDER BY conversation_id, seq"
            )
        )
    finally:
        await conn.close()
