"""JetStreamHistory on a real nats-server: the messages of a range, of one partition or all, in
stream order and bounded lists, and no consumer left behind."""

from __future__ import annotations

import uuid
from contextlib import aclosing

import nats
import pytest
from nats.aio.client import Client as NatsClient

from rtm.consumer.adapters.jetstream_history import JetStreamHistory
from rtm.consumer.domain.continuity import StreamEntry
from rtm.consumer.domain.exceptions import ContinuityUnavailable
from rtm.shared.contract import STREAM
from tests.integration.consumer.continuity_support import Published, publish_message


async def published(nc: NatsClient, count: int) -> list[Published]:
    sender = uuid.uuid4()
    conversations = [uuid.uuid4() for _ in range(6)]
    return [await publish_message(nc, conversations[n % 6], sender) for n in range(count)]


async def read_all(
    history: JetStreamHistory, partition: int | None, after: int, up_to: int, batch: int
) -> list[list[StreamEntry]]:
    chunks = history.read(partition=partition, after_seq=after, up_to_seq=up_to, batch=batch)
    async with aclosing(chunks):
        return [chunk async for chunk in chunks]


async def continuity_consumers(nc: NatsClient) -> list[str]:
    infos = await nc.jetstream().consumers_info(STREAM)
    return [i.name for i in infos if i.name.startswith("rtm-continuity-")]


async def test_a_partitions_range_comes_in_stream_order_in_bounded_lists(nc: NatsClient) -> None:
    messages = await published(nc, 30)
    partition = messages[0].partition
    history = JetStreamHistory(nc)
    chunks = await read_all(history, partition, after=5, up_to=25, batch=3)
    expected = [p for p in messages if p.partition == partition and 5 < p.stream_seq <= 25]
    assert [e.stream_seq for chunk in chunks for e in chunk] == [p.stream_seq for p in expected]
    ids = [e.message.message_id for chunk in chunks for e in chunk if e.message is not None]
    assert ids == [p.message.message_id for p in expected]
    assert all(e.partition == partition for chunk in chunks for e in chunk)
    assert max(len(chunk) for chunk in chunks) <= 3
    assert await continuity_consumers(nc) == []


async def test_every_partition_is_read_up_to_the_given_sequence(nc: NatsClient) -> None:
    await published(nc, 12)
    history = JetStreamHistory(nc)
    bounds = await history.bounds()
    assert (bounds.first_seq, bounds.last_seq, bounds.messages) == (1, 12, 12)
    chunks = await read_all(history, None, after=0, up_to=10, batch=100)
    assert [e.stream_seq for chunk in chunks for e in chunk] == list(range(1, 11))


async def test_stopping_early_removes_the_reading_consumer(nc: NatsClient) -> None:
    await published(nc, 10)
    chunks = JetStreamHistory(nc).read(partition=None, after_seq=0, up_to_seq=10, batch=2)
    async with aclosing(chunks):
        first = await anext(chunks)
        assert [e.stream_seq for e in first] == [1, 2]
    assert await continuity_consumers(nc) == []


async def test_a_nats_without_the_stream_cannot_be_read(nats_url: str) -> None:
    client = await nats.connect(nats_url)
    try:
        with pytest.raises(ContinuityUnavailable, match="no stream"):
            await JetStreamHistory(client).bounds()
    finally:
        await client.close()
