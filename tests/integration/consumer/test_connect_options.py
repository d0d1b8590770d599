"""Cursors given with the connection, and no hidden hold (issue 14), on a real consumer.

The consumer runs with a 30 s grace period, so a connection that held its live messages for a
resume that never comes would time these tests out: every live message here must come at once
unless the client asked for the hold (`?resume=1`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import websockets
from nats.aio.client import Client as NatsClient

from rtm.consumer.settings import ConsumerSettings
from tests.integration.consumer.conftest import publish
from tests.integration.consumer.test_delivery import next_frame
from tests.integration.consumer.test_live_events import consumer_with
from tests.support.db import create_conversation
from tests.support.tokens import TokenFactory

GRACE_S = 30.0


def connect(base: str, tokens: TokenFactory, user: uuid.UUID, query: str = "") -> Any:
    headers = {"Authorization": f"Bearer {tokens.token(user)}"}
    return websockets.connect(f"ws://{base}/v1/ws{query}", additional_headers=headers)


async def frames_until(ws: Any, kind: str, timeout: float = 10) -> list[dict[str, Any]]:
    """Every frame up to and including the first of `kind` (presence frames left out)."""
    seen: list[dict[str, Any]] = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] != "presence":
            seen.append(frame)
        if frame["type"] == kind:
            return seen


def messages(frames: list[dict[str, Any]]) -> list[int]:
    return [f["seq"] for f in frames if f["type"] == "message"]


async def stored(nc: NatsClient, conversation: uuid.UUID, sender: uuid.UUID, n: int) -> None:
    for i in range(n):
        await publish(nc, conversation, sender, f"m{i}")


async def wait_head(ws: Any, seq: int) -> None:
    """Read live messages until `seq` has come (what a test publishes before it connects is
    seen by a first socket, so the next one's resume finds it stored)."""
    while (await next_frame(ws, "message"))["seq"] < seq:
        pass


@pytest.fixture
async def consumer_base(consumer_settings: ConsumerSettings) -> Any:
    async with consumer_with(consumer_settings, resume_grace_s=GRACE_S) as base:
        yield base


async def test_a_connection_without_cursors_gets_live_messages_at_once(
    consumer_base: str, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [alice, bob])
    async with connect(consumer_base, tokens, bob) as ws:
        await next_frame(ws, "ready")
        await publish(nc, conversation, alice, "hello")
        frame = await next_frame(ws, "message", timeout=GRACE_S / 3)
    assert (frame["seq"], frame["body"]) == (1, "hello")


async def test_cursors_with_the_connection_resume_at_once_then_live_follows(
    consumer_base: str, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    conversation, other = (
        await create_conversation(database_url, [alice, bob]),
        await create_conversation(database_url, [alice, bob]),
    )
    async with connect(consumer_base, tokens, bob) as first:
        await next_frame(first, "ready")
        await stored(nc, conversation, alice, 4)
        await wait_head(first, 4)

    query = f"?cursors={conversation}:1,{uuid.uuid4()}:0"
    async with connect(consumer_base, tokens, bob, query) as ws:
        seen = await frames_until(ws, "resumed")
        assert seen[0]["type"] == "ready"
        assert messages(seen) == [2, 3, 4]
        assert seen[-1]["conversations"][str(conversation)] == {"last_seq": 4, "recovered": True}
        await publish(nc, conversation, alice, "live")
        await publish(nc, other, alice, "not named: no cursor, so at once")
        live = [await next_frame(ws, "message") for _ in range(2)]
    assert sorted((m["conversation_id"], m["seq"]) for m in live) == sorted(
        [(str(conversation), 5), (str(other), 1)]
    )


async def test_a_late_resume_behind_what_went_out_live_is_not_recovered_and_keeps_order(
    consumer_base: str, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    # The bad interleaving: no hold, so seq 4 goes out live before the client's resume from 1
    # arrives. 2 and 3 can no longer be sent after 4: `recovered: false`, and nothing out of
    # order; live goes on from 4.
    alice, bob = uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [alice, bob])
    async with connect(consumer_base, tokens, bob) as first:
        await next_frame(first, "ready")
        await stored(nc, conversation, alice, 3)
        await wait_head(first, 3)

    async with connect(consumer_base, tokens, bob) as ws:
        await next_frame(ws, "ready")
        await publish(nc, conversation, alice, "live before the resume")
        assert (await next_frame(ws, "message"))["seq"] == 4
        await ws.send(json.dumps({"type": "resume", "cursors": {str(conversation): 1}}))
        seen = await frames_until(ws, "resumed")
        assert messages(seen) == []
        assert seen[-1]["conversations"][str(conversation)] == {
            "last_seq": 4,
            "recovered": False,
        }
        await publish(nc, conversation, alice, "after")
        assert (await next_frame(ws, "message"))["seq"] == 5
        # A resume from what the client holds now is complete.
        await ws.send(json.dumps({"type": "resume", "cursors": {str(conversation): 5}}))
        again = await frames_until(ws, "resumed")
    assert again[-1]["conversations"][str(conversation)] == {"last_seq": 5, "recovered": True}


async def test_a_client_that_says_it_will_resume_is_held_until_it_does(
    consumer_base: str, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    # What old clients had by default: nothing goes out before their resume is handled.
    alice, bob = uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [alice, bob])
    async with connect(consumer_base, tokens, bob) as first:
        await next_frame(first, "ready")
        await stored(nc, conversation, alice, 2)
        await wait_head(first, 2)

    async with connect(consumer_base, tokens, bob, "?resume=1") as ws:
        await next_frame(ws, "ready")
        await publish(nc, conversation, alice, "held")
        with pytest.raises(TimeoutError):
            await next_frame(ws, "message", timeout=1.0)
        await ws.send(json.dumps({"type": "resume", "cursors": {str(conversation): 1}}))
        seen = await frames_until(ws, "resumed")
    assert messages(seen) == [2, 3]
    assert seen[-1]["conversations"][str(conversation)] == {"last_seq": 3, "recovered": True}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?cursors=nope:1", "cursors"),
        ("?cursors={c}:-1", "cursors.{c}"),
        ("?cursors={c}:99999999999999999999", "cursors.{c}"),
        ("?cursors={c}:1,{c}:2", "cursors"),
        ("?cursors={c}", "cursors"),
        ("?resume=maybe", "resume"),
    ],
)
async def test_a_bad_query_is_answered_and_the_connection_holds_for_a_resume(
    consumer_base: str,
    nc: NatsClient,
    database_url: str,
    tokens: TokenFactory,
    query: str,
    field: str,
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [alice, bob])
    async with connect(consumer_base, tokens, bob, query.format(c=conversation)) as ws:
        await next_frame(ws, "ready")
        error = await next_frame(ws, "error")
        assert (error["code"], error["field"]) == (
            "validation_failed",
            field.format(c=conversation),
        )
        await publish(nc, conversation, alice, "held for the resume")
        with pytest.raises(TimeoutError):  # held: the client's resume is to come
            await next_frame(ws, "message", timeout=0.5)
        await ws.send(json.dumps({"type": "resume", "cursors": {str(conversation): 0}}))
        seen = await frames_until(ws, "resumed")
        # Within the resume if stored by then, else live right after it; once either way.
        got = messages(seen) or [(await next_frame(ws, "message"))["seq"]]
    assert got == [1]
