"""Reading as a member: history, the conversation list, and recovering what a client missed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from rtm.consumer.domain.exceptions import ConversationNotVisible
from rtm.consumer.domain.model import ConversationView, MessagePage, ReadMark, StoredMessage
from rtm.consumer.domain.ports import MessageQueries


@dataclass(frozen=True, slots=True)
class Recovery:
    """What `resume` sends for one conversation."""

    conversation_id: uuid.UUID
    messages: list[StoredMessage]
    last_seq: int
    recovered: bool


class ReadService:
    """History, the conversation list and gap recovery, always scoped to a member."""

    def __init__(self, queries: MessageQueries, *, max_recovery: int) -> None:
        self._queries = queries
        self._max_recovery = max_recovery

    async def _require_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> None:
        if not await self._queries.is_member(conversation_id, user_id):
            raise ConversationNotVisible()

    async def history(
        self,
        user_id: uuid.UUID,
        conversation_id: uuid.UUID,
        *,
        before_seq: int | None,
        after_seq: int | None,
        limit: int,
    ) -> MessagePage:
        await self._require_member(conversation_id, user_id)
        return await self._queries.page(
            conversation_id, before_seq=before_seq, after_seq=after_seq, limit=limit
        )

    async def conversations(self, user_id: uuid.UUID) -> list[ConversationView]:
        return await self._queries.conversations_of(user_id)

    async def conversation(
        self, user_id: uuid.UUID, conversation_id: uuid.UUID
    ) -> ConversationView:
        view = await self._queries.conversation(conversation_id, user_id)
        if view is None:
            raise ConversationNotVisible()
        return view

    async def mark_read(self, user_id: uuid.UUID, conversation_id: uuid.UUID, seq: int) -> ReadMark:
        """Move the member's read marker to `seq` (never backwards, never past the last stored
        message; idempotent) and say what is stored. `ConversationNotVisible` for a non-member,
        as everywhere."""
        mark = await self._queries.mark_read(conversation_id, user_id, seq)
        if mark is None:
            raise ConversationNotVisible()
        return mark

    async def visible_heads(
        self, user_id: uuid.UUID, conversation_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, int]:
        """The head (last stored seq, 0 when none) of each of `conversation_ids` the user is a
        member of; the others (someone else's, or no such conversation) are absent. One query
        for all of them, whatever they are: a `resume` naming a thousand ids, unknown or not,
        costs one round trip, not one per id."""
        if not conversation_ids:
            return {}
        return await self._queries.visible_heads(user_id, conversation_ids)

    async def recover(
        self,
        user_id: uuid.UUID,
        conversation_id: uuid.UUID,
        after_seq: int,
        *,
        head: int | None = None,
    ) -> Recovery:
        """Everything after `after_seq`, or nothing and `recovered=False` past `max_recovery`.

        `head`: the conversation's head from `visible_heads`, which also checked the user is a
        member (a resume looks all its conversations up at once); without it, both are looked
        up here. Nothing more is read when nothing is missing."""
        if head is None:
            found = await self.visible_heads(user_id, [conversation_id])
            if conversation_id not in found:
                raise ConversationNotVisible()
            head = found[conversation_id]
        if head - after_seq > self._max_recovery:
            return Recovery(conversation_id, [], head, recovered=False)
        messages: list[StoredMessage] = []
        cursor = after_seq
        while cursor < head:
            page = await self._queries.page(
                conversation_id, before_seq=None, after_seq=cursor, limit=200
            )
            if not page.messages:
                break
            messages.extend(page.messages)
            cursor = page.messages[-1].seq
        return Recovery(conversation_id, messages, max(head, cursor), recovered=True)
