"""A partition source on real JetStream hands a message over as soon as it arrives.

nats-py's `fetch(n, timeout)` returned only when its pull request was over (n messages, or the
request expired), so a message that came into a waiting request waited up to the timeout: the
whole delivery tail of a partition at a few messages a second. The source keeps a request open
instead and returns what has arrived.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import orjson
import pytest
from nats.aio.client import Client as NatsClient

from rtm.consumer.adapters.jetstream_pull import PullRefused, StandingPull
from rtm.consumer.adapters.jetstream_source import (
    JetStreamPartitionSource,
    JetStreamPartitionSources,
)
from rtm.consumer.domain.exceptions import DeliveryGap
from rtm.consumer.domain.model import FenceToken
from rtm.consumer.domain.ports import Delivery
from rtm.shared.contract import STREAM, partition_of
from tests.integration.consumer.conftest import PARTITIONS, publish

LONG = 60.0  # a pull's timeout far longer than any test waits: only an arrival can end it
PULL_TIMEOUT_S = 1.0
STALL_S = 0.5
MESSAGES = 30


async def _waiting(nc: NatsClient, requests: int = 1) -> None:
    """Until the partition's consumer has `requests` pull requests waiting on the server."""
    js = nc.jetstream()
    async with asyncio.timeout(10):
        while True:
            infos = await js.consumers_info(STREAM)
            if infos and infos[0].num_waiting is not None and infos[0].num_waiting >= requests:
                return
            await asyncio.sleep(0.02)


async def _handed_over(
    nc: NatsClient,
    waiting: asyncio.Task[list[Delivery]],
    conversation: uuid.UUID,
    sender: uuid.UUID,
) -> None:
    """Publish one message while `waiting` (a `next_batch` call with a LONG timeout) waits: the
    call must return with it. The 10 s are not a speed bound: a call that held the message
    until its own timeout or request ended would take LONG."""
    seq = await publish(nc, conversation, sender, "m")
    async with asyncio.timeout(10):
        batch = await waiting
    assert [d.stream_seq for d in batch] == [seq]


async def _opened(nc: NatsClient, conversation: uuid.UUID) -> JetStreamPartitionSource:
    partition = partition_of(conversation, PARTITIONS)
    return await JetStreamPartitionSources(nc, request_expires=LONG).open(
        partition, 0, FenceToken(1, 1)
    )


async def test_a_message_that_arrives_while_the_source_waits_is_handed_over_at_once(
    nc: NatsClient,
) -> None:
    conversation, sender = uuid.uuid4(), uuid.uuid4()
    source = await _opened(nc, conversation)
    try:
        for _ in range(3):
            waiting = asyncio.create_task(source.next_batch(256, LONG))
            await _waiting(nc)
            await _handed_over(nc, waiting, conversation, sender)
    finally:
        await source.close()


async def test_a_message_for_a_pull_request_left_open_is_handed_over_at_once(
    nc: NatsClient,
) -> None:
    """A request can outlive the call that made it: the server expires it in its own time, and
    a call can be cancelled. The next message then comes into that request; with nats-py's
    `fetch` the waiting call held it until its own request ended (here after LONG)."""
    conversation, sender = uuid.uuid4(), uuid.uuid4()
    source = await _opened(nc, conversation)
    try:
        interrupted = asyncio.create_task(source.next_batch(256, LONG))
        await _waiting(nc)
        interrupted.cancel()
        await asyncio.gather(interrupted, return_exceptions=True)
        waiting = asyncio.create_task(source.next_batch(256, LONG))
        await asyncio.sleep(0.05)  # its own request, if it makes one, is on its way
        await _handed_over(nc, waiting, conversation, sender)
    finally:
        await source.close()


async def test_requests_that_expire_are_made_again(nc: NatsClient) -> None:
    """Requests last `request_expires` on the server: after several have expired, a waiting
    call still has one open (or it would wait out its own timeout)."""
    conversation, sender = uuid.uuid4(), uuid.uuid4()
    partition = partition_of(conversation, PARTITIONS)
    source = await JetStreamPartitionSources(nc, request_expires=0.2).open(
        partition, 0, FenceToken(1, 1)
    )
    try:
        waiting = asyncio.create_task(source.next_batch(256, LONG))
        await asyncio.sleep(1.0)  # five requests' lifetimes
        await _handed_over(nc, waiting, conversation, sender)
    finally:
        await source.close()


async def test_a_deleted_consumer_stops_the_source(nc: NatsClient) -> None:
    """A newer owner deletes the consumers of older ones: the old source stops (its worker
    restarts from the committed offset, and its claim is then refused)."""
    conversation = uuid.uuid4()
    source = await _opened(nc, conversation)
    try:
        waiting = asyncio.create_task(source.next_batch(256, LONG))
        await _waiting(nc)
        js = nc.jetstream()
        await js.delete_consumer(STREAM, (await js.consumers_info(STREAM))[0].name)
        async with asyncio.timeout(10):
            with pytest.raises(DeliveryGap):
                await waiting
    finally:
        await source.close()


async def test_a_consumer_deleted_while_no_request_is_open_stops_the_source(
    nc: NatsClient,
) -> None:
    """The request then finds no consumer (503, no responders): asking again at once would only
    be refused again, thousands of times a second."""
    conversation = uuid.uuid4()
    source = await _opened(nc, conversation)  # no request made yet: `next_batch` makes it
    try:
        js = nc.jetstream()
        await js.delete_consumer(STREAM, (await js.consumers_info(STREAM))[0].name)
        async with asyncio.timeout(10):
            with pytest.raises(DeliveryGap, match="503"):
                await source.next_batch(256, LONG)
    finally:
        await source.close()


async def test_a_request_a_server_limit_refuses_stops_the_pull(nc: NatsClient) -> None:
    """A consumer whose requests may ask for at most 100 messages, asked for 256: 409 "Exceeded
    MaxRequestBatch". The pull says so instead of asking again and again."""
    name = f"limited-{uuid.uuid4().hex[:8]}"
    config = {"name": name, "ack_policy": "all", "max_batch": 100}
    await nc.request(
        f"$JS.API.CONSUMER.CREATE.{STREAM}.{name}",
        orjson.dumps({"stream_name": STREAM, "config": config}),
        timeout=5,
    )
    pull = StandingPull(nc, name, expires=LONG)
    await pull.subscribe()
    try:
        async with asyncio.timeout(10):
            with pytest.raises(PullRefused, match="MaxRequestBatch"):
                await pull.next(256, LONG)
    finally:
        await pull.close()


async def test_messages_at_a_low_rate_on_several_partitions_are_each_handed_over_at_once(
    nc: NatsClient,
) -> None:
    """The shape of the stall the rooms benchmark found: every partition's worker pulls with a
    short timeout on one connection, and messages come a few a second. With nats-py's `fetch`
    some waited most of a timeout (a request left open by an earlier call that timed out took
    them); a healthy hand-over takes milliseconds, so `STALL_S` is a wide margin."""
    sources = JetStreamPartitionSources(nc)
    opened = [await sources.open(p, 0, FenceToken(1, 1)) for p in range(PARTITIONS)]
    conversations = _one_per_partition()
    handed: dict[int, float] = {}
    all_handed = asyncio.Event()

    async def work(source: JetStreamPartitionSource) -> None:
        while True:
            batch = await source.next_batch(256, PULL_TIMEOUT_S)
            now = asyncio.get_running_loop().time()
            handed.update((d.stream_seq, now) for d in batch)
            if len(handed) == MESSAGES:
                all_handed.set()

    workers = [asyncio.create_task(work(s)) for s in opened]
    published: dict[int, float] = {}
    rng = random.Random(7)
    try:
        for n in range(MESSAGES):
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            conversation = conversations[rng.randrange(PARTITIONS)]
            seq = await publish(nc, conversation, uuid.uuid4(), f"m{n}")
            published[seq] = asyncio.get_running_loop().time()
        async with asyncio.timeout(10):
            await all_handed.wait()
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for source in opened:
            await source.close()
    waited = {seq: handed[seq] - at for seq, at in published.items()}
    assert [seq for seq, s in waited.items() if s > STALL_S] == [], waited


def _one_per_partition() -> list[uuid.UUID]:
    found: dict[int, uuid.UUID] = {}
    while len(found) < PARTITIONS:
        conversation = uuid.uuid4()
        found.setdefault(partition_of(conversation, PARTITIONS), conversation)
    return [found[p] for p in range(PARTITIONS)]
