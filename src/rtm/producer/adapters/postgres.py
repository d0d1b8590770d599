"""PostgreSQL adapter of the producer: the conversation repository over
`messaging.conversations` / `messaging.members` (the producer's tables), reading
`messaging.messages` and `messaging.conversation_heads` (the consumer's) for duplicates and
`last_seq`, and `auth.users` (auth's) for whether members are users: the same database holds
both schemas, and a foreign key (migration 0006) makes a membership of a non-user impossible.

Connections come from `rtm.shared.postgres.PostgresDatabase`, built with the producer's
`Unavailable`: every use is bounded (the lookups of a send by their own, shorter timeout), an
outage is `Unavailable`, and a connection whose use failed is terminated, never reused (its
module docstring says why).

The lookups of a send (`check_send`, `stored_send`) are batched (`rtm.shared.coalesce`): one
query in flight per kind, and every send that asks meanwhile goes in the next one, so PostgreSQL
sees about one round trip per query time, not one per send. Each caller still waits at most its
own deadline, the query ahead of its own included.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Sequence
from typing import TypeVar

import asyncpg

from rtm.producer.domain.exceptions import Unavailable, UnknownUsers
from rtm.producer.domain.model import (
    Conversation,
    ConversationKind,
    CreateOutcome,
    SendCheck,
    StoredSend,
)
from rtm.shared.coalesce import Coalescer
from rtm.shared.postgres import PostgresDatabase

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
# A send's check: (conversation, sender, client_msg_id).
SendKey = tuple[uuid.UUID, uuid.UUID, uuid.UUID]

# A batch of sends' checks: each send's conversation (found, and its members, listed on the
# first row of that conversation only) and any stored copy of the send.
_CHECK_SENDS = """
WITH k AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[])
        WITH ORDINALITY AS k(conversation_id, sender_id, client_msg_id, i)
), first AS (
    SELECT min(i) AS i FROM k GROUP BY conversation_id
)
SELECT k.conversation_id, k.sender_id, k.client_msg_id,
       c.id IS NOT NULL AS found,
       CASE WHEN first.i IS NOT NULL THEN
           ARRAY(SELECT user_id FROM messaging.members WHERE conversation_id = k.conversation_id)
       END AS members,
       m.message_id, m.stream_seq, m.sent_at, m.seq
FROM k
LEFT JOIN first ON first.i = k.i
LEFT JOIN messaging.conversations AS c ON c.id = k.conversation_id
LEFT JOIN LATERAL (
    SELECT * FROM messaging.messages AS m
    WHERE m.sender_id = k.sender_id AND m.client_msg_id = k.client_msg_id
    OFFSET 0  -- an index probe per send, whatever the statistics: see _STORED_SENDS
) AS m ON true
"""

# Each send's stored copy is looked up by its unique key, one index probe per send. Written as a
# LATERAL subquery with OFFSET 0, which PostgreSQL cannot turn into a join, because this
# statement is prepared once per connection and its plan kept: as a plain join, a plan made
# while messaging.messages was nearly empty (a new database) hashed a sequential scan of it and
# kept scanning on every send as the table grew (0.65 ms per lookup after 20 s at 1,000
# msgs/s, against 0.05 ms for the probe), until autovacuum's next ANALYZE.
_STORED_SENDS = """
SELECT m.sender_id, m.client_msg_id, m.message_id, m.stream_seq, m.sent_at, m.seq
FROM unnest($1::uuid[], $2::uuid[]) AS k(sender_id, client_msg_id)
CROSS JOIN LATERAL (
    SELECT * FROM messaging.messages AS m
    WHERE m.sender_id = k.sender_id AND m.client_msg_id = k.client_msg_id
    OFFSET 0
) AS m
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
        self._checks: Coalescer[SendKey, SendCheck] = Coalescer(self._check_sends_now)
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
        """A send whose conversation's membership is not cached asks this (batched)."""
        check = await self._batched(
            self._checks, (conversation_id, sender_id, client_msg_id), timeout
        )
        assert check is not None  # every key of a batch is answered
        return check

    async def stored_send(
        self, sender_id: uuid.UUID, client_msg_id: uuid.UUID, *, timeout: float | None = None
    ) -> StoredSend | None:
        """Every send whose conversation's membership is cached asks this (batched)."""
        return await self._batched(self._stored_sends, (sender_id, client_msg_id), timeout)

    async def _batched(self, coalescer: Coalescer[K, V], key: K, timeout: float | None) -> V | None:
        """The key's answer from the coalescer's next query, within the caller's own deadline
        (`timeout`, else the database's), as if the query were its own."""
        wait_s = timeout if timeout is not None else self._db.timeout
        try:
            return await coalescer.get(key, timeout, wait_s)
        except TimeoutError as exc:
            raise Unavailable(f"the database did not answer within {wait_s:g}s") from exc

    async def _check_sends_now(
        self, keys: Sequence[SendKey], timeout: float | None
    ) -> dict[SendKey, SendCheck]:
        async with self._db.connection(timeout) as conn:
            rows = await conn.fetch(
                _CHECK_SENDS,
                [conversation for conversation, _, _ in keys],
                [sender for _, sender, _ in keys],
                [client_msg_id for _, _, client_msg_id in keys],
            )
        members: dict[uuid.UUID, frozenset[uuid.UUID] | None] = {
            row["conversation_id"]: frozenset(row["members"]) if row["found"] else None
            for row in rows
            if row["members"] is not None
        }
        checks: dict[SendKey, SendCheck] = {}
        for row in rows:
            stored = None
            if row["message_id"] is not None:
                stored = StoredSend(
                    row["message_id"], row["stream_seq"], row["sent_at"], row["seq"]
                )
            key = (row["conversation_id"], row["sender_id"], row["client_msg_id"])
            checks[key] = SendCheck(members=members[row["conversation_id"]], stored=stored)
        return checks

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
                row["message_id"], row["stream_seq"], row["sent_at"], row["seq"]
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
