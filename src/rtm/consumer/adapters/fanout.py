"""Fan-out of stored messages over core NATS to every consumer instance (codec in
`rtm.consumer.domain.delivery`)."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient

from rtm.consumer.domain.delivery import encode_delivery
from rtm.consumer.domain.model import StoredBatch
from rtm.shared.contract import deliver_subject


class NatsFanout:
    """`Fanout` over core NATS (at most once; connections fill gaps from PostgreSQL)."""

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc

    async def publish(self, batch: StoredBatch) -> None:
        for message in batch.messages:
            members = batch.members.get(message.conversation_id, [])
            payload = encode_delivery(message, members)
            await self._nc.publish(deliver_subject(message.conversation_id), payload)
