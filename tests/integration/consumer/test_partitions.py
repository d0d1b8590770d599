"""Two consumer instances share the partitions; order and exactly-once hold across a handover."""

from __future__ import annotations

import asyncio
import uuid

from nats.aio.client import Client as NatsClient

from rtm.chaos.checker import Acked, Stored, check_history
from rtm.consumer.bootstrap import Consumer, build
from rtm.consumer.settings import ConsumerSettings
from tests.integration.consumer.conftest import publish, wait_ready
from tests.support.asgi import running_consumer
from tests.support.db import create_conversation, stored_messages


async def test_two_instances_split_partitions_and_survive_one_stopping(
    consumer_settings: ConsumerSettings, nc: NatsClient, database_url: str
) -> None:
    users = [uuid.uuid4() for _ in range(3)]
    conversations = [await create_conversation(database_url, users) for _ in range(8)]
    second = consumer_settings.model_copy(update={"instance_id": "c2"})
    acked: list[Acked] = []

    async def send(count: int) -> None:
        for i in range(count):
            conversation = conversations[i % len(conversations)]
            sender = users[i % len(users)]
            client = uuid.uuid4()
            await publish(nc, conversation, sender, f"m{i}", client)
            acked.append(Acked(conversation, sender, client))

    first_consumer, second_consumer = build(consumer_settings), build(second)

    def owned(consumer: Consumer) -> list[int]:
        manager = consumer.runtime.manager
        return list(manager.owned) if manager else []

    async with running_consumer(first_consumer.app) as first_base:
        await wait_ready(first_base)
        async with running_consumer(second_consumer.app) as second_base:
            await wait_ready(second_base)
            for _ in range(100):  # the fair share is 2 each once both heartbeat
                if len(owned(first_consumer)) == 2 and len(owned(second_consumer)) == 2:
                    break
                await asyncio.sleep(0.1)
            assert sorted(owned(first_consumer) + owned(second_consumer)) == [0, 1, 2, 3]
            await send(200)
        # the second instance stopped (gracefully); the first takes its partitions over
        await send(200)
        for _ in range(300):
            if len(await stored_messages(database_url)) >= 400:
                break
            await asyncio.sleep(0.05)
        assert sorted(owned(first_consumer)) == [0, 1, 2, 3]
    rows = await stored_messages(database_url)
    stored = [
        Stored(r["conversation_id"], r["seq"], r["sender_id"], r["client_msg_id"], r["stream_seq"])
        for r in rows
    ]
    assert check_history(acked, stored) == []
    assert len(stored) == 400
