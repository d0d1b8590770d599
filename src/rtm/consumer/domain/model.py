"""What the consumer stores and serves."""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rtm.shared.clock import format_time
from rtm.shared.contract import AcceptedMessage


@dataclass(frozen=True, slots=True, order=True)
class FenceToken:
    """Who may commit a partition's batches: the newest owner, and only the newest.

    Ordered: every owner that takes a partition after another holds a larger token. `revision`
    is the lease's revision when it was acquired (revisions only grow within one lease bucket);
    `epoch` is the bucket's creation time in nanoseconds, so a bucket created again (its
    revisions starting over at 1) still hands out larger tokens than any before it.
    """

    epoch: int
    revision: int

    def __str__(self) -> str:
        return f"{self.epoch}:{self.revision}"


@dataclass(frozen=True, slots=True)
class Lease:
    """A partition lease this instance holds: the fencing token it was acquired with, and the
    lease's current revision (renewals are compare-and-set on it and move it forward)."""

    token: FenceToken
    revision: int


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """A place in the stream as a partition's row records it: the stream sequence and a
    checksum of the payload there (None: not known), so that an owner can tell whether the
    stream still holds the same message at that sequence."""

    seq: int
    check: int | None = None

    @classmethod
    def of(cls, seq: int, payload: bytes) -> StreamPosition:
        return cls(seq, payload_check(payload))


def payload_check(payload: bytes) -> int:
    """The checksum kept with a committed offset (CRC-32: cheap, and enough to tell a stream
    created again from the one the offset was committed on)."""
    return zlib.crc32(payload)


@dataclass(frozen=True, slots=True)
class Claim:
    """What a new owner finds in its partition's row: where the last commit ended, and the
    message ids that commit stored (their fan-out may not have gone out)."""

    position: StreamPosition
    last_batch: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True, slots=True)
class Pending:
    """An accepted message as JetStream delivered it: its stream sequence and payload."""

    stream_seq: int
    message: AcceptedMessage


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message with its place in its conversation (`seq`, dense from 1)."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    sender_id: uuid.UUID
    client_msg_id: uuid.UUID
    body: str
    sent_at: datetime

    def to_wire(self) -> dict[str, Any]:
        """The message object of docs/protocol.md, "4. Conversations"."""
        return {
            "message_id": str(self.message_id),
            "conversation_id": str(self.conversation_id),
            "seq": self.seq,
            "sender_id": str(self.sender_id),
            "body": self.body,
            "client_msg_id": str(self.client_msg_id),
            "sent_at": format_time(self.sent_at),
        }


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """What one transaction stored, with the members to deliver each conversation to."""

    messages: list[StoredMessage]
    members: dict[uuid.UUID, list[uuid.UUID]]
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class MessagePage:
    """A page of history, ascending by seq; `has_more` looks in the direction paged."""

    messages: list[StoredMessage]
    has_more: bool


@dataclass(frozen=True, slots=True)
class ReadMark:
    """A member's read marker as stored after marking: the highest seq ever marked (never
    above the conversation's head), and the head it is counted against."""

    conversation_id: uuid.UUID
    read_seq: int
    last_seq: int

    @property
    def unread_count(self) -> int:
        return max(0, self.last_seq - self.read_seq)

    def to_wire(self) -> dict[str, Any]:
        return {
            "conversation_id": str(self.conversation_id),
            "read_seq": self.read_seq,
            "last_seq": self.last_seq,
            "unread_count": self.unread_count,
        }


@dataclass(frozen=True, slots=True)
class ConversationView:
    """A conversation as one member sees it in their list."""

    id: uuid.UUID
    kind: str
    title: str | None
    members: list[uuid.UUID]
    created_at: datetime
    last_seq: int
    read_seq: int
    last_message: StoredMessage | None

    @property
    def unread_count(self) -> int:
        return max(0, self.last_seq - self.read_seq)

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "kind": self.kind,
            "title": self.title,
            "members": [str(member) for member in self.members],
            "created_at": format_time(self.created_at),
            "last_seq": self.last_seq,
            "read_seq": self.read_seq,
            "unread_count": self.unread_count,
            "last_message": self.last_message.to_wire() if self.last_message else None,
        }
