"""A partition source never hands over a batch past a delivery it did not get."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import nats.errors
import pytest

from rtm.consumer.adapters.jetstream_source import DeliveryGap, JetStreamPartitionSource


def msg(consumer_seq: int, stream_seq: int) -> Any:
    sequence = SimpleNamespace(consumer=consumer_seq, stream=stream_seq)
    return SimpleNamespace(metadata=SimpleNamespace(sequence=sequence), data=b"{}")


class FakeSubscription:
    def __init__(self, *batches: list[Any]) -> None:
        self.batches = list(batches)

    async def fetch(self, batch: int, timeout: float) -> list[Any]:
        if not self.batches:
            raise nats.errors.TimeoutError
        return self.batches.pop(0)


def source(*batches: list[Any], delivered: int = 0, nc: Any = None) -> JetStreamPartitionSource:
    return JetStreamPartitionSource(
        cast(Any, FakeSubscription(*batches)), delivered=delivered, nc=nc, reconnects=0
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
