"""JetStream implementation of `PartitionSources`: one durable pull consumer per partition.

When a worker takes a partition it re-creates the partition's durable consumer to start right
after the offset committed in PostgreSQL. The consumer then delivers that partition's messages in
stream order; the committed offset, not the consumer's ack state, is the source of truth, so a new
owner never skips messages an old owner had fetched but not stored.

A pull consumer does not resend a message it delivered until `ack_wait` has passed, so a delivery
that never reached us (lost with a connection to a nats-server that was killed, or handed out by a
restarted server whose state says it was sent) would let later messages through first: the
worker would store them, move the offset past the missing one and later drop it as already
processed. So a source refuses to go on (`DeliveryGap`) when a delivery's consumer sequence is
not the one after the last it handed over, or when the NATS connection has reconnected since it
was opened; the worker then restarts from the committed offset, on a fresh durable consumer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from rtm.consumer.domain.ports import Delivery
from rtm.shared.contract import STREAM, partition_filter


def durable_name(partition: int) -> str:
    return f"rtm-p{partition}"


class DeliveryGap(Exception):
    """The source cannot vouch that nothing was skipped: restart from the committed offset."""


def _reconnects(nc: NatsClient | None) -> int:
    return int(nc.stats["reconnects"]) if nc is not None else 0


class JetStreamPartitionSource:
    """Batches of one partition from its durable pull consumer.

    Args:
        subscription: bound to the partition's durable consumer.
        delivered: the consumer sequence the durable consumer had delivered when created.
        nc: the connection, to notice reconnects (None: not checked).
        reconnects: `nc`'s reconnect count before the durable consumer was created.
    """

    def __init__(
        self,
        subscription: JetStreamContext.PullSubscription,
        *,
        delivered: int = 0,
        nc: NatsClient | None = None,
        reconnects: int = 0,
    ) -> None:
        self._subscription = subscription
        self._delivered = delivered
        self._nc = nc
        self._reconnects = reconnects

    async def next_batch(self, max_messages: int, timeout: float) -> list[Delivery]:
        try:
            messages: list[Msg] = await self._subscription.fetch(max_messages, timeout=timeout)
        except (nats.errors.TimeoutError, TimeoutError):  # nats-py raises either when idle
            messages = []
        if _reconnects(self._nc) != self._reconnects:
            raise DeliveryGap("NATS reconnected: deliveries may have been lost")
        for message in messages:
            sequence = message.metadata.sequence.consumer
            if sequence != self._delivered + 1:
                raise DeliveryGap(
                    f"consumer sequence {sequence} after {self._delivered}: a delivery was "
                    "lost or repeated"
                )
            self._delivered = sequence
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

    def __init__(
        self, js: JetStreamContext, *, ack_wait: float = 30.0, nc: NatsClient | None = None
    ) -> None:
        self._js = js
        self._ack_wait = ack_wait
        self._nc = nc

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
        reconnects = _reconnects(self._nc)
        info = await self._js.add_consumer(
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
        return JetStreamPartitionSource(
            subscription,
            delivered=info.delivered.consumer_seq if info.delivered is not None else 0,
            nc=self._nc,
            reconnects=reconnects,  # a reconnect while opening counts too
        )
