"""Typing and read events: membership-checked, typing throttled."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from rtm.producer.domain.exceptions import Forbidden, ValidationFailed
from rtm.producer.domain.model import Conversation, ConversationKind
from rtm.producer.services import TypingAndReadService
from rtm.shared.limits import Throttle
from tests.support.clock import FakeClock
from tests.support.producer_fakes import (
    FakeEventPublisher,
    InMemoryConversationRepository,
    Published,
    membership_for,
)


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.repository = InMemoryConversationRepository()
        self.events = FakeEventPublisher()
        self.membership = membership_for(self.repository, self.clock)
        self.service = TypingAndReadService(
            self.membership,
            self.events,
            typing_throttle=Throttle(1.0, self.clock.monotonic),
            now=self.clock.now,
        )
        self.user, self.stranger = uuid.uuid4(), uuid.uuid4()
        self.conversation = self.repository.add(
            Conversation(
                uuid.uuid4(),
                ConversationKind.GROUP,
                None,
                (self.user,),
                self.user,
                self.clock.now(),
            )
        ).id


@pytest.fixture
def world() -> World:
    return World()


async def test_typing_is_published_once_per_interval(world: World) -> None:
    assert await world.service.typing(world.user, world.conversation)
    assert not await world.service.typing(world.user, world.conversation)
    world.clock.advance(1.0)
    assert await world.service.typing(world.user, world.conversation)
    assert world.events.signals == [Published("typing", world.conversation, world.user)] * 2


async def test_typing_in_a_foreign_conversation_is_forbidden(world: World) -> None:
    with pytest.raises(Forbidden):
        await world.service.typing(world.stranger, world.conversation)
    assert world.events.signals == []


async def test_read_marker_is_published_for_members(world: World) -> None:
    await world.service.read(world.user, world.conversation, 7)
    assert world.events.signals == [Published("read", world.conversation, world.user, 7)]


async def test_read_marker_checks_seq_and_membership(world: World) -> None:
    with pytest.raises(ValidationFailed):
        await world.service.read(world.user, world.conversation, -1)
    with pytest.raises(Forbidden):
        await world.service.read(world.stranger, world.conversation, 1)
    with pytest.raises(Forbidden):
        await world.service.read(world.user, uuid.uuid4(), 1)


async def test_concurrent_typing_frames_publish_one_event(world: World) -> None:
    """Frames handled concurrently must not all slip through the throttle."""
    results = await asyncio.gather(
        *(world.service.typing(world.user, world.conversation) for _ in range(5))
    )
    assert sorted(results) == [False, False, False, False, True]
    assert len(world.events.signals) == 1


async def test_a_refused_typing_does_not_throttle_a_later_allowed_one(world: World) -> None:
    with pytest.raises(Forbidden):
        await world.service.typing(world.stranger, world.conversation)
    world.repository.add(
        Conversation(
            world.conversation,
            ConversationKind.GROUP,
            None,
            (world.user, world.stranger),
            world.user,
            world.clock.now(),
        )
    )
    world.membership.invalidate(world.conversation)  # the member_added event
    assert await world.service.typing(world.stranger, world.conversation)
