"""The producer's domain objects: conversations, send commands, acks and membership changes.

Plain frozen dataclasses: no framework, no I/O. `AcceptedMessage` (what JetStream stores) comes
from the shared contract because the consumer decodes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from rtm.shared.clock import format_time


class ConversationKind(StrEnum):
    DIRECT = "direct"
    GROUP = "group"


class ChangeKind(StrEnum):
    """What happened to a conversation (the `event` of a conversation event)."""

    CREATED = "created"
    MEMBER_ADDED = "member_added"
    MEMBER_REMOVED = "member_removed"


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation as the producer writes it; `members` sorted, `last_seq` read-only here."""

    id: uuid.UUID
    kind: ConversationKind
    title: str | None
    members: tuple[uuid.UUID, ...]
    created_by: uuid.UUID
    created_at: datetime
    last_seq: int = 0

    def has_member(self, user_id: uuid.UUID) -> bool:
        return user_id in self.members

    def to_wire(self) -> dict[str, object]:
        """The conversation object of docs/protocol.md, "4. Conversations"."""
        return {
            "id": str(self.id),
            "kind": self.kind.value,
            "title": self.title,
            "members": [str(member) for member in self.members],
            "created_at": format_time(self.created_at),
            "last_seq": self.last_seq,
        }


@dataclass(frozen=True, slots=True)
class CreateConversation:
    """Command: `creator_id` asks for a conversation with `member_ids` (the creator is implied)."""

    creator_id: uuid.UUID
    kind: ConversationKind
    member_ids: tuple[uuid.UUID, ...]
    title: str | None


@dataclass(frozen=True, slots=True)
class CreateOutcome:
    """What `create` did: a new conversation, or the existing direct one (with members restored
    when one of the pair had left it)."""

    conversation: Conversation
    created: bool
    restored: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True, slots=True)
class ConversationChanged:
    """Event: a conversation was created or its membership changed; `user_ids` are the users whose
    membership changed (every member for `created`)."""

    change: ChangeKind
    conversation: Conversation
    user_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True, slots=True)
class SendMessage:
    """Command: `sender_id` sends `body` to a conversation, idempotent by `client_msg_id`."""

    sender_id: uuid.UUID
    client_msg_id: uuid.UUID
    conversation_id: uuid.UUID
    body: str
    wait_stored: bool = False  # `"wait":"stored"`: ack once PostgreSQL holds it, with its seq


@dataclass(frozen=True, slots=True)
class StoredSend:
    """An earlier send with the same (sender, client_msg_id), already stored in PostgreSQL."""

    message_id: uuid.UUID
    stream_seq: int
    accepted_at: datetime
    seq: int  # its place in its conversation


@dataclass(frozen=True, slots=True)
class SendCheck:
    """The conversation's members (None: no such conversation) and any stored copy of the
    send: one database round trip."""

    members: frozenset[uuid.UUID] | None
    stored: StoredSend | None

    def is_member(self, user_id: uuid.UUID) -> bool:
        return self.members is not None and user_id in self.members


@dataclass(frozen=True, slots=True)
class Receipt:
    """JetStream's PubAck: where the message is, and whether it was a duplicate `Nats-Msg-Id`."""

    stream_seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to a send, once JetStream has stored it (or had stored it before)."""

    client_msg_id: uuid.UUID
    message_id: uuid.UUID
    stream_seq: int
    duplicate: bool
    accepted_at: datetime
    seq: int | None = None  # known (and sent) only for a send that waited until stored

    def to_wire(self) -> dict[str, object]:
        """The ack frame of docs/protocol.md, "5. Producer", also the body of
        `POST /v1/messages`; `seq` only when known (a `"wait":"stored"` send), so a default ack
        is as it always was."""
        wire: dict[str, object] = {
            "type": "ack",
            "client_msg_id": str(self.client_msg_id),
            "message_id": str(self.message_id),
            "stream_seq": self.stream_seq,
            "duplicate": self.duplicate,
            "accepted_at": format_time(self.accepted_at),
        }
        if self.seq is not None:
            wire["seq"] = self.seq
        return wire
