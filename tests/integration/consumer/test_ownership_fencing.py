"""Two workers on one partition: the interleavings that lost acked messages (issue 10).

A partition is handed from worker A to worker B while A is still running (its cancellation did
not stop it in time). Both work the partition on real JetStream and PostgreSQL, step by step, in
the orders that lose messages when ownership rests on timing. Whatever either worker fetched,
every message must end up stored exactly once, with dense seqs in stream order, and the old
owner must not commit anything after the new one has claimed the partition.

Before fencing (commit 1516ec0), the first test failed the way the chaos run did: B fetched
m6..m10 and was slow to commit; A, sharing the partition's durable consumer, fetched m11..m15,
and its batch passed the offset check and committed, so B's batch was refused and m6..m10 were
never stored (`A's step gave BatchOutcome(delivered=5, stored=5, skipped=0)`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from nats.aio.client import Client as NatsClient

from rtm.consumer.adapters.jetstream_source import JetStreamPartitionSources
from rtm.consumer.adapters.postgres_store import PostgresMessageStore
from rtm.consumer.domain.exceptions import Fenced, Unavailable
from rtm.consumer.domain.model import Claim, FenceToken, Pending, StoredBatch, StreamPosition
from rtm.consumer.services import BatchOutcome, PartitionWorker
from rtm.shared.contract import partition_of
from tests.integration.consumer.conftest import PARTITIONS, publish
from tests.support.db import create_conversation, opened_database, stored_messages

BATCH = 5
OLD, NEW = FenceToken(1, 10), FenceToken(1, 20)


class _NoFanout:
    async def publish(self, batch: StoredBatch) -> None:
        return None

    async def flush(self) -> None:
        return None


class _GatedStore:
    """The real store, but `store_batch` waits for `gate`: a worker that is slow to commit."""

    def __init__(self, store: PostgresMessageStore) -> None:
        self._store = store
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def claim(self, partition: int, token: FenceToken) -> Claim:
        return await self._store.claim(partition, token)

    async def rewind(self, partition: int, token: FenceToken) -> Claim:
        return await self._store.rewind(partition, token)

    async def load_batch(self, message_ids: Sequence[uuid.UUID]) -> StoredBatch:
        return await self._store.load_batch(message_ids)

    async def store_batch(
        self,
        partition: int,
        token: FenceToken,
        expected_offset: int,
        end: StreamPosition,
        pending: Sequence[Pending],
    ) -> StoredBatch:
        self.entered.set()
        await self.gate.wait()
        return await self._store.store_batch(partition, token, expected_offset, end, pending)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresMessageStore]:
    async with opened_database(database_url, Unavailable, pool_size=4) as database:
        yield PostgresMessageStore(database)


async def _partition_with_messages(nc: NatsClient, database_url: str, count: int) -> int:
    sender = uuid.uuid4()
    conversation = await create_conversation(database_url, [sender, uuid.uuid4()])
    for i in range(count):
        await publish(nc, conversation, sender, f"m{i + 1}")
    return partition_of(conversation, PARTITIONS)


async def _take(
    sources: JetStreamPartitionSources,
    store: PostgresMessageStore | _GatedStore,
    partition: int,
    token: FenceToken,
) -> PartitionWorker:
    """What the manager does when it gets a lease: a worker that takes the partition over."""
    worker = PartitionWorker(
        partition, token, store, sources, _NoFanout(), batch_size=BATCH, fetch_timeout=0.5
    )
    await worker.open()
    return worker


async def _drain(worker: PartitionWorker) -> None:
    for _ in range(20):
        if not (await worker.step()).delivered:
            return


async def _assert_all_stored_once_in_order(database_url: str, count: int) -> None:
    rows = await stored_messages(database_url)
    assert [r["body"] for r in rows] == [f"m{i + 1}" for i in range(count)]
    assert [r["seq"] for r in rows] == list(range(1, count + 1))


async def test_a_stale_worker_cannot_make_the_new_owner_skip_what_it_fetched(
    nc: NatsClient, database_url: str, store: PostgresMessageStore
) -> None:
    partition = await _partition_with_messages(nc, database_url, 3 * BATCH)
    sources = JetStreamPartitionSources(nc)
    old = await _take(sources, store, partition, OLD)
    first = await old.step()  # m1.. (a batch is what had arrived: up to BATCH)
    assert first.stored == first.delivered > 0

    # The partition goes to the new owner; the old worker keeps running. The new owner fetches
    # the next messages and is slow to commit them.
    slow = _GatedStore(store)
    new = await _take(sources, slow, partition, NEW)
    new_step = asyncio.create_task(new.step())
    await asyncio.wait_for(slow.entered.wait(), 5)

    # Meanwhile the old worker fetches again and tries to commit whatever it got.
    old_outcome: BatchOutcome | Exception
    try:
        old_outcome = await old.step()
    except Exception as exc:  # fenced, or its consumer is gone: either way it committed nothing
        old_outcome = exc
    assert not (isinstance(old_outcome, BatchOutcome) and old_outcome.stored), old_outcome
    assert len(await stored_messages(database_url)) == first.stored

    slow.gate.set()
    fetched = await new_step  # the messages after the old owner's offset, as fetched
    assert fetched.stored == fetched.delivered > 0
    await _drain(new)
    await _assert_all_stored_once_in_order(database_url, 3 * BATCH)


async def test_a_worker_handed_back_in_the_middle_of_a_batch_cannot_commit_it(
    nc: NatsClient, database_url: str, store: PostgresMessageStore
) -> None:
    partition = await _partition_with_messages(nc, database_url, 3 * BATCH)
    sources = JetStreamPartitionSources(nc)
    slow = _GatedStore(store)
    old = await _take(sources, slow, partition, OLD)
    old_step = asyncio.create_task(old.step())  # m1..m5 fetched, not yet committed
    await asyncio.wait_for(slow.entered.wait(), 5)

    new = await _take(sources, store, partition, NEW)
    await _drain(new)  # the new owner stores everything, m1..m15
    await _assert_all_stored_once_in_order(database_url, 3 * BATCH)

    slow.gate.set()
    with pytest.raises(Fenced):
        await old_step
    with pytest.raises(Fenced):  # and it cannot come back by restarting
        await _take(sources, store, partition, OLD)
    await _assert_all_stored_once_in_order(database_url, 3 * BATCH)


async def test_an_old_owner_restarting_after_a_newer_claim_is_refused_before_it_reads(
    nc: NatsClient, database_url: str, store: PostgresMessageStore
) -> None:
    partition = await _partition_with_messages(nc, database_url, BATCH)
    sources = JetStreamPartitionSources(nc)
    new = await _take(sources, store, partition, NEW)
    with pytest.raises(Fenced):
        await _take(sources, store, partition, OLD)
    await _drain(new)
    await _assert_all_stored_once_in_order(database_url, BATCH)
