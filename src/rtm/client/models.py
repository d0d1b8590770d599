"""What crosses the wire, as frozen dataclasses built from the JSON the services send.

Each `from_json` reads the fields docs/protocol.md names and ignores any others, so a newer
server that adds a field does not break an older SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Json = Mapping[str, Any]


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class User:
    """An account: `{id, username, display_name, created_at}`."""

    id: str
    username: str
    display_name: str | None
    created_at: str

    @classmethod
    def from_json(cls, data: Json) -> User:
        return cls(
            id=str(data["id"]),
            username=str(data["username"]),
            display_name=data.get("display_name"),
            created_at=str(data.get("created_at", "")),
        )


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message; `seq` is its dense position in its conversation (from 1)."""

    message_id: str
    conversation_id: str
    seq: int
    sender_id: str
    body: str
    client_msg_id: str | None
    sent_at: str

    @classmethod
    def from_json(cls, data: Json) -> Message:
        return cls(
            message_id=str(data["message_id"]),
            conversation_id=str(data["conversation_id"]),
            seq=int(data["seq"]),
            sender_id=str(data["sender_id"]),
            body=str(data["body"]),
            client_msg_id=data.get("client_msg_id"),
            sent_at=str(data.get("sent_at", "")),
        )


@dataclass(frozen=True, slots=True)
class Ack:
    """The producer's ack of a send. The SDK sends with `"wait":"stored"`, so the message is in
    PostgreSQL (history holds it) and `seq` is its position; `duplicate` says the id had been
    sent before (a resend after a reconnect), `message_id` is then the original's."""

    client_msg_id: str
    message_id: str
    stream_seq: int
    duplicate: bool
    accepted_at: str
    seq: int | None

    @classmethod
    def from_json(cls, data: Json) -> Ack:
        return cls(
            client_msg_id=str(data["client_msg_id"]),
            message_id=str(data["message_id"]),
            stream_seq=int(data.get("stream_seq", 0)),
            duplicate=bool(data.get("duplicate", False)),
            accepted_at=str(data.get("accepted_at", "")),
            seq=_opt_int(data.get("seq")),
        )


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation. The list (`Client.conversations`) also fills `read_seq`,
    `unread_count` and `last_message`; the producer's answers leave them `None`."""

    id: str
    kind: str
    title: str | None
    members: tuple[str, ...]
    created_at: str
    last_seq: int
    read_seq: int | None = None
    unread_count: int | None = None
    last_message: Message | None = None

    @classmethod
    def from_json(cls, data: Json) -> Conversation:
        last = data.get("last_message")
        return cls(
            id=str(data["id"]),
            kind=str(data.get("kind", "")),
            title=data.get("title"),
            members=tuple(str(m) for m in data.get("members", ())),
            created_at=str(data.get("created_at", "")),
            last_seq=int(data.get("last_seq", 0)),
            read_seq=_opt_int(data.get("read_seq")),
            unread_count=_opt_int(data.get("unread_count")),
            last_message=Message.from_json(last) if isinstance(last, Mapping) else None,
        )


@dataclass(frozen=True, slots=True)
class MessagePage:
    """One page of history, ascending by `seq`; `has_more`: more beyond it, in the direction
    paged (older for `before_seq` or no cursor, newer for `after_seq`)."""

    messages: tuple[Message, ...]
    has_more: bool

    @classmethod
    def from_json(cls, data: Json) -> MessagePage:
        return cls(
            messages=tuple(Message.from_json(m) for m in data.get("messages", ())),
            has_more=bool(data.get("has_more", False)),
        )


@dataclass(frozen=True, slots=True)
class ReadState:
    """What `POST /v1/conversations/{id}/read` stored: the marker never moves backwards."""

    conversation_id: str
    read_seq: int
    last_seq: int
    unread_count: int

    @classmethod
    def from_json(cls, data: Json) -> ReadState:
        return cls(
            conversation_id=str(data["conversation_id"]),
            read_seq=int(data["read_seq"]),
            last_seq=int(data["last_seq"]),
            unread_count=int(data["unread_count"]),
        )


@dataclass(frozen=True, slots=True)
class Tokens:
    """What the application keeps to sign in again later. A refresh token works once: store the
    one of every `TokensEvent` (presenting a spent one revokes the session)."""

    access_token: str
    refresh_token: str | None
    #: Access-token expiry, seconds since the epoch.
    expires_at: float
