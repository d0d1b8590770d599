"""The consumer's HTTP API: conversations as a member sees them, and message history.

`POST /v1/conversations/{id}/read` (issue 14) stores a read marker, as the producer's `read`
frame does, and answers what is stored.

Every status an operation can answer is in its document (schemathesis checks it:
tests/integration/consumer/test_openapi_contract.py): 401 without a valid bearer token, 404
`forbidden` for a conversation that is not the caller's, 422 `validation_failed` for a
parameter out of its documented range, 503 `unavailable` while PostgreSQL cannot answer.
"""

# No `from __future__ import annotations`: the routes are made in `create_router`, and FastAPI
# must see their annotations evaluated (they name the settings' limits, which are local).

import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.routing import APIRoute
from nats.errors import Error as NatsError
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from rtm.consumer.entrypoints.deps import Claims, Context, Reads, get_context
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.contract import MAX_SEQ
from rtm.shared.http import RequestBody, check_json_body, error_responses

logger = logging.getLogger(__name__)

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


class MarkReadBody(RequestBody):
    """Mark the conversation read up to `seq` (issue 14)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"seq": 42}]})

    seq: StrictInt = Field(
        ge=0,
        description="the last seq read, an integer from 0; past the conversation's `last_seq` "
        "it marks everything stored read (the marker is stored as `last_seq`)",
    )

    @field_validator("seq", mode="before")
    @classmethod
    def _integral(cls, value: object) -> object:
        """JSON Schema's `integer` includes `5.0`; a string or a boolean is still refused."""
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


class ReadMarkOut(BaseModel):
    conversation_id: uuid.UUID
    read_seq: int = Field(description="the stored marker: the highest seq ever marked read")
    last_seq: int
    unread_count: int


class StrictJsonRoute(APIRoute):
    """A route whose JSON body is parsed strictly first (duplicate keys, NaN/Infinity and
    nesting bombs refused), as on the producer's routes and every WebSocket frame."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            if request.method == "POST":
                await check_json_body(request, get_context(request).settings.max_frame_bytes)
            return await handler(request)

        return strict


def create_router(settings: ConsumerSettings) -> APIRouter:
    """The routes, with this deployment's history limits in their validation and document."""
    router = APIRouter(prefix="/v1", tags=["conversations"], route_class=StrictJsonRoute)
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

    @router.post(
        "/conversations/{conversation_id}/read",
        operation_id="mark_read",
        response_model=ReadMarkOut,
        responses=error_responses(400, 401, 404, 422, 503),
    )
    async def mark_read(
        conversation_id: Annotated[uuid.UUID, conversation_path],
        body: MarkReadBody,
        claims: Claims,
        reads: Reads,
        context: Context,
    ) -> dict[str, Any]:
        """Mark the conversation read up to `seq`: the same marker as the producer's `read`
        frame, but stored before the answer, which says what is stored.

        Idempotent and monotonic: a seq at or below the stored marker changes nothing (the
        answer repeats the stored one); a seq past `last_seq` marks everything stored read
        (messages not stored yet stay unread). The other members' (and your other) sockets get
        a `read` event with the stored marker. 404 `forbidden` for a conversation that is not
        yours; 422 `validation_failed` (`field` `seq`) for a seq that is not an integer from 0.
        """
        # Past the head is the head; past a bigint is past any head.
        mark = await reads.mark_read(claims.user_id, conversation_id, min(body.seq, MAX_SEQ))
        if context.events is not None:
            try:
                await context.events.announce_read(conversation_id, claims.user_id, mark.read_seq)
            except NatsError as exc:  # stored: only the live event is lost, as in an outage
                logger.warning("read marker stored but not announced: %s", exc)
        return mark.to_wire()

    return router
