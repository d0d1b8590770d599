"""Correlation ids (issue 5, observability): one per HTTP request, taken from a sane
`X-Request-Id` or generated, echoed, logged as `cid`; one per WebSocket connection as `conn`;
both printed by the JSON and text formatters."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message
from starlette.websockets import WebSocket

from rtm.shared.health import Readiness
from rtm.shared.http import REQUEST_ID_HEADER, create_http_app
from rtm.shared.logging import (
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    context_field,
    correlation_id,
    log_context,
)
from rtm.shared.settings import CommonSettings
from rtm.shared.ws import bind_connection_log_context

logger = logging.getLogger("tests.correlation")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog, its records with the context fields `setup_logging`'s filter would add."""
    context = ContextFilter()
    caplog.handler.addFilter(context)
    caplog.set_level(logging.DEBUG)
    yield caplog
    caplog.handler.removeFilter(context)


def make_app() -> FastAPI:
    app = create_http_app(
        title="t", version="1", description="d", settings=CommonSettings(), readiness=Readiness()
    )

    @app.get("/work")
    async def work() -> dict[str, str]:
        logger.info("working")
        await asyncio.sleep(0)  # still inside the request afterwards
        logger.info("still working")
        return {"cid": context_field("cid") or ""}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    return app


def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


@pytest.mark.parametrize(
    "offered",
    ["req-1", "a.b_c-D9", "x" * 64, str(uuid.uuid4())],
    ids=["short", "chars", "64", "uuid"],
)
def test_a_sane_request_id_is_kept(offered: str) -> None:
    assert correlation_id(offered) == offered


@pytest.mark.parametrize(
    "offered",
    [None, "", "x" * 65, "has space", "new\nline", 'quote"', "ümlaut", "semi;colon"],
    ids=["none", "empty", "65", "space", "newline", "quote", "non-ascii", "semicolon"],
)
def test_anything_else_gets_a_fresh_id(offered: str | None) -> None:
    fresh = correlation_id(offered)
    assert fresh != offered
    assert uuid.UUID(fresh).version == 7


async def test_the_request_id_is_echoed_and_on_every_line_of_the_request(
    logs: pytest.LogCaptureFixture,
) -> None:
    async with client() as http:
        response = await http.get("/work", headers={REQUEST_ID_HEADER: "trace-42"})
    assert response.headers[REQUEST_ID_HEADER] == "trace-42"
    assert response.json() == {"cid": "trace-42"}
    lines = [r for r in logs.records if r.name == logger.name]
    assert [(r.getMessage(), getattr(r, "cid", None)) for r in lines] == [
        ("working", "trace-42"),
        ("still working", "trace-42"),
    ]
    assert context_field("cid") is None  # the request's context ended with it


async def test_each_request_without_a_usable_id_gets_its_own() -> None:
    async with client() as http:
        first = await http.get("/work")
        second = await http.get("/work", headers={REQUEST_ID_HEADER: "bad id!"})
        health = await http.get("/health")
    ids = [r.headers[REQUEST_ID_HEADER] for r in (first, second, health)]
    assert len(set(ids)) == 3
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert first.json() == {"cid": ids[0]}


async def test_cors_preflight_answers_carry_and_expose_it() -> None:
    async with client() as http:
        response = await http.options(
            "/work",
            headers={
                "Origin": "http://app.example",
                "Access-Control-Request-Method": "GET",
                REQUEST_ID_HEADER: "pre-1",
            },
        )
        simple = await http.get("/work", headers={"Origin": "http://app.example"})
    assert response.headers[REQUEST_ID_HEADER] == "pre-1"
    assert REQUEST_ID_HEADER.lower() in simple.headers["access-control-expose-headers"].lower()


async def test_an_internal_error_names_the_request_id(logs: pytest.LogCaptureFixture) -> None:
    async with client() as http:
        response = await http.get("/boom", headers={REQUEST_ID_HEADER: "req-boom"})
    assert response.status_code == 500
    assert response.json()["error"] == {
        "code": "internal",
        "message": "internal error; correlation id req-boom",
    }
    assert response.headers[REQUEST_ID_HEADER] == "req-boom"
    failure = next(r for r in logs.records if r.getMessage().startswith("unhandled error"))
    assert getattr(failure, "cid", None) == "req-boom"
    assert failure.exc_info is not None


def upgrade(*headers: tuple[bytes, bytes]) -> WebSocket:
    """A WebSocket as a handler sees it before accepting (nothing is sent or received)."""

    async def receive() -> Message:
        raise AssertionError("not used")

    async def send(_: Message) -> None:
        raise AssertionError("not used")

    return WebSocket(
        {"type": "websocket", "path": "/v1/ws", "headers": list(headers)}, receive, send
    )


async def test_a_websocket_connection_has_one_id_as_conn(
    logs: pytest.LogCaptureFixture,
) -> None:
    async def serve(request_id: bytes) -> str:  # as a connection's task does
        conn = bind_connection_log_context(upgrade((b"x-request-id", request_id)))
        logger.info("connected")
        assert context_field("conn") == conn
        return conn

    assert await asyncio.create_task(serve(b"conn-7")) == "conn-7"
    fresh = await asyncio.create_task(serve(b"bad id"))
    assert uuid.UUID(fresh).version == 7
    connected = [r for r in logs.records if r.getMessage() == "connected"]
    assert [getattr(r, "conn", None) for r in connected] == ["conn-7", fresh]
    assert not any(hasattr(r, "cid") for r in connected)
    assert context_field("conn") is None


async def test_tasks_started_inside_a_context_keep_it() -> None:
    seen: list[str | None] = []

    async def child() -> None:
        await asyncio.sleep(0)
        seen.append(context_field("conn"))

    with log_context(conn="c-1"):
        task = asyncio.create_task(child())
    await task
    assert seen == ["c-1"]
    assert context_field("conn") is None


def format_with(formatter: logging.Formatter, **extra: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    log = logging.getLogger("tests.correlation.format")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with log_context(cid="req-9", conn="conn-3"):
            log.info("sent", extra=extra)
    finally:
        log.removeHandler(handler)
        log.propagate = True
    return stream.getvalue()


def test_the_json_formatter_prints_the_context_and_extras() -> None:
    line = json.loads(format_with(JsonFormatter("producer"), message_id="m-1"))
    assert line["msg"] == "sent"
    assert (line["cid"], line["conn"], line["message_id"]) == ("req-9", "conn-3", "m-1")
    assert line["service"] == "producer"


def test_the_text_formatter_prints_the_context_and_extras() -> None:
    line = format_with(TextFormatter("consumer"), client_msg_id="k-2")
    assert "sent" in line
    assert "cid=req-9" in line
    assert "conn=conn-3" in line
    assert "client_msg_id=k-2" in line


def test_an_explicit_extra_wins_over_the_context() -> None:
    line = json.loads(format_with(JsonFormatter("auth"), cid="explicit"))
    assert line["cid"] == "explicit"
