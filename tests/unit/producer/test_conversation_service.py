"""Conversations and membership over fakes: rules, idempotence and the events they announce."""

from __future__ import annotations

import uuid

import pytest

from rtm.producer.domain.exceptions import Forbidden, UnknownUsers, ValidationFailed
from rtm.producer.domain.model import ChangeKind, ConversationKind, CreateConversation
from rtm.producer.services import ConversationService
from tests.support.clock import FakeClock
from tests.support.producer_fakes import (
    FakeEventPublisher,
    InMemoryConversationRepository,
    membership_for,
)


class World:
    def __init__(self, max_group_members: int = 1000) -> None:
        self.clock = FakeClock()
        self.repository = InMemoryConversationRepository()
        self.events = FakeEventPublisher()
        self.service = ConversationService(
            self.repository,
            self.events,
            membership_for(self.repository, self.clock),
            max_group_members=max_group_members,
            max_title_chars=200,
            now=self.clock.now,
            new_id=uuid.uuid4,
        )
        self.alice, self.bob, self.carol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def group(self, *members: uuid.UUID) -> uuid.UUID:
        outcome = await self.service.create(
            CreateConversation(self.alice, ConversationKind.GROUP, members, " Team ")
        )
        return outcome.conversation.id


@pytest.fixture
def world() -> World:
    return World()


async def test_group_creation_includes_the_creator_and_announces_it(world: World) -> None:
    outcome = await world.service.create(
        CreateConversation(world.alice, ConversationKind.GROUP, (world.bob,), " Team ")
    )
    conversation = outcome.conversation
    assert outcome.created
    assert set(conversation.members) == {world.alice, world.bob}
    assert conversation.title == "Team"
    assert conversation.last_seq == 0
    [event] = world.events.changes
    assert event.change is ChangeKind.CREATED
    assert set(event.user_ids) == {world.alice, world.bob}


async def test_direct_conversation_is_unique_per_pair(world: World) -> None:
    """Creating it again, from either side, returns the existing one and announces nothing."""
    first = await world.service.create(
        CreateConversation(world.alice, ConversationKind.DIRECT, (world.bob,), None)
    )
    again = await world.service.create(
        CreateConversation(world.bob, ConversationKind.DIRECT, (world.alice,), None)
    )
    assert not again.created
    assert again.conversation.id == first.conversation.id
    assert len(world.events.changes) == 1


async def test_recreating_a_direct_conversation_you_left_brings_you_back(world: World) -> None:
    first = await world.service.create(
        CreateConversation(world.alice, ConversationKind.DIRECT, (world.bob,), None)
    )
    await world.service.remove_member(world.bob, first.conversation.id, world.bob)
    again = await world.service.create(
        CreateConversation(world.bob, ConversationKind.DIRECT, (world.alice,), None)
    )
    assert again.restored == (world.bob,)
    assert again.conversation.has_member(world.bob)
    assert world.events.changes[-1].change is ChangeKind.MEMBER_ADDED


async def test_members_add_members_to_groups(world: World) -> None:
    conversation = await world.group(world.bob)
    await world.service.add_member(world.bob, conversation, world.carol)
    event = world.events.changes[-1]
    assert event.change is ChangeKind.MEMBER_ADDED
    assert event.user_ids == (world.carol,)
    assert event.conversation.has_member(world.carol)


async def test_adding_an_existing_member_changes_nothing(world: World) -> None:
    conversation = await world.group(world.bob)
    await world.service.add_member(world.alice, conversation, world.bob)
    assert len(world.events.changes) == 1


async def test_non_members_cannot_add_and_missing_conversations_answer_alike(
    world: World,
) -> None:
    conversation = await world.group(world.bob)
    with pytest.raises(Forbidden) as not_member:
        await world.service.add_member(world.carol, conversation, world.carol)
    with pytest.raises(Forbidden) as missing:
        await world.service.add_member(world.carol, uuid.uuid4(), world.carol)
    assert not_member.value.to_wire() == missing.value.to_wire()


async def test_direct_conversations_take_no_new_members(world: World) -> None:
    outcome = await world.service.create(
        CreateConversation(world.alice, ConversationKind.DIRECT, (world.bob,), None)
    )
    with pytest.raises(Forbidden):
        await world.service.add_member(world.alice, outcome.conversation.id, world.carol)


async def test_group_size_is_capped_when_adding() -> None:
    world = World(max_group_members=2)
    conversation = await world.group(world.bob)
    with pytest.raises(ValidationFailed):
        await world.service.add_member(world.alice, conversation, world.carol)


async def test_members_leave_and_remove_others_from_groups(world: World) -> None:
    conversation = await world.group(world.bob, world.carol)
    await world.service.remove_member(world.alice, conversation, world.carol)
    await world.service.remove_member(world.bob, conversation, world.bob)
    removed = [e for e in world.events.changes if e.change is ChangeKind.MEMBER_REMOVED]
    assert [e.user_ids for e in removed] == [(world.carol,), (world.bob,)]
    assert removed[-1].conversation.members == (world.alice,)


async def test_nobody_is_removed_from_a_direct_conversation_by_the_other(world: World) -> None:
    outcome = await world.service.create(
        CreateConversation(world.alice, ConversationKind.DIRECT, (world.bob,), None)
    )
    with pytest.raises(Forbidden):
        await world.service.remove_member(world.alice, outcome.conversation.id, world.bob)
    await world.service.remove_member(world.alice, outcome.conversation.id, world.alice)


async def test_removing_a_non_member_changes_nothing(world: World) -> None:
    conversation = await world.group(world.bob)
    await world.service.remove_member(world.alice, conversation, world.carol)
    assert len(world.events.changes) == 1


async def test_change_stands_when_the_event_cannot_be_published(world: World) -> None:
    """The database is the truth; a NATS outage loses only the (at-most-once) event."""
    world.events.down = True
    conversation = await world.group(world.bob)
    assert world.repository.conversations[conversation].has_member(world.bob)


async def test_unknown_users_are_named_under_the_field_they_came_in(world: World) -> None:
    ghost = uuid.uuid4()
    world.repository.unknown_users.add(ghost)
    with pytest.raises(UnknownUsers) as refused:
        await world.group(world.bob, ghost)
    assert (refused.value.field, refused.value.user_ids) == ("member_ids", (ghost,))
    conversation = await world.group(world.bob)
    with pytest.raises(UnknownUsers) as refused:
        await world.service.add_member(world.alice, conversation, ghost)
    assert (refused.value.field, refused.value.user_ids) == ("user_id", (ghost,))
    assert str(ghost) in refused.value.message
    assert len(world.events.changes) == 1  # only the group that was created
