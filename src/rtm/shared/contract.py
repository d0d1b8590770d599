"""The NATS contract between services: stream, subjects and event payloads.

Everything that crosses NATS is JSON encoded here and decoded here, so producer, consumer and auth
cannot drift apart. Subjects:

    rtm.msg.<partition>.<conversation_id>    JetStream stream RTM_MESSAGES: accepted sends
    rtm.deliver.<conversation_id>            core NATS: stored messages, fanned out to consumers
    rtm.events.conversation                  core NATS: conversation created / member changes
    rtm.events.session.revoked               core NATS: a session was logged out or revoked
    rtm.events.typing / rtm.events.read      core NATS: ephemeral typing and read markers
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime

import orjson

from rtm.shared.clock import format_time, parse_time

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


def deliver_subject(conversation_id: uuid.UUID) -> str:
    return f"{DELIVER_SUBJECT_PREFIX}.{conversation_id}"


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
        """Raises `ValueError` (or `KeyError`/`TypeError`) on a payload we did not write."""
        raw = orjson.loads(data)
        return cls(
            message_id=uuid.UUID(raw["message_id"]),
            conversation_id=uuid.UUID(raw["conversation_id"]),
            sender_id=uuid.UUID(raw["sender_id"]),
            client_msg_id=uuid.UUID(raw["client_msg_id"]),
            body=str(raw["body"]),
            accepted_at=parse_time(raw["accepted_at"]),
        )


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
