"""Auth's correlation ids (issue 5): a gRPC call's `x-request-id` metadata, or a fresh id, is the
`cid` of every line logged while the call is served and the id an internal error names; the
HTTP front does the same with the `X-Request-Id` header."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import grpc
import httpx
import pytest

from rtm.auth.proto import auth_pb2 as pb
from rtm.shared.logging import ContextFilter
from tests.integration.auth.conftest import Stub, sql


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog, its records with the context fields `setup_logging`'s filter would add."""
    context = ContextFilter()
    caplog.handler.addFilter(context)
    caplog.set_level(logging.INFO)
    yield caplog
    caplog.handler.removeFilter(context)


def registered(logs: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in logs.records if r.getMessage().startswith("registered user")]


async def test_a_grpc_call_logs_with_its_request_id(
    stub: Stub, logs: pytest.LogCaptureFixture
) -> None:
    await stub.Register(
        pb.RegisterRequest(username="alice", password="password-1"),
        metadata=(("x-request-id", "grpc-call-1"),),
    )
    await stub.Register(pb.RegisterRequest(username="bob", password="password-1"))
    first, second = registered(logs)
    assert getattr(first, "cid", None) == "grpc-call-1"
    assert uuid.UUID(getattr(second, "cid", "")).version == 7


async def test_a_grpc_internal_error_names_the_calls_id(
    stub: Stub, db_url: str, logs: pytest.LogCaptureFixture
) -> None:
    await sql(db_url, "ALTER TABLE auth.users RENAME TO users_gone")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Register(
                pb.RegisterRequest(username="alice", password="password-1"),
                metadata=(("x-request-id", "grpc-broken-2"),),
            )
    finally:
        await sql(db_url, "ALTER TABLE auth.users_gone RENAME TO users")
    assert caught.value.code() is grpc.StatusCode.INTERNAL
    assert caught.value.details() == "internal error; correlation id grpc-broken-2"
    failure = next(r for r in logs.records if r.getMessage().startswith("unhandled error"))
    assert getattr(failure, "cid", None) == "grpc-broken-2"


async def test_an_http_request_logs_with_its_request_id(
    http: httpx.AsyncClient, logs: pytest.LogCaptureFixture
) -> None:
    response = await http.post(
        "/v1/auth/register",
        json={"username": "carol", "password": "password-1"},
        headers={"X-Request-Id": "http-req-3"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-Id"] == "http-req-3"
    (line,) = registered(logs)
    assert getattr(line, "cid", None) == "http-req-3"
