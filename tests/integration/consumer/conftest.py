"""Fixtures for consumer integration tests: a real consumer app on real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import nats
import pytest
from nats.aio.client import Client as NatsClient

from rtm.consumer.bootstrap import create_app
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.contract import AcceptedMessage, message_subject, msg_id_header, partition_of
from rtm.shared.jetstream import ensure_stream
from tests.support.asgi import running_consumer
from tests.support.tokens import TokenFactory, serve_jwks

PARTITIONS = 4


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture(scope="session")
def auth_url(tokens: TokenFactory) -> Iterator[str]:
    with serve_jwks(tokens) as url:
        yield url


@pytest.fixture
def consumer_settings(database_url: str, nats_url: str, auth_url: str) -> ConsumerSettings:
    return ConsumerSettings(
        database_url=database_url,
        nats_url=nats_url,
        auth_url=auth_url,
        partitions=PARTITIONS,
        lease_ttl_s=2.0,
        instance_id="c1",
        migrate_on_start=False,
        fetch_timeout_s=0.2,
    )


async def wait_ready(base: str, timeout: float = 20.0) -> None:
    async with httpx.AsyncClient() as client:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            response = await client.get(f"http://{base}/health/ready")
            if response.status_code == 200:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"not ready: {response.text}")
            await asyncio.sleep(0.05)


@pytest.fixture
async def consumer(consumer_settings: ConsumerSettings) -> AsyncIterator[str]:
    """A running consumer; yields its `host:port`."""
    async with running_consumer(create_app(consumer_settings)) as base:
        await wait_ready(base)
        yield base


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_url)
    await ensure_stream(client.jetstream())
    yield client
    await client.close()


async def publish(
    nc: NatsClient,
    conversation: uuid.UUID,
    sender: uuid.UUID,
    body: str,
    client_msg_id: uuid.UUID | None = None,
) -> int:
    """Publish like the producer does; returns the stream sequence."""
    client = client_msg_id or uuid.uuid4()
    message = AcceptedMessage(uuid.uuid4(), conversation, sender, client, body, datetime.now(UTC))
    ack = await nc.jetstream().publish(
        message_subject(partition_of(conversation, PARTITIONS), conversation),
        message.encode(),
        headers={"Nats-Msg-Id": msg_id_header(sender, client)},
    )
    return int(ack.seq)
