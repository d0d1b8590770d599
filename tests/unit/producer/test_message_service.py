"""The send path over fakes: membership, duplicates (stored and in the stream), outages."""

from __future__ import annotations

import logging
import uuid

import pytest

from rtm.producer.domain.exceptions import Forbidden, Unavailable, ValidationFailed
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
    """After the JetStream window PostgreSQL decides: no publish at all."""
    key = uuid.uuid4()
    stored = StoredSend(uuid.uuid4(), 77, world.clock.start)
    world.repository.stored[(world.alice, key)] = stored
    ack = await world.service.send(world.send(client_msg_id=key))
    assert ack == Ack(key, stored.message_id, 77, True, stored.accepted_at)
    assert world.publisher.submitted == []


async def test_stored_duplicate_wins_even_after_leaving_the_conversation(world: World) -> None:
    """The answer to a retry does not change because membership changed since."""
    key = uuid.uuid4()
    world.repository.stored[(world.eve, key)] = StoredSend(uuid.uuid4(), 5, world.clock.start)
    ack = await world.service.send(world.send(sender=world.eve, client_msg_id=key))
    assert ack.duplicate


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
