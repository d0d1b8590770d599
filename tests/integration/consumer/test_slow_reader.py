"""A reader that stops reading is cut off with 4008, and others are not slowed down."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
import websockets
from nats.aio.client import Client as NatsClient

from rtm.consumer.bootstrap import create_app
from rtm.consumer.settings import ConsumerSettings
from tests.integration.consumer.conftest import publish, wait_ready
from tests.integration.consumer.test_delivery import next_frame
from tests.support.asgi import running_consumer
from tests.support.db import create_conversation
from tests.support.tokens import TokenFactory


@pytest.fixture
async def small_queue_consumer(consumer_settings: ConsumerSettings) -> AsyncIterator[str]:
    settings = consumer_settings.model_copy(
        update={"send_queue_bytes": 64 * 1024, "resume_grace_s": 0}
    )
    async with running_consumer(create_app(settings)) as base:
        await wait_ready(base)
        yield base


def stalled_client(base: str, token: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again."""
    host, port = base.split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /v1/ws HTTP/1.1\r\nHost: {base}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    response = sock.recv(1024)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


async def test_a_reader_that_stops_reading_is_cut_off_and_others_keep_receiving(
    small_queue_consumer: str, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    alice, slow, fast = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [alice, slow, fast])
    stalled = await asyncio.to_thread(stalled_client, small_queue_consumer, tokens.token(slow))
    headers = {"Authorization": f"Bearer {tokens.token(fast)}"}
    try:
        async with websockets.connect(
            f"ws://{small_queue_consumer}/v1/ws", additional_headers=headers
        ) as fast_ws:
            await next_frame(fast_ws, "ready")
            metrics_before = await _slow_closes(small_queue_consumer)
            total, body = 700, "€" * 4000  # 12 KB per frame on the wire
            sender = asyncio.create_task(_send(nc, conversation, alice, body, total))
            for seen in range(1, total + 1):  # the attentive reader gets all, in order
                frame = await next_frame(fast_ws, "message", timeout=30)
                assert frame["seq"] == seen
            await sender
        assert await _slow_closes(small_queue_consumer) == metrics_before + 1
    finally:
        stalled.close()


async def _send(
    nc: NatsClient, conversation: uuid.UUID, sender: uuid.UUID, body: str, total: int
) -> None:
    for _ in range(total):
        await publish(nc, conversation, sender, body)


async def _slow_closes(base: str) -> float:
    import httpx

    from tests.support.metrics import sample

    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://{base}/metrics")).text
    return sample(text, "rtm_consumer_slow_consumer_closes_total")
