"""A partition source on real JetStream: a batch is acked by its last delivery (AckPolicy.ALL),
which acks every delivery up to it and none after it."""

from __future__ import annotations

import asyncio
import uuid

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo

from rtm.consumer.adapters.jetstream_source import JetStreamPartitionSources
from rtm.consumer.domain.model import FenceToken
from rtm.consumer.domain.ports import Delivery, PartitionSource
from rtm.shared.contract import STREAM, partition_of
from tests.integration.consumer.conftest import PARTITIONS, publish


async def test_acking_a_batchs_last_delivery_acks_the_batch_and_nothing_after(
    nc: NatsClient,
) -> None:
    conversation, sender = uuid.uuid4(), uuid.uuid4()
    seqs = [await publish(nc, conversation, sender, f"m{n}") for n in range(7)]
    partition = partition_of(conversation, PARTITIONS)
    source = await JetStreamPartitionSources(nc).open(partition, 0, FenceToken(1, 1))
    js = nc.jetstream()
    try:
        first = await _take(source, 5)
        assert [d.stream_seq for d in first] == seqs[:5]
        second = await _take(source, 2)  # delivered before the first batch is acked
        assert [d.stream_seq for d in second] == seqs[5:]

        await source.ack(first)
        # An ack is a publish the server takes in its own time: wait for it, then check.
        info = await _acked_up_to(js, seqs[4])
        assert info.num_ack_pending == 2  # the second batch is still unacked
        await source.ack(second)
        info = await _acked_up_to(js, seqs[6])
        assert info.num_ack_pending == 0
    finally:
        await source.close()


async def _take(source: PartitionSource, count: int) -> list[Delivery]:
    """`count` deliveries, in as many batches as they arrive in (a batch is what has come)."""
    taken: list[Delivery] = []
    async with asyncio.timeout(10):
        while len(taken) < count:
            taken += await source.next_batch(count - len(taken), 1.0)
    return taken


async def _acked_up_to(js: JetStreamContext, stream_seq: int) -> ConsumerInfo:
    """The partition consumer's info once its ack floor has reached `stream_seq` (5 s)."""
    async with asyncio.timeout(5):
        while True:
            info = (await js.consumers_info(STREAM))[0]
            if info.ack_floor is not None and info.ack_floor.stream_seq >= stream_seq:
                assert info.ack_floor.stream_seq == stream_seq  # nothing after it
                return info
            await asyncio.sleep(0.02)
