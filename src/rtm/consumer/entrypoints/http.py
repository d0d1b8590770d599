"""The consumer's HTTP API: conversations as a member sees them, and message history.

Every status an operation can answer is in its document (schemathesis checks it:
tests/integration/consumer/test_openapi_contract.py): 401 without a valid bearer token, 404
`forbidden` for a conversation that is not the caller's, 422 `validation_failed` for a
parameter out of its documented range, 503 `unavailable` while PostgreSQL cannot answer.
"""

# No `from __future__ import annotations`: the routes are made in `create_router`, and FastAPI
# must see their annotations evaluated (they name the settings' limits, which are local).

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from rtm.consumer.entrypoints.deps import Claims, Reads
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.contract import MAX_SEQ
from rtm.shared.http import error_responses

EXAMPLE_CONVERSATION = uuid.UUID("0195f3a1-0a2b-7c3d-8e4f-5a6b7c8d9e0f")


class MessageOut(BaseModel):
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int = Field(examples=[1])
    sender_id: uuid.UUID
    body: str = Field(examples=["hello"])
    client_msg_id: uuid.UUID
    sent_at: str = Field(examples=["2026-11-24T01:34:49.123Z"])


class ConversationOut(BaseModel):
    id: uuid.UUID
    kind: str = Field(examples=["direct"])
    title: str | None
    members: list[uuid.UUID]
    created_at: str
    last_seq: int
    read_seq: int
    unread_count: int
    last_message: MessageOut | None


class ConversationList(BaseModel):
    conversations: list[ConversationOut]


class MessagePageOut(BaseModel):
    messages: list[MessageOut]
    has_more: bool


def create_router(settings: ConsumerSettings) -> APIRouter:
    """The routes, with this deployment's history limits in their validation and document."""
    router = APIRouter(prefix="/v1", tags=["conversations"])
    conversation_path = Path(
        description="a conversation id (UUID)",
        openapi_examples={"example": {"value": str(EXAMPLE_CONVERSATION)}},
    )

    @router.get(
        "/conversations",
        operation_id="list_conversations",
        response_model=ConversationList,
        responses=error_responses(401, 503),
    )
    async def list_conversations(claims: Claims, reads: Reads) -> dict[str, Any]:
        """The caller's conversations, newest activity first, with unread counts."""
        views = await reads.conversations(claims.user_id)
        return {"conversations": [view.to_wire() for view in views]}

    @router.get(
        "/conversations/{conversation_id}",
        operation_id="get_conversation",
        response_model=ConversationOut,
        responses=error_responses(401, 404, 422, 503),
    )
    async def get_conversation(
        conversation_id: Annotated[uuid.UUID, conversation_path], claims: Claims, reads: Reads
    ) -> dict[str, Any]:
        """One conversation; 404 `forbidden` alike for a missing one and someone else's."""
        return (await reads.conversation(claims.user_id, conversation_id)).to_wire()

    @router.get(
        "/conversations/{conversation_id}/messages",
        operation_id="list_messages",
        response_model=MessagePageOut,
        responses=error_responses(401, 404, 422, 503),
    )
    async def list_messages(
        conversation_id: Annotated[uuid.UUID, conversation_path],
        claims: Claims,
        reads: Reads,
        before_seq: Annotated[
            int | None, Query(ge=1, le=MAX_SEQ, description="page the messages before this seq")
        ] = None,
        after_seq: Annotated[
            int | None, Query(ge=0, le=MAX_SEQ, description="page the messages after this seq")
        ] = None,
        limit: Annotated[
            int | None,
            Query(
                ge=1,
                le=settings.history_max_limit,
                description=f"page size (default {settings.history_default_limit})",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """A page of history, ascending by seq.

        No cursor: the newest `limit`; `before_seq=N`: the `limit` just before N; `after_seq=N`:
        the `limit` just after N; both: the `limit` just after `after_seq` among those before
        `before_seq` (the window `after_seq < seq < before_seq`). `has_more` says whether more
        exist in the direction paged: older, or newer (within the window) with `after_seq`.
        Every seq is 0 to 2^63-1 (PostgreSQL's bigint); past that, 422 `validation_failed`.
        """
        size = (
            min(settings.history_default_limit, settings.history_max_limit)
            if limit is None
            else limit
        )
        page = await reads.history(
            claims.user_id, conversation_id, before_seq=before_seq, after_seq=after_seq, limit=size
        )
        return {"messages": [m.to_wire() for m in page.messages], "has_more": page.has_more}

    return router
