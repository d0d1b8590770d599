"""Fan-out of stored messages over core NATS to every consumer instance.

Wire format of `rtm.deliver.<conversation_id>`: one header line
`<conversation_id> <seq> <member ids, comma-separated>`, a newline, then the `message` frame
exactly as clients receive it. Each frame is encoded once here, and every instance forwards the
same text to all its local sockets of those members.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import orjson
from nats.aio.client import Client as NatsClient

from rtm.consumer.domain.model import StoredBatch, StoredMessage
from rtm.shared.contract import deliver_subject


def message_frame(message: StoredMessage) -> bytes:
    return orjson.dumps({"type": "message", **message.to_wire()})


@dataclass(frozen=True, slots=True)
class LiveDelivery:
    """A stored message as an instance receives it for its local sockets."""

    conversation_id: uuid.UUID
    seq: int
    members: list[uuid.UUID]
    frame: bytes


def encode_delivery(message: StoredMessage, members: list[uuid.UUID]) -> bytes:
    head = f"{message.conversation_id} {message.seq} " + ",".join(str(m) for m in members)
    return head.encode() + b"\n" + message_frame(message)


def decode_delivery(data: bytes) -> LiveDelivery:
    """Raises `ValueError` on a payload we did not write."""
    head, sep, frame = data.partition(b"\n")
    parts = head.decode().split(" ")
    if not sep or len(parts) != 3:
        raise ValueError("malformed delivery header")
    members = [uuid.UUID(part) for part in parts[2].split(",") if part]
    return LiveDelivery(uuid.UUID(parts[0]), int(parts[1]), members, frame)


class NatsFanout:
    """`Fanout` over core NATS (at most once; clients recover gaps with `resume`)."""

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc

    async def publish(self, batch: StoredBatch) -> None:
        for message in batch.messages:
            members = batch.members.get(message.conversation_id, [])
            payload = encode_delivery(message, members)
            await self._nc.publish(deliver_subject(message.conversation_id), payload)
