"""A `resume` that cannot be served never leaves a socket that skips messages.

A consumer that started while PostgreSQL was unreachable (C1 found this after issue 11).

It accepts WebSockets before its database answers. Those sessions used to hold "no read service
yet" for their whole life: their `resume` then failed with an AttributeError, the session
dropped what it held for the conversation and kept the socket, so later live messages were sent
past the client's cursor (the chaos run saw a receiver jump from seq 501 to 560). A `resume`
must instead be answered `unavailable`, like any other outage, with the socket kept at the
client's cursor.

And whatever bug a `resume` trips, the socket is not kept in a state nobody can vouch for: the
client is told `internal` and the connection is closed 1011, so it reconnects and resumes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import NoReturn, cast

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from rtm.consumer.bootstrap import create_app
from rtm.consumer.domain.ports import MessageQueries
from rtm.consumer.settings import ConsumerSettings
from tests.integration.consumer.conftest import settings_for, wait_ready
from tests.support.asgi import running_consumer
from tests.support.tokens import TokenFactory

pytestmark = pytest.mark.asyncio


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_resume_before_postgresql_answers_is_unavailable_and_the_socket_stays(
    nats_url: str, auth_url: str, tokens: TokenFactory
) -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{closed_port()}/rtm"
    settings = settings_for(unreachable, nats_url, auth_url)
    user = uuid.uuid4()
    headers = {"Authorization": f"Bearer {tokens.token(user)}"}
    async with running_consumer(create_app(settings)) as base, asyncio.timeout(10):
        ws = await served(f"ws://{base}/v1/ws", headers)
        await ws.send(json.dumps({"type": "resume", "cursors": {str(uuid.uuid4()): 3}}))
        answer = json.loads(await ws.recv())
        assert (answer["type"], answer.get("code")) == ("error", "unavailable"), answer
        assert answer.get("retry_after_ms", 0) > 0
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv())["type"] == "pong"  # the socket stays
        await ws.close()


async def served(url: str, headers: dict[str, str]) -> websockets.ClientConnection:
    """A socket past `ready`, reconnecting while the consumer refuses with 1012 (it serves once
    subscribed to deliveries, which it is before PostgreSQL answers)."""
    while True:
        ws = await websockets.connect(url, additional_headers=headers)
        try:
            while json.loads(await ws.recv())["type"] != "ready":
                pass
        except ConnectionClosed as closed:
            if closed.rcvd is None or closed.rcvd.code != 1012:
                raise
            await asyncio.sleep(0.05)
            continue
        return ws


class BuggyQueries:
    """Reads that trip a bug: every query raises `RuntimeError`."""

    def __getattr__(self, name: str) -> Callable[..., Awaitable[NoReturn]]:
        async def broken(*_: object, **__: object) -> NoReturn:
            raise RuntimeError(f"a bug in the read path ({name})")

        return broken


async def test_a_bug_during_a_resume_is_answered_internal_and_closes_1011(
    consumer_settings: ConsumerSettings, tokens: TokenFactory
) -> None:
    app = create_app(consumer_settings, queries=cast(MessageQueries, BuggyQueries()))
    headers = {"Authorization": f"Bearer {tokens.token(uuid.uuid4())}"}
    async with running_consumer(app) as base:
        await wait_ready(base)
        async with (
            websockets.connect(f"ws://{base}/v1/ws", additional_headers=headers) as ws,
            asyncio.timeout(10),
        ):
            while json.loads(await ws.recv())["type"] != "ready":
                pass
            await ws.send(json.dumps({"type": "resume", "cursors": {str(uuid.uuid4()): 3}}))
            answer = json.loads(await ws.recv())
            assert (answer["type"], answer.get("code")) == ("error", "internal"), answer
            with pytest.raises(ConnectionClosed) as closed:
                await drain(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1011


async def drain(ws: websockets.ClientConnection) -> None:
    """Read until the connection closes (raises `ConnectionClosed`)."""
    while True:
        await ws.recv()
