"""Fan-out of stored messages over core NATS to every consumer instance (codec in
`rtm.consumer.domain.delivery`)."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient

from rtm.consumer.domain.delivery import encode_delivery
from rtm.consumer.domain.model import StoredBatch
from rtm.shared.connect import flush_within
from rtm.shared.contract import deliver_subject

FLUSH_TIMEOUT_S = 5


class NatsFanout:
    """`Fanout` over core NATS (at most once; connections fill gaps from PostgreSQL, and a
    partition's new owner sends its last batch again)."""

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc

    async def flush(self) -> None:
        """A PING/PONG round trip: the server has everything published before it."""
        await flush_within(self._nc, FLUSH_TIMEOUT_S)

    async def publish(self, batch: StoredBatch) -> None:
        for message in batch.messages:
            members = batch.members.get(message.conversation_id, [])
            payload = encode_delivery(message, members)
            await self._nc.publish(deliver_subject(message.conversation_id), payload)
