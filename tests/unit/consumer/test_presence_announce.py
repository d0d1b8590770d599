"""Presence announcements: one contacts query per flush, each frame encoded once, coalesced,
retried after a failed query."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import cast

import pytest
from nats.aio.client import Client as NatsClient

from rtm.consumer.domain.ports import ConversationDirectory
from rtm.consumer.entrypoints.ephemeral_events import FLUSH_SLICE_FRAMES, EphemeralEvents
from rtm.consumer.entrypoints.hub import Hub, LiveConnection
from rtm.consumer.services import ReadService
from rtm.shared.contract import PresenceEvent
from rtm.shared.ws import Outbox
from tests.support.outbox import FakeOutbox


class FakeDirectory:
    """Everybody is everybody's contact; counts the queries."""

    def __init__(self) -> None:
        self.queries: list[tuple[list[uuid.UUID], list[uuid.UUID]]] = []
        self.fail = False

    async def contacts_among(
        self, user_ids: Sequence[uuid.UUID], among: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, set[uuid.UUID]]:
        self.queries.append((list(user_ids), list(among)))
        if self.fail:
            raise ConnectionError("PostgreSQL is down")
        return {user: set(among) - {user} for user in user_ids}


class Offline:
    is_connected = False


def setup(
    local: int, *, flush_slice_frames: int = FLUSH_SLICE_FRAMES
) -> tuple[EphemeralEvents, FakeDirectory, dict[uuid.UUID, FakeOutbox]]:
    hub, directory = Hub(), FakeDirectory()
    hub.feed_resumed()
    outboxes: dict[uuid.UUID, FakeOutbox] = {}
    for _ in range(local):
        user, outbox = uuid.uuid4(), FakeOutbox()
        reads = cast(ReadService, None)
        hub.add(LiveConnection(user, uuid.uuid4(), cast(Outbox, outbox), reads, lambda c, r: None))
        outboxes[user] = outbox
    events = EphemeralEvents(
        cast(NatsClient, Offline()),
        hub,
        cast(ConversationDirectory, directory),
        "c1",
        flush_slice_frames=flush_slice_frames,
    )
    return events, directory, outboxes


async def test_changes_of_a_flush_share_one_query_and_each_frame_is_encoded_once() -> None:
    events, directory, outboxes = setup(local=3)
    remote = [uuid.uuid4() for _ in range(50)]
    events.apply_presence(PresenceEvent("c2/x", "heartbeat", tuple(remote), 1))
    await events.flush()
    assert len(directory.queries) == 1
    assert set(directory.queries[0][0]) == set(remote)
    first, second, third = outboxes.values()
    assert sorted(first.presence()) == sorted((str(u), "online") for u in remote)
    for a, b, c in zip(first.frames, second.frames, third.frames, strict=True):
        assert a is b is c  # the same text object: encoded once for every recipient
    await events.flush()
    assert len(directory.queries) == 1  # nothing changed, nothing asked


async def test_leaving_and_coming_back_before_the_flush_sends_nothing() -> None:
    events, directory, outboxes = setup(local=1)
    user = uuid.uuid4()
    events.apply_presence(PresenceEvent("c2/x", "online", (user,), 0))
    await events.flush()
    events.apply_presence(PresenceEvent("c2/x", "offline", (user,), 0))
    events.apply_presence(PresenceEvent("c2/x", "online", (user,), 0))
    await events.flush()
    (outbox,) = outboxes.values()
    assert outbox.presence() == [(str(user), "online")]
    assert len(directory.queries) == 1


async def test_a_failed_query_is_retried_by_the_next_flush() -> None:
    events, directory, outboxes = setup(local=1)
    user = uuid.uuid4()
    events.apply_presence(PresenceEvent("c2/x", "online", (user,), 0))
    directory.fail = True
    with pytest.raises(ConnectionError):
        await events.flush()
    directory.fail = False
    await events.flush()
    (outbox,) = outboxes.values()
    assert outbox.presence() == [(str(user), "online")]


async def test_a_big_flush_lets_other_work_run_between_slices() -> None:
    """Live messages must not wait behind a million presence frames."""
    events, _, outboxes = setup(local=5, flush_slice_frames=10)
    remote = [uuid.uuid4() for _ in range(20)]  # 20 changes x 5 recipients = 100 frames
    events.apply_presence(PresenceEvent("c2/x", "heartbeat", tuple(remote), 1))
    seen_mid_flush: list[int] = []

    async def other_work() -> None:
        await asyncio.sleep(0)
        seen_mid_flush.append(sum(len(o.frames) for o in outboxes.values()))

    other = asyncio.create_task(other_work())
    await events.flush()
    await other

    assert sum(len(o.frames) for o in outboxes.values()) == 100
    assert seen_mid_flush
    assert 0 < seen_mid_flush[0] < 100  # it ran while the flush was part-way through
