"""A connection's pipeline: concurrent checks, publishes and answers in submission order."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AbstractAsyncContextManager

import pytest

from rtm.producer.domain.exceptions import Forbidden, TooManyInFlight
from rtm.producer.domain.model import Ack, Conversation, ConversationKind, SendMessage
from rtm.producer.services import MessageService, Result, SendPipeline
from rtm.shared.errors import ErrorCode
from tests.support.clock import FakeClock
from tests.support.producer_fakes import (
    FakeMessagePublisher,
    InMemoryConversationRepository,
    membership_for,
)


class Harness:
    def __init__(self, max_in_flight: int = 64) -> None:
        clock = FakeClock()
        self.repository = InMemoryConversationRepository()
        self.publisher = FakeMessagePublisher()
        self.service = MessageService(
            membership_for(self.repository, clock),
            self.publisher,
            max_body_chars=4096,
            now=clock.now,
            new_id=uuid.uuid4,
        )
        self.user = uuid.uuid4()
        self.conversation = self.repository.add(
            Conversation(
                uuid.uuid4(), ConversationKind.GROUP, "t", (self.user,), self.user, clock.now()
            )
        ).id
        self.results: list[tuple[SendMessage, Result]] = []
        self.pipeline = SendPipeline(self.service, max_in_flight=max_in_flight)
        self._answering: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Collect the answers as the entrypoint would."""
        self._answering = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for answer in self.pipeline.answers():
            self.results.append(answer)

    async def close(self) -> None:
        await self.pipeline.close()
        if self._answering is not None:
            self._answering.cancel()
            await asyncio.gather(self._answering, return_exceptions=True)

    def command(self, conversation: uuid.UUID | None = None) -> SendMessage:
        return SendMessage(self.user, uuid.uuid4(), conversation or self.conversation, "hi")


@pytest.fixture
async def harness() -> Harness:
    return Harness()


async def test_sends_are_published_and_acked_in_submission_order(harness: Harness) -> None:
    harness.start()
    commands = [harness.command() for _ in range(50)]
    for command in commands:
        harness.pipeline.submit(command)
    assert await harness.pipeline.drain(5)
    await harness.close()
    assert [m.client_msg_id for m in harness.publisher.stream] == [
        c.client_msg_id for c in commands
    ]
    assert [c for c, _ in harness.results] == commands
    seqs = [r.stream_seq for _, r in harness.results if isinstance(r, Ack)]
    assert seqs == list(range(1, 51))


async def test_pubacks_are_awaited_concurrently(harness: Harness) -> None:
    """Every send is published before the first PubAck arrives: one round trip, not fifty."""
    harness.publisher.hold = True
    harness.start()
    for _ in range(10):
        harness.pipeline.submit(harness.command())
    for _ in range(100):
        await asyncio.sleep(0)
    assert len(harness.publisher.submitted) == 10
    assert harness.results == []
    assert harness.pipeline.in_flight == 10
    harness.publisher.release()
    assert await harness.pipeline.drain(5)
    await harness.close()
    assert len(harness.results) == 10


async def test_a_failed_send_does_not_stop_or_reorder_the_others(harness: Harness) -> None:
    harness.start()
    good1, bad, good2 = harness.command(), harness.command(uuid.uuid4()), harness.command()
    for command in (good1, bad, good2):
        harness.pipeline.submit(command)
    assert await harness.pipeline.drain(5)
    await harness.close()
    assert [c for c, _ in harness.results] == [good1, bad, good2]
    error = harness.results[1][1]
    assert not isinstance(error, Ack)
    assert error.code is ErrorCode.FORBIDDEN
    assert isinstance(harness.results[2][1], Ack)


async def test_in_flight_limit_refuses_the_extra_send() -> None:
    harness = Harness(max_in_flight=3)
    harness.publisher.hold = True
    harness.start()
    for _ in range(3):
        harness.pipeline.submit(harness.command())
    with pytest.raises(TooManyInFlight) as caught:
        harness.pipeline.submit(harness.command())
    assert caught.value.code is ErrorCode.TOO_MANY_IN_FLIGHT
    harness.publisher.release()
    for _ in range(100):
        await asyncio.sleep(0)
    harness.publisher.release()
    assert await harness.pipeline.drain(5)
    harness.pipeline.submit(harness.command())  # room again
    harness.publisher.release()
    await harness.close()


async def test_drain_times_out_while_pubacks_are_missing(harness: Harness) -> None:
    harness.publisher.hold = True
    harness.start()
    harness.pipeline.submit(harness.command())
    assert not await harness.pipeline.drain(0.05)
    await harness.close()
    assert harness.results == []


async def test_close_cancels_pending_checks_quietly(harness: Harness) -> None:
    harness.repository.gate = asyncio.Event()
    harness.start()
    harness.pipeline.submit(harness.command())
    await asyncio.sleep(0)
    await harness.close()
    assert harness.results == []


async def test_a_bug_while_sending_is_logged_with_the_send_and_its_correlation_id(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(_: object) -> object:
        raise RuntimeError("bug")

    harness.publisher.submit = broken  # type: ignore[method-assign, assignment]
    harness.start()
    command = harness.command()
    harness.pipeline.submit(command)
    assert await harness.pipeline.drain(5)
    await harness.close()
    [(_, error)] = harness.results
    assert not isinstance(error, Ack)
    assert error.code is ErrorCode.INTERNAL
    [line] = [r for r in caplog.records if r.getMessage() == "unexpected error while sending"]
    assert getattr(line, "client_msg_id", None) == command.client_msg_id
    assert error.message.endswith(str(getattr(line, "cid", None)))


class GatedSender:
    """A send path whose checks finish when the test says so; records the publish order."""

    def __init__(self) -> None:
        self.checked: dict[uuid.UUID, asyncio.Event] = {}
        self.published: list[uuid.UUID] = []

    def command(self, refused: bool = False) -> SendMessage:
        command = SendMessage(
            uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "refused" if refused else ""
        )
        self.checked[command.client_msg_id] = asyncio.Event()
        return command

    async def send(self, command: SendMessage, turn: AbstractAsyncContextManager[object]) -> Ack:
        await self.checked[command.client_msg_id].wait()
        if command.body == "refused":
            raise Forbidden()
        async with turn:
            self.published.append(command.client_msg_id)
        return Ack(
            command.client_msg_id, uuid.uuid4(), len(self.published), False, FakeClock().now()
        )


async def test_a_send_checked_early_waits_for_the_earlier_sends_to_be_published() -> None:
    """Checks overlap, publishes do not overtake: the second send's check finishing first
    does not publish it before the first."""
    sender = GatedSender()
    pipeline = SendPipeline(sender, max_in_flight=8)
    first, refused, third = sender.command(), sender.command(refused=True), sender.command()
    for command in (first, refused, third):
        pipeline.submit(command)
    sender.checked[third.client_msg_id].set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert sender.published == []
    sender.checked[first.client_msg_id].set()
    sender.checked[refused.client_msg_id].set()
    answers = pipeline.answers()
    results = [await anext(answers) for _ in range(3)]
    await answers.aclose()
    await pipeline.close()
    assert sender.published == [first.client_msg_id, third.client_msg_id]
    assert [command for command, _ in results] == [first, refused, third]
    assert isinstance(results[1][1], Forbidden)
