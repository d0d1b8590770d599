"""Pydantic models at the producer's edges: WebSocket frames and HTTP bodies
(docs/protocol.md, "5. Producer").

They check types and shapes only; the rules (body length, NUL, lone surrogates, member counts)
live in the domain so that HTTP and WebSocket share them. The HTTP bodies' JSON Schemas also
state those rules (`minLength`, `pattern`, ...: what the OpenAPI document promises is what the
service accepts; `test_openapi_contract.py` holds it to that). WebSocket frames ignore unknown
fields, so clients may send additive extensions; HTTP bodies derive from `RequestBody` and refuse
them (422 `validation_failed` naming the field).

WebSocket frames in: `SendFrame`, `TypingFrame`, `ReadFrame`, `AuthFrame`, `PingFrame`; out:
`AckOut` (`Ack.to_wire()`), `ErrorFrame` (`error_frame`), `ReadOkFrame` (`read_ok`), `AuthOkFrame`,
`PongFrame`. The AsyncAPI
document (`entrypoints/asyncapi.py`) is generated from these models, and a unit test checks what
the builders emit against them.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from pydantic.json_schema import SkipJsonSchema

from rtm.producer.domain.model import SendMessage
from rtm.shared.errors import RtmError
from rtm.shared.frames import (
    AuthFrame,
    AuthOkFrame,
    ErrorFrame,
    PingFrame,
    PongFrame,
    absent_unless_set,
)
from rtm.shared.http import RequestBody

__all__ = [
    "AckOut",
    "AddMemberBody",
    "AuthFrame",
    "AuthOkFrame",
    "ConversationOut",
    "CreateConversationBody",
    "ErrorFrame",
    "PingFrame",
    "PongFrame",
    "ReadFrame",
    "ReadOkFrame",
    "SendFrame",
    "SendMessageBody",
    "TypingFrame",
    "error_frame",
    "read_ok",
]

_EXAMPLE_USER = "0195f3a0-7c1e-7b1a-9d0e-3a5b7c9d1e2f"
_EXAMPLE_PEER = "0195f3a0-7c1e-7b1a-9d0e-3a5b7c9d1e30"
_EXAMPLE_CONVERSATION = "0195f3a1-0a2b-7c3d-8e4f-5a6b7c8d9e0f"
_EXAMPLE_CLIENT_MSG = "5b0e8c2a-1f3d-4e5a-9b7c-2d4f6a8c0e1b"

# The domain's text rules, for the HTTP bodies' JSON Schemas (their defaults; the domain checks
# the configured values): no NUL, and a body that is not blank.
_NO_NUL = r"^[^\u0000]*$"
_NOT_BLANK_NO_NUL = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
# A group has at most 1000 members (RTM_MAX_GROUP_MEMBERS), you included.
MAX_MEMBER_IDS = 999


_WAIT = (
    'optional: `"stored"` acks only once the consumer has stored the message in PostgreSQL, '
    "with its `seq` (history holds it then); `not_stored_yet` if that takes longer than the "
    "producer's `RTM_STORED_WAIT_S` (the message is not lost: resend the same `client_msg_id`). "
    "Without it, the ack comes once JetStream has the message, without `seq`."
)


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SendFrame(_Frame):
    """Send a message. Acked once JetStream has stored it; resending the same `client_msg_id`
    never creates a second message (the ack says `duplicate: true`, with the original id)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "send",
                    "client_msg_id": _EXAMPLE_CLIENT_MSG,
                    "conversation_id": _EXAMPLE_CONVERSATION,
                    "body": "Hello!",
                }
            ]
        }
    )

    type: Literal["send"]
    client_msg_id: uuid.UUID = Field(description="the client's idempotency key for this send")
    conversation_id: uuid.UUID
    body: StrictStr = Field(description="1 to 4096 characters after trimming; no NUL")
    wait: Literal["stored", None] = Field(None, description=_WAIT)


class TypingFrame(_Frame):
    """The sender is typing: ephemeral, not stored, forwarded to the conversation's members."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"type": "typing", "conversation_id": _EXAMPLE_CONVERSATION}]
        }
    )

    type: Literal["typing"]
    conversation_id: uuid.UUID


class ReadFrame(_Frame):
    """The sender has read the conversation up to `seq` (stored; a marker never moves back)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"type": "read", "conversation_id": _EXAMPLE_CONVERSATION, "seq": 42}]
        }
    )

    type: Literal["read"]
    conversation_id: uuid.UUID
    seq: StrictInt = Field(description="a message seq, 0 to 2^63-1")


class ReadOkFrame(BaseModel):
    """A `read` frame is accepted: the caller is a member, the seq is valid, and the marker is
    handed to the consumer, which stores it (the highest one wins) and forwards it to the
    members. For an answer that says what is stored, use the consumer's
    `POST /v1/conversations/{id}/read`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"type": "read_ok", "conversation_id": _EXAMPLE_CONVERSATION, "seq": 42}]
        }
    )

    type: Literal["read_ok"]
    conversation_id: uuid.UUID = Field(description="as in the `read` frame it answers")
    seq: StrictInt = Field(description="as in the `read` frame it answers")


def read_ok(conversation_id: uuid.UUID, seq: int) -> dict[str, object]:
    """The `read_ok` frame (`ReadOkFrame`) answering a `read` of `seq` in `conversation_id`."""
    return {"type": "read_ok", "conversation_id": str(conversation_id), "seq": seq}


def error_frame(error: RtmError, ref: str | None) -> dict[str, object]:
    """The `error` frame (`ErrorFrame`) for `error`; `ref` is the send's `client_msg_id`."""
    body = error.to_wire()
    return {"type": "error", "code": body.pop("code"), "ref": ref, **body}


class SendMessageBody(RequestBody):
    """A message to send; resending the same `client_msg_id` is acked with `duplicate: true`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "client_msg_id": _EXAMPLE_CLIENT_MSG,
                    "conversation_id": _EXAMPLE_CONVERSATION,
                    "body": "Hello!",
                }
            ]
        },
    )

    client_msg_id: uuid.UUID = Field(description="the client's idempotency key for this send")
    conversation_id: uuid.UUID
    body: StrictStr = Field(
        description="1 to 4096 characters after trimming; no NUL",
        json_schema_extra={"minLength": 1, "maxLength": 4096, "pattern": _NOT_BLANK_NO_NUL},
    )
    wait: Literal["stored", None] = Field(None, description=_WAIT)


def send_command(sender_id: uuid.UUID, send: SendFrame | SendMessageBody) -> SendMessage:
    """The command a `send` frame (WebSocket) or a `POST /v1/messages` body asks for: both
    carry the same fields, and mean the same."""
    return SendMessage(
        sender_id,
        send.client_msg_id,
        send.conversation_id,
        send.body,
        wait_stored=send.wait == "stored",
    )


class AckOut(BaseModel):
    """The ack of a send, sent once JetStream has stored it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "ack",
                    "client_msg_id": _EXAMPLE_CLIENT_MSG,
                    "message_id": "0195f3a2-5d6e-7f80-9a1b-2c3d4e5f6a7b",
                    "stream_seq": 42,
                    "duplicate": False,
                    "accepted_at": "2026-11-24T01:34:49.123Z",
                }
            ]
        }
    )

    type: Literal["ack"]
    client_msg_id: uuid.UUID
    message_id: uuid.UUID
    stream_seq: int
    duplicate: bool
    accepted_at: str
    seq: int | SkipJsonSchema[None] = absent_unless_set(
        'the message\'s seq in its conversation: only in the ack of a `"wait":"stored"` send, '
        "sent once history holds the message"
    )


class CreateConversationBody(RequestBody):
    """A new conversation; you are always a member. A direct one has exactly one other member.
    Every member must be a user auth knows (404 `not_found` names the others)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"kind": "direct", "member_ids": [_EXAMPLE_PEER]},
                {"kind": "group", "member_ids": [_EXAMPLE_PEER], "title": "Weekend plans"},
            ],
            # The direct rule in the schema too (the domain checks it: `plan_members`).
            "if": {"properties": {"kind": {"const": "direct"}}},
            "then": {"properties": {"member_ids": {"minItems": 1, "maxItems": 1}}},
        },
    )

    kind: Literal["direct", "group"]
    member_ids: list[uuid.UUID] = Field(
        max_length=MAX_MEMBER_IDS,
        description="the other members (direct: exactly one); you may be listed too",
    )
    title: StrictStr | None = Field(
        None,
        description="at most 200 characters after trimming; no NUL",
        json_schema_extra={"maxLength": 200, "pattern": _NO_NUL},
    )


class ConversationOut(BaseModel):
    """A conversation (docs/protocol.md, "4. Conversations")."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": _EXAMPLE_CONVERSATION,
                    "kind": "group",
                    "title": "Weekend plans",
                    "members": [_EXAMPLE_USER, _EXAMPLE_PEER],
                    "created_at": "2026-11-24T01:34:49.123Z",
                    "last_seq": 0,
                }
            ]
        }
    )

    id: uuid.UUID
    kind: Literal["direct", "group"]
    title: str | None
    members: list[uuid.UUID]
    created_at: str
    last_seq: int


class AddMemberBody(RequestBody):
    """The user to add to a group: a user auth knows (404 `not_found` otherwise)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"user_id": _EXAMPLE_PEER}]})

    user_id: uuid.UUID
