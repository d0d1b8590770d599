"""Fixtures for consumer integration tests: a real consumer app on real NATS and PostgreSQL.

`consumer` is a fresh consumer (own database, own nats-server) per test; `shared_consumer` is one
per module, for tests that only need a working one (they run on the module's event loop:
`pytestmark = pytest.mark.asyncio(loop_scope="module")`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient

from rtm.consumer.bootstrap import create_app
from rtm.consumer.settings import ConsumerSettings
from rtm.local.nats import EmbeddedNats
from rtm.local.postgres import EmbeddedPostgres
from rtm.shared.contract import AcceptedMessage, message_subject, msg_id_header, partition_of
from rtm.shared.jetstream import ensure_stream
from tests.support.asgi import running_consumer
from tests.support.servers import migrated_database, running_nats
from tests.support.tokens import TokenFactory, serve_jwks

PARTITIONS = 4


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture(scope="session")
def auth_url(tokens: TokenFactory) -> Iterator[str]:
    with serve_jwks(tokens) as url:
        yield url


def settings_for(database_url: str, nats_url: str, auth_url: str) -> ConsumerSettings:
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


@pytest.fixture
def consumer_settings(database_url: str, nats_url: str, auth_url: str) -> ConsumerSettings:
    return settings_for(database_url, nats_url, auth_url)


@pytest.fixture(scope="module")
def shared_database_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A migrated database for one test module."""
    with migrated_database(pg_server, "tc_") as url:
        yield url


@pytest.fixture(scope="module")
def shared_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A nats-server for one test module."""
    with running_nats(tmp_path_factory.mktemp("nats-shared")) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_consumer(
    shared_database_url: str, shared_nats: EmbeddedNats, auth_url: str
) -> AsyncIterator[str]:
    """One running, ready consumer for a whole test module; yields its `host:port`."""
    settings = settings_for(shared_database_url, shared_nats.url, auth_url)
    async with running_consumer(create_app(settings)) as base:
        await wait_ready(base)
        yield base


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
