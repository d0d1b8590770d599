"""The producer's HTTP API (docs/protocol.md, "5. Producer"): sending a message, creating
conversations and changing membership. Errors are `RtmError`s, rendered by the shared error
envelope."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from rtm.producer.domain.exceptions import RateLimited
from rtm.producer.domain.model import ConversationKind, CreateConversation
from rtm.producer.entrypoints.deps import Context, CurrentUser, get_context
from rtm.producer.entrypoints.metrics import (
    ACK_LATENCY,
    ERRORS,
    MESSAGES_PUBLISHED,
    RATE_LIMITED,
    SENDS,
)
from rtm.producer.entrypoints.schemas import (
    AckOut,
    AddMemberBody,
    ConversationOut,
    CreateConversationBody,
    SendMessageBody,
    send_command,
)
from rtm.shared.errors import ErrorCode, RtmError
from rtm.shared.http import check_json_body, error_responses
from rtm.shared.limits import KeyedBuckets


class StrictJsonRoute(APIRoute):
    """A route whose JSON body passes `check_json_body` first, and whose errors are counted."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            try:
                if request.method in ("POST", "PUT", "PATCH"):
                    await check_json_body(request, get_context(request).settings.max_frame_bytes)
                return await handler(request)
            except RtmError as exc:
                ERRORS.labels("http", exc.code.value).inc()
                raise
            except RequestValidationError:  # the shared handler answers it (mostly 422)
                ERRORS.labels("http", ErrorCode.VALIDATION_FAILED.value).inc()
                raise

        return strict


router = APIRouter(prefix="/v1", route_class=StrictJsonRoute)


def _throttle(buckets: KeyedBuckets[uuid.UUID], user_id: uuid.UUID) -> None:
    """429 `rate_limited` (with `Retry-After`) when `user_id` has no token left in `buckets`."""
    retry_after_ms = buckets.take(user_id)
    if retry_after_ms is not None:
        RATE_LIMITED.labels("http").inc()
        raise RateLimited(retry_after_ms)


def _json(body: object, status_code: int) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


@router.post(
    "/messages",
    operation_id="send_message",
    tags=["messages"],
    status_code=202,
    response_model=AckOut,
    responses=error_responses(400, 401, 404, 422, 429, 503),
)
async def send_message(body: SendMessageBody, user: CurrentUser, context: Context) -> Response:
    """Send a message; answered once JetStream has stored it.

    Resending the same `client_msg_id` never creates a second message: the answer is the
    original ack with `duplicate: true`, whatever the body. `404 forbidden` for a conversation
    you are not a member of and for one that does not exist alike. `503 unavailable`: retry with
    the same `client_msg_id`. `400`: a body that is not a JSON object; `422`: a field that is
    missing, wrong or unknown.

    With `"wait": "stored"` the answer comes once the consumer has stored the message in
    PostgreSQL, and carries its `seq` (history holds it already). `503 not_stored_yet` if that
    is not seen within `RTM_STORED_WAIT_S`: the message is accepted and not lost; resend the
    same `client_msg_id` (with `"wait": "stored"`) to get its ack, `duplicate: true`, with `seq`.
    """
    received = time.monotonic()
    _throttle(context.http_sends, user.user_id)
    try:
        ack = await context.messages.send(send_command(user.user_id, body))
    except RtmError as exc:
        SENDS.labels("http", exc.code.value).inc()
        raise
    SENDS.labels("http", "duplicate" if ack.duplicate else "accepted").inc()
    if not ack.duplicate:
        MESSAGES_PUBLISHED.labels("http").inc()
    response = _json(ack.to_wire(), 202)
    ACK_LATENCY.labels("http").observe(time.monotonic() - received)
    return response


@router.post(
    "/conversations",
    operation_id="create_conversation",
    tags=["conversations"],
    status_code=201,
    response_model=ConversationOut,
    responses={
        200: {
            "description": "the existing direct conversation of this pair",
            "model": ConversationOut,
        },
        **error_responses(400, 401, 404, 422, 429, 503),
    },
)
async def create_conversation(
    body: CreateConversationBody, user: CurrentUser, context: Context
) -> Response:
    """Create a direct or group conversation; you are always a member.

    A direct conversation has exactly two members and is unique per pair: asking for it again
    answers 200 with the existing one. It is usable at once: sending to it succeeds immediately.
    `404 not_found` names the member ids that are no users (never registered, or deleted);
    nothing is created. `429 rate_limited`: conversation commands (this and adding members)
    are limited per user (`RTM_CONVERSATION_BURST`, then `RTM_CONVERSATION_RATE_PER_SECOND`).
    `400`: a body that is not a JSON object; `422`: a field that is missing, wrong or unknown.
    """
    _throttle(context.conversation_commands, user.user_id)
    command = CreateConversation(
        creator_id=user.user_id,
        kind=ConversationKind(body.kind),
        member_ids=tuple(body.member_ids),
        title=body.title,
    )
    outcome = await context.conversations.create(command)
    return _json(outcome.conversation.to_wire(), 201 if outcome.created else 200)


@router.post(
    "/conversations/{conversation_id}/members",
    operation_id="add_conversation_member",
    tags=["conversations"],
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 401, 404, 422, 429, 503),
)
async def add_member(
    conversation_id: uuid.UUID, body: AddMemberBody, user: CurrentUser, context: Context
) -> Response:
    """Add a member to a group you belong to (adding a member again changes nothing).

    `404 forbidden`: no such conversation, you are not a member, or it is a direct one.
    `404 not_found`: `user_id` is no user (never registered, or deleted). `429 rate_limited`:
    counted with creating conversations.
    """
    _throttle(context.conversation_commands, user.user_id)
    await context.conversations.add_member(user.user_id, conversation_id, body.user_id)
    return Response(status_code=204)


@router.delete(
    "/conversations/{conversation_id}/members/{user_id}",
    operation_id="remove_conversation_member",
    tags=["conversations"],
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 404, 422, 503),
)
async def remove_member(
    conversation_id: uuid.UUID, user_id: uuid.UUID, user: CurrentUser, context: Context
) -> Response:
    """Leave a conversation (your own user id), or remove another member from a group."""
    await context.conversations.remove_member(user.user_id, conversation_id, user_id)
    return Response(status_code=204)
