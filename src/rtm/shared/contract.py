"""The NATS contract between services: stream, subjects and event payloads.

Everything that crosses NATS is JSON encoded here and decoded here, so producer, consumer and auth
cannot drift apart. Subjects:

    rtm.msg.<partition>.<conversation_id>    JetStream stream RTM_MESSAGES: accepted sends
    rtm.deliver.<conversation_id>.<origin>   core NATS: stored messages, fanned out to consumers
    rtm.events.conversation                  core NATS: conversation created / member changes
    rtm.events.session.revoked               core NATS: a session was logged out or revoked
    rtm.events.typing / rtm.events.read      core NATS: ephemeral typing and read markers
    rtm.events.presence                      core NATS: consumer instances' online users, heartbeats
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime

import orjson

from rtm.shared.clock import format_time, parse_time

# The largest `seq` (and cursor) anywhere: seqs are PostgreSQL bigints, on every service's edge.
MAX_SEQ = (1 << 63) - 1

STREAM = "RTM_MESSAGES"
MESSAGE_SUBJECT_PREFIX = "rtm.msg"
DELIVER_SUBJECT_PREFIX = "rtm.deliver"
CONVERSATION_EVENTS = "rtm.events.conversation"
SESSION_REVOKED = "rtm.events.session.revoked"
TYPING_EVENTS = "rtm.events.typing"
READ_EVENTS = "rtm.events.read"
PRESENCE_EVENTS = "rtm.events.presence"


def partition_of(conversation_id: uuid.UUID, partitions: int) -> int:
    """The partition a conversation belongs to: stable across processes and restarts."""
    return zlib.crc32(conversation_id.bytes) % partitions


def message_subject(partition: int, conversation_id: uuid.UUID) -> str:
    return f"{MESSAGE_SUBJECT_PREFIX}.{partition}.{conversation_id}"


def partition_filter(partition: int) -> str:
    """The JetStream filter subject of one partition's durable consumer."""
    return f"{MESSAGE_SUBJECT_PREFIX}.{partition}.*"


def deliver_subject(conversation_id: uuid.UUID, origin: str) -> str:
    """`origin` names the publishing consumer instance (one token), so that it can skip its own
    echo: it has handed the message to its local sockets already. Subscribers take
    `rtm.deliver.>`, which also matches the older `rtm.deliver.<conversation_id>`."""
    return f"{DELIVER_SUBJECT_PREFIX}.{conversation_id}.{origin}"


def msg_id_header(sender_id: uuid.UUID, client_msg_id: uuid.UUID) -> str:
    """`Nats-Msg-Id`: JetStream refuses a second copy of the same send within its window."""
    return f"{sender_id}:{client_msg_id}"


@dataclass(frozen=True, slots=True)
class AcceptedMessage:
    """A send the producer accepted and JetStream stored; not yet numbered (`seq`)."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    sender_id: uuid.UUID
    client_msg_id: uuid.UUID
    body: str
    accepted_at: datetime

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "message_id": str(self.message_id),
                "conversation_id": str(self.conversation_id),
                "sender_id": str(self.sender_id),
                "client_msg_id": str(self.client_msg_id),
                "body": self.body,
                "accepted_at": format_time(self.accepted_at),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> AcceptedMessage:
        """Raises `ValueError`, and only that, on a payload our producer did not write: anyone
        who can publish on the stream's subjects could put one there, and the consumer must
        skip it, never stall on it (a NUL in the body is refused too: PostgreSQL's text
        cannot hold one)."""
        try:
            raw = orjson.loads(data)
            body = raw["body"]
            if not isinstance(body, str) or "\x00" in body:
                raise ValueError("the body is not a text PostgreSQL can store")
            return cls(
                message_id=_uuid(raw["message_id"]),
                conversation_id=_uuid(raw["conversation_id"]),
                sender_id=_uuid(raw["sender_id"]),
                client_msg_id=_uuid(raw["client_msg_id"]),
                body=body,
                accepted_at=parse_time(raw["accepted_at"]),
            )
        except (KeyError, TypeError, AttributeError, OverflowError) as exc:
            raise ValueError(f"not an accepted message: {exc!r}") from exc


def _uuid(value: object) -> uuid.UUID:
    if not isinstance(value, str):
        raise ValueError(f"not a UUID string: {value!r}")
    return uuid.UUID(value)


@dataclass(frozen=True, slots=True)
class SessionRevoked:
    """Auth says: this session is over; close its sockets (4503) and refuse its tokens."""

    session_id: uuid.UUID
    user_id: uuid.UUID

    def encode(self) -> bytes:
        return orjson.dumps({"session_id": str(self.session_id), "user_id": str(self.user_id)})

    @classmethod
    def decode(cls, data: bytes) -> SessionRevoked:
        raw = orjson.loads(data)
        return cls(session_id=uuid.UUID(raw["session_id"]), user_id=uuid.UUID(raw["user_id"]))


# Events the producer publishes on core NATS for the consumer (at most once; not stored by NATS).
#
# rtm.events.conversation
#   {"event": "created" | "member_added" | "member_removed",
#    "conversation": {"id", "kind": "direct"|"group", "title": str|null, "members": [user ids],
#                     "created_at": "…Z", "last_seq": int},
#    "user_ids": [user ids whose membership changed; every member for "created"]}
#   `conversation` is the state after the change (a removed user is no longer in `members`): send
#   it to the current members and to `user_ids`.
# rtm.events.typing   {"conversation_id", "user_id", "at": "…Z"}
# rtm.events.read     {"conversation_id", "user_id", "seq": int >= 0, "at": "…Z"}
#   The producer checked membership; the consumer keeps the highest `seq` per (conversation, user).

CONVERSATION_EVENT_KINDS = ("created", "member_added", "member_removed")


@dataclass(frozen=True, slots=True)
class ConversationSnapshot:
    """A conversation as docs/protocol.md, "4. Conversations" shows it, inside a conversation
    event."""

    id: uuid.UUID
    kind: str
    title: str | None
    members: tuple[uuid.UUID, ...]
    created_at: datetime
    last_seq: int

    def to_wire(self) -> dict[str, object]:
        return {
            "id": str(self.id),
            "kind": self.kind,
            "title": self.title,
            "members": [str(member) for member in self.members],
            "created_at": format_time(self.created_at),
            "last_seq": self.last_seq,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> ConversationSnapshot:
        members = raw["members"]
        title = raw.get("title")
        if not isinstance(members, list) or not (title is None or isinstance(title, str)):
            raise ValueError("malformed conversation snapshot")
        return cls(
            id=uuid.UUID(str(raw["id"])),
            kind=str(raw["kind"]),
            title=title,
            members=tuple(uuid.UUID(str(member)) for member in members),
            created_at=parse_time(str(raw["created_at"])),
            last_seq=int(str(raw.get("last_seq", 0))),
        )


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    """`rtm.events.conversation`: a conversation was created or its membership changed."""

    event: str
    conversation: ConversationSnapshot
    user_ids: tuple[uuid.UUID, ...]

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "event": self.event,
                "conversation": self.conversation.to_wire(),
                "user_ids": [str(user) for user in self.user_ids],
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> ConversationEvent:
        raw = orjson.loads(data)
        if raw["event"] not in CONVERSATION_EVENT_KINDS:
            raise ValueError(f"unknown conversation event {raw['event']!r}")
        return cls(
            event=raw["event"],
            conversation=ConversationSnapshot.from_dict(raw["conversation"]),
            user_ids=tuple(uuid.UUID(user) for user in raw["user_ids"]),
        )


@dataclass(frozen=True, slots=True)
class TypingEvent:
    """`rtm.events.typing`: a member is typing (ephemeral)."""

    conversation_id: uuid.UUID
    user_id: uuid.UUID
    at: datetime

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "conversation_id": str(self.conversation_id),
                "user_id": str(self.user_id),
                "at": format_time(self.at),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> TypingEvent:
        raw = orjson.loads(data)
        return cls(
            conversation_id=uuid.UUID(raw["conversation_id"]),
            user_id=uuid.UUID(raw["user_id"]),
            at=parse_time(raw["at"]),
        )


@dataclass(frozen=True, slots=True)
class ReadEvent:
    """`rtm.events.read`: a member has read its conversation up to `seq`."""

    conversation_id: uuid.UUID
    user_id: uuid.UUID
    seq: int
    at: datetime

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "conversation_id": str(self.conversation_id),
                "user_id": str(self.user_id),
                "seq": self.seq,
                "at": format_time(self.at),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> ReadEvent:
        raw = orjson.loads(data)
        seq = raw["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise ValueError("read seq must be a non-negative integer")
        return cls(
            conversation_id=uuid.UUID(raw["conversation_id"]),
            user_id=uuid.UUID(raw["user_id"]),
            seq=seq,
            at=parse_time(raw["at"]),
        )


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """`rtm.events.presence`: a consumer instance reports users online or offline on it.

    `status` is "online" or "offline" for changes, "heartbeat" for the periodic full list of the
    instance's online users (instances die too: a user an instance stops listing goes offline).
    `instance` names the reporting process (unique per process). `beat` is the instance's
    heartbeat counter: a heartbeat's number (1, 2, ...), or on a change the number of the last
    heartbeat taken before it. A heartbeat is split in `chunks` events, `chunk` = 0 .. chunks-1.
    All three were added later: an event without them decodes with `beat` None (and one chunk).
    """

    instance: str
    status: str
    user_ids: tuple[uuid.UUID, ...]
    beat: int | None = None
    chunk: int = 0
    chunks: int = 1

    def encode(self) -> bytes:
        raw: dict[str, object] = {
            "instance": self.instance,
            "status": self.status,
            "user_ids": [str(user) for user in self.user_ids],
        }
        if self.beat is not None:
            raw["beat"] = self.beat
        if self.status == "heartbeat":
            raw["chunk"], raw["chunks"] = self.chunk, self.chunks
        return orjson.dumps(raw)

    @classmethod
    def decode(cls, data: bytes) -> PresenceEvent:
        raw = orjson.loads(data)
        if raw["status"] not in ("online", "offline", "heartbeat"):
            raise ValueError("unknown presence status")
        beat = raw.get("beat")
        chunk, chunks = raw.get("chunk", 0), raw.get("chunks", 1)
        if beat is not None and not _count(beat):
            raise ValueError("presence beat must be a non-negative integer")
        if not (_count(chunk) and _count(chunks) and chunk < chunks):
            raise ValueError("presence chunk must be in 0 .. chunks-1")
        return cls(
            instance=str(raw["instance"]),
            status=raw["status"],
            user_ids=tuple(uuid.UUID(user) for user in raw["user_ids"]),
            beat=beat,
            chunk=chunk,
            chunks=chunks,
        )


def _count(value: object) -> bool:
    """A non-negative int (JSON true/false are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
