"""A partition source never hands over a batch past a delivery it did not get."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from nats.aio.msg import Msg

from rtm.consumer.adapters.jetstream_source import (
    JetStreamPartitionSource,
    consumer_name,
    owner_of,
)
from rtm.consumer.domain.exceptions import DeliveryGap
from rtm.consumer.domain.model import FenceToken
from rtm.consumer.domain.ports import Delivery


def msg(consumer_seq: int, stream_seq: int) -> Any:
    sequence = SimpleNamespace(consumer=consumer_seq, stream=stream_seq)
    return SimpleNamespace(metadata=SimpleNamespace(sequence=sequence), data=b"{}")


class FakePull:
    def __init__(self, *batches: list[Any]) -> None:
        self.batches = list(batches)

    async def next(self, max_messages: int, timeout: float) -> list[Any]:
        return self.batches.pop(0) if self.batches else []

    async def close(self) -> None:
        pass


def source(*batches: list[Any], delivered: int = 0, nc: Any = None) -> JetStreamPartitionSource:
    return JetStreamPartitionSource(
        cast(Any, FakePull(*batches)), delivered=delivered, nc=nc, reconnects=0
    )


async def test_consecutive_deliveries_are_handed_over_in_order() -> None:
    s = source([msg(1, 10), msg(2, 12)], [msg(3, 15)])
    assert [d.stream_seq for d in await s.next_batch(10, 0.1)] == [10, 12]
    assert [d.stream_seq for d in await s.next_batch(10, 0.1)] == [15]
    assert await s.next_batch(10, 0.1) == []


async def test_a_skipped_delivery_stops_the_source() -> None:
    # Consumer seq 2 went to a connection that died with nats-server: 3 must not be stored
    # before it, or the offset would move past it and its redelivery be dropped as stale.
    s = source([msg(1, 10)], [msg(3, 15)])
    await s.next_batch(10, 0.1)
    with pytest.raises(DeliveryGap):
        await s.next_batch(10, 0.1)


async def test_a_repeated_delivery_stops_the_source() -> None:
    s = source([msg(5, 10), msg(5, 10)], delivered=4)
    with pytest.raises(DeliveryGap):
        await s.next_batch(10, 0.1)


async def test_a_reconnect_stops_the_source_even_without_deliveries() -> None:
    nc = SimpleNamespace(stats={"reconnects": 0})
    s = source([msg(1, 10)], nc=nc)
    await s.next_batch(10, 0.1)
    nc.stats["reconnects"] = 1
    with pytest.raises(DeliveryGap):
        await s.next_batch(10, 0.1)


async def test_a_source_whose_first_delivery_is_not_the_first_message_after_the_offset_stops() -> (
    None
):
    async def first_after() -> int | None:
        return 10  # JetStream: the partition's first message after the offset is 10

    s = JetStreamPartitionSource(cast(Any, FakePull([msg(1, 12)])), first_after=first_after)
    with pytest.raises(DeliveryGap):
        await s.next_batch(10, 0.1)


async def test_the_first_delivery_is_checked_once_and_then_the_source_goes_on() -> None:
    asked: list[int] = []

    async def first_after() -> int | None:
        asked.append(1)
        return 10

    s = JetStreamPartitionSource(
        cast(Any, FakePull([msg(1, 10)], [msg(2, 14)])), first_after=first_after
    )
    assert [d.stream_seq for d in await s.next_batch(10, 0.1)] == [10]
    assert [d.stream_seq for d in await s.next_batch(10, 0.1)] == [14]
    assert asked == [1]


def test_consumer_names_carry_the_owner_token_and_only_its_partition_reads_it() -> None:
    token = FenceToken(1_700_000_000_123_456_000, 42)
    name = consumer_name(3, token)
    assert owner_of(3, name) == token
    assert owner_of(13, name) is None
    assert owner_of(3, "rtm-p3") is None
    assert consumer_name(3, token) != name  # each attempt has a consumer of its own


class AckRecorder:
    """Stands in for the NATS client: an ack is a publish to the delivery's reply subject."""

    def __init__(self) -> None:
        self.acked: list[str] = []

    async def publish(self, subject: str) -> None:
        self.acked.append(subject)


async def test_a_batch_is_acked_once_by_its_last_delivery() -> None:
    """The consumer acks all up to the one acked (AckPolicy.ALL): one publish per batch."""
    client = AckRecorder()
    s = source()
    batch = [
        Delivery(10 + n, b"{}", Msg(cast(Any, client), reply=f"$JS.ACK.{n}")) for n in (1, 2, 3)
    ]
    await s.ack(batch)
    await s.ack([])
    assert client.acked == ["$JS.ACK.3"]
