"""Fixtures of auth's integration tests: a real auth runtime on real PostgreSQL.

One database serves every auth test of the session (creating one costs ~0.4 s); each test starts
from empty auth tables instead. The runtime listens for gRPC on a free port; HTTP tests call the
same runtime's app through httpx's ASGI transport (a real uvicorn where the test needs a socket).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import asyncpg
import grpc
import httpx
import psycopg
import pytest

from rtm.auth.bootstrap import Auth, build
from rtm.auth.proto import auth_pb2_grpc
from rtm.auth.settings import AuthSettings
from rtm.local.postgres import EmbeddedPostgres
from rtm.local.process import free_port
from rtm.shared.migrate import apply_migrations
from rtm.shared.settings import REPO_ROOT
from tests.support.clock import FakeClock

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from rtm.auth.proto.auth_pb2_grpc import AuthServiceAsyncStub

    Stub = AuthServiceAsyncStub
else:
    Stub = auth_pb2_grpc.AuthServiceStub

KEY_SECRET = "integration-test-secret-0123456789abcdef"
CLIENT_ADDRESS = "203.0.113.9"


@pytest.fixture(scope="session")
def auth_db_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A migrated database shared by auth's integration tests."""
    name = "auth_" + uuid.uuid4().hex[:12]
    url = pg_server.create_database(name)
    apply_migrations(url, REPO_ROOT / "migrations")
    yield url
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(auth_db_url: str) -> str:
    """The shared database with every auth table emptied (keys included) for this test."""
    with psycopg.connect(auth_db_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE auth.users, auth.sessions, auth.refresh_tokens, auth.signing_keys,"
            " auth.login_throttle CASCADE"
        )
    return auth_db_url


def make_settings(
    database_url: str, nats_url: str | None = None, **overrides: object
) -> AuthSettings:
    """Test settings: cheap argon2, free ports, fast background loops."""
    values: dict[str, object] = {
        "env": "test",
        "database_url": database_url,
        "nats_url": nats_url or f"nats://127.0.0.1:{free_port()}",  # nothing listens there
        "key_secret": KEY_SECRET,
        "argon2_memory_kib": 64,
        "argon2_time_cost": 1,
        "grpc_port": 0,
        "http_port": 0,
        "migrate_on_start": False,
        "health_interval_seconds": 0.1,
        "relay_interval_seconds": 0.2,
        "key_reload_seconds": 0.5,
        "reconnect_max_backoff_seconds": 0.2,
        "throttle_address_free_failures": 1000,
        "register_burst": 10_000,  # tests register many users from one address
        "log_format": "text",
    }
    values.update(overrides)
    return AuthSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def runtime(db_url: str, clock: FakeClock) -> AsyncIterator[Auth]:
    """A started auth runtime (gRPC on a free port, no HTTP socket), ready to serve."""
    started = build(make_settings(db_url), clock=clock, sleep=clock.sleep)
    await started.start(serve_http=False)
    await started.wait_ready()
    yield started
    await started.stop()


@pytest.fixture
async def stub(runtime: Auth) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.grpc_port}") as channel:
        yield auth_pb2_grpc.AuthServiceStub(channel)


@pytest.fixture
async def http(runtime: Auth) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=runtime.http_app, client=(CLIENT_ADDRESS, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
        yield client


async def sql(database_url: str, statement: str, *args: object) -> None:
    """Run one statement directly (tests that need a state no RPC makes, e.g. a deleted user)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.close()
