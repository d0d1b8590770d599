"""Typing, read markers, conversation changes and presence reach members' sockets."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import asyncpg
import websockets
from nats.aio.client import Client as NatsClient

from rtm.shared.contract import (
    CONVERSATION_EVENTS,
    READ_EVENTS,
    TYPING_EVENTS,
    ConversationEvent,
    ConversationSnapshot,
    ReadEvent,
    TypingEvent,
)
from tests.integration.consumer.test_delivery import next_frame
from tests.support.db import create_conversation
from tests.support.tokens import TokenFactory

NOW = datetime.now(UTC)


def connect(consumer: str, tokens: TokenFactory, user: uuid.UUID) -> websockets.connect:
    headers = {"Authorization": f"Bearer {tokens.token(user)}"}
    return websockets.connect(f"ws://{consumer}/v1/ws", additional_headers=headers)


async def test_typing_reaches_other_members_but_not_the_typist(
    consumer: str, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [alice, bob])
    async with connect(consumer, tokens, bob) as ws:
        await next_frame(ws, "ready")
        await nc.publish(TYPING_EVENTS, TypingEvent(conversation, alice, NOW).encode())
        frame = await next_frame(ws, "typing")
    assert frame == {"type": "typing", "conversation_id": str(conversation), "user_id": str(alice)}


async def test_read_markers_are_stored_monotonically_and_fanned_out(
    consumer: str, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [alice, bob])
    async with connect(consumer, tokens, bob) as ws:
        await next_frame(ws, "ready")
        await nc.publish(READ_EVENTS, ReadEvent(conversation, alice, 5, NOW).encode())
        first = await next_frame(ws, "read")
        await nc.publish(READ_EVENTS, ReadEvent(conversation, alice, 3, NOW).encode())
        await next_frame(ws, "read")
    assert first["seq"] == 5
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval(
            "SELECT seq FROM messaging.read_markers WHERE conversation_id=$1 AND user_id=$2",
            conversation,
            alice,
        )
    finally:
        await conn.close()
    assert stored == 5


async def test_conversation_events_reach_members_and_removed_users(
    consumer: str, nc: NatsClient, tokens: TokenFactory
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    snapshot = ConversationSnapshot(uuid.uuid4(), "group", "team", (alice,), NOW, 0)
    async with connect(consumer, tokens, bob) as ws:
        await next_frame(ws, "ready")
        event = ConversationEvent("member_removed", snapshot, (bob,))
        await nc.publish(CONVERSATION_EVENTS, event.encode())
        frame = await next_frame(ws, "conversation")
    assert frame["event"] == "member_removed"
    assert frame["conversation"]["members"] == [str(alice)]


async def test_presence_goes_online_and_offline_for_contacts(
    consumer: str, database_url: str, tokens: TokenFactory
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await create_conversation(database_url, [alice, bob])
    async with connect(consumer, tokens, bob) as bob_ws:
        await next_frame(bob_ws, "ready")
        async with connect(consumer, tokens, alice) as alice_ws:
            await next_frame(alice_ws, "ready")
            online = await next_frame(bob_ws, "presence")
        offline = await next_frame(bob_ws, "presence")
    assert online == {"type": "presence", "user_id": str(alice), "status": "online"}
    assert offline == {"type": "presence", "user_id": str(alice), "status": "offline"}


async def test_a_malformed_event_is_dropped_and_later_events_still_flow(
    consumer: str, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [alice, bob])
    async with connect(consumer, tokens, bob) as ws:
        await next_frame(ws, "ready")
        await nc.publish(TYPING_EVENTS, b"{not json")
        await nc.publish(TYPING_EVENTS, json.dumps({"conversation_id": "x"}).encode())
        await asyncio.sleep(0.1)
        await nc.publish(TYPING_EVENTS, TypingEvent(conversation, alice, NOW).encode())
        frame = await next_frame(ws, "typing")
    assert frame["user_id"] == str(alice)
