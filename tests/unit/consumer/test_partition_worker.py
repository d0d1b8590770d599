"""The partition worker stores before it acks, skips what is already stored, refuses disorder."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from rtm.consumer.domain.delivery import decode_delivery, encode_delivery
from rtm.consumer.domain.exceptions import Fenced, OffsetMoved, OutOfOrder
from rtm.consumer.domain.model import (
    Claim,
    FenceToken,
    Pending,
    StoredBatch,
    StoredMessage,
    StreamPosition,
)
from rtm.consumer.domain.ports import Delivery
from rtm.consumer.services import PartitionWorker
from rtm.shared.contract import AcceptedMessage

NOW = datetime(2026, 11, 24, 1, 2, 3, 456000, tzinfo=UTC)
CONV, ALICE = uuid.uuid4(), uuid.uuid4()
TOKEN = FenceToken(1, 10)


def delivery(stream_seq: int) -> Delivery:
    message = AcceptedMessage(uuid.uuid4(), CONV, ALICE, uuid.uuid4(), f"m{stream_seq}", NOW)
    return Delivery(stream_seq, message.encode(), token=stream_seq)


class FakeSource:
    def __init__(self, batches: list[list[Delivery]]) -> None:
        self.batches = batches
        self.acked: list[int] = []
        self.log: list[str] = []

    async def next_batch(self, max_messages: int, timeout: float) -> list[Delivery]:
        return self.batches.pop(0) if self.batches else []

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        self.acked += [d.stream_seq for d in deliveries]
        self.log.append("ack")

    async def lag(self) -> tuple[int, int]:
        return 0, 0

    async def close(self) -> None:
        return None


class InMemoryMessageStore:
    def __init__(self, log: list[str]) -> None:
        self.offset = StreamPosition(0)
        self.last_batch: tuple[uuid.UUID, ...] = ()
        self.fence = TOKEN
        self.rows: list[StoredMessage] = []
        self.log = log

    async def claim(self, partition: int, token: FenceToken) -> Claim:
        if token < self.fence:
            raise Fenced(partition, token, self.fence)
        self.fence = token
        return Claim(self.offset, self.last_batch)

    async def rewind(self, partition: int, token: FenceToken) -> Claim:
        self.offset, self.last_batch = StreamPosition(0), ()
        self.log.append("rewind")
        return Claim(self.offset)

    async def store_batch(
        self,
        partition: int,
        token: FenceToken,
        expected_offset: int,
        end: StreamPosition,
        pending: Sequence[Pending],
    ) -> StoredBatch:
        if token != self.fence:
            raise Fenced(partition, token, self.fence)
        if expected_offset != self.offset.seq:
            raise OffsetMoved(partition, expected_offset, self.offset.seq)
        # The real numbering is PostgreSQL's (messaging.store_batch, tested against it); this
        # fake knows one conversation and skips sends it has stored.
        seen = {(m.sender_id, m.client_msg_id) for m in self.rows}
        head = max((m.seq for m in self.rows), default=0)
        stored: list[StoredMessage] = []
        for item in pending:
            message = item.message
            if (message.sender_id, message.client_msg_id) in seen:
                continue
            seen.add((message.sender_id, message.client_msg_id))
            head += 1
            stored.append(
                StoredMessage(
                    message.message_id,
                    message.conversation_id,
                    head,
                    message.sender_id,
                    message.client_msg_id,
                    message.body,
                    message.accepted_at,
                )
            )
        skipped = len(pending) - len(stored)
        self.rows += stored
        self.offset = end
        self.last_batch = tuple(m.message_id for m in stored)
        self.log.append("store")
        return StoredBatch(stored, {CONV: [ALICE]}, skipped)

    async def load_batch(self, message_ids: Sequence[uuid.UUID]) -> StoredBatch:
        return StoredBatch([m for m in self.rows if m.message_id in message_ids], {CONV: [ALICE]})


class FakeSources:
    """Opens the one `FakeSource`; the stream holds the committed offset's message unless
    `lost` says otherwise."""

    def __init__(self, source: FakeSource, *, holds: bool = True) -> None:
        self.source = source
        self.holds_offset = holds
        self.opened_after: list[int] = []

    async def holds(self, position: StreamPosition) -> bool:
        return self.holds_offset

    async def open(self, partition: int, after_stream_seq: int, token: FenceToken) -> FakeSource:
        self.opened_after.append(after_stream_seq)
        return self.source


class FakeFanout:
    def __init__(self, log: list[str] | None = None) -> None:
        self.published: list[int] = []
        self.log = log if log is not None else []
        self.flushed = asyncio.Event()
        self.flushed.set()

    async def publish(self, batch: StoredBatch) -> None:
        self.published += [m.seq for m in batch.messages]
        self.log.append("publish")

    async def flush(self) -> None:
        await self.flushed.wait()
        self.log.append("flushed")


async def worker(
    source: FakeSource,
    store: InMemoryMessageStore,
    fanout: FakeFanout,
    sources: FakeSources | None = None,
) -> PartitionWorker:
    """A worker that has taken the partition over (from `store.offset`)."""
    runner = PartitionWorker(
        0,
        TOKEN,
        store,
        sources or FakeSources(source),
        fanout,
        batch_size=10,
        fetch_timeout=0.1,
    )
    await runner.open()
    return runner


async def test_a_batch_is_stored_then_acked_then_fanned_out() -> None:
    last = delivery(5)
    source = FakeSource([[delivery(3), last]])
    store, fanout = InMemoryMessageStore(source.log), FakeFanout()
    outcome = await (await worker(source, store, fanout)).step()
    assert (outcome.delivered, outcome.stored) == (2, 2)
    assert source.log == ["store", "ack"]
    assert source.acked == [3, 5]
    assert fanout.published == [1, 2]
    assert store.offset == StreamPosition.of(5, last.payload)  # with the payload's checksum


async def test_deliveries_at_or_below_the_offset_are_acked_not_stored_again() -> None:
    source = FakeSource([[delivery(4), delivery(5)]])
    store, fanout = InMemoryMessageStore(source.log), FakeFanout()
    store.offset = StreamPosition(5)
    outcome = await (await worker(source, store, fanout)).step()
    assert (outcome.stored, outcome.skipped) == (0, 2)
    assert source.acked == [4, 5]
    assert store.rows == []


async def test_an_out_of_order_batch_is_refused_before_anything_is_stored() -> None:
    source = FakeSource([[delivery(7), delivery(6)]])
    store = InMemoryMessageStore(source.log)
    with pytest.raises(OutOfOrder):
        await (await worker(source, store, FakeFanout())).step()
    assert store.rows == []
    assert source.acked == []


async def test_a_worker_whose_offset_moved_cannot_commit() -> None:
    source = FakeSource([[delivery(9)]])
    store = InMemoryMessageStore(source.log)
    store.offset = StreamPosition(2)
    runner = await worker(source, store, FakeFanout())
    store.offset = StreamPosition(8)  # another worker committed meanwhile
    with pytest.raises(OffsetMoved):
        await runner.step()
    assert source.acked == []


async def test_a_worker_fenced_out_by_a_newer_owner_cannot_commit_what_it_fetched() -> None:
    source = FakeSource([[delivery(1), delivery(2)]])
    store = InMemoryMessageStore(source.log)
    runner = await worker(source, store, FakeFanout())
    store.fence = FenceToken(1, 11)  # a newer owner claimed the partition meanwhile
    with pytest.raises(Fenced):
        await runner.step()
    assert store.rows == []
    assert source.acked == []


async def test_an_undecodable_payload_is_skipped_but_covered_by_the_offset() -> None:
    source = FakeSource([[Delivery(1, b"garbage", token=1), delivery(2)]])
    store, fanout = InMemoryMessageStore(source.log), FakeFanout()
    await (await worker(source, store, fanout)).step()
    assert [m.body for m in store.rows] == ["m2"]
    assert store.offset.seq == 2
    assert source.acked == [1, 2]


def test_the_delivery_codec_round_trips() -> None:
    message = StoredMessage(uuid.uuid4(), CONV, 7, ALICE, uuid.uuid4(), "hé", NOW)
    members = (ALICE, uuid.uuid4())
    live = decode_delivery(encode_delivery(message, members))
    assert (live.conversation_id, live.seq, live.members) == (CONV, 7, members)
    joined = (*members, uuid.uuid4())  # a member list that changed is read as it is now
    assert decode_delivery(encode_delivery(message, joined)).members == joined
    assert decode_delivery(encode_delivery(message, [])).members == ()
    with pytest.raises(ValueError, match="UUID"):
        decode_delivery(encode_delivery(message, []).replace(b" \n", b" not-a-uuid\n", 1))
    assert live.sent_at_ms == int(NOW.timestamp() * 1000)
    assert b'"seq":7' in live.frame
    with pytest.raises(ValueError, match="malformed"):
        decode_delivery(b"no header")


async def test_a_message_not_stored_is_logged_with_its_ids_and_without_its_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    first = delivery(1)
    again = AcceptedMessage.decode(first.payload)
    resent = AcceptedMessage(uuid.uuid4(), CONV, ALICE, again.client_msg_id, "private words", NOW)
    source = FakeSource([[first], [Delivery(2, resent.encode(), token=2)]])
    store, fanout = InMemoryMessageStore(source.log), FakeFanout()
    runner = await worker(source, store, fanout)
    await runner.step()
    outcome = await runner.step()
    assert (outcome.stored, outcome.skipped) == (0, 1)
    [line] = [r for r in caplog.records if r.getMessage().startswith("not stored")]
    assert getattr(line, "message_id", None) == resent.message_id
    assert getattr(line, "client_msg_id", None) == resent.client_msg_id
    assert getattr(line, "stream_seq", None) == 2
    assert "private words" not in str(line.__dict__)


async def test_a_batch_commits_only_once_the_previous_batchs_fan_out_reached_the_bus() -> None:
    """The row names only the last batch as possibly not fanned out: before a commit replaces
    it, the previous batch's fan-out must have been flushed to NATS."""
    source = FakeSource([[delivery(1)], [delivery(2)]])
    log = source.log
    store, fanout = InMemoryMessageStore(log), FakeFanout(log)
    runner = await worker(source, store, fanout)
    fanout.flushed.clear()  # the bus is slow to confirm
    await runner.step()
    second = asyncio.create_task(runner.step())
    await asyncio.sleep(0.05)
    assert log == ["store", "ack", "publish"]  # the second batch waits for the flush
    fanout.flushed.set()
    await second
    assert log[:7] == ["store", "ack", "publish", "flushed", "store", "ack", "publish"]
    await runner.close()


async def test_a_new_owner_fans_the_last_committed_batch_out_again_before_anything_else() -> None:
    """Its owner may have died (or been stopped) between the commit and the fan-out."""
    log: list[str] = []
    store = InMemoryMessageStore(log)
    previous = await worker(FakeSource([[delivery(1), delivery(2)]]), store, FakeFanout())
    await previous.step()  # committed; say its fan-out never went out
    fanout = FakeFanout(log)
    source = FakeSource([[delivery(3)]])
    successor = await worker(source, store, fanout)
    assert fanout.published == [1, 2]  # sent again at once, flushed before the first fetch
    assert log[-2:] == ["publish", "flushed"]
    await successor.step()
    assert fanout.published == [1, 2, 3]


async def test_a_stream_that_lost_the_offsets_message_makes_the_partition_start_over() -> None:
    """Created again, or its tail lost: the sequences no longer mean what the row says."""
    source = FakeSource([])
    store = InMemoryMessageStore(source.log)
    store.offset = StreamPosition(40, 1234)
    sources = FakeSources(source, holds=False)
    runner = await worker(source, store, FakeFanout(), sources)
    assert runner.rewound
    assert source.log == ["rewind"]
    assert sources.opened_after == [0]
    assert runner.offset == 0
