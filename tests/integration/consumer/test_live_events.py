"""Typing, read markers, conversation changes and presence reach members' sockets."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import websockets
from nats.aio.client import Client as NatsClient

from rtm.consumer.bootstrap import create_app
from rtm.consumer.settings import ConsumerSettings
from rtm.shared.contract import (
    CONVERSATION_EVENTS,
    PRESENCE_EVENTS,
    READ_EVENTS,
    TYPING_EVENTS,
    ConversationEvent,
    ConversationSnapshot,
    PresenceEvent,
    ReadEvent,
    TypingEvent,
)
from tests.integration.consumer.conftest import wait_ready
from tests.integration.consumer.test_delivery import next_frame
from tests.support.asgi import running_consumer
from tests.support.db import create_conversation
from tests.support.tokens import TokenFactory

NOW = datetime.now(UTC)
MARKER = uuid.uuid4()  # a member of every presence test's conversation, announced by `sync`


@asynccontextmanager
async def consumer_with(settings: ConsumerSettings, **changes: Any) -> AsyncIterator[str]:
    """A consumer with some settings changed; yields its `host:port`."""
    async with running_consumer(create_app(settings.model_copy(update=changes))) as base:
        await wait_ready(base)
        yield base


async def heartbeat(
    nc: NatsClient,
    instance: str,
    beat: int,
    users: list[uuid.UUID],
    *,
    chunk: int = 0,
    chunks: int = 1,
) -> None:
    """Another consumer instance's heartbeat (one chunk of it)."""
    event = PresenceEvent(instance, "heartbeat", tuple(users), beat, chunk, chunks)
    await nc.publish(PRESENCE_EVENTS, event.encode())


class PresenceWatch:
    """The presence frames one socket receives, by user, in order."""

    def __init__(
        self, ws: websockets.ClientConnection, consumer: str, nc: NatsClient, tokens: TokenFactory
    ) -> None:
        self.ws = ws
        self.consumer = consumer
        self.nc = nc
        self.tokens = tokens
        self.seen: dict[uuid.UUID, list[str]] = defaultdict(list)

    async def until(self, user: uuid.UUID, status: str, timeout: float = 20) -> None:
        """Read frames until `user`'s latest presence is `status` (bounded by `timeout`)."""
        deadline = time.monotonic() + timeout
        while not self.seen[user] or self.seen[user][-1] != status:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{user} not {status} in {timeout}s: {dict(self.seen)}")
            frame = await next_frame(self.ws, "presence", timeout=left)
            self.seen[uuid.UUID(frame["user_id"])].append(frame["status"])

    async def sync(self) -> None:
        """Wait until every presence event published before now is announced: MARKER (a contact)
        connects and leaves, each awaited, so its `offline` comes in a later flush than anything
        the consumer had received before."""
        await self.nc.flush()
        async with connect(self.consumer, self.tokens, MARKER):
            await self.until(MARKER, "online")
        await self.until(MARKER, "offline")


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
    """A marker never moves back, and never past the last stored message (a `read` of a seq
    still to come would make that message read before it exists)."""
    alice, bob, carol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    conversation = await create_conversation(database_url, [alice, bob, carol])
    await _set_head(database_url, conversation, 6)
    async with connect(consumer, tokens, bob) as ws:
        await next_frame(ws, "ready")
        await nc.publish(READ_EVENTS, ReadEvent(conversation, alice, 5, NOW).encode())
        first = await next_frame(ws, "read")
        await nc.publish(READ_EVENTS, ReadEvent(conversation, alice, 3, NOW).encode())
        await next_frame(ws, "read")
        # Stored by another subscription than the one that sends frames, in order: once carol's
        # marker (published last) is stored, alice's two have been handled.
        await nc.publish(READ_EVENTS, ReadEvent(conversation, carol, 1_000, NOW).encode())
    assert first["seq"] == 5
    conn = await asyncpg.connect(database_url)
    query = "SELECT seq FROM messaging.read_markers WHERE conversation_id=$1 AND user_id=$2"
    try:
        deadline = time.monotonic() + 10
        while await conn.fetchval(query, conversation, carol) is None:
            assert time.monotonic() < deadline, "carol's read marker not stored in 10 s"
            await asyncio.sleep(0.02)
        stored = await conn.fetchval(query, conversation, alice)
        past_head = await conn.fetchval(query, conversation, carol)
    finally:
        await conn.close()
    assert stored == 5
    assert past_head == 6


async def _set_head(database_url: str, conversation: uuid.UUID, last_seq: int) -> None:
    """The conversation's head as if `last_seq` messages were stored."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO messaging.conversation_heads (conversation_id, last_seq) VALUES ($1, $2)"
            " ON CONFLICT (conversation_id) DO UPDATE SET last_seq = excluded.last_seq",
            conversation,
            last_seq,
        )
    finally:
        await conn.close()


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
    consumer_settings: ConsumerSettings, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    """Heartbeats every 20 ms, so they keep crossing the connect and the disconnect: whatever the
    interleaving, bob is told exactly `online` then `offline`, and nothing after."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await create_conversation(database_url, [alice, bob, MARKER])
    async with (
        consumer_with(consumer_settings, presence_interval_s=0.02) as consumer,
        connect(consumer, tokens, bob) as bob_ws,
    ):
        watch = PresenceWatch(bob_ws, consumer, nc, tokens)
        await next_frame(bob_ws, "ready")
        async with connect(consumer, tokens, alice) as alice_ws:
            await next_frame(alice_ws, "ready")
            await watch.until(alice, "online")
        await watch.until(alice, "offline")
        await watch.sync()
    assert watch.seen[alice] == ["online", "offline"]


async def test_a_new_conversation_tells_its_members_which_new_contacts_are_online(
    consumer_settings: ConsumerSettings, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    """Alice and Bob are online but share no conversation, so neither was told of the other.
    Once a conversation makes them contacts, each is told the other is online (issue 14: before,
    only a reconnect's initial list did), and so is a member added later, both ways."""
    alice, bob, carol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await create_conversation(database_url, [bob, MARKER])
    async with (
        consumer_with(consumer_settings, presence_interval_s=0.05) as consumer,
        connect(consumer, tokens, bob) as bob_ws,
        connect(consumer, tokens, alice) as alice_ws,
        connect(consumer, tokens, carol) as carol_ws,
    ):
        bob_watch = PresenceWatch(bob_ws, consumer, nc, tokens)
        alice_watch, carol_watch = (
            PresenceWatch(ws, consumer, nc, tokens) for ws in (alice_ws, carol_ws)
        )
        for ws in (bob_ws, alice_ws, carol_ws):
            await next_frame(ws, "ready")
        await bob_watch.sync()  # alice's and carol's `online` are announced (to no contact)
        snapshot = ConversationSnapshot(uuid.uuid4(), "direct", None, (alice, bob), NOW, 0)
        await nc.publish(
            CONVERSATION_EVENTS, ConversationEvent("created", snapshot, (alice, bob)).encode()
        )
        await bob_watch.until(alice, "online")
        await alice_watch.until(bob, "online")
        group = ConversationSnapshot(uuid.uuid4(), "group", "team", (alice, bob, carol), NOW, 3)
        await nc.publish(
            CONVERSATION_EVENTS, ConversationEvent("member_added", group, (carol,)).encode()
        )
        await carol_watch.until(alice, "online")
        await carol_watch.until(bob, "online")
        await alice_watch.until(carol, "online")
        await bob_watch.until(carol, "online")
    assert alice not in carol_watch.seen or carol_watch.seen[alice] == ["online"]
    assert bob_watch.seen[alice] == ["online"]


async def test_users_of_a_silent_instance_go_offline_after_our_own_heartbeats(
    consumer_settings: ConsumerSettings, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    """Another instance lists alice, then dies (no offline event): alice goes offline once the
    consumer has received its own heartbeat 4 times without hearing from it."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await create_conversation(database_url, [alice, bob, MARKER])
    async with (
        consumer_with(consumer_settings, presence_interval_s=0.1) as consumer,
        connect(consumer, tokens, bob) as bob_ws,
    ):
        watch = PresenceWatch(bob_ws, consumer, nc, tokens)
        await next_frame(bob_ws, "ready")
        began = time.monotonic()
        await heartbeat(nc, "ghost/1", 1, [alice])
        await watch.until(alice, "online")
        await watch.until(alice, "offline")
        silent_for = time.monotonic() - began
        await watch.sync()
    assert watch.seen[alice] == ["online", "offline"]
    assert silent_for >= 0.3  # 4 of our beats, 0.1 s apart: at least 3 intervals


async def test_a_lost_offline_event_is_healed_by_two_full_heartbeats(
    consumer_settings: ConsumerSettings, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    """The consumer's own heartbeat is 60 s, so the silence rule cannot act during the test:
    only the other instance's two full heartbeats without alice make her go offline."""
    alice, carol, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await create_conversation(database_url, [alice, carol, bob, MARKER])
    async with (
        consumer_with(consumer_settings, presence_interval_s=60) as consumer,
        connect(consumer, tokens, bob) as bob_ws,
    ):
        watch = PresenceWatch(bob_ws, consumer, nc, tokens)
        await next_frame(bob_ws, "ready")
        await heartbeat(nc, "ghost/1", 1, [alice, carol])
        await watch.until(alice, "online")
        await heartbeat(nc, "ghost/1", 2, [carol], chunk=0, chunks=2)
        await heartbeat(nc, "ghost/1", 2, [], chunk=1, chunks=2)
        await watch.sync()
        assert watch.seen[alice] == ["online"]  # one heartbeat without her is not enough
        await heartbeat(nc, "ghost/1", 3, [carol])
        await watch.until(alice, "offline")
        await watch.sync()
    assert watch.seen[alice] == ["online", "offline"]
    assert watch.seen[carol] == ["online"]


async def test_a_heartbeat_taken_before_an_offline_event_does_not_bring_the_user_back(
    consumer_settings: ConsumerSettings, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await create_conversation(database_url, [alice, bob, MARKER])
    async with (
        consumer_with(consumer_settings, presence_interval_s=60) as consumer,
        connect(consumer, tokens, bob) as bob_ws,
    ):
        watch = PresenceWatch(bob_ws, consumer, nc, tokens)
        await next_frame(bob_ws, "ready")
        await heartbeat(nc, "ghost/1", 4, [alice])
        await watch.until(alice, "online")
        await heartbeat(nc, "ghost/1", 5, [], chunk=0, chunks=2)
        await nc.publish(PRESENCE_EVENTS, PresenceEvent("ghost/1", "offline", (alice,), 5).encode())
        await heartbeat(nc, "ghost/1", 5, [alice], chunk=1, chunks=2)  # listed before she left
        await watch.until(alice, "offline")
        await watch.sync()
    assert watch.seen[alice] == ["online", "offline"]


async def test_a_new_socket_is_told_which_contacts_are_online(
    consumer: str, nc: NatsClient, database_url: str, tokens: TokenFactory
) -> None:
    alice, bob, carol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await create_conversation(database_url, [alice, bob, MARKER])
    async with connect(consumer, tokens, carol) as carol_ws:  # only to know when it is announced
        await next_frame(carol_ws, "ready")
        await heartbeat(nc, "ghost/1", 1, [alice])
        await create_conversation(database_url, [alice, carol])
        await PresenceWatch(carol_ws, consumer, nc, tokens).until(alice, "online")
    async with connect(consumer, tokens, bob) as bob_ws:
        await next_frame(bob_ws, "ready")
        frame = await next_frame(bob_ws, "presence")
    assert frame == {"type": "presence", "user_id": str(alice), "status": "online"}


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
