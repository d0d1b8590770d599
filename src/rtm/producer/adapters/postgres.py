"""PostgreSQL adapter of the producer: the conversation repository over
`messaging.conversations` / `messaging.members` (the producer's tables), reading
`messaging.messages` and `messaging.conversation_heads` (the consumer's) for duplicates and
`last_seq`, and `auth.users` (auth's) for whether members are users: the same database holds
both schemas, and a foreign key (migration 0006) makes a membership of a non-user impossible.

Connections come from `rtm.shared.postgres.PostgresDatabase`, built with the producer's
`Unavailable`: every use is bounded (the lookups of a send by their own, shorter timeout), an
outage is `Unavailable`, and a connection whose use failed is terminated, never reused (its
module docstring says why). The coalesced duplicate lookups run as one task with one connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from rtm.producer.domain.exceptions import UnknownUsers
from rtm.producer.domain.model import (
    Conversation,
    ConversationKind,
    CreateOutcome,
    SendCheck,
    StoredSend,
)
from rtm.shared.coalesce import Coalescer
from rtm.shared.postgres import PostgresDatabase

_CHECK_SEND = """
SELECT c.id IS NOT NULL AS found,
       ARRAY(SELECT user_id FROM messaging.members WHERE conversation_id = $1) AS members,
       m.message_id, m.stream_seq, m.sent_at
FROM (SELECT 1) AS one
LEFT JOIN messaging.conversations AS c ON c.id = $1
LEFT JOIN messaging.messages AS m ON m.sender_id = $2 AND m.client_msg_id = $3
"""

_STORED_SENDS = """
SELECT m.sender_id, m.client_msg_id, m.message_id, m.stream_seq, m.sent_at
FROM unnest($1::uuid[], $2::uuid[]) AS k(sender_id, client_msg_id)
JOIN messaging.messages AS m USING (sender_id, client_msg_id)
"""

_MEMBERS = """
SELECT c.id IS NOT NULL AS found,
       ARRAY(SELECT user_id FROM messaging.members WHERE conversation_id = $1) AS members
FROM (SELECT 1) AS one
LEFT JOIN messaging.conversations AS c ON c.id = $1
"""

_GET = """
SELECT c.id, c.kind, c.title, c.created_by, c.created_at,
       COALESCE(h.last_seq, 0) AS last_seq,
       ARRAY(SELECT user_id FROM messaging.members AS mb
             WHERE mb.conversation_id = c.id ORDER BY user_id::text) AS members
FROM messaging.conversations AS c
LEFT JOIN messaging.conversation_heads AS h ON h.conversation_id = c.id
WHERE c.id = $1
"""

_INSERT_CONVERSATION = """
INSERT INTO messaging.conversations (id, kind, title, direct_key, created_by, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (direct_key) DO NOTHING
RETURNING id
"""

_INSERT_MEMBERS = """
INSERT INTO messaging.members (conversation_id, user_id, joined_at)
SELECT $1, member, $3 FROM unnest($2::uuid[]) AS member
ON CONFLICT DO NOTHING
RETURNING user_id
"""


# Of the given ids, those that are not users auth knows (never registered, or deleted).
_UNKNOWN_USERS = """
SELECT wanted.id FROM unnest($1::uuid[]) AS wanted(id)
WHERE NOT EXISTS (
    SELECT 1 FROM auth.users AS u WHERE u.id = wanted.id AND u.deleted_at IS NULL
)
"""


async def _unknown_users(
    conn: asyncpg.Connection, user_ids: Sequence[uuid.UUID]
) -> tuple[uuid.UUID, ...]:
    return tuple(row["id"] for row in await conn.fetch(_UNKNOWN_USERS, list(user_ids)))


# Add a member if they are a user auth knows: `known` says whether they are, `added` whether
# the row is new (False when already a member).
_ADD_MEMBER = """
WITH known AS (
    SELECT u.id FROM auth.users AS u WHERE u.id = $2 AND u.deleted_at IS NULL
), added AS (
    INSERT INTO messaging.members (conversation_id, user_id)
    SELECT $1, id FROM known
    ON CONFLICT DO NOTHING
    RETURNING user_id
)
SELECT EXISTS (SELECT 1 FROM known) AS known, EXISTS (SELECT 1 FROM added) AS added
"""


def _members(row: asyncpg.Record) -> frozenset[uuid.UUID] | None:
    return frozenset(row["members"]) if row["found"] else None


def _conversation(row: asyncpg.Record) -> Conversation:
    return Conversation(
        id=row["id"],
        kind=ConversationKind(row["kind"]),
        title=row["title"],
        members=tuple(row["members"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        last_seq=row["last_seq"],
    )


class PostgresConversationRepository:
    """`ConversationRepository` on PostgreSQL. Writes commit before returning, so a created
    conversation is visible to every service at once (read-your-writes)."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database
        self._stored_sends: Coalescer[tuple[uuid.UUID, uuid.UUID], StoredSend] = Coalescer(
            self._stored_sends_now
        )

    async def check_send(
        self,
        conversation_id: uuid.UUID,
        sender_id: uuid.UUID,
        client_msg_id: uuid.UUID,
        *,
        timeout: float | None = None,
    ) -> SendCheck:
        async with self._db.connection(timeout) as conn:
            row = await conn.fetchrow(_CHECK_SEND, conversation_id, sender_id, client_msg_id)
        assert row is not None  # SELECT FROM (SELECT 1) always yields one row
        stored = None
        if row["message_id"] is not None:
            stored = StoredSend(row["message_id"], row["stream_seq"], row["sent_at"])
        return SendCheck(members=_members(row), stored=stored)

    async def stored_send(
        self, sender_id: uuid.UUID, client_msg_id: uuid.UUID, *, timeout: float | None = None
    ) -> StoredSend | None:
        """Every send asks this: the lookups of one loop turn share one query (`Coalescer`)."""
        return await self._stored_sends.get((sender_id, client_msg_id), timeout)

    async def _stored_sends_now(
        self, keys: Sequence[tuple[uuid.UUID, uuid.UUID]], timeout: float | None
    ) -> dict[tuple[uuid.UUID, uuid.UUID], StoredSend]:
        async with self._db.connection(timeout) as conn:
            rows = await conn.fetch(
                _STORED_SENDS,
                [sender for sender, _ in keys],
                [client_msg_id for _, client_msg_id in keys],
            )
        return {
            (row["sender_id"], row["client_msg_id"]): StoredSend(
                row["message_id"], row["stream_seq"], row["sent_at"]
            )
            for row in rows
        }

    async def members(
        self, conversation_id: uuid.UUID, *, timeout: float | None = None
    ) -> frozenset[uuid.UUID] | None:
        async with self._db.connection(timeout) as conn:
            row = await conn.fetchrow(_MEMBERS, conversation_id)
        assert row is not None
        return _members(row)

    async def get(self, conversation_id: uuid.UUID) -> Conversation | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(_GET, conversation_id)
        return None if row is None else _conversation(row)

    async def create(self, conversation: Conversation, direct_key: str | None) -> CreateOutcome:
        """Store it unless a member is no user (`UnknownUsers`, nothing written): the check and
        the writes are one transaction, and the foreign key on `members.user_id` guarantees it
        whatever happens in between. The unknown ids leave the block as a value, not an
        exception, so that the connection goes back to the pool (an exception terminates it)."""
        c = conversation
        try:
            async with self._db.transaction() as conn:
                unknown = await _unknown_users(conn, c.members)
                if not unknown:
                    return await self._create_in(conn, conversation, direct_key)
        except asyncpg.ForeignKeyViolationError as exc:  # a users row gone since the check
            raise UnknownUsers(c.members) from exc
        raise UnknownUsers(unknown)

    async def _create_in(
        self, conn: asyncpg.Connection, conversation: Conversation, direct_key: str | None
    ) -> CreateOutcome:
        c = conversation
        inserted = await conn.fetchval(
            _INSERT_CONVERSATION,
            c.id,
            c.kind.value,
            c.title,
            direct_key,
            c.created_by,
            c.created_at,
        )
        if inserted is not None:
            await conn.fetch(_INSERT_MEMBERS, c.id, list(c.members), c.created_at)
            return CreateOutcome(conversation, created=True)
        # The pair already has its direct conversation (the unique key waited for any
        # concurrent creator to commit): return it, with whoever had left it back in.
        existing = await conn.fetchval(
            "SELECT id FROM messaging.conversations WHERE direct_key = $1", direct_key
        )
        rows = await conn.fetch(_INSERT_MEMBERS, existing, list(c.members), c.created_at)
        restored = tuple(sorted((row["user_id"] for row in rows), key=str))
        row = await conn.fetchrow(_GET, existing)
        assert row is not None
        return CreateOutcome(_conversation(row), created=False, restored=restored)

    async def add_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Add them unless they are no user (`UnknownUsers`), in one statement: the check and
        the insert cannot be told apart, and the foreign key backs it."""
        try:
            async with self._db.connection() as conn:
                row = await conn.fetchrow(_ADD_MEMBER, conversation_id, user_id)
        except asyncpg.ForeignKeyViolationError as exc:  # a users row gone since the check
            raise UnknownUsers((user_id,)) from exc
        assert row is not None
        if not row["known"]:
            raise UnknownUsers((user_id,))
        return bool(row["added"])

    async def remove_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        async with self._db.connection() as conn:
            removed = await conn.fetchval(
                "DELETE FROM messaging.members WHERE conversation_id = $1 AND user_id = $2"
                " RETURNING user_id",
                conversation_id,
                user_id,
            )
        return removed is not None
