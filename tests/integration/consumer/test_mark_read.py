"""`POST /v1/conversations/{id}/read` (issue 14): mark a conversation read over HTTP.

On a real consumer (NATS, PostgreSQL): the answer says what is stored (the highest marker ever
given: idempotent, never backwards), other members' sockets get the `read` event, and bad input
gets its documented code (401, 404 `forbidden`, 422 `validation_failed` naming `seq`); a seq past
the conversation's last message marks what is stored, not what is to come.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from nats.aio.client import Client as NatsClient

from tests.integration.consumer.conftest import publish
from tests.integration.consumer.test_delivery import next_frame
from tests.integration.consumer.test_live_events import connect
from tests.support.db import create_conversation
from tests.support.tokens import TokenFactory


async def stored_up_to(http: httpx.AsyncClient, conversation: uuid.UUID, seq: int) -> None:
    deadline = time.monotonic() + 10
    while (await http.get(f"/v1/conversations/{conversation}")).json()["last_seq"] < seq:
        assert time.monotonic() < deadline, f"seq {seq} not stored in 10 s"
        await asyncio.sleep(0.05)


def client(consumer: str, token: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=f"http://{consumer}", headers=headers, timeout=10)


async def test_marking_read_stores_the_highest_seq_and_tells_the_members(
    consumer: str, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [alice, bob])
    for body in ("one", "two", "three"):
        await publish(nc, conversation, alice, body)
    async with client(consumer, tokens.token(bob)) as http, connect(consumer, tokens, alice) as ws:
        await next_frame(ws, "ready")
        await stored_up_to(http, conversation, 3)
        url = f"/v1/conversations/{conversation}/read"

        marked = await http.post(url, json={"seq": 2})
        assert marked.status_code == 200, marked.text
        assert marked.json() == {
            "conversation_id": str(conversation),
            "read_seq": 2,
            "last_seq": 3,
            "unread_count": 1,
        }
        event = await next_frame(ws, "read")
        assert event == {
            "type": "read",
            "conversation_id": str(conversation),
            "user_id": str(bob),
            "seq": 2,
        }
        again = await http.post(url, json={"seq": 2})  # idempotent
        lower = await http.post(url, json={"seq": 1})  # never backwards
        assert [again.json()["read_seq"], lower.json()["read_seq"]] == [2, 2]
        listed = (await http.get(f"/v1/conversations/{conversation}")).json()
        assert (listed["read_seq"], listed["unread_count"]) == (2, 1)
        assert (await http.post(url, json={"seq": 3})).json()["unread_count"] == 0


async def test_bad_marks_get_their_documented_codes(
    consumer: str, database_url: str, tokens: TokenFactory
) -> None:
    alice, bob, carol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [alice, bob])
    url = f"/v1/conversations/{conversation}/read"

    def error(response: httpx.Response) -> tuple[int, Any, Any]:
        body = response.json()["error"]
        return response.status_code, body["code"], body.get("field")

    async with client(consumer, tokens.token(bob)) as http:
        past_head = await http.post(url, json={"seq": 5})  # nothing stored yet: marks nothing
        assert past_head.json() == {
            "conversation_id": str(conversation),
            "read_seq": 0,
            "last_seq": 0,
            "unread_count": 0,
        }
        for bad in ({"seq": -1}, {"seq": "1"}, {"seq": 1.5}, {"seq": True}, {"seq": None}, {}):
            assert error(await http.post(url, json=bad)) == (422, "validation_failed", "seq"), bad
        unknown_field = await http.post(url, json={"seq": 0, "at": 1})
        assert error(unknown_field) == (422, "validation_failed", "at")
        assert (await http.post(url, json={"seq": 0})).json()["read_seq"] == 0
        assert (await http.post(url, json={"seq": 2**70})).json()["read_seq"] == 0
        broken = await http.post(url, content=b"{", headers={"Content-Type": "application/json"})
        assert error(broken) == (400, "invalid_json", None)
        # Strict JSON as on every other route (docs/protocol.md, "7. Error codes").
        for strict in (b'{"seq":1,"seq":2}', b'{"seq":NaN}'):
            refused = await http.post(
                url, content=strict, headers={"Content-Type": "application/json"}
            )
            assert error(refused)[:2] == (422, "validation_failed"), strict
        not_uuid = await http.post("/v1/conversations/nope/read", json={"seq": 0})
        assert error(not_uuid)[:2] == (422, "validation_failed")
        missing = await http.post(f"/v1/conversations/{uuid.uuid4()}/read", json={"seq": 0})
        assert error(missing) == (404, "forbidden", None)
    async with client(consumer, tokens.token(carol)) as http:
        assert error(await http.post(url, json={"seq": 0})) == (404, "forbidden", None)
    async with client(consumer, None) as http:
        assert error(await http.post(url, json={"seq": 0})) == (401, "unauthorized", None)
