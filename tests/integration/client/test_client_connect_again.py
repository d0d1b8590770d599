"""`Client.connect()` after a socket failed for good (4503 revoked, 4504 too many connections,
a session that ended): a later `connect()` opens new sockets instead of returning at once over
the dead one, so an application can sign in again and go on with the same client (and its
outbox). Scripted WebSocket servers stand in for the producer and the consumer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from websockets.asyncio.server import ServerConnection

from rtm.client import Backoff, Client, ConnectionState, RtmError, Timing, Tokens
from tests.integration.client.test_client_connection import (
    Script,
    close_with,
    running,
    stay_open,
)

FAST = Timing(ping_interval_s=5, pong_timeout_s=5, handshake_timeout_s=2)


def token_for(sub: str) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'EdDSA'})}.{part({'sub': sub})}.signature"


def ready_as(kind: str) -> Script:
    async def script(socket: ServerConnection) -> None:
        await socket.send(json.dumps({"type": kind, "user_id": "u1"}))
        await stay_open(socket)

    return script


async def test_connect_again_after_a_socket_failed_for_good_opens_new_sockets() -> None:
    async with (
        running(close_with(4504), ready_as("auth_ok")) as producer,
        running(ready_as("ready")) as consumer,
    ):

        def base(ws_url: str) -> str:
            return ws_url.replace("ws://", "http://").removesuffix("/v1/ws")

        client = Client(
            "http://127.0.0.1:9",
            base(producer.url),
            base(consumer.url),
            backoff=Backoff(base_s=0.01, cap_s=0.02),
            timing=FAST,
        )
        try:
            client.use_tokens(Tokens(token_for("u1"), None, time.time() + 900))
            with pytest.raises(RtmError) as refused:
                await client.connect()
            assert refused.value.code == "closed"
            assert client.states["producer"] is ConnectionState.FAILED
            async with asyncio.timeout(5):
                await client.connect()
            assert client.states == {
                "producer": ConnectionState.OPEN,
                "consumer": ConnectionState.OPEN,
            }
            assert len(producer.auth_tokens) == 2, "a second producer socket was opened"
        finally:
            await client.close()
