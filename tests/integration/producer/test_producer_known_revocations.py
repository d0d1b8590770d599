"""A producer started after a logout still refuses that session (auth's KV bucket remembers)."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest
import websockets
from nats.js.api import KeyValueConfig
from websockets.exceptions import ConnectionClosed

from rtm.producer.bootstrap import create_app
from rtm.shared.contract import SessionRevoked
from rtm.shared.revocation import REVOKED_SESSIONS_BUCKET
from tests.integration.producer.conftest import settings_for, wait_ready
from tests.support.asgi import running_producer
from tests.support.tokens import TokenFactory


async def test_revocations_made_before_start_are_refused_4503(
    database_url: str, nats_url: str, auth_url: str, tokens: TokenFactory
) -> None:
    user, session = uuid.uuid4(), uuid.uuid4()
    client = await nats.connect(nats_url)
    kv = await client.jetstream().create_key_value(
        KeyValueConfig(bucket=REVOKED_SESSIONS_BUCKET, ttl=905)
    )
    await kv.put(str(session), SessionRevoked(session, user).encode())
    await client.close()
    async with running_producer(create_app(settings_for(database_url, nats_url, auth_url))) as base:
        await wait_ready(base)
        headers = {"Authorization": f"Bearer {tokens.token(user, session)}"}
        for _ in range(50):  # the load runs in the background right after start
            async with websockets.connect(f"ws://{base}/v1/ws", additional_headers=headers) as ws:
                try:
                    await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    pass  # accepted (the producer sends nothing unasked): not loaded yet
                except ConnectionClosed as closed:
                    if closed.rcvd is not None and closed.rcvd.code == 4503:
                        return
            await asyncio.sleep(0.1)
        pytest.fail("the revoked session was accepted")
