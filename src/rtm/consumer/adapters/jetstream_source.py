"""JetStream implementation of `PartitionSources`: one durable pull consumer per partition.

When a worker takes a partition it re-creates the partition's durable consumer to start right
after the offset committed in PostgreSQL. The consumer then delivers that partition's messages in
stream order; the committed offset, not the consumer's ack state, is the source of truth, so a new
owner never skips messages an old owner had fetched but not stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from rtm.consumer.domain.ports import Delivery
from rtm.shared.contract import STREAM, partition_filter


def durable_name(partition: int) -> str:
    return f"rtm-p{partition}"


class JetStreamPartitionSource:
    """Batches of one partition from its durable pull consumer."""

    def __init__(self, subscription: JetStreamContext.PullSubscription) -> None:
        self._subscription = subscription

    async def next_batch(self, max_messages: int, timeout: float) -> list[Delivery]:
        try:
            messages: list[Msg] = await self._subscription.fetch(max_messages, timeout=timeout)
        except nats.errors.TimeoutError:
            return []
        return [Delivery(m.metadata.sequence.stream, m.data, m) for m in messages]

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            message = delivery.token
            assert isinstance(message, Msg)
            await message.ack()

    async def lag(self) -> tuple[int, int]:
        info = await self._subscription.consumer_info()
        return int(info.num_pending or 0), int(info.num_redelivered or 0)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._subscription.unsubscribe()


class JetStreamPartitionSources:
    """Opens partition sources on the RTM_MESSAGES stream."""

    def __init__(self, js: JetStreamContext, *, ack_wait: float = 30.0) -> None:
        self._js = js
        self._ack_wait = ack_wait

    async def open(self, partition: int, after_stream_seq: int) -> JetStreamPartitionSource:
        name = durable_name(partition)
        with contextlib.suppress(NotFoundError):
            await self._js.delete_consumer(STREAM, name)
        start = (
            {
                "deliver_policy": DeliverPolicy.BY_START_SEQUENCE,
                "opt_start_seq": after_stream_seq + 1,
            }
            if after_stream_seq > 0
            else {"deliver_policy": DeliverPolicy.ALL}
        )
        await self._js.add_consumer(
            STREAM,
            ConsumerConfig(
                durable_name=name,
                filter_subject=partition_filter(partition),
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self._ack_wait,
                max_ack_pending=10_000,
                max_deliver=-1,
                **start,
            ),
        )
        subscription = await self._js.pull_subscribe_bind(durable=name, stream=STREAM)
        return JetStreamPartitionSource(subscription)
