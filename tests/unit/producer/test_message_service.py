"""The send path over fakes: membership, duplicates (stored and in the stream), outages."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace

import pytest

from rtm.producer.domain.exceptions import (
    Forbidden,
    NotStoredYet,
    Unavailable,
    ValidationFailed,
)
from rtm.producer.domain.model import (
    Ack,
    Conversation,
    ConversationKind,
    SendMessage,
    StoredSend,
)
from rtm.producer.services import MessageService
from tests.support.clock import FakeClock
from tests.support.producer_fakes import (
    FakeMessagePublisher,
    InMemoryConversationRepository,
    membership_for,
)


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.repository = InMemoryConversationRepository()
        self.publisher = FakeMessagePublisher()
        self.service = MessageService(
            membership_for(self.repository, self.clock),
            self.publisher,
            max_body_chars=4096,
            now=self.clock.now,
            new_id=uuid.uuid4,
        )
        self.alice, self.bob, self.eve = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        self.conversation = self.repository.add(
            Conversation(
                uuid.uuid4(),
                ConversationKind.DIRECT,
                None,
                (self.alice, self.bob),
                self.alice,
                self.clock.now(),
            )
        )

    def send(
        self,
        body: str = "hi",
        sender: uuid.UUID | None = None,
        client_msg_id: uuid.UUID | None = None,
        conversation: uuid.UUID | None = None,
    ) -> SendMessage:
        return SendMessage(
            sender or self.alice,
            client_msg_id or uuid.uuid4(),
            conversation or self.conversation.id,
            body,
        )


@pytest.fixture
def world() -> World:
    return World()


async def test_member_send_is_published_and_acked_with_its_stream_seq(world: World) -> None:
    command = world.send("  hello  ")
    ack = await world.service.send(command)
    assert ack.duplicate is False
    assert ack.stream_seq == 1
    assert ack.client_msg_id == command.client_msg_id
    [published] = world.publisher.stream
    assert published.message_id == ack.message_id
    assert published.body == "hello"
    assert published.sender_id == world.alice
    assert published.accepted_at == ack.accepted_at == world.clock.now()


async def test_non_member_and_missing_conversation_get_the_same_forbidden(world: World) -> None:
    """No oracle: an existing conversation and a missing one answer alike."""
    with pytest.raises(Forbidden) as existing:
        await world.service.send(world.send(sender=world.eve))
    with pytest.raises(Forbidden) as missing:
        await world.service.send(world.send(conversation=uuid.uuid4()))
    assert existing.value.to_wire() == missing.value.to_wire()
    assert world.publisher.submitted == []


async def test_resend_within_the_stream_window_acks_the_original(world: World) -> None:
    """JetStream says duplicate: the ack carries the original message id, whatever the body."""
    first = await world.service.send(world.send("one", client_msg_id=(key := uuid.uuid4())))
    again = await world.service.send(world.send("two", client_msg_id=key))
    assert again == Ack(key, first.message_id, first.stream_seq, True, first.accepted_at)
    assert len(world.publisher.stream) == 1


async def test_resend_of_a_stored_message_is_answered_from_the_database(world: World) -> None:
    """After the JetStream window PostgreSQL decides; membership not cached yet: no publish
    at all (it is read with the stored copy, in one round trip)."""
    key = uuid.uuid4()
    stored = StoredSend(uuid.uuid4(), 77, world.clock.start, 1)
    world.repository.stored[(world.alice, key)] = stored
    ack = await world.service.send(world.send(client_msg_id=key))
    assert ack == Ack(key, stored.message_id, 77, True, stored.accepted_at)
    assert world.publisher.submitted == []


async def test_stored_duplicate_wins_even_after_leaving_the_conversation(world: World) -> None:
    """The answer to a retry does not change because membership changed since."""
    key = uuid.uuid4()
    world.repository.stored[(world.eve, key)] = StoredSend(uuid.uuid4(), 5, world.clock.start, 1)
    ack = await world.service.send(world.send(sender=world.eve, client_msg_id=key))
    assert ack.duplicate


async def test_a_member_with_cached_membership_is_published_while_the_lookup_runs(
    world: World,
) -> None:
    """The stored-copy lookup and the publish overlap: the ack waits for the slower of the
    two, not for both one after the other."""
    await world.service.send(world.send())  # the conversation's membership is cached now
    world.repository.gate = asyncio.Event()
    sending = asyncio.create_task(world.service.send(world.send("second")))
    for _ in range(10):
        await asyncio.sleep(0)
    assert [m.body for m in world.publisher.submitted] == ["hi", "second"]
    assert not sending.done()  # the lookup has not answered: no ack yet
    world.repository.gate.set()
    ack = await sending
    assert (ack.message_id, ack.duplicate) == (world.publisher.stream[1].message_id, False)


async def test_a_cancelled_send_leaves_no_lookup_behind(world: World) -> None:
    """Cancelled while waiting for its PubAck, with the lookup still running."""
    await world.service.send(world.send())
    world.repository.gate = asyncio.Event()
    world.publisher.hold = True
    sending = asyncio.create_task(world.service.send(world.send()))
    for _ in range(10):
        await asyncio.sleep(0)
    sending.cancel()
    await asyncio.wait({sending})
    for _ in range(5):  # the lookup's own cancellation takes a few loop turns
        await asyncio.sleep(0)
    others = asyncio.all_tasks() - {asyncio.current_task()}
    assert sending.cancelled()
    assert all(task.done() for task in others)


async def test_a_stored_resend_published_again_is_acked_with_the_original(world: World) -> None:
    """With membership cached a resend is published before the lookup answers; the stored copy
    still decides the ack (the consumer skips the second copy: PostgreSQL's unique key)."""
    await world.service.send(world.send())
    key = uuid.uuid4()
    stored = StoredSend(uuid.uuid4(), 77, world.clock.start, 1)
    world.repository.stored[(world.alice, key)] = stored
    ack = await world.service.send(world.send(client_msg_id=key))
    assert ack == Ack(key, stored.message_id, 77, True, stored.accepted_at)
    world.publisher.down = True  # and when the publish fails, the stored copy answers too
    assert await world.service.send(world.send(client_msg_id=key)) == ack


async def test_a_cached_non_member_is_refused_without_a_publish(world: World) -> None:
    await world.service.send(world.send())
    with pytest.raises(Forbidden):
        await world.service.send(world.send(sender=world.eve))
    assert [m.sender_id for m in world.publisher.submitted] == [world.alice]


async def test_invalid_body_is_refused_before_any_io(world: World) -> None:
    with pytest.raises(ValidationFailed):
        await world.service.send(world.send("\x00"))
    assert world.repository.calls == 0


@pytest.mark.parametrize("outage", ["database", "bus", "pubacks"])
async def test_outages_answer_unavailable_and_never_ack(world: World, outage: str) -> None:
    if outage == "database":
        world.repository.down = True
    elif outage == "bus":
        world.publisher.down = True
    else:
        world.publisher.fail_receipts = True
    with pytest.raises(Unavailable) as caught:
        await world.service.send(world.send())
    assert caught.value.retry_after_ms is not None


async def test_the_publish_happens_within_the_turn_it_is_given(world: World) -> None:
    """The send is handed to JetStream inside `turn` (a connection's publish order), and the
    PubAck is awaited after it."""
    seen: list[str] = []

    class Turn:
        async def __aenter__(self) -> None:
            seen.append(f"enter, {len(world.publisher.submitted)} published")

        async def __aexit__(self, *exc_info: object) -> None:
            seen.append(f"exit, {len(world.publisher.submitted)} published")

    ack = await world.service.send(world.send(), Turn())
    assert seen == ["enter, 0 published", "exit, 1 published"]
    assert ack.message_id == world.publisher.stream[0].message_id


@pytest.mark.parametrize(("outage", "level"), [("bus", logging.DEBUG), ("pubacks", logging.INFO)])
async def test_a_failed_publish_is_logged_with_the_ids_and_without_the_body(
    world: World, caplog: pytest.LogCaptureFixture, outage: str, level: int
) -> None:
    caplog.set_level(logging.DEBUG)
    world.publisher.down = outage == "bus"
    world.publisher.fail_receipts = outage == "pubacks"
    command = world.send("secret words")
    with pytest.raises(Unavailable):
        await world.service.send(command)
    [line] = [r for r in caplog.records if r.getMessage().startswith("publish failed")]
    assert line.levelno == level
    assert getattr(line, "client_msg_id", None) == command.client_msg_id
    assert isinstance(getattr(line, "message_id", None), uuid.UUID)
    assert getattr(line, "code", None) == "unavailable"
    assert "secret words" not in str(line.__dict__)


async def test_a_duplicate_is_logged_at_debug_with_the_original_id(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = await world.service.send(world.send(client_msg_id=(key := uuid.uuid4())))
    await world.service.send(world.send(client_msg_id=key))
    [line] = [r for r in caplog.records if r.getMessage().startswith("duplicate send")]
    assert line.levelno == logging.DEBUG
    assert (getattr(line, "message_id", None), getattr(line, "client_msg_id", None)) == (
        first.message_id,
        key,
    )


# -- "wait":"stored" (issue 14) ------------------------------------------------------------------


class Consumer:
    """Stands in for the consumer: stores the published sends after `after` polls' sleeps."""

    def __init__(self, world: World, after: int) -> None:
        self.world = world
        self.after = after
        self.sleeps = 0

    async def sleep(self, seconds: float) -> None:
        await self.world.clock.sleep(seconds)
        self.sleeps += 1
        if self.sleeps == self.after:
            for n, message in enumerate(self.world.publisher.stream, start=1):
                self.world.repository.stored[(message.sender_id, message.client_msg_id)] = (
                    StoredSend(message.message_id, n, message.accepted_at, 10 + n)
                )


def waiting_service(world: World, consumer: Consumer, wait_s: float = 5.0) -> MessageService:
    return MessageService(
        membership_for(world.repository, world.clock),
        world.publisher,
        max_body_chars=4096,
        now=world.clock.now,
        new_id=uuid.uuid4,
        stored_wait_s=wait_s,
        monotonic=world.clock.monotonic,
        sleep=consumer.sleep,
    )


def waiting(world: World, client_msg_id: uuid.UUID | None = None) -> SendMessage:
    return replace(world.send(" hi ", client_msg_id=client_msg_id), wait_stored=True)


async def test_a_send_that_waits_is_acked_once_stored_with_its_seq(world: World) -> None:
    consumer = Consumer(world, after=3)
    ack = await waiting_service(world, consumer).send(waiting(world))
    assert (ack.seq, ack.duplicate, ack.stream_seq) == (11, False, 1)
    assert ack.to_wire()["seq"] == 11
    assert consumer.sleeps == 3
    assert world.clock.slept == [0.005, 0.01, 0.02]  # soon at first, then less often


async def test_a_default_send_does_not_wait_and_its_ack_has_no_seq(world: World) -> None:
    consumer = Consumer(world, after=1)
    ack = await waiting_service(world, consumer).send(world.send())
    assert ack.seq is None
    assert "seq" not in ack.to_wire()
    assert consumer.sleeps == 0


async def test_a_send_not_stored_in_time_is_not_stored_yet_and_a_resend_gets_its_seq(
    world: World,
) -> None:
    consumer = Consumer(world, after=1000)
    service = waiting_service(world, consumer, wait_s=0.5)
    key = uuid.uuid4()
    with pytest.raises(NotStoredYet) as late:
        await service.send(waiting(world, key))
    assert late.value.to_wire()["code"] == "not_stored_yet"
    assert late.value.retry_after_ms is not None
    assert world.clock.elapsed == pytest.approx(0.5)
    [published] = world.publisher.stream  # in JetStream: not lost

    consumer.after = consumer.sleeps + 1  # the consumer catches up
    again = await service.send(waiting(world, key))
    assert (again.message_id, again.duplicate, again.seq) == (published.message_id, True, 11)
    assert len(world.publisher.stream) == 1


async def test_a_resend_of_a_stored_send_that_waits_is_answered_at_once_with_its_seq(
    world: World,
) -> None:
    consumer = Consumer(world, after=1000)
    key = uuid.uuid4()
    world.repository.stored[(world.alice, key)] = StoredSend(uuid.uuid4(), 7, world.clock.start, 3)
    ack = await waiting_service(world, consumer).send(waiting(world, key))
    assert (ack.duplicate, ack.seq) == (True, 3)
    without_wait = await waiting_service(world, consumer).send(world.send(client_msg_id=key))
    assert without_wait.seq is None
    assert consumer.sleeps == 0


async def test_a_database_outage_while_waiting_ends_in_not_stored_yet(world: World) -> None:
    consumer = Consumer(world, after=1000)
    service = waiting_service(world, consumer, wait_s=0.3)
    command = waiting(world)
    await service.send(world.send())  # the conversation's membership is cached now
    world.repository.down = True
    with pytest.raises(NotStoredYet):
        await service.send(command)
