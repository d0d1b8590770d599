"""`Client.close()` is final (docs/python-sdk.md): a `send()` waiting for its ack when the client
closes, and one made after, raise `closed` instead of waiting for ever; the sends stay in the
store for the next client. A scripted producer that never acks stands in for a slow one.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from rtm.client import Client, MemoryStore, RtmError, Tokens
from tests.integration.client.test_client_connect_again import FAST, ready_as, token_for
from tests.integration.client.test_client_connection import running

CHAT = "0193a0b0-0000-7000-8000-000000000001"


async def test_sends_waiting_at_close_and_after_it_raise_closed() -> None:
    store = MemoryStore()
    async with running(ready_as("auth_ok")) as producer, running(ready_as("ready")) as consumer:

        def base(ws_url: str) -> str:
            return ws_url.replace("ws://", "http://").removesuffix("/v1/ws")

        client = Client(
            "http://127.0.0.1:9", base(producer.url), base(consumer.url), store=store, timing=FAST
        )
        client.use_tokens(Tokens(token_for("u1"), None, time.time() + 900))
        await client.connect()
        waiting = asyncio.create_task(client.send(CHAT, "never acked"))
        await asyncio.sleep(0.1)
        await client.close()
        async with asyncio.timeout(2):
            with pytest.raises(RtmError) as at_close:
                await waiting
            with pytest.raises(RtmError) as after:
                await client.send(CHAT, "after close")
        assert (at_close.value.code, after.value.code) == ("closed", "closed")
    kept = await store.load_outbox("u1")
    assert [e.body for e in kept] == ["never acked"], "kept for the next client"
