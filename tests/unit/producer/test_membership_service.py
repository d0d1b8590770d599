"""Sends while PostgreSQL is down or slow: cached membership, JetStream dedup, and what is
still refused (a conversation never seen). Over fakes, on a hand-moved clock."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from rtm.producer.domain.exceptions import Forbidden, Unavailable
from rtm.producer.domain.membership import CheckEvent
from rtm.producer.domain.model import (
    Ack,
    Conversation,
    ConversationKind,
    CreateConversation,
    SendMessage,
    StoredSend,
)
from rtm.producer.services import ConversationService, MessageService, TypingAndReadService
from rtm.shared.limits import Throttle
from tests.support.clock import FakeClock
from tests.support.producer_fakes import (
    FakeEventPublisher,
    FakeMessagePublisher,
    InMemoryConversationRepository,
    Observed,
    membership_for,
)

HIT, MISS, STALE, SKIPPED = (
    CheckEvent.CACHE_HIT,
    CheckEvent.CACHE_MISS,
    CheckEvent.CACHE_STALE,
    CheckEvent.STORED_CHECK_SKIPPED,
)


class World:
    """A producer's services over fakes; TTL 30 s, stale for 60 s more, cooldown 1 s."""

    def __init__(self, lookup_timeout: float = 0.5) -> None:
        self.clock = FakeClock()
        self.repository = InMemoryConversationRepository()
        self.publisher = FakeMessagePublisher()
        self.events = FakeEventPublisher()
        self.observed = Observed()
        self.membership = membership_for(
            self.repository,
            self.clock,
            ttl=30,
            stale_for=60,
            cooldown=1.0,
            lookup_timeout=lookup_timeout,
            observed=self.observed,
        )
        self.messages = MessageService(
            self.membership,
            self.publisher,
            max_body_chars=4096,
            now=self.clock.now,
            new_id=uuid.uuid4,
        )
        self.conversations = ConversationService(
            self.repository,
            self.events,
            self.membership,
            max_group_members=1000,
            max_title_chars=200,
            now=self.clock.now,
            new_id=uuid.uuid4,
        )
        self.typing_and_reads = TypingAndReadService(
            self.membership,
            self.events,
            typing_throttle=Throttle(0.0, self.clock.monotonic),
            now=self.clock.now,
        )
        self.alice, self.bob, self.eve = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        self.conversation = self.repository.add(
            Conversation(
                uuid.uuid4(),
                ConversationKind.GROUP,
                None,
                (self.alice, self.bob),
                self.alice,
                self.clock.now(),
            )
        ).id

    def send(
        self,
        sender: uuid.UUID | None = None,
        client_msg_id: uuid.UUID | None = None,
        conversation: uuid.UUID | None = None,
    ) -> SendMessage:
        return SendMessage(
            sender or self.alice,
            client_msg_id or uuid.uuid4(),
            conversation or self.conversation,
            "hi",
        )

    def remove(self, user: uuid.UUID) -> None:
        """A membership change made elsewhere (another producer), without its event."""
        old = self.repository.conversations[self.conversation]
        members = tuple(member for member in old.members if member != user)
        self.repository.add(
            Conversation(old.id, old.kind, old.title, members, old.created_by, old.created_at)
        )


@pytest.fixture
def world() -> World:
    return World()


async def test_a_known_conversation_keeps_accepting_while_postgresql_is_down(
    world: World,
) -> None:
    await world.messages.send(world.send())  # fills the cache
    world.repository.down = True
    ack = await world.messages.send(world.send())
    assert (ack.duplicate, ack.stream_seq) == (False, 2)
    assert len(world.publisher.stream) == 2
    assert world.observed == [MISS, HIT, SKIPPED]


async def test_a_conversation_never_seen_is_unavailable_while_postgresql_is_down(
    world: World,
) -> None:
    """We cannot check membership: refuse (retryable), never accept blindly."""
    world.repository.down = True
    with pytest.raises(Unavailable) as caught:
        await world.messages.send(world.send())
    assert caught.value.retry_after_ms is not None
    assert world.publisher.submitted == []
    assert world.observed == [MISS]


async def test_membership_is_still_enforced_from_the_cache_while_down(world: World) -> None:
    await world.messages.send(world.send())
    world.repository.down = True
    with pytest.raises(Forbidden):
        await world.messages.send(world.send(sender=world.eve))
    assert world.publisher.submitted[1:] == []


async def test_a_resend_while_down_is_deduplicated_by_jetstream(world: World) -> None:
    """Within the Nats-Msg-Id window the resend is acked with the original message id."""
    first = await world.messages.send(world.send(client_msg_id=(key := uuid.uuid4())))
    world.repository.down = True
    again = await world.messages.send(world.send(client_msg_id=key))
    assert again == Ack(key, first.message_id, first.stream_seq, True, first.accepted_at)
    assert len(world.publisher.stream) == 1


async def test_with_postgresql_up_a_stored_duplicate_is_still_decided_by_it(
    world: World,
) -> None:
    """A cache hit does not skip the 'already stored?' lookup: it is the primary check."""
    await world.messages.send(world.send())
    key = uuid.uuid4()
    stored = StoredSend(uuid.uuid4(), 77, world.clock.start, 1)
    world.repository.stored[(world.alice, key)] = stored
    ack = await world.messages.send(world.send(client_msg_id=key))
    assert ack == Ack(key, stored.message_id, 77, True, stored.accepted_at)
    assert world.repository.reads == ["check_send", "stored_send"]
    # published again while the lookup ran (they overlap); the consumer skips that copy
    assert len(world.publisher.submitted) == 2


async def test_a_slow_postgresql_costs_the_short_timeout_then_jetstream_dedup_decides() -> None:
    world = World(lookup_timeout=0.05)
    await world.messages.send(world.send())
    world.repository.gate = asyncio.Event()  # PostgreSQL stops answering
    loop = asyncio.get_running_loop()
    started = loop.time()
    ack = await world.messages.send(world.send())
    assert not ack.duplicate
    assert loop.time() - started < 0.5
    assert world.repository.timeouts == [None, 0.05]
    assert world.observed[-1] is SKIPPED


async def test_after_a_failure_postgresql_is_spared_for_the_cooldown(world: World) -> None:
    await world.messages.send(world.send())
    world.repository.down = True
    await world.messages.send(world.send())
    reads = len(world.repository.reads)
    for _ in range(5):
        await world.messages.send(world.send())
    assert len(world.repository.reads) == reads  # no attempt during the cooldown
    world.clock.advance(1.0)
    world.repository.down = False
    await world.messages.send(world.send())
    assert len(world.repository.reads) == reads + 1
    assert world.repository.reads[-1] == "stored_send"


async def test_a_conversation_never_seen_always_tries_postgresql(world: World) -> None:
    """No fallback, no cooldown: a new conversation is served as soon as PostgreSQL is back."""
    await world.messages.send(world.send())
    world.repository.down = True
    await world.messages.send(world.send())  # starts the cooldown
    world.repository.down = False
    other = world.repository.add(
        Conversation(
            uuid.uuid4(),
            ConversationKind.DIRECT,
            None,
            (world.alice, world.bob),
            world.alice,
            world.clock.now(),
        )
    ).id
    ack = await world.messages.send(world.send(conversation=other))
    assert not ack.duplicate


async def test_a_hit_trusts_the_cache_until_the_ttl_then_rereads(world: World) -> None:
    """A change whose event was missed heals within the TTL."""
    await world.messages.send(world.send(sender=world.bob))
    world.remove(world.bob)
    await world.messages.send(world.send(sender=world.bob))  # still cached: accepted
    world.clock.advance(30)
    with pytest.raises(Forbidden):
        await world.messages.send(world.send(sender=world.bob))
    assert world.observed == [MISS, HIT, MISS]


async def test_an_invalidation_takes_effect_at_once(world: World) -> None:
    await world.messages.send(world.send(sender=world.bob))
    world.remove(world.bob)
    world.membership.invalidate(world.conversation)  # the member_removed event
    with pytest.raises(Forbidden):
        await world.messages.send(world.send(sender=world.bob))


async def test_a_stale_entry_serves_only_while_postgresql_is_unreachable(world: World) -> None:
    await world.messages.send(world.send())
    world.clock.advance(45)  # past the TTL, within stale_for
    world.repository.down = True
    ack = await world.messages.send(world.send())
    assert not ack.duplicate
    assert world.observed[-2:] == [STALE, SKIPPED]
    world.clock.advance(1.0)
    world.repository.down = False
    await world.messages.send(world.send())
    assert world.observed[-1] is MISS  # re-read and refilled
    assert world.repository.reads[-1] == "check_send"


async def test_past_the_stale_limit_a_known_conversation_is_unavailable(world: World) -> None:
    await world.messages.send(world.send())
    world.clock.advance(90)
    world.repository.down = True
    with pytest.raises(Unavailable):
        await world.messages.send(world.send())


async def test_a_missing_conversation_is_never_cached(world: World) -> None:
    missing = uuid.uuid4()
    for _ in range(2):
        with pytest.raises(Forbidden):
            await world.messages.send(world.send(conversation=missing))
    assert world.repository.reads == ["check_send", "check_send"]


async def test_a_read_overtaken_by_an_invalidation_is_not_cached(world: World) -> None:
    world.repository.gate = asyncio.Event()
    sending = asyncio.create_task(world.messages.send(world.send(sender=world.bob)))
    await asyncio.sleep(0)  # the read has begun (old membership)
    world.membership.invalidate(world.conversation)
    world.repository.gate.set()
    await sending
    world.remove(world.bob)
    with pytest.raises(Forbidden):  # read again, not answered from the overtaken read
        await world.messages.send(world.send(sender=world.bob))


async def test_a_bus_reconnect_makes_the_cache_reread_but_still_serve_an_outage(
    world: World,
) -> None:
    await world.messages.send(world.send(sender=world.bob))
    world.remove(world.bob)
    world.membership.expire_all()
    world.repository.down = True
    await world.messages.send(world.send(sender=world.bob))  # stale, PostgreSQL down: served
    world.repository.down = False
    world.clock.advance(1.0)
    with pytest.raises(Forbidden):
        await world.messages.send(world.send(sender=world.bob))


async def test_a_conversation_created_here_is_usable_during_an_outage_right_away(
    world: World,
) -> None:
    outcome = await world.conversations.create(
        CreateConversation(world.alice, ConversationKind.DIRECT, (world.eve,), None)
    )
    world.repository.down = True
    ack = await world.messages.send(world.send(conversation=outcome.conversation.id))
    assert not ack.duplicate
    assert world.observed == [HIT, SKIPPED]


async def test_membership_writes_here_invalidate_the_cache(world: World) -> None:
    await world.messages.send(world.send(sender=world.bob))
    await world.conversations.remove_member(world.alice, world.conversation, world.bob)
    with pytest.raises(Forbidden):
        await world.messages.send(world.send(sender=world.bob))
    with pytest.raises(Forbidden):
        await world.messages.send(world.send(sender=world.eve))
    await world.conversations.add_member(world.alice, world.conversation, world.eve)
    ack = await world.messages.send(world.send(sender=world.eve))
    assert not ack.duplicate


async def test_typing_and_read_use_the_cache_too(world: World) -> None:
    await world.typing_and_reads.typing(world.alice, world.conversation)
    world.repository.down = True
    assert await world.typing_and_reads.typing(world.alice, world.conversation)
    await world.typing_and_reads.read(world.alice, world.conversation, 1)
    with pytest.raises(Forbidden):
        await world.typing_and_reads.read(world.eve, world.conversation, 1)
    with pytest.raises(Unavailable):
        await world.typing_and_reads.typing(world.alice, uuid.uuid4())
