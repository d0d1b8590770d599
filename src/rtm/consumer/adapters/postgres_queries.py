"""PostgreSQL implementations of `MessageQueries` and `ConversationDirectory`.

History pages come from the `(conversation_id, seq)` unique index: every query is a bounded
range scan on it, never a table scan, and pages stay stable under concurrent inserts because seqs
are never reused or renumbered.

Every query is one bounded use of a connection (`rtm.shared.postgres.PostgresDatabase`): while
PostgreSQL is frozen, killed or refusing, it raises the consumer's `Unavailable` within the
database timeout, never a driver error, and a connection whose query failed is never reused.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from rtm.consumer.domain.model import ConversationView, MessagePage, ReadMark, StoredMessage
from rtm.shared.contract import MAX_SEQ
from rtm.shared.postgres import PostgresDatabase

_MESSAGE_COLUMNS = "message_id, conversation_id, seq, sender_id, client_msg_id, body, sent_at"


def _message(row: Any) -> StoredMessage:
    return StoredMessage(
        message_id=row["message_id"],
        conversation_id=row["conversation_id"],
        seq=int(row["seq"]),
        sender_id=row["sender_id"],
        client_msg_id=row["client_msg_id"],
        body=row["body"],
        sent_at=row["sent_at"],
    )


_CONVERSATIONS = """
SELECT c.id, c.kind, c.title, c.created_at,
       coalesce(h.last_seq, 0) AS last_seq,
       coalesce(r.seq, 0) AS read_seq,
       (SELECT array_agg(m2.user_id ORDER BY m2.joined_at, m2.user_id)
          FROM messaging.members m2 WHERE m2.conversation_id = c.id) AS members,
       lm.message_id, lm.seq, lm.sender_id, lm.client_msg_id, lm.body, lm.sent_at,
       lm.conversation_id
FROM messaging.members me
JOIN messaging.conversations c ON c.id = me.conversation_id
LEFT JOIN messaging.conversation_heads h ON h.conversation_id = c.id
LEFT JOIN messaging.read_markers r ON r.conversation_id = c.id AND r.user_id = me.user_id
LEFT JOIN messaging.messages lm ON lm.conversation_id = c.id AND lm.seq = h.last_seq
WHERE me.user_id = $1 {extra}
ORDER BY coalesce(h.last_message_at, c.created_at) DESC, c.id
"""


# Membership, head and the monotonic upsert in one statement: no row = not a member. A seq past
# the head is stored as the head (nothing not stored yet is marked read), for `read` frames and
# `POST .../read` alike; a marker stored above the head (a `read` frame could, before issue 14)
# is reported at the head, as the conversation list does.
_MARK_READ = """
WITH me AS (
    SELECT coalesce(h.last_seq, 0) AS last_seq
    FROM messaging.members m
    LEFT JOIN messaging.conversation_heads h ON h.conversation_id = m.conversation_id
    WHERE m.conversation_id = $1 AND m.user_id = $2
), up AS (
    INSERT INTO messaging.read_markers AS r (conversation_id, user_id, seq)
    SELECT $1, $2, least($3, me.last_seq) FROM me
    ON CONFLICT (conversation_id, user_id) DO UPDATE
    SET seq = greatest(r.seq, excluded.seq), updated_at = now()
    RETURNING r.seq
)
SELECT me.last_seq, (SELECT up.seq FROM up) AS read_seq FROM me
"""


async def _fetch(db: PostgresDatabase, sql: str, *args: object) -> list[asyncpg.Record]:
    async with db.connection() as conn:
        return list(await conn.fetch(sql, *args))


async def _fetchval(db: PostgresDatabase, sql: str, *args: object) -> Any:
    async with db.connection() as conn:
        return await conn.fetchval(sql, *args)


def _view(row: Any) -> ConversationView:
    last = _message(row) if row["message_id"] is not None else None
    return ConversationView(
        id=row["id"],
        kind=row["kind"],
        title=row["title"],
        members=list(row["members"] or []),
        created_at=row["created_at"],
        last_seq=int(row["last_seq"]),
        read_seq=min(int(row["read_seq"]), int(row["last_seq"])),
        last_message=last,
    )


class PostgresMessageQueries:
    """`MessageQueries` on the `messaging` schema."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    async def is_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        value = await _fetchval(
            self._db,
            "SELECT 1 FROM messaging.members WHERE conversation_id = $1 AND user_id = $2",
            conversation_id,
            user_id,
        )
        return value is not None

    async def page(
        self,
        conversation_id: uuid.UUID,
        *,
        before_seq: int | None,
        after_seq: int | None,
        limit: int,
    ) -> MessagePage:
        if after_seq is not None:  # paging forward, up to `before_seq` when given too
            rows = await _fetch(
                self._db,
                f"SELECT {_MESSAGE_COLUMNS} FROM messaging.messages"  # noqa: S608 - constant
                " WHERE conversation_id = $1 AND seq > $2 AND seq < $3 ORDER BY seq LIMIT $4",
                conversation_id,
                after_seq,
                before_seq if before_seq is not None else MAX_SEQ,
                limit + 1,
            )
            messages = [_message(r) for r in rows[:limit]]
            return MessagePage(messages, has_more=len(rows) > limit)
        upper = before_seq if before_seq is not None else MAX_SEQ
        rows = await _fetch(
            self._db,
            f"SELECT {_MESSAGE_COLUMNS} FROM messaging.messages"  # noqa: S608 - constant
            " WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
            conversation_id,
            upper,
            limit + 1,
        )
        messages = [_message(r) for r in reversed(rows[:limit])]
        return MessagePage(messages, has_more=len(rows) > limit)

    async def visible_heads(
        self, user_id: uuid.UUID, conversation_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, int]:
        # From the user's side of the membership index (`members_by_user`): one probe per named
        # id within the user's own rows, whether or not the id exists at all.
        rows = await _fetch(
            self._db,
            "SELECT m.conversation_id, coalesce(h.last_seq, 0) AS last_seq"
            " FROM messaging.members m"
            " LEFT JOIN messaging.conversation_heads h ON h.conversation_id = m.conversation_id"
            " WHERE m.user_id = $1 AND m.conversation_id = ANY($2::uuid[])",
            user_id,
            list(conversation_ids),
        )
        return {r["conversation_id"]: int(r["last_seq"]) for r in rows}

    async def conversations_of(self, user_id: uuid.UUID) -> list[ConversationView]:
        rows = await _fetch(self._db, _CONVERSATIONS.format(extra=""), user_id)
        return [_view(r) for r in rows]

    async def conversation(
        self, conversation_id: uuid.UUID, user_id: uuid.UUID
    ) -> ConversationView | None:
        rows = await _fetch(
            self._db, _CONVERSATIONS.format(extra="AND c.id = $2"), user_id, conversation_id
        )
        return _view(rows[0]) if rows else None

    async def member_conversation_ids(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await _fetch(
            self._db, "SELECT conversation_id FROM messaging.members WHERE user_id = $1", user_id
        )
        return [r["conversation_id"] for r in rows]

    async def mark_read(
        self, conversation_id: uuid.UUID, user_id: uuid.UUID, seq: int
    ) -> ReadMark | None:
        rows = await _fetch(self._db, _MARK_READ, conversation_id, user_id, seq)
        if not rows:
            return None
        last_seq = int(rows[0]["last_seq"])
        return ReadMark(conversation_id, min(int(rows[0]["read_seq"]), last_seq), last_seq)


class PostgresConversationDirectory:
    """`ConversationDirectory` on the `messaging` schema."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    async def members(self, conversation_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await _fetch(
            self._db,
            "SELECT user_id FROM messaging.members WHERE conversation_id = $1",
            conversation_id,
        )
        return [r["user_id"] for r in rows]

    async def contacts(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await _fetch(
            self._db,
            "SELECT DISTINCT other.user_id FROM messaging.members me"
            " JOIN messaging.members other USING (conversation_id)"
            " WHERE me.user_id = $1 AND other.user_id <> $1",
            user_id,
        )
        return [r["user_id"] for r in rows]

    async def contacts_among(
        self, user_ids: Sequence[uuid.UUID], among: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, set[uuid.UUID]]:
        # The rows of the conversations of `user_ids` that are one of `user_ids` or of `among`:
        # about (members of those conversations) rows, not (changed users) x (contacts).
        rows = await _fetch(
            self._db,
            "SELECT m.conversation_id, m.user_id FROM messaging.members m"
            " WHERE m.conversation_id IN (SELECT conversation_id FROM messaging.members"
            "   WHERE user_id = ANY($1::uuid[]))"
            " AND (m.user_id = ANY($1::uuid[]) OR m.user_id = ANY($2::uuid[]))",
            list(user_ids),
            list(among),
        )
        wanted, present = set(user_ids), set(among)
        changed: dict[uuid.UUID, list[uuid.UUID]] = {}
        local: dict[uuid.UUID, list[uuid.UUID]] = {}
        for row in rows:
            user, conversation = row["user_id"], row["conversation_id"]
            if user in wanted:
                changed.setdefault(conversation, []).append(user)
            if user in present:
                local.setdefault(conversation, []).append(user)
        contacts: dict[uuid.UUID, set[uuid.UUID]] = {user: set() for user in wanted}
        for conversation, users in changed.items():
            others = local.get(conversation, [])
            for user in users:
                contacts[user].update(others)
        for user, found in contacts.items():
            found.discard(user)
        return contacts

    async def store_read(self, conversation_id: uuid.UUID, user_id: uuid.UUID, seq: int) -> int:
        """The `read` frame's marker: the same query as `POST .../read`, so it is capped at the
        last stored message too (a seq still to come must not be read before it exists)."""
        rows = await _fetch(self._db, _MARK_READ, conversation_id, user_id, seq)
        return int(rows[0]["read_seq"]) if rows and rows[0]["read_seq"] is not None else 0
