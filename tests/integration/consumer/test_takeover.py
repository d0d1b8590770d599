"""A partition's takeover misses nothing, on real JetStream and PostgreSQL (issue 10's review).

* The last committed batch's fan-out is sent again by the next owner: its owner may have died,
  been stopped, or lost its COMMIT's answer between the commit and the fan-out, and a connected
  receiver would otherwise not get those messages until the conversation's next one.
* A stream created again (or one that lost its tail) no longer holds what the committed offset
  names: the partition starts over from the stream's beginning instead of skipping every new
  message up to the old offset.
* A payload our producer did not write is skipped, never a stall of its partition.
* A changed lease TTL applies to buckets created with another one.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from rtm.consumer.adapters.fanout import NatsFanout
from rtm.consumer.adapters.jetstream_source import JetStreamPartitionSources
from rtm.consumer.adapters.leases import KvPartitionLeases
from rtm.consumer.adapters.postgres_store import PostgresMessageStore
from rtm.consumer.domain.delivery import decode_delivery
from rtm.consumer.domain.exceptions import Unavailable
from rtm.consumer.domain.model import FenceToken, StoredBatch
from rtm.consumer.services import PartitionWorker
from rtm.shared.contract import (
    DELIVER_SUBJECT_PREFIX,
    STREAM,
    AcceptedMessage,
    message_subject,
    partition_of,
)
from rtm.shared.jetstream import ensure_stream
from tests.integration.consumer.conftest import PARTITIONS, publish
from tests.support.db import create_conversation, opened_database, stored_messages

QUIET_S = 5.0


class _DeadBeforeFanout:
    """The fan-out of an owner that died right after its commit: nothing goes out."""

    async def publish(self, batch: StoredBatch) -> None:
        return None

    async def flush(self) -> None:
        return None


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresMessageStore]:
    async with opened_database(database_url, Unavailable, pool_size=4) as database:
        yield PostgresMessageStore(database)


async def _owner(
    nc: NatsClient,
    store: PostgresMessageStore,
    partition: int,
    token: FenceToken,
    fanout: NatsFanout | _DeadBeforeFanout,
) -> PartitionWorker:
    worker = PartitionWorker(
        partition,
        token,
        store,
        JetStreamPartitionSources(nc),
        fanout,
        batch_size=5,
        fetch_timeout=0.3,
    )
    await worker.open()
    return worker


async def _drain(worker: PartitionWorker) -> None:
    idle = 0
    for _ in range(40):
        idle = 0 if (await worker.step()).delivered else idle + 1
        if idle == 3:
            return


async def test_the_next_owner_sends_the_fan_out_its_dead_predecessor_never_sent(
    nc: NatsClient, database_url: str, store: PostgresMessageStore
) -> None:
    sender, receiver = uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [sender, receiver])
    partition = partition_of(conversation, PARTITIONS)
    delivered: list[tuple[int, list[uuid.UUID]]] = []

    async def on_delivery(msg: Msg) -> None:
        live = decode_delivery(msg.data)
        delivered.append((live.seq, list(live.members)))

    subscription = await nc.subscribe(f"{DELIVER_SUBJECT_PREFIX}.>", cb=on_delivery)
    try:
        for i in range(3):
            await publish(nc, conversation, sender, f"m{i + 1}")
        dead = await _owner(nc, store, partition, FenceToken(1, 10), _DeadBeforeFanout())
        # A batch is what had arrived when the worker asked: all three, or the first of them.
        committed = (await dead.step()).stored  # committed; it died before fanning out
        assert committed >= 1
        await dead.close()

        local: list[int] = []

        async def deliver_local(data: bytes) -> None:
            local.append(decode_delivery(data).seq)

        successor = await _owner(
            nc, store, partition, FenceToken(1, 20), NatsFanout(nc, "successor", deliver_local)
        )
        await nc.flush()
        for _ in range(50):
            if len(delivered) >= committed:
                break
            await asyncio.sleep(0.02)
        sent_again = list(range(1, committed + 1))
        assert [seq for seq, _ in delivered] == sent_again  # before the successor read anything
        assert local == sent_again  # and its own sockets got them straight away
        assert all(set(members) == {sender, receiver} for _, members in delivered)
        await successor.close()
    finally:
        await subscription.unsubscribe()


async def test_acked_messages_are_stored_after_the_stream_was_created_again(
    nc: NatsClient, database_url: str, store: PostgresMessageStore
) -> None:
    sender = uuid.uuid4()
    conversation = await create_conversation(database_url, [sender, uuid.uuid4()])
    partition = partition_of(conversation, PARTITIONS)
    js = nc.jetstream()
    for i in range(5):
        await publish(nc, conversation, sender, f"before {i + 1}")
    first = await _owner(nc, store, partition, FenceToken(1, 10), _DeadBeforeFanout())
    await _drain(first)
    await first.close()
    assert len(await stored_messages(database_url)) == 5  # committed offset: stream seq 5

    # RTM_MESSAGES is lost and created again, as every service does at start when it is
    # missing (`nats stream rm`, a lost volume); PostgreSQL keeps its offsets. A lost tail of
    # the stream does the same to the sequences that follow.
    await js.delete_stream(STREAM)
    await ensure_stream(js)
    acked = [await publish(nc, conversation, sender, f"after {i + 1}") for i in range(3)]
    assert acked == [1, 2, 3]  # below the committed offset 5

    second = await _owner(nc, store, partition, FenceToken(1, 20), _DeadBeforeFanout())
    assert second.rewound
    await _drain(second)
    await second.close()
    bodies = [r["body"] for r in await stored_messages(database_url)]
    assert bodies == [f"before {i + 1}" for i in range(5)] + [f"after {i + 1}" for i in range(3)]


async def test_an_owner_whose_offset_message_is_still_there_does_not_start_over(
    nc: NatsClient, database_url: str, store: PostgresMessageStore
) -> None:
    sender = uuid.uuid4()
    conversation = await create_conversation(database_url, [sender, uuid.uuid4()])
    partition = partition_of(conversation, PARTITIONS)
    for i in range(3):
        await publish(nc, conversation, sender, f"m{i + 1}")
    first = await _owner(nc, store, partition, FenceToken(1, 10), _DeadBeforeFanout())
    await _drain(first)
    await first.close()
    second = await _owner(nc, store, partition, FenceToken(1, 20), _DeadBeforeFanout())
    assert not second.rewound
    assert second.offset == 3
    await second.close()


def _foreign_payloads(conversation: uuid.UUID, sender: uuid.UUID) -> dict[str, bytes]:
    good = AcceptedMessage(
        uuid.uuid4(), conversation, sender, uuid.uuid4(), "x", datetime.now(UTC)
    ).encode()
    raw = json.loads(good)
    return {
        "an id that is not a string": json.dumps({**raw, "message_id": 5}).encode(),
        "a NUL in the body": json.dumps({**raw, "body": "a\u0000b"}).encode(),
        "not an object": b"[1, 2]",
        "a body that is not a string": json.dumps({**raw, "body": {"a": 1}}).encode(),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "an id that is not a string",
        "a NUL in the body",
        "not an object",
        "a body that is not a string",
    ],
)
async def test_a_payload_the_producer_did_not_write_is_skipped_not_a_stall(
    consumer: str, nc: NatsClient, database_url: str, kind: str
) -> None:
    """Anyone who can publish on `rtm.msg.>` could put one there; before, some made the
    worker fail and restart on the same message for ever, and nothing behind it was stored."""
    sender = uuid.uuid4()
    conversation = await create_conversation(database_url, [sender, uuid.uuid4()])
    subject = message_subject(partition_of(conversation, PARTITIONS), conversation)
    await nc.jetstream().publish(subject, _foreign_payloads(conversation, sender)[kind])
    await publish(nc, conversation, sender, "acked after it")
    for _ in range(int(QUIET_S / 0.1)):
        if await stored_messages(database_url):
            break
        await asyncio.sleep(0.1)
    assert [r["body"] for r in await stored_messages(database_url)] == ["acked after it"]


async def test_a_changed_lease_ttl_applies_to_a_bucket_created_with_another(
    nc: NatsClient,
) -> None:
    """Every instance renews every TTL/5 of its setting: with the bucket still expiring keys
    after the old TTL, a longer setting would lose every lease between two renewals."""
    js = nc.jetstream()
    before = KvPartitionLeases(js, "old-setting", 1.5)
    await before.setup()
    after = KvPartitionLeases(js, "new-setting", 10.0)
    await after.setup()
    lease = await after.try_acquire(0)
    assert lease is not None
    await asyncio.sleep(10.0 / 5)
    assert await after.renew(0, lease.revision) is not None
