"""The partition worker stores before it acks, skips what is already stored, refuses disorder."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from rtm.consumer.domain.delivery import decode_delivery, encode_delivery
from rtm.consumer.domain.exceptions import Fenced, OffsetMoved
from rtm.consumer.domain.model import FenceToken, Pending, StoredBatch, StoredMessage
from rtm.consumer.domain.numbering import number_batch
from rtm.consumer.domain.ports import Delivery
from rtm.consumer.services import OutOfOrder, PartitionWorker
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
        self.offset = 0
        self.fence = TOKEN
        self.rows: list[StoredMessage] = []
        self.log = log

    async def claim(self, partition: int, token: FenceToken) -> int:
        if token < self.fence:
            raise Fenced(partition, token, self.fence)
        self.fence = token
        return self.offset

    async def store_batch(
        self,
        partition: int,
        token: FenceToken,
        expected_offset: int,
        new_offset: int,
        pending: Sequence[Pending],
    ) -> StoredBatch:
        if token != self.fence:
            raise Fenced(partition, token, self.fence)
        if expected_offset != self.offset:
            raise OffsetMoved(partition, expected_offset, self.offset)
        heads = {CONV: max((m.seq for m in self.rows), default=0)}
        stored, _, skipped = number_batch(
            pending, already_stored={(m.sender_id, m.client_msg_id) for m in self.rows}, heads=heads
        )
        self.rows += stored
        self.offset = new_offset
        self.log.append("store")
        return StoredBatch(stored, {CONV: [ALICE]}, skipped)


class FakeFanout:
    def __init__(self) -> None:
        self.published: list[int] = []

    async def publish(self, batch: StoredBatch) -> None:
        self.published += [m.seq for m in batch.messages]


def worker(
    source: FakeSource, store: InMemoryMessageStore, fanout: FakeFanout, offset: int = 0
) -> PartitionWorker:
    return PartitionWorker(
        0, TOKEN, offset, source, store, fanout, batch_size=10, fetch_timeout=0.1
    )


async def test_a_batch_is_stored_then_acked_then_fanned_out() -> None:
    source = FakeSource([[delivery(3), delivery(5)]])
    store, fanout = InMemoryMessageStore(source.log), FakeFanout()
    outcome = await worker(source, store, fanout).step()
    assert (outcome.delivered, outcome.stored) == (2, 2)
    assert source.log == ["store", "ack"]
    assert source.acked == [3, 5]
    assert fanout.published == [1, 2]
    assert store.offset == 5


async def test_deliveries_at_or_below_the_offset_are_acked_not_stored_again() -> None:
    source = FakeSource([[delivery(4), delivery(5)]])
    store, fanout = InMemoryMessageStore(source.log), FakeFanout()
    store.offset = 5
    outcome = await worker(source, store, fanout, offset=5).step()
    assert (outcome.stored, outcome.skipped) == (0, 2)
    assert source.acked == [4, 5]
    assert store.rows == []


async def test_an_out_of_order_batch_is_refused_before_anything_is_stored() -> None:
    source = FakeSource([[delivery(7), delivery(6)]])
    store = InMemoryMessageStore(source.log)
    with pytest.raises(OutOfOrder):
        await worker(source, store, FakeFanout()).step()
    assert store.rows == []
    assert source.acked == []


async def test_a_worker_whose_offset_moved_cannot_commit() -> None:
    source = FakeSource([[delivery(9)]])
    store = InMemoryMessageStore(source.log)
    store.offset = 8  # another worker committed meanwhile
    with pytest.raises(OffsetMoved):
        await worker(source, store, FakeFanout(), offset=2).step()
    assert source.acked == []


async def test_a_worker_fenced_out_by_a_newer_owner_cannot_commit_what_it_fetched() -> None:
    source = FakeSource([[delivery(1), delivery(2)]])
    store = InMemoryMessageStore(source.log)
    store.fence = FenceToken(1, 11)  # a newer owner claimed the partition meanwhile
    with pytest.raises(Fenced):
        await worker(source, store, FakeFanout()).step()
    assert store.rows == []
    assert source.acked == []


async def test_an_undecodable_payload_is_skipped_but_covered_by_the_offset() -> None:
    source = FakeSource([[Delivery(1, b"garbage", token=1), delivery(2)]])
    store, fanout = InMemoryMessageStore(source.log), FakeFanout()
    await worker(source, store, fanout).step()
    assert [m.body for m in store.rows] == ["m2"]
    assert store.offset == 2
    assert source.acked == [1, 2]


def test_the_delivery_codec_round_trips() -> None:
    message = StoredMessage(uuid.uuid4(), CONV, 7, ALICE, uuid.uuid4(), "hé", NOW)
    members = [ALICE, uuid.uuid4()]
    live = decode_delivery(encode_delivery(message, members))
    assert (live.conversation_id, live.seq, live.members) == (CONV, 7, members)
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
    runner = worker(source, store, fanout)
    await runner.step()
    outcome = await runner.step()
    assert (outcome.stored, outcome.skipped) == (0, 1)
    [line] = [r for r in caplog.records if r.getMessage().startswith("not stored")]
    assert getattr(line, "message_id", None) == resent.message_id
    assert getattr(line, "client_msg_id", None) == resent.client_msg_id
    assert getattr(line, "stream_seq", None) == 2
    assert "private words" not in str(line.__dict__)
