"""The JetStream publisher and the NATS connection on a real nats-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rtm.local.nats import EmbeddedNats
from rtm.local.process import free_port
from rtm.producer.adapters.nats import NatsBus
from rtm.producer.adapters.publishers import JetStreamMessagePublisher
from rtm.producer.domain.exceptions import Unavailable
from rtm.shared.contract import (
    STREAM,
    AcceptedMessage,
    message_subject,
    msg_id_header,
    partition_of,
)
from rtm.shared.jetstream import stream_config

PARTITIONS = 4


def message(
    body: str = "hi", client_msg_id: uuid.UUID | None = None, sender: uuid.UUID | None = None
) -> AcceptedMessage:
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the wire has milliseconds
    return AcceptedMessage(
        uuid.uuid4(), uuid.uuid4(), sender or uuid.uuid4(), client_msg_id or uuid.uuid4(), body, now
    )


async def started(bus: NatsBus, timeout: float = 10.0) -> NatsBus:
    bus.start()
    await asyncio.wait_for(bus.ready.wait(), timeout)
    return bus


def new_bus(url: str, **stream: int) -> NatsBus:
    return NatsBus([url], stream=stream_config(**stream), timeout=2.0, max_pending_publishes=1000)


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[NatsBus]:
    bus = await started(new_bus(nats_url))
    yield bus
    await bus.close()


async def test_publish_stores_the_message_on_its_partition_subject_with_msg_id(
    bus: NatsBus,
) -> None:
    """The receipt arrives once the stream holds the message (ack after stored)."""
    publisher = JetStreamMessagePublisher(bus, partitions=PARTITIONS, timeout=2.0)
    accepted = message()
    receipt = await (await publisher.submit(accepted)).receipt()
    assert not receipt.duplicate
    stored = await bus.js.get_msg(STREAM, seq=receipt.stream_seq)
    assert stored.subject == message_subject(
        partition_of(accepted.conversation_id, PARTITIONS), accepted.conversation_id
    )
    assert stored.headers is not None
    assert stored.headers["Nats-Msg-Id"] == msg_id_header(
        accepted.sender_id, accepted.client_msg_id
    )
    assert AcceptedMessage.decode(stored.data or b"") == accepted


async def test_same_msg_id_is_a_duplicate_and_the_original_is_found(bus: NatsBus) -> None:
    publisher = JetStreamMessagePublisher(bus, partitions=PARTITIONS, timeout=2.0)
    first = message("first")
    second = message("second", client_msg_id=first.client_msg_id, sender=first.sender_id)
    one = await (await publisher.submit(first)).receipt()
    two = await (await publisher.submit(second)).receipt()
    assert two.duplicate
    assert two.stream_seq == one.stream_seq
    assert await publisher.original(two.stream_seq) == first
    info = await bus.js.stream_info(STREAM)
    assert info.state.messages == 1


async def test_submissions_reach_the_stream_in_submission_order(bus: NatsBus) -> None:
    publisher = JetStreamMessagePublisher(bus, partitions=PARTITIONS, timeout=2.0)
    messages = [message(f"m{i}") for i in range(200)]
    pending = [await publisher.submit(m) for m in messages]
    receipts = [await p.receipt() for p in pending]
    assert [r.stream_seq for r in receipts] == list(range(1, 201))


async def test_stopped_server_means_unavailable_at_once(
    nats_server: EmbeddedNats, bus: NatsBus
) -> None:
    publisher = JetStreamMessagePublisher(bus, partitions=PARTITIONS, timeout=2.0)
    nats_server.stop()
    for _ in range(100):
        if not bus.connected:
            break
        await asyncio.sleep(0.02)
    started_at = asyncio.get_running_loop().time()
    with pytest.raises(Unavailable):
        await (await publisher.submit(message())).receipt()
    assert asyncio.get_running_loop().time() - started_at < 0.5
    assert bus.check_connection() is not None
    assert await bus.check_stream() is not None


async def test_full_stream_refuses_and_that_is_unavailable(nats_url: str) -> None:
    """DiscardNew: a full stream refuses new messages instead of dropping stored ones."""
    bus = await started(new_bus(nats_url, max_bytes=4096))
    try:
        publisher = JetStreamMessagePublisher(bus, partitions=PARTITIONS, timeout=2.0)
        refused: Unavailable | None = None
        started_at = asyncio.get_running_loop().time()
        for _ in range(100):
            try:
                await (await publisher.submit(message("x" * 500))).receipt()
            except Unavailable as exc:
                refused = exc
                break
        assert refused is not None
        assert "maximum bytes exceeded" in refused.message
        assert asyncio.get_running_loop().time() - started_at < 1.0  # refused, not timed out
    finally:
        await bus.close()


async def test_bus_waits_for_a_server_that_starts_later(tmp_path: Path) -> None:
    """NATS down at start: not ready, no crash; connects and ensures the stream when it comes."""
    server = EmbeddedNats(tmp_path / "nats", free_port(), free_port())
    bus = new_bus(server.url)
    bus.start()
    try:
        await asyncio.sleep(0.3)
        assert bus.check_connection() is not None
        with pytest.raises(Unavailable):
            _ = bus.js
        server.start()
        await asyncio.wait_for(bus.ready.wait(), 10)
        assert bus.check_connection() is None
        assert await bus.check_stream() is None
    finally:
        await bus.close()
        server.stop()
