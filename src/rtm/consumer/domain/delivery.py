"""The live-delivery codec: how a stored message travels from the worker that stored it to every
consumer instance (core NATS `rtm.deliver.<conversation_id>`). Pure: bytes in, bytes out.

Wire format: one header line `<conversation_id> <seq> <sent_at, ms since epoch> <member ids,
comma-separated>`, a newline,
then the `message` frame exactly as clients receive it. Each frame is encoded once, by the worker,
and every instance forwards the same text to all its local sockets of those members.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import orjson

from rtm.consumer.domain.model import StoredMessage


@dataclass(frozen=True, slots=True)
class LiveDelivery:
    """A stored message as an instance receives it for its local sockets."""

    conversation_id: uuid.UUID
    seq: int
    sent_at_ms: int
    members: list[uuid.UUID]
    frame: bytes


def message_frame(message: StoredMessage) -> bytes:
    return orjson.dumps({"type": "message", **message.to_wire()})


def encode_delivery(message: StoredMessage, members: list[uuid.UUID]) -> bytes:
    sent_ms = int(message.sent_at.timestamp() * 1000)
    head = f"{message.conversation_id} {message.seq} {sent_ms} " + ",".join(str(m) for m in members)
    return head.encode() + b"\n" + message_frame(message)


def decode_delivery(data: bytes) -> LiveDelivery:
    """Raises `ValueError` on a payload we did not write."""
    head, sep, frame = data.partition(b"\n")
    parts = head.decode().split(" ")
    if not sep or len(parts) != 4:
        raise ValueError("malformed delivery header")
    members = [uuid.UUID(part) for part in parts[3].split(",") if part]
    return LiveDelivery(uuid.UUID(parts[0]), int(parts[1]), int(parts[2]), members, frame)
