"""`RestMixin`: the part of `Client` that is plain HTTP calls on the services' APIs.

History pages, conversations and their members, users. Each goes through `ClientBase._call`
(the access token, one refresh on 401, the next instance on a network error), so none of them
has retry code of its own. The socket-side counterparts (sending, read markers on the socket,
events) are in `rtm.client.sending` and `rtm.client.receiving`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal
from urllib.parse import quote

from rtm.client.base import ClientBase
from rtm.client.models import Conversation, Message, MessagePage, User


class RestMixin(ClientBase):
    """History, conversations, members and users over HTTP."""

    async def history(
        self,
        conversation_id: str,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> MessagePage:
        """One page of history, ascending: the newest `limit` (default 50), or those just
        before `before_seq`, or just after `after_seq`."""
        params = {
            key: str(value)
            for key, value in (
                ("before_seq", before_seq),
                ("after_seq", after_seq),
                ("limit", limit),
            )
            if value is not None
        }
        answer = await self._call(
            "consumer", "GET", f"/v1/conversations/{quote(conversation_id)}/messages", params=params
        )
        return MessagePage.from_json(answer)

    async def older_pages(
        self, conversation_id: str, *, before_seq: int | None = None, limit: int | None = None
    ) -> AsyncIterator[list[Message]]:
        """Page back in time from the newest message (or from `before_seq`); each page
        ascending."""
        before = before_seq
        while True:
            page = await self.history(conversation_id, before_seq=before, limit=limit)
            if page.messages:
                yield list(page.messages)
            if not page.has_more or not page.messages:
                return
            before = page.messages[0].seq

    async def conversations(self) -> list[Conversation]:
        """The user's conversations, newest activity first, with `unread_count`."""
        answer = await self._call("consumer", "GET", "/v1/conversations")
        return [Conversation.from_json(c) for c in answer["conversations"]]

    async def conversation(self, conversation_id: str) -> Conversation:
        answer = await self._call("consumer", "GET", f"/v1/conversations/{quote(conversation_id)}")
        return Conversation.from_json(answer)

    async def create_conversation(
        self,
        member_ids: Sequence[str],
        *,
        kind: Literal["direct", "group"] = "direct",
        title: str | None = None,
    ) -> Conversation:
        """Create a conversation (a direct one again returns the existing one) and follow it:
        its messages after `last_seq` (all of a new one's) come as `MessageEvent`s."""
        body: dict[str, Any] = {"kind": kind, "member_ids": list(member_ids)}
        if title is not None:
            body["title"] = title
        conversation = Conversation.from_json(
            await self._call("producer", "POST", "/v1/conversations", body)
        )
        if self._receiver is not None:
            self._receiver.follow(conversation.id, conversation.last_seq)
        return conversation

    async def add_member(self, conversation_id: str, user_id: str) -> None:
        await self._call(
            "producer",
            "POST",
            f"/v1/conversations/{quote(conversation_id)}/members",
            {"user_id": user_id},
        )

    async def remove_member(self, conversation_id: str, user_id: str) -> None:
        await self._call(
            "producer",
            "DELETE",
            f"/v1/conversations/{quote(conversation_id)}/members/{quote(user_id)}",
        )

    async def me(self) -> User:
        return User.from_json(await self._call("auth", "GET", "/v1/auth/me"))

    async def search_users(self, prefix: str) -> list[User]:
        answer = await self._call("auth", "GET", "/v1/users", params={"q": prefix})
        return [User.from_json(u) for u in answer["users"]]
