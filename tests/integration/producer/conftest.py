"""Fixtures for producer integration tests: a real producer app on real NATS and PostgreSQL,
with access tokens signed by a test key whose JWKS is served over HTTP (as auth would).

`producer` is a fresh producer (own database, own nats-server) per test, for tests that break
things; `shared_producer` is one per module, for the many tests that only need a working one
(they run on the module's event loop: `pytestmark = pytest.mark.asyncio(loop_scope="module")`).
Users are random, so tests sharing a producer do not see each other; `new_user` registers them
in the test's database (`auth.users`), since conversations take registered users only.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import orjson
import pytest
import pytest_asyncio
import websockets.asyncio.client
from nats.aio.client import Client as NatsClient
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from rtm.local.nats import EmbeddedNats
from rtm.local.postgres import EmbeddedPostgres
from rtm.producer.bootstrap import create_app
from rtm.producer.settings import ProducerSettings
from rtm.shared.jetstream import ensure_stream
from tests.support.asgi import running_producer
from tests.support.db import register_users
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


def settings_for(
    database_url: str, nats_url: str, auth_url: str, **overrides: Any
) -> ProducerSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "nats_url": nats_url,
        "auth_url": auth_url,
        "partitions": PARTITIONS,
        "migrate_on_start": False,
        "producer_port": 0,
        "auth_timeout_s": 1.0,
    }
    values.update(overrides)
    return ProducerSettings(**values)


@pytest.fixture
def producer_settings(database_url: str, nats_url: str, auth_url: str) -> ProducerSettings:
    return settings_for(database_url, nats_url, auth_url)


async def wait_ready(base: str, timeout: float = 20.0) -> None:
    """Poll `/health/ready` until 200."""
    async with httpx.AsyncClient() as client:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                response = await client.get(f"http://{base}/health/ready")
                if response.status_code == 200:
                    return
                reason = response.text
            except httpx.TransportError as exc:  # not listening yet
                reason = repr(exc)
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"producer not ready: {reason}")
            await asyncio.sleep(0.05)


@pytest.fixture
async def producer(producer_settings: ProducerSettings) -> AsyncIterator[str]:
    """A running, ready producer; yields its `host:port`."""
    async with running_producer(create_app(producer_settings), ws_max_size=64 * 1024) as base:
        await wait_ready(base)
        yield base


@pytest.fixture(scope="module")
def shared_database_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A migrated database for one test module."""
    with migrated_database(pg_server, "tp_") as url:
        yield url


@pytest.fixture(scope="module")
def shared_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A nats-server for one test module."""
    with running_nats(tmp_path_factory.mktemp("nats-shared")) as server:
        yield server


@pytest.fixture(scope="module")
def shared_settings(
    shared_database_url: str, shared_nats: EmbeddedNats, auth_url: str
) -> ProducerSettings:
    return settings_for(shared_database_url, shared_nats.url, auth_url)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_producer(shared_settings: ProducerSettings) -> AsyncIterator[str]:
    """One running, ready producer for a whole test module; yields its `host:port`."""
    settings = shared_settings
    async with running_producer(create_app(settings), ws_max_size=settings.max_frame_bytes) as base:
        await wait_ready(base)
        yield base


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_nc(shared_nats: EmbeddedNats) -> AsyncIterator[NatsClient]:
    client = await nats.connect(shared_nats.url)
    yield client
    await client.close()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    """A plain NATS client to observe what the producer publishes."""
    client = await nats.connect(nats_url)
    await ensure_stream(client.jetstream())
    yield client
    await client.close()


@dataclass
class User:
    id: uuid.UUID
    session_id: uuid.UUID
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


NewUser = Callable[..., User]


# The fixtures whose database a test's producer uses, module-wide first.
_DATABASE_FIXTURES = ("shared_database_url", "database_url")


@pytest.fixture
def new_user(tokens: TokenFactory, request: pytest.FixtureRequest) -> NewUser:
    """A factory of users with valid access tokens (`ttl` seconds), registered in the database
    of every producer the test uses (as if they had signed up with auth)."""
    databases = [
        request.getfixturevalue(name) for name in _DATABASE_FIXTURES if name in request.fixturenames
    ]

    def make(ttl: float = 900) -> User:
        user, session = uuid.uuid4(), uuid.uuid4()
        for database in databases:
            register_users(database, [user])
        return User(user, session, tokens.token(user, session, ttl=ttl))

    return make


async def create_conversation(
    base: str, creator: User, kind: str, *members: User, title: str | None = None
) -> dict[str, Any]:
    """Create a conversation through the producer's HTTP API; returns its JSON."""
    async with httpx.AsyncClient(base_url=f"http://{base}") as client:
        response = await client.post(
            "/v1/conversations",
            json={"kind": kind, "member_ids": [str(m.id) for m in members], "title": title},
            headers=creator.headers,
        )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


class Socket:
    """A producer WebSocket client for tests: JSON in and out, with timeouts."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def send(self, frame: dict[str, Any]) -> None:
        await self.connection.send(orjson.dumps(frame).decode())

    async def send_raw(self, data: str | bytes, *, text: bool | None = None) -> None:
        await self.connection.send(data, text=text)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.connection.recv(), timeout)
        frame: dict[str, Any] = orjson.loads(raw)
        return frame

    async def ping(self) -> None:
        """The connection is open and answering."""
        await self.send({"type": "ping"})
        assert await self.recv() == {"type": "pong"}

    async def send_message(
        self, conversation: str, body: str = "hi", client_msg_id: str | None = None
    ) -> str:
        client_msg_id = client_msg_id or str(uuid.uuid4())
        await self.send(
            {
                "type": "send",
                "client_msg_id": client_msg_id,
                "conversation_id": conversation,
                "body": body,
            }
        )
        return client_msg_id

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        """Wait until the server closes the connection; its close code."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.wait_for(self.connection.recv(), timeout)
        return self.connection.close_code


@asynccontextmanager
async def open_socket(
    base: str, user: User | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[Socket]:
    """Connect to the producer's `/v1/ws`, authenticated by header when `user` is given."""
    all_headers = dict(headers or {})
    if user is not None:
        all_headers.update(user.headers)
    connection = await websockets.asyncio.client.connect(
        f"ws://{base}/v1/ws",
        additional_headers=all_headers,
        proxy=None,
        compression=None,
        open_timeout=5,
        close_timeout=2,
    )
    try:
        yield Socket(connection)
    finally:
        await connection.close()
