"""The consumer WebSocket's handshake, close codes and error frames (docs/protocol.md,
"3. Authentication", "7. Error codes", "8. WebSocket close codes")."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import jwt
import pytest
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from rtm.consumer.bootstrap import create_app
from rtm.consumer.settings import ConsumerSettings
from tests.integration.consumer.conftest import wait_ready
from tests.integration.consumer.test_delivery import next_frame
from tests.support.asgi import running_consumer
from tests.support.tokens import TokenFactory


@pytest.fixture
async def strict_consumer(consumer_settings: ConsumerSettings) -> AsyncIterator[str]:
    settings = consumer_settings.model_copy(
        update={
            "auth_timeout_s": 0.5,
            "max_connections_per_user": 2,
            "allowed_origins": ["https://app.example"],
        }
    )
    async with running_consumer(create_app(settings)) as base:
        await wait_ready(base)
        yield base


async def closed_with(ws: websockets.ClientConnection, timeout: float = 5) -> int:
    async def drain() -> None:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)

    with pytest.raises(ConnectionClosed) as info:
        await drain()
    assert info.value.rcvd is not None
    return info.value.rcvd.code


async def test_no_auth_frame_in_time_closes_4502(strict_consumer: str) -> None:
    async with websockets.connect(f"ws://{strict_consumer}/v1/ws") as ws:
        assert await closed_with(ws) == 4502


async def test_auth_frame_authenticates_and_is_answered(
    strict_consumer: str, tokens: TokenFactory
) -> None:
    user = uuid.uuid4()
    async with websockets.connect(f"ws://{strict_consumer}/v1/ws") as ws:
        await ws.send(json.dumps({"type": "auth", "token": tokens.token(user, ttl=600)}))
        ok = await next_frame(ws, "auth_ok")
        ready = await next_frame(ws, "ready")
        await ws.send(json.dumps({"type": "ping"}))
        assert (await next_frame(ws, "pong")) == {"type": "pong"}
        await ws.send(json.dumps({"type": "auth", "token": tokens.token(user, ttl=900)}))
        refreshed = await next_frame(ws, "auth_ok")
    assert ready["user_id"] == str(user)
    assert refreshed["exp"] > ok["exp"]


@pytest.mark.parametrize(
    ("token_kind", "code"),
    [("garbage", 4500), ("expired", 4505), ("wrong_aud", 4500), ("other_key", 4500)],
)
async def test_bad_tokens_close_with_their_code(
    strict_consumer: str, tokens: TokenFactory, token_kind: str, code: int
) -> None:
    user = uuid.uuid4()
    token = {
        "garbage": "not.a.jwt",
        "expired": tokens.token(user, ttl=-60),
        "wrong_aud": tokens.token(user, aud="someone-else"),
        "other_key": TokenFactory(kid=tokens.kid).token(user),
    }[token_kind]
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(
        f"ws://{strict_consumer}/v1/ws", additional_headers=headers
    ) as ws:
        assert await closed_with(ws) == code


def expiry_of(token: str) -> int:
    exp: int = jwt.decode(token, options={"verify_signature": False})["exp"]
    return exp


async def closed_4505_at(ws: websockets.ClientConnection, exp: int) -> None:
    """The socket is closed 4505 once `exp` has passed: not before, at most ~1 s after."""

    async def drain() -> None:
        while True:
            await asyncio.wait_for(ws.recv(), exp - time.time() + 5)

    with pytest.raises(ConnectionClosed) as info:
        await drain()
    closed_at = time.time()
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (
        4505,
        "token expired: refresh and reconnect",
    )
    assert exp <= closed_at < exp + 1.5


async def test_a_token_expiring_while_connected_closes_4505_when_it_does(
    strict_consumer: str, tokens: TokenFactory
) -> None:
    token = tokens.token(uuid.uuid4(), ttl=2)
    exp = expiry_of(token)
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(
        f"ws://{strict_consumer}/v1/ws", additional_headers=headers
    ) as ws:
        await next_frame(ws, "ready")
        await closed_4505_at(ws, exp)


async def test_a_refreshed_token_keeps_the_connection_past_the_first_expiry(
    strict_consumer: str, tokens: TokenFactory
) -> None:
    user = uuid.uuid4()
    first = tokens.token(user, ttl=3)  # outlives connecting on a loaded machine
    headers = {"Authorization": f"Bearer {first}"}
    async with websockets.connect(
        f"ws://{strict_consumer}/v1/ws", additional_headers=headers
    ) as ws:
        await next_frame(ws, "ready")
        await ws.send(json.dumps({"type": "auth", "token": tokens.token(user, ttl=600)}))
        await next_frame(ws, "auth_ok")
        await asyncio.sleep(expiry_of(first) - time.time() + 1.5)
        await ws.send(json.dumps({"type": "ping"}))
        assert (await next_frame(ws, "pong")) == {"type": "pong"}


async def test_a_refresh_with_a_shorter_lived_token_closes_at_its_expiry(
    strict_consumer: str, tokens: TokenFactory
) -> None:
    user = uuid.uuid4()
    headers = {"Authorization": f"Bearer {tokens.token(user, ttl=600)}"}
    async with websockets.connect(
        f"ws://{strict_consumer}/v1/ws", additional_headers=headers
    ) as ws:
        await next_frame(ws, "ready")
        await ws.send(json.dumps({"type": "auth", "token": tokens.token(user, ttl=3)}))
        exp = (await next_frame(ws, "auth_ok"))["exp"]
        await closed_4505_at(ws, exp)


async def test_disallowed_origin_is_refused_1008(
    strict_consumer: str, tokens: TokenFactory
) -> None:
    headers = {"Authorization": f"Bearer {tokens.token(uuid.uuid4())}"}
    async with websockets.connect(
        f"ws://{strict_consumer}/v1/ws",
        additional_headers=headers,
        origin=Origin("https://evil.example"),
    ) as ws:
        assert await closed_with(ws) == 1008


async def test_too_many_connections_for_one_user_closes_4504(
    strict_consumer: str, tokens: TokenFactory
) -> None:
    headers = {"Authorization": f"Bearer {tokens.token(uuid.uuid4())}"}
    url = f"ws://{strict_consumer}/v1/ws"
    async with (
        websockets.connect(url, additional_headers=headers) as a,
        websockets.connect(url, additional_headers=headers) as b,
    ):
        await next_frame(a, "ready")
        await next_frame(b, "ready")
        async with websockets.connect(url, additional_headers=headers) as c:
            assert await closed_with(c) == 4504


async def test_bad_frames_get_error_frames_and_the_connection_stays(
    strict_consumer: str, tokens: TokenFactory
) -> None:
    headers = {"Authorization": f"Bearer {tokens.token(uuid.uuid4())}"}
    cases = [
        ("{", "invalid_json"),
        ("[1,2]", "invalid_message"),
        ('{"no_type": 1}', "invalid_message"),
        ('{"type": "launch"}', "unknown_type"),
        ('{"type": "resume", "cursors": {"not-a-uuid": 1}}', "validation_failed"),
        ('{"type": "resume", "cursors": {}, "cursors": {}}', "validation_failed"),
        ('{"type": "resume", "cursors": {"' + str(uuid.uuid4()) + '": NaN}}', "validation_failed"),
        ("[" * 5000 + "]" * 5000, "invalid_json"),
    ]
    async with websockets.connect(
        f"ws://{strict_consumer}/v1/ws", additional_headers=headers
    ) as ws:
        await next_frame(ws, "ready")
        for text, code in cases:
            await ws.send(text)
            error = await next_frame(ws, "error")
            assert error["code"] == code, text[:40]
        await ws.send(b"\x00\x01")
        assert (await next_frame(ws, "error"))["code"] == "invalid_message"
        await ws.send(json.dumps({"type": "ping"}))
        assert (await next_frame(ws, "pong"))["type"] == "pong"


async def test_ten_protocol_errors_in_a_minute_close_4501(
    strict_consumer: str, tokens: TokenFactory
) -> None:
    headers = {"Authorization": f"Bearer {tokens.token(uuid.uuid4())}"}
    async with websockets.connect(
        f"ws://{strict_consumer}/v1/ws", additional_headers=headers
    ) as ws:
        await next_frame(ws, "ready")
        for _ in range(10):
            await ws.send("{")
        assert await closed_with(ws) == 4501


async def test_oversized_frame_closes_1009(strict_consumer: str, tokens: TokenFactory) -> None:
    headers = {"Authorization": f"Bearer {tokens.token(uuid.uuid4())}"}
    async with websockets.connect(
        f"ws://{strict_consumer}/v1/ws", additional_headers=headers, max_size=None
    ) as ws:
        await next_frame(ws, "ready")
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 70_000}))
        assert await closed_with(ws) == 1009
