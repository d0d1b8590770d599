"""The consumer's HTTP API: conversations as a member sees them, and message history."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from rtm.consumer.entrypoints.deps import Claims, Reads
from rtm.shared.errors import ErrorCode, RtmError
from rtm.shared.http import error_responses

router = APIRouter(prefix="/v1", tags=["conversations"])


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


@router.get(
    "/conversations",
    operation_id="list_conversations",
    response_model=ConversationList,
    responses=error_responses(401),
)
async def list_conversations(claims: Claims, reads: Reads) -> dict[str, Any]:
    """The caller's conversations, newest activity first, with unread counts."""
    views = await reads.conversations(claims.user_id)
    return {"conversations": [view.to_wire() for view in views]}


@router.get(
    "/conversations/{conversation_id}",
    operation_id="get_conversation",
    response_model=ConversationOut,
    responses=error_responses(401, 404),
)
async def get_conversation(
    conversation_id: uuid.UUID, claims: Claims, reads: Reads
) -> dict[str, Any]:
    """One conversation; 404 `forbidden` alike for a missing one and someone else's."""
    return (await reads.conversation(claims.user_id, conversation_id)).to_wire()


@router.get(
    "/conversations/{conversation_id}/messages",
    operation_id="list_messages",
    response_model=MessagePageOut,
    responses=error_responses(401, 404, 422),
)
async def list_messages(
    request: Request,
    conversation_id: uuid.UUID,
    claims: Claims,
    reads: Reads,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
    after_seq: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """A page of history, ascending by seq.

    No cursor: the newest `limit`; `before_seq=N`: the `limit` just before N; `after_seq=N`: the
    `limit` just after N. `has_more` says whether more exist in the direction paged.
    """
    settings = request.app.state.settings
    if before_seq is not None and after_seq is not None:
        raise RtmError(
            ErrorCode.VALIDATION_FAILED, "give before_seq or after_seq, not both", field="after_seq"
        )
    size = settings.history_default_limit if limit is None else limit
    if size > settings.history_max_limit:
        raise RtmError(
            ErrorCode.VALIDATION_FAILED,
            f"limit must be at most {settings.history_max_limit}",
            field="limit",
        )
    page = await reads.history(
        claims.user_id, conversation_id, before_seq=before_seq, after_seq=after_seq, limit=size
    )
    return {"messages": [m.to_wire() for m in page.messages], "has_more": page.has_more}
