"""The frames of the consumer's WebSocket `/v1/ws` (docs/protocol.md, "6. Consumer"): a pydantic
model for each.

Inbound (`AuthFrame`, `PingFrame`, `ResumeFrame`), the models validate what clients send.
Outbound, they describe what the consumer sends, and the functions below build those frames
(as plain dicts, encoded with orjson where they are sent; a `message` frame comes from
`rtm.consumer.domain.delivery.message_frame`, `auth_ok` from `rtm.shared.ws.auth_ok`). The AsyncAPI
document (`entrypoints/asyncapi.py`) is generated from the models, and a unit test checks what
each builder emits against its model, so neither can drift from the wire.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from rtm.shared.clock import format_time
from rtm.shared.contract import MAX_SEQ
from rtm.shared.errors import ErrorCode, RtmError
from rtm.shared.frames import (
    AuthFrame,
    AuthOkFrame,
    ErrorFrame,
    FrameModel,
    PingFrame,
    PongFrame,
    absent_unless_set,
    parse_frame,
    validate_frame,
)

__all__ = [
    "AuthFrame",
    "AuthOkFrame",
    "ConversationFrame",
    "ConversationState",
    "ErrorFrame",
    "MessageFrame",
    "PingFrame",
    "PongFrame",
    "PresenceFrame",
    "ReadFrame",
    "ReadyFrame",
    "ResumeFrame",
    "ResumedConversation",
    "ResumedFrame",
    "TypingFrame",
    "conversation_frame",
    "decode_frame",
    "error_frame",
    "presence_frame",
    "read_frame",
    "ready_frame",
    "resumed_entry",
    "resumed_frame",
    "typing_frame",
]

_USER = "0195f3a0-7c1e-7b1a-9d0e-3a5b7c9d1e2f"
_PEER = "0195f3a0-7c1e-7b1a-9d0e-3a5b7c9d1e30"
_CONVERSATION = "0195f3a1-0a2b-7c3d-8e4f-5a6b7c8d9e0f"
_TIME = "2026-11-24T01:34:49.123Z"


def _examples(*examples: JsonDict) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


# -- inbound ---------------------------------------------------------------------------------


class ResumeFrame(FrameModel):
    """Catch up after a reconnect: every message after each cursor, in seq order, then `resumed`;
    live delivery continues with no gap and no duplicate at the seam."""

    model_config = _examples({"type": "resume", "cursors": {_CONVERSATION: 41}})

    type: Literal["resume"]
    cursors: dict[uuid.UUID, Annotated[StrictInt, Field(ge=0, le=MAX_SEQ)]] = Field(
        description="conversation id -> the last seq the client has seen (0: from the start), "
        "0 to 2^63-1; at most `max_resume_conversations` (1000) conversations per frame"
    )


INBOUND: Mapping[str, type[FrameModel]] = {
    "auth": AuthFrame,
    "ping": PingFrame,
    "resume": ResumeFrame,
}


def decode_frame(text: str, *, max_resume_conversations: int) -> tuple[str, FrameModel]:
    """One inbound text frame, parsed strictly and validated: its type and its `AuthFrame`,
    `PingFrame` or `ResumeFrame`; anything else raises `RtmError` with the protocol's code and, for
    `validation_failed`, the field. Free of I/O, so a property test fuzzes it: whatever the
    text, this returns a valid frame or raises `RtmError`, nothing else.

    A `resume` naming more than `max_resume_conversations` is refused before its cursors are
    validated one by one (that is the work the cap bounds). A key that is not a conversation id
    is reported as `cursors`, never echoed back: it may be anything (NUL, a lone surrogate).
    """
    kind, obj = parse_frame(text, INBOUND)
    if kind == "resume":
        cursors = obj.get("cursors")
        if isinstance(cursors, dict) and len(cursors) > max_resume_conversations:
            raise RtmError(
                ErrorCode.VALIDATION_FAILED,
                f"cursors: a resume names at most {max_resume_conversations} conversations",
                field="cursors",
            )
    try:
        return kind, validate_frame(INBOUND[kind], obj)
    except RtmError as error:
        if kind == "resume" and (error.field or "").endswith(".[key]"):
            raise RtmError(
                ErrorCode.VALIDATION_FAILED,
                "cursors: every key must be a conversation id (a UUID)",
                field="cursors",
            ) from error
        raise


# -- the connection's query string (issue 14) -------------------------------------------------

_MAX_SEQ_DIGITS = len(str(MAX_SEQ))


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """What the client said with its connection (`GET /v1/ws?...`).

    `cursors` (`?cursors=<id>:<seq>,...`): resume these at once, as a first `resume` frame would
    (an empty value: nothing to resume). `hold` (`?resume=1`): the client will send a `resume`
    frame; hold live messages until it is handled (at most the grace period). Neither: live
    messages at once, no hold. `error`: the query was refused (answered with an error frame);
    the connection then holds, as for `?resume=1`, so that the client's `resume` still finds
    nothing sent past its cursors.
    """

    hold: bool = False
    cursors: ResumeFrame | None = None
    error: RtmError | None = None


# Shared by the connections that say nothing, or only `?resume=1` (most of them): immutable.
NO_OPTIONS = ConnectOptions()
HOLD = ConnectOptions(hold=True)


def connect_options(query: Mapping[str, str], *, max_resume_conversations: int) -> ConnectOptions:
    """Read `cursors` and `resume` from the upgrade request's query (other parameters are
    ignored). Pure: a bad value is `ConnectOptions.error`, with the field a `resume` frame's
    error would name (`cursors`, `cursors.<id>`) or `resume`."""
    try:
        resume = query.get("resume")
        if resume is not None and resume not in ("1", "true"):
            raise RtmError(ErrorCode.VALIDATION_FAILED, "resume: only 1 (or true)", field="resume")
        cursors = query.get("cursors")
        if cursors is None:
            return HOLD if resume is not None else NO_OPTIONS
        return ConnectOptions(
            cursors=_query_cursors(cursors, max_resume_conversations=max_resume_conversations)
        )
    except RtmError as error:
        return ConnectOptions(hold=True, error=error)


def _query_cursors(text: str, *, max_resume_conversations: int) -> ResumeFrame:
    """`<id>:<seq>,<id>:<seq>` as the `resume` frame it stands for (validated as one)."""
    pairs: dict[str, object] = {}
    items = [item for item in text.split(",") if item]
    if len(items) > max_resume_conversations:
        raise RtmError(
            ErrorCode.VALIDATION_FAILED,
            f"cursors: at most {max_resume_conversations} conversations",
            field="cursors",
        )
    for item in items:
        key, colon, seq = item.partition(":")
        if not colon or key in pairs:
            raise RtmError(
                ErrorCode.VALIDATION_FAILED,
                "cursors: <conversation id>:<seq>, each conversation once, comma-separated",
                field="cursors",
            )
        digits = seq.isascii() and seq.isdigit() and len(seq) <= _MAX_SEQ_DIGITS
        pairs[key] = int(seq) if digits else seq
    text_frame = orjson.dumps({"type": "resume", "cursors": pairs}).decode()
    _, frame = decode_frame(text_frame, max_resume_conversations=max_resume_conversations)
    assert isinstance(frame, ResumeFrame)
    return frame


# -- outbound --------------------------------------------------------------------------------


class ReadyFrame(BaseModel):
    """Authenticated: live events for every conversation of the user follow."""

    model_config = _examples({"type": "ready", "user_id": _USER, "server_time": _TIME})

    type: Literal["ready"]
    user_id: uuid.UUID
    server_time: StrictStr = Field(description="RFC 3339 UTC with milliseconds")


class MessageFrame(BaseModel):
    """A stored message (docs/protocol.md, "4. Conversations"). Per conversation, on one connection,
    `seq` strictly increases with no gap."""

    model_config = _examples(
        {
            "type": "message",
            "message_id": "0195f3a2-5d6e-7f80-9a1b-2c3d4e5f6a7b",
            "conversation_id": _CONVERSATION,
            "seq": 42,
            "sender_id": _PEER,
            "body": "Hello!",
            "client_msg_id": "5b0e8c2a-1f3d-4e5a-9b7c-2d4f6a8c0e1b",
            "sent_at": _TIME,
        }
    )

    type: Literal["message"]
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    seq: StrictInt = Field(ge=1, description="position in the conversation, dense from 1")
    sender_id: uuid.UUID
    body: StrictStr
    client_msg_id: uuid.UUID
    sent_at: StrictStr = Field(description="when the producer accepted it (RFC 3339 UTC)")


class ResumedConversation(BaseModel):
    """How a `resume` went for one conversation."""

    last_seq: StrictInt = Field(description="the last seq sent (or the cursor, if none was)")
    recovered: StrictBool = Field(
        description="false: more than `max_recovery` were missing and none were sent (page the "
        "history over HTTP), or the conversation is not visible (`error`)"
    )
    error: Literal["forbidden"] | SkipJsonSchema[None] = absent_unless_set(
        "`forbidden`: not a member, or no such conversation"
    )


class ResumedFrame(BaseModel):
    """Sent after the messages a `resume` asked for."""

    model_config = _examples(
        {"type": "resumed", "conversations": {_CONVERSATION: {"last_seq": 42, "recovered": True}}}
    )

    type: Literal["resumed"]
    conversations: dict[uuid.UUID, ResumedConversation]


class TypingFrame(BaseModel):
    """Another member is typing in a conversation (ephemeral)."""

    model_config = _examples({"type": "typing", "conversation_id": _CONVERSATION, "user_id": _PEER})

    type: Literal["typing"]
    conversation_id: uuid.UUID
    user_id: uuid.UUID


class ReadFrame(BaseModel):
    """A member's read marker moved (yours too, from your other devices)."""

    model_config = _examples(
        {"type": "read", "conversation_id": _CONVERSATION, "user_id": _PEER, "seq": 42}
    )

    type: Literal["read"]
    conversation_id: uuid.UUID
    user_id: uuid.UUID
    seq: StrictInt = Field(ge=0)


class PresenceFrame(BaseModel):
    """A user who shares a conversation with you came online or went offline."""

    model_config = _examples({"type": "presence", "user_id": _PEER, "status": "online"})

    type: Literal["presence"]
    user_id: uuid.UUID
    status: Literal["online", "offline"]


class ConversationState(BaseModel):
    """A conversation (docs/protocol.md, "4. Conversations") as it is after the change."""

    id: uuid.UUID
    kind: Literal["direct", "group"]
    title: StrictStr | None
    members: list[uuid.UUID]
    created_at: StrictStr = Field(description="RFC 3339 UTC with milliseconds")
    last_seq: StrictInt = Field(ge=0)


class ConversationFrame(BaseModel):
    """A conversation you are (or were, for `member_removed` of yourself) a member of changed."""

    model_config = _examples(
        {
            "type": "conversation",
            "event": "member_added",
            "conversation": {
                "id": _CONVERSATION,
                "kind": "group",
                "title": "Weekend plans",
                "members": [_USER, _PEER],
                "created_at": _TIME,
                "last_seq": 42,
            },
        }
    )

    type: Literal["conversation"]
    event: Literal["created", "member_added", "member_removed"]
    conversation: ConversationState


# -- builders of the outbound frames ---------------------------------------------------------


def ready_frame(user_id: uuid.UUID, server_time: datetime) -> dict[str, object]:
    """`ReadyFrame`."""
    return {"type": "ready", "user_id": str(user_id), "server_time": format_time(server_time)}


def resumed_entry(
    last_seq: int, recovered: bool, *, error: ErrorCode | None = None
) -> dict[str, object]:
    """One conversation's `ResumedConversation`."""
    entry: dict[str, object] = {"last_seq": last_seq, "recovered": recovered}
    if error is not None:
        entry["error"] = error.value
    return entry


def resumed_frame(conversations: dict[str, dict[str, object]]) -> dict[str, object]:
    """`ResumedFrame`, from `resumed_entry`s by conversation id."""
    return {"type": "resumed", "conversations": conversations}


def typing_frame(conversation_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, object]:
    """`TypingFrame`."""
    return {"type": "typing", "conversation_id": str(conversation_id), "user_id": str(user_id)}


def read_frame(conversation_id: uuid.UUID, user_id: uuid.UUID, seq: int) -> dict[str, object]:
    """`ReadFrame`."""
    return {
        "type": "read",
        "conversation_id": str(conversation_id),
        "user_id": str(user_id),
        "seq": seq,
    }


def presence_frame(user_id: uuid.UUID, status: str) -> dict[str, object]:
    """`PresenceFrame`; `status` is `online` or `offline`."""
    return {"type": "presence", "user_id": str(user_id), "status": status}


def conversation_frame(event: str, conversation: dict[str, object]) -> dict[str, object]:
    """`ConversationFrame`; `conversation` is `ConversationSnapshot.to_wire()`."""
    return {"type": "conversation", "event": event, "conversation": conversation}


_MAX_ERROR_TEXT = 200


def _wire_text(text: str) -> str:
    """At most `_MAX_ERROR_TEXT` characters of valid UTF-8: an error's message or field can
    quote what the client sent (a lone surrogate would make the frame unencodable)."""
    return text[:_MAX_ERROR_TEXT].encode("utf-8", "backslashreplace").decode("utf-8")


def error_frame(error: RtmError, ref: str | None = None) -> str:
    """`ErrorFrame`, encoded."""
    body = error.to_wire()
    for key in ("message", "field"):
        value = body.get(key)
        if isinstance(value, str):
            body[key] = _wire_text(value)
    return orjson.dumps({"type": "error", "ref": ref, **body}).decode()
