"""The cursors a `Client` stores follow what the application has taken from `events()`, not
what the SDK has queued for it: a process that dies with messages still queued must get them
again from the next one (docs/python-sdk.md: "may be delivered again", never lost). A scripted
consumer sends three messages at once; the application handles one.
"""

from __future__ import annotations

import asyncio
import json
import time

from websockets.asyncio.server import ServerConnection

from rtm.client import Client, MemoryStore, MessageEvent, Tokens
from tests.integration.client.test_client_connect_again import FAST, ready_as, token_for
from tests.integration.client.test_client_connection import running, stay_open

CHAT = "0193a0b0-0000-7000-8000-000000000001"


def message(seq: int) -> dict[str, object]:
    return {
        "type": "message",
        "message_id": f"0193a0b0-0000-7000-8000-0000000001{seq:02d}",
        "conversation_id": CHAT,
        "seq": seq,
        "sender_id": "0193a0b0-0000-7000-8000-00000000000b",
        "body": f"body {seq}",
        "client_msg_id": None,
        "sent_at": "2026-12-04T09:00:00.000Z",
    }


async def three_messages(socket: ServerConnection) -> None:
    await socket.send(json.dumps({"type": "ready", "user_id": "u1"}))
    for seq in (1, 2, 3):
        await socket.send(json.dumps(message(seq)))
    await stay_open(socket)


async def test_cursors_stored_are_those_of_messages_the_application_took() -> None:
    store = MemoryStore()
    async with running(ready_as("auth_ok")) as producer, running(three_messages) as consumer:

        def base(ws_url: str) -> str:
            return ws_url.replace("ws://", "http://").removesuffix("/v1/ws")

        client = Client(
            "http://127.0.0.1:9", base(producer.url), base(consumer.url), store=store, timing=FAST
        )
        client.use_tokens(Tokens(token_for("u1"), None, time.time() + 900))
        events = client.events()
        try:
            await client.connect()
            taken: list[int] = []
            async with asyncio.timeout(5):
                while len(taken) < 2:
                    event = await anext(events)
                    if isinstance(event, MessageEvent):
                        taken.append(event.message.seq)
                while client.cursors() != {CHAT: 3}:  # noqa: ASYNC110 (3 queued, not taken)
                    await asyncio.sleep(0.01)
            assert taken == [1, 2]
        finally:
            await client.close()  # the process ends here, 2 being handled and 3 never taken
    assert await store.load_cursors(client.user_id) == {CHAT: 1}
