"""PostgreSQL down at start, or lost later: auth stays up, says not ready, and recovers alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rtm.auth.bootstrap import build
from rtm.auth.proto import auth_pb2 as pb
from rtm.auth.proto.auth_pb2_grpc import AuthServiceStub
from tests.integration.auth.conftest import make_settings
from tests.integration.auth.tcp_proxy import SwitchableProxy

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def proxy(db_url: str) -> AsyncIterator[SwitchableProxy]:
    target = urlsplit(db_url)
    started = SwitchableProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await started.start()
    yield started
    await started.stop()


async def health_becomes(channel: grpc.aio.Channel, status: int) -> None:
    """Watch the health stream until it reports `status` (bounded by the caller's timeout)."""
    health = health_pb2_grpc.HealthStub(channel)
    async for reply in health.Watch(health_pb2.HealthCheckRequest(service="")):
        if reply.status == status:
            return


async def test_auth_starts_without_postgres_and_recovers_twice(
    db_url: str, proxy: SwitchableProxy
) -> None:
    via_proxy = db_url.replace(f":{urlsplit(db_url).port}/", f":{proxy.port}/")
    runtime = build(make_settings(via_proxy))
    await runtime.start(serve_http=False)  # PostgreSQL "down": start must not fail
    transport = httpx.ASGITransport(app=runtime.http_app)
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{runtime.grpc_port}") as channel,
            httpx.AsyncClient(transport=transport, base_url="http://auth.test") as http,
        ):
            stub = AuthServiceStub(channel)
            await asyncio.wait_for(health_becomes(channel, NOT_SERVING), 5)
            ready = await http.get("/health/ready")
            assert ready.status_code == 503
            assert {"postgres", "signing_keys"} <= set(ready.json()["failing"])
            down = await http.post("/v1/auth/register", json={"username": "al", "password": "x"})
            assert down.status_code in (422, 503)  # validation may answer first
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Register(pb.RegisterRequest(username="alice", password="password-1"))
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
            assert (await http.get("/.well-known/jwks.json")).status_code == 503  # not "no keys"

            proxy.set_up()
            await runtime.wait_ready(timeout=10)
            await asyncio.wait_for(health_becomes(channel, SERVING), 5)
            await stub.Register(pb.RegisterRequest(username="alice", password="password-1"))

            proxy.set_down()  # lost while running
            await asyncio.wait_for(health_becomes(channel, NOT_SERVING), 5)
            with pytest.raises(grpc.aio.AioRpcError) as lost:
                await stub.Login(pb.LoginRequest(username="alice", password="password-1"))
            assert lost.value.code() is grpc.StatusCode.UNAVAILABLE
            unavailable = await http.post(
                "/v1/auth/login", json={"username": "alice", "password": "password-1"}
            )
            assert (unavailable.status_code, unavailable.json()["error"]["code"]) == (
                503,
                "unavailable",
            )

            proxy.set_up()  # back: no restart needed
            await asyncio.wait_for(health_becomes(channel, SERVING), 5)
            await stub.Login(pb.LoginRequest(username="alice", password="password-1"))
    finally:
        await runtime.stop()
