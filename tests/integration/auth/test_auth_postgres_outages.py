"""Auth while PostgreSQL is frozen or its postmaster killed, under concurrent logins and
refreshes (issue #10): every answer is a success or `unavailable` (gRPC UNAVAILABLE, HTTP 503),
never INTERNAL/UNKNOWN or 500, and within a bound (no hang); once PostgreSQL is back, logins
succeed again without a restart.

Before, auth bounded a statement with asyncpg's 10 s timeout, whose cancellation a frozen
server never confirms (the pool's release then waits up to 5 s more and raises), and a killed
postmaster could let asyncpg's `InternalClientError` out as an internal error.

PostgreSQL is this module's own server: its tests freeze and kill it. Every refresh uses a
refresh token of its own (a session opened before the outage): a refresh whose answer was lost
may have rotated its token, and presenting that token again would rightly revoke the session.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import grpc
import httpx
import pytest

from rtm.auth.bootstrap import Auth, build
from rtm.auth.proto import auth_pb2 as pb
from rtm.auth.proto.auth_pb2_grpc import AuthServiceStub
from rtm.local.postgres import EmbeddedPostgres
from tests.integration.auth.conftest import Stub, make_settings
from tests.support.pg_outages import postgres_outage, private_postgres
from tests.support.servers import migrated_database

pytestmark = pytest.mark.slow

USERNAME, PASSWORD = "alice", "password-1"
OUTAGE_S = 12.0  # longer than the bound, so that a hang shows
ANSWER_BOUND_S = 10.0  # "no hang": every answer well within this (the database timeout is 2 s)
WAIT_S = 60.0  # how long a client waits for any answer
SESSIONS = 90  # refresh tokens made before the outage, one per refresh attempt


@pytest.fixture(scope="module")
def own_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server for this module alone: its tests freeze and kill it."""
    with private_postgres(tmp_path_factory.mktemp("pg-auth-outages")) as server:
        yield server


@pytest.fixture
async def auth(own_pg: EmbeddedPostgres) -> AsyncIterator[Auth]:
    with migrated_database(own_pg, "ao_") as url:
        runtime = build(make_settings(url))
        await runtime.start(serve_http=False)
        try:
            await runtime.wait_ready()
            yield runtime
        finally:
            await runtime.stop()


@dataclass(frozen=True)
class Answer:
    what: str
    outcome: str  # "ok", a gRPC status name, or "http <status> <code>"
    seconds: float
    during: bool


class Clients:
    """gRPC and HTTP logins and refreshes, each answer recorded."""

    def __init__(self, stub: Stub, http: httpx.AsyncClient, tokens: list[str]) -> None:
        self.stub = stub
        self.http = http
        self.tokens = tokens
        self.during = asyncio.Event()
        self.answers: list[Answer] = []

    async def timed(self, what: str, call: Callable[[], Awaitable[str]]) -> str:
        loop = asyncio.get_running_loop()
        during, began = self.during.is_set(), loop.time()
        try:
            outcome = await call()
        except grpc.aio.AioRpcError as exc:
            outcome = exc.code().name
        except (httpx.TimeoutException, TimeoutError):
            outcome = "timeout"
        self.answers.append(Answer(what, outcome, loop.time() - began, during))
        return outcome

    async def grpc_login(self) -> str:
        await self.stub.Login(pb.LoginRequest(username=USERNAME, password=PASSWORD), timeout=WAIT_S)
        return "ok"

    async def grpc_refresh(self) -> str:
        await self.stub.Refresh(pb.RefreshRequest(refresh_token=self.tokens.pop()), timeout=WAIT_S)
        return "ok"

    async def http_call(self, path: str, body: dict[str, str]) -> str:
        response = await self.http.post(path, json=body)
        if response.status_code == 200:
            return "ok"
        error = response.json()["error"]
        retry = error.get("retry_after_ms", 0) > 0 and response.headers.get("retry-after")
        return f"http {response.status_code} {error['code']}{'' if retry else ' (no retry)'}"

    async def http_login(self) -> str:
        return await self.http_call("/v1/auth/login", {"username": USERNAME, "password": PASSWORD})

    async def http_refresh(self) -> str:
        return await self.http_call("/v1/auth/refresh", {"refresh_token": self.tokens.pop()})

    async def keep_calling(self, stop: asyncio.Event) -> None:
        calls = [
            ("grpc login", self.grpc_login),
            ("grpc refresh", self.grpc_refresh),
            ("http login", self.http_login),
            ("http refresh", self.http_refresh),
        ]
        for what, call in itertools.cycle(calls):
            if stop.is_set():
                return
            if what.endswith("refresh") and not self.tokens:
                continue
            await self.timed(what, call)
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("outage", ["killed", "frozen-everything", "frozen-children"])
async def test_logins_and_refreshes_during_a_postgresql_outage_are_ok_or_unavailable(
    outage: str,
    own_pg: EmbeddedPostgres,
    auth: Auth,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Concurrent gRPC and HTTP logins and refreshes through a frozen or killed PostgreSQL:
    each answer OK or UNAVAILABLE / 503 `unavailable` within the bound; logins work after."""
    caplog.set_level(logging.WARNING)
    transport = httpx.ASGITransport(app=auth.http_app, client=("203.0.113.7", 40000))
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{auth.grpc_port}") as channel,
        httpx.AsyncClient(transport=transport, base_url="http://auth.test", timeout=WAIT_S) as h,
    ):
        stub: Stub = AuthServiceStub(channel)
        await stub.Register(pb.RegisterRequest(username=USERNAME, password=PASSWORD))
        tokens = [
            (await stub.Login(pb.LoginRequest(username=USERNAME, password=PASSWORD))).refresh_token
            for _ in range(SESSIONS)
        ]
        clients = [Clients(stub, h, tokens[i::3]) for i in range(3)]
        stop = asyncio.Event()
        traffic = [asyncio.create_task(c.keep_calling(stop)) for c in clients]
        try:
            await asyncio.sleep(0.3)
            async with postgres_outage(own_pg, outage)():
                for c in clients:
                    c.during.set()
                await asyncio.sleep(OUTAGE_S)
                for c in clients:
                    c.during.clear()
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.gather(*traffic)

        answers = [a for c in clients for a in c.answers]
        wrong = Counter(
            f"{a.what}: {a.outcome}"
            for a in answers
            if a.outcome not in ("ok", "UNAVAILABLE", "http 503 unavailable")
        )
        slow = [a for a in answers if a.seconds > ANSWER_BOUND_S]
        assert (wrong, slow[:5]) == (Counter(), []), f"{len(slow)} answers over the bound"
        if outage != "frozen-children":  # new connections reach fresh backends, and work
            assert any(a.during and a.outcome != "ok" for a in answers), "the outage was not felt"

        deadline = asyncio.get_running_loop().time() + 60
        while await clients[0].timed("grpc login", clients[0].grpc_login) != "ok":
            assert asyncio.get_running_loop().time() < deadline, "no login after the outage"
            await asyncio.sleep(0.2)
        for _ in range(3):
            assert await clients[0].grpc_login() == "ok"
            assert await clients[0].http_login() == "ok"
    problems = [
        (r.name, r.getMessage(), r.exc_text)
        for r in caplog.records
        if r.levelno >= logging.ERROR
        or "InternalClientError" in (r.getMessage() + (r.exc_text or ""))
    ]
    assert problems == []
