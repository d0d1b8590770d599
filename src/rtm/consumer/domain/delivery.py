"""The live-delivery codec: how a stored message travels from the worker that stored it to every
consumer instance (core NATS `rtm.deliver.<conversation_id>`). Pure: bytes in, bytes out.

Wire format: one header line `<conversation_id> <seq> <sent_at, ms since epoch> <member ids,
comma-separated>`, a newline,
then the `message` frame exactly as clients receive it. Each frame is encoded once, by the worker,
and every instance forwards the same text to all its local sockets of those members.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import orjson

from rtm.consumer.domain.model import StoredMessage


@dataclass(frozen=True, slots=True)
class LiveDelivery:
    """A stored message as an instance receives it for its local sockets."""

    conversation_id: uuid.UUID
    seq: int
    sent_at_ms: int
    members: tuple[uuid.UUID, ...]
    frame: bytes


def message_frame(message: StoredMessage) -> bytes:
    return orjson.dumps({"type": "message", **message.to_wire()})


def encode_delivery(message: StoredMessage, members: Sequence[uuid.UUID]) -> bytes:
    sent_ms = int(message.sent_at.timestamp() * 1000)
    head = f"{message.conversation_id} {message.seq} {sent_ms} " + ",".join(str(m) for m in members)
    return head.encode() + b"\n" + message_frame(message)


def decode_delivery(data: bytes) -> LiveDelivery:
    """Raises `ValueError` on a payload we did not write."""
    head, sep, frame = data.partition(b"\n")
    parts = head.decode().split(" ")
    if not sep or len(parts) != 4:
        raise ValueError("malformed delivery header")
    return LiveDelivery(_uuid(parts[0]), int(parts[1]), int(parts[2]), _members(parts[3]), frame)


# A conversation's deliveries repeat its id and member list: each is parsed once while it is in
# use (building a UUID from text is a Python-level parse: ten of them per message to a room of
# ten, a thousand to a group of a thousand). A member list that changed is a different text.
# Bounded: 256 lists of a group of 1,000 (the default RTM_MAX_GROUP_MEMBERS) are ~20 MB.
@lru_cache(maxsize=4096)
def _uuid(text: str) -> uuid.UUID:
    return uuid.UUID(text)


@lru_cache(maxsize=256)
def _members(text: str) -> tuple[uuid.UUID, ...]:
    return tuple(uuid.UUID(part) for part in text.split(",") if part)
