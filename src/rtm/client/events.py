"""The events `Client.events()` yields, one dataclass each; `Event` is their union.

`MessageEvent` comes exactly once per message and in `seq` order within its conversation
while the client runs; the others are passed on as the consumer sends them, plus the SDK's own
(`ConnectionStateEvent`, `AckEvent`, `TokensEvent`, `ErrorEvent`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from rtm.client.errors import RtmError
from rtm.client.models import Ack, Conversation, Json, Message, Tokens

SocketName = Literal["producer", "consumer"]


class ConnectionState(enum.StrEnum):
    """A socket's state. `FAILED`: a close code after which reconnecting is useless
    (docs/protocol.md, "8. WebSocket close codes"), or the session has ended."""

    IDLE = "idle"
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A stored message, delivered once, in `seq` order per conversation."""

    message: Message


@dataclass(frozen=True, slots=True)
class TypingEvent:
    conversation_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class ReadEvent:
    """A member moved their read marker to `seq`."""

    conversation_id: str
    user_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    user_id: str
    status: str


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    """`event` is `created`, `member_added` or `member_removed`."""

    event: str
    conversation: Conversation


@dataclass(frozen=True, slots=True)
class ConnectionStateEvent:
    """One of the two sockets changed state; `code`/`reason` of the close that caused it."""

    socket: SocketName
    state: ConnectionState
    code: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AckEvent:
    """A send was acked: also for sends restored from a persisted outbox, which nobody awaits."""

    ack: Ack
    conversation_id: str
    body: str


@dataclass(frozen=True, slots=True)
class TokensEvent:
    """New tokens after sign-in or a refresh: store the refresh token, the old one is spent."""

    tokens: Tokens


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """An error frame not about a send, or the end of the session."""

    error: RtmError


Event = (
    MessageEvent
    | TypingEvent
    | ReadEvent
    | PresenceEvent
    | ConversationEvent
    | ConnectionStateEvent
    | AckEvent
    | TokensEvent
    | ErrorEvent
)


def consumer_event(frame: Json) -> TypingEvent | ReadEvent | PresenceEvent | None:
    """The application event of a consumer frame that passes straight through, if it is one."""
    kind = frame.get("type")
    if kind == "typing":
        return TypingEvent(str(frame["conversation_id"]), str(frame["user_id"]))
    if kind == "read":
        return ReadEvent(str(frame["conversation_id"]), str(frame["user_id"]), int(frame["seq"]))
    if kind == "presence":
        return PresenceEvent(str(frame["user_id"]), str(frame["status"]))
    return None
