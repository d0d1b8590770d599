"""Revoked sessions: open sockets close with 4503, and new ones are refused, even when the
revocation happened before this consumer started."""

from __future__ import annotations

import asyncio
import uuid

import nats
import websockets
from nats.aio.client import Client as NatsClient
from nats.js.api import KeyValueConfig

from rtm.consumer.bootstrap import create_app
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.contract import SESSION_REVOKED, SessionRevoked
from rtm.shared.revocation import REVOKED_SESSIONS_BUCKET
from tests.integration.consumer.conftest import wait_ready
from tests.integration.consumer.test_delivery import next_frame
from tests.integration.consumer.test_ws_protocol import closed_with
from tests.support.asgi import running_consumer
from tests.support.tokens import TokenFactory


async def test_a_revocation_event_closes_the_sessions_sockets_within_5s(
    consumer: str, nc: NatsClient, tokens: TokenFactory
) -> None:
    user, session, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    url = f"ws://{consumer}/v1/ws"
    revoked = {"Authorization": f"Bearer {tokens.token(user, session)}"}
    kept = {"Authorization": f"Bearer {tokens.token(user, other)}"}
    async with (
        websockets.connect(url, additional_headers=revoked) as ws,
        websockets.connect(url, additional_headers=kept) as survivor,
    ):
        await next_frame(ws, "ready")
        await next_frame(survivor, "ready")
        began = asyncio.get_running_loop().time()
        await nc.publish(SESSION_REVOKED, SessionRevoked(session, user).encode())
        assert await closed_with(ws) == 4503
        assert asyncio.get_running_loop().time() - began < 5
        await survivor.send('{"type":"ping"}')
        assert (await next_frame(survivor, "pong"))["type"] == "pong"
    async with websockets.connect(url, additional_headers=revoked) as again:
        assert await closed_with(again) == 4503


async def test_revocations_made_before_start_are_loaded_from_the_kv_bucket(
    consumer_settings: ConsumerSettings, nats_url: str, tokens: TokenFactory
) -> None:
    user, session = uuid.uuid4(), uuid.uuid4()
    client = await nats.connect(nats_url)
    kv = await client.jetstream().create_key_value(
        KeyValueConfig(bucket=REVOKED_SESSIONS_BUCKET, ttl=905)
    )
    await kv.put(str(session), SessionRevoked(session, user).encode())
    await client.close()
    async with running_consumer(create_app(consumer_settings)) as base:
        await wait_ready(base)
        headers = {"Authorization": f"Bearer {tokens.token(user, session)}"}
        async with websockets.connect(f"ws://{base}/v1/ws", additional_headers=headers) as ws:
            assert await closed_with(ws) == 4503
