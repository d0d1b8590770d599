"""One connection's sends, pipelined: checked concurrently, published and answered in order.

docs/protocol.md, "4. Conversations": the messages one connection sends are accepted in the order it
sent them. A connection may have up to `max_in_flight` sends waiting for their ack; waiting for each
PubAck before publishing the next would cap a connection at one round trip per message. So each send
runs `MessageService.send` in a task of its own, and the pipeline adds only the order:

    submit(command)           a task per send: MessageService.send(command, turn)
        │                         check (concurrent: membership + duplicate lookup)
        │                         publish, when its `turn` comes (in submission order)
        │                         wait for the PubAck (concurrent) → Ack | RtmError
        ▼
    answers()                 yields each send with its answer, in submission order

The entrypoint (`entrypoints/ws_connection.py`) submits what it reads; its `ws_answerer.py`
writes what `answers()` yields.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from rtm.producer.domain.exceptions import TooManyInFlight
from rtm.producer.domain.model import Ack, SendMessage
from rtm.shared.errors import ErrorCode, RtmError
from rtm.shared.ids import new_id

logger = logging.getLogger(__name__)

Result = Ack | RtmError


def internal_error(exc: BaseException, what: str, **fields: object) -> RtmError:
    """A bug: logged with a correlation id that the client's error message repeats, and with
    `fields` (the ids of the message concerned, say)."""
    correlation = str(new_id())
    logger.error(
        "unexpected error while %s", what, exc_info=exc, extra={"cid": correlation, **fields}
    )
    return RtmError(ErrorCode.INTERNAL, f"internal error; correlation id {correlation}")


class _PublishTurn:
    """One send's place in its connection's publish order: entering it waits until the send
    submitted before it has been handed to JetStream (or will never be); `end` lets the next
    one in. A send that ends without publishing (a duplicate, a refusal, cancelled) ends its
    turn too."""

    __slots__ = ("_after", "_done")

    def __init__(self, previous: _PublishTurn | None) -> None:
        self._done: asyncio.Event = asyncio.Event()
        self._after: asyncio.Event | None = None if previous is None else previous._done

    async def __aenter__(self) -> None:
        if self._after is not None:
            await self._after.wait()

    async def __aexit__(self, *exc_info: object) -> None:
        self.end()

    def end(self) -> None:
        self._done.set()


class Sender(Protocol):
    """What the pipeline needs of the send path (`MessageService`): a send that publishes
    within `turn` and returns the ack, or raises an `RtmError` to answer with."""

    async def send(
        self, command: SendMessage, turn: AbstractAsyncContextManager[object]
    ) -> Ack: ...


@dataclass(slots=True)
class _Sending:
    command: SendMessage
    task: asyncio.Task[Ack]


class SendPipeline:
    """The ordered send pipeline of one connection.

    Args:
        service: the send path (`MessageService`).
        max_in_flight: sends submitted and not yet answered; one more raises `TooManyInFlight`.
    """

    def __init__(self, service: Sender, *, max_in_flight: int) -> None:
        self._service = service
        self._max_in_flight = max_in_flight
        self._sending: asyncio.Queue[_Sending] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Ack]] = set()
        self._last_turn: _PublishTurn | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def submit(self, command: SendMessage) -> None:
        """Start sending a validated command; its answer comes from `answers`."""
        if self._in_flight >= self._max_in_flight:
            raise TooManyInFlight(self._max_in_flight)
        turn = self._last_turn = _PublishTurn(self._last_turn)
        task = asyncio.create_task(self._send(command, turn), name="send")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._in_flight += 1
        self._idle.clear()
        self._sending.put_nowait(_Sending(command, task))

    async def _send(self, command: SendMessage, turn: _PublishTurn) -> Ack:
        try:
            return await self._service.send(command, turn)
        finally:
            turn.end()

    async def answers(self) -> AsyncGenerator[tuple[SendMessage, Result], None]:
        """Each submitted send with its ack or error, in submission order, for ever (sends
        cancelled by `close` get no answer)."""
        while True:
            sending = await self._sending.get()
            if not sending.task.done():
                # wait(), not `await task`: our own cancellation must not pass for the send's.
                # (Only when not done: wait() on a done task still costs a loop turn, and the
                # answers already there go out in the same turn, together.)
                await asyncio.wait((sending.task,))
            if sending.task.cancelled():
                continue
            error = sending.task.exception()
            result: Result
            if error is None:
                result = sending.task.result()
            elif isinstance(error, RtmError):
                result = error
            else:  # a bug in one send: answered `internal`, the others go on
                result = internal_error(
                    error, "sending", client_msg_id=sending.command.client_msg_id
                )
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
            yield sending.command, result

    async def drain(self, timeout: float) -> bool:
        """Wait until every submitted send is answered; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop at once: unanswered sends get no answer (already published ones stay stored;
        the client resends them with the same client_msg_id and gets `duplicate: true`)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
