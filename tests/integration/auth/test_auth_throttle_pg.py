"""Login throttling on PostgreSQL, over both entrypoints, with a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import grpc
import httpx
import pytest

from rtm.auth.proto import auth_pb2 as pb
from tests.integration.auth.conftest import Stub
from tests.support.clock import FakeClock

GOOD = {"username": "alice", "password": "password-1"}
BAD = {"username": "alice", "password": "password-2"}


async def test_repeated_failures_get_429_with_a_delay_then_pass_after_it(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    await http.post("/v1/auth/register", json=GOOD)
    for _ in range(5):
        assert (await http.post("/v1/auth/login", json=BAD)).status_code == 401
    throttled = await http.post("/v1/auth/login", json=GOOD)
    assert throttled.status_code == 429
    body = throttled.json()["error"]
    assert (body["code"], body["retry_after_ms"]) == ("rate_limited", 1000)
    assert throttled.headers["Retry-After"] == "1"
    clock.advance(seconds=1)
    assert (await http.post("/v1/auth/login", json=BAD)).status_code == 401
    doubled = await http.post("/v1/auth/login", json=GOOD)
    assert doubled.json()["error"]["retry_after_ms"] == 2000
    clock.advance(minutes=15)  # the window passes: the slate is clean
    assert (await http.post("/v1/auth/login", json=GOOD)).status_code == 200
    for _ in range(5):  # and the success reset the account's count
        assert (await http.post("/v1/auth/login", json=BAD)).status_code == 401


async def test_grpc_throttling_is_resource_exhausted_with_retry_metadata(
    stub: Stub,
) -> None:
    await stub.Register(pb.RegisterRequest(**GOOD))
    for _ in range(5):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.Login(pb.LoginRequest(**BAD))
        assert failed.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Login(pb.LoginRequest(**GOOD))
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    # grpc-stubs type metadata entries as an opaque _Metadatum; at runtime they are pairs.
    trailers = dict(cast("Iterable[tuple[str, str]]", caught.value.trailing_metadata() or ()))
    assert trailers["retry-after-ms"] == "1000"


async def test_unknown_names_are_throttled_like_real_ones(
    http: httpx.AsyncClient,
) -> None:
    """Throttling itself must not reveal which accounts exist."""
    await http.post("/v1/auth/register", json=GOOD)
    answers = {}
    for name in ("alice", "ghost"):
        for _ in range(5):
            await http.post("/v1/auth/login", json={"username": name, "password": "nope-nope"})
        answer = await http.post("/v1/auth/login", json={"username": name, "password": "nope-nope"})
        answers[name] = (answer.status_code, answer.json())
    assert answers["alice"] == answers["ghost"]
    assert answers["alice"][0] == 429
