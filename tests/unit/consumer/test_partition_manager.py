"""The partition manager stops a worker and waits for it before its lease goes to anyone else.

Leases, store and sources are in-memory fakes; what is under test is the manager's bookkeeping:
a partition handed back keeps its lease until its worker has ended, even when a library swallows
the cancellation; a lost lease stops the worker and is not released; a fenced worker gives its
partition up; a graceful stop leaves first and releases only ended workers' leases.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence

from rtm.consumer.domain.exceptions import Fenced
from rtm.consumer.domain.model import (
    Claim,
    FenceToken,
    Lease,
    Pending,
    StoredBatch,
    StreamPosition,
)
from rtm.consumer.domain.ports import Delivery
from rtm.consumer.entrypoints.workers import PartitionManager

TTL = 0.25  # a round every 50 ms


class FakeLeases:
    def __init__(self, live: int = 1) -> None:
        self.live = live
        self.revision = 0
        self.holders: dict[int, int] = {}  # partition -> revision
        self.events: list[str] = []
        self.lost: set[int] = set()

    async def setup(self) -> None:
        return None

    async def try_acquire(self, partition: int) -> Lease | None:
        if partition in self.holders:
            return None
        self.revision += 1
        self.holders[partition] = self.revision
        self.events.append(f"acquire {partition}")
        return Lease(FenceToken(1, self.revision), self.revision)

    async def renew(self, partition: int, revision: int) -> int | None:
        if partition in self.lost or self.holders.get(partition) != revision:
            return None
        self.revision += 1
        self.holders[partition] = self.revision
        return self.revision

    async def release(self, partition: int, revision: int) -> None:
        if self.holders.get(partition) == revision:
            del self.holders[partition]
            self.events.append(f"release {partition}")

    async def heartbeat(self) -> int:
        return self.live

    async def leave(self) -> None:
        self.events.append("leave")


class FakeStore:
    def __init__(self) -> None:
        self.claims: list[tuple[int, FenceToken]] = []
        self.fenced: set[int] = set()

    async def claim(self, partition: int, token: FenceToken) -> Claim:
        self.claims.append((partition, token))
        if partition in self.fenced:
            self.fenced.discard(partition)
            raise Fenced(partition, token, FenceToken(9, 9))
        return Claim(StreamPosition(0))

    async def rewind(self, partition: int, token: FenceToken) -> Claim:
        raise AssertionError("the stream holds every offset in these tests")

    async def store_batch(
        self,
        partition: int,
        token: FenceToken,
        expected_offset: int,
        end: StreamPosition,
        pending: Sequence[Pending],
    ) -> StoredBatch:
        raise AssertionError("no deliveries in these tests")

    async def load_batch(self, message_ids: Sequence[uuid.UUID]) -> StoredBatch:
        return StoredBatch([], {})


class StubbornSource:
    """A fetch that ignores the first `swallow` cancellations, as a library might."""

    def __init__(self, swallow: int, events: list[str], partition: int) -> None:
        self.swallow = swallow
        self.cancels = 0
        self.events = events
        self.partition = partition

    async def next_batch(self, max_messages: int, timeout: float) -> list[Delivery]:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancels += 1
                if self.cancels > self.swallow:
                    self.events.append(f"worker {self.partition} ended")
                    raise

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        return None

    async def lag(self) -> tuple[int, int]:
        return 0, 0

    async def close(self) -> None:
        return None


class FakeSources:
    def __init__(self, events: list[str], swallow: int = 0) -> None:
        self.events = events
        self.swallow = swallow
        self.opened: dict[int, StubbornSource] = {}

    async def holds(self, position: StreamPosition) -> bool:
        return True

    async def open(
        self, partition: int, after_stream_seq: int, token: FenceToken
    ) -> StubbornSource:
        source = StubbornSource(self.swallow, self.events, partition)
        self.opened[partition] = source
        return source


class NoFanout:
    async def publish(self, batch: StoredBatch) -> None:
        return None

    async def flush(self) -> None:
        return None


def manager(
    leases: FakeLeases, store: FakeStore, sources: FakeSources, partitions: int = 2
) -> PartitionManager:
    return PartitionManager(
        partitions=partitions,
        leases=leases,
        sources=sources,
        store=store,
        fanout=NoFanout(),
        lease_ttl=TTL,
        batch_size=10,
        fetch_timeout=0.05,
    )


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_a_handed_back_partition_keeps_its_lease_until_a_stubborn_worker_has_ended() -> None:
    leases, store = FakeLeases(live=1), FakeStore()
    events: list[str] = []
    leases.events = events
    sources = FakeSources(events, swallow=3)
    m = manager(leases, store, sources)
    m.start()
    try:
        await eventually(lambda: m.owned == [0, 1] and len(sources.opened) == 2)
        leases.live = 2  # another instance joined: the fair share is 1
        await eventually(lambda: "release 1" in events)
        source = sources.opened[1]
        assert source.cancels == 4  # cancelled again until a cancellation got through
        assert events.index("worker 1 ended") < events.index("release 1")
        assert m.owned == [0]
    finally:
        await m.stop()


async def test_a_lost_lease_stops_the_worker_and_is_not_released() -> None:
    leases, store = FakeLeases(live=1), FakeStore()
    events: list[str] = []
    leases.events = events
    sources = FakeSources(events)
    m = manager(leases, store, sources)
    m.start()
    try:
        await eventually(lambda: m.owned == [0, 1] and len(sources.opened) == 2)
        leases.lost.add(0)
        await eventually(lambda: "worker 0 ended" in events)
        await eventually(lambda: 0 not in m.owned)
        assert "release 0" not in events
    finally:
        await m.stop()


async def test_a_fenced_worker_gives_its_partition_up_and_a_newer_lease_takes_it() -> None:
    leases, store = FakeLeases(live=1), FakeStore()
    store.fenced.add(0)
    m = manager(leases, store, FakeSources([]), partitions=1)
    m.start()
    try:
        await eventually(lambda: len(store.claims) >= 2)
        first, second = store.claims[0][1], store.claims[1][1]
        assert second > first  # released, then acquired again with a newer token
        assert leases.events[:3] == ["acquire 0", "release 0", "acquire 0"]
    finally:
        await m.stop()


async def test_a_graceful_stop_leaves_first_and_releases_after_the_workers_end() -> None:
    leases, store = FakeLeases(live=1), FakeStore()
    events: list[str] = []
    leases.events = events
    sources = FakeSources(events, swallow=1)
    m = manager(leases, store, sources)
    m.start()
    await eventually(lambda: m.owned == [0, 1] and len(sources.opened) == 2)
    await m.stop()
    tail = events[events.index("leave") :]
    assert sorted(tail) == sorted(
        ["leave", "worker 0 ended", "worker 1 ended", "release 0", "release 1"]
    )
    for partition in (0, 1):
        assert tail.index(f"worker {partition} ended") < tail.index(f"release {partition}")
    assert leases.holders == {}


class LeasesWhoseSetupFailsOnce(FakeLeases):
    """`setup` raises once, as a JetStream request does when nats-server restarts meanwhile."""

    def __init__(self) -> None:
        super().__init__(live=1)
        self.setups = 0

    async def setup(self) -> None:
        self.setups += 1
        if self.setups == 1:
            raise TimeoutError("nats: timeout")


async def test_a_lease_setup_that_fails_once_is_tried_again_and_readiness_says_so() -> None:
    """Before, one failed setup ended the manager's task for good: the instance said it was
    ready, never heartbeat and never owned a partition."""
    leases, store = LeasesWhoseSetupFailsOnce(), FakeStore()
    m = manager(leases, store, FakeSources([]))
    assert m.health() is not None  # not started
    m.start()
    try:
        await eventually(lambda: m.owned == [0, 1], timeout=3.0)
        assert leases.setups == 2
        assert m.health() is None
    finally:
        await m.stop()
    assert m.health() is not None  # stopped
