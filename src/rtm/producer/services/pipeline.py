"""One connection's sends, pipelined: checked concurrently, published and answered in order.

PROTOCOL.md §4: the messages one connection sends are accepted in the order it sent them. A
connection may have up to `max_in_flight` sends waiting for their ack; waiting for each PubAck
before publishing the next would cap a connection at one round trip per message, so:

    submit ─▶ prepare (task per send, concurrent: membership + duplicate lookup)
                 │  awaited in submission order by the sequencer
                 ▼
              publish (sequencer: one at a time, so JetStream receives them in order)
                 │  PubAcks awaited in order by the acker
                 ▼
              on_result(command, Ack | RtmError)   (in submission order)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from rtm.producer.domain.exceptions import TooManyInFlight
from rtm.producer.domain.model import Ack, SendMessage
from rtm.producer.domain.ports import PendingPublish
from rtm.producer.services.messages import MessageService
from rtm.shared.contract import AcceptedMessage
from rtm.shared.errors import ErrorCode, RtmError
from rtm.shared.ids import new_id

logger = logging.getLogger(__name__)

Result = Ack | RtmError
ResultSink = Callable[[SendMessage, Result], None]


@dataclass(slots=True)
class _Entry:
    command: SendMessage
    prepare: asyncio.Task[Ack | AcceptedMessage]


@dataclass(slots=True)
class _Answered:
    command: SendMessage
    result: Result


@dataclass(slots=True)
class _Publishing:
    command: SendMessage
    message: AcceptedMessage
    pending: PendingPublish


def internal_error(exc: BaseException, what: str, **fields: object) -> RtmError:
    """A bug: logged with a correlation id that the client's error message repeats, and with
    `fields` (the ids of the message concerned, say)."""
    correlation = str(new_id())
    logger.error(
        "unexpected error while %s", what, exc_info=exc, extra={"cid": correlation, **fields}
    )
    return RtmError(ErrorCode.INTERNAL, f"internal error; correlation id {correlation}")


class SendPipeline:
    """The ordered send pipeline of one connection.

    Args:
        service: the send path.
        max_in_flight: sends submitted and not yet answered; one more raises `TooManyInFlight`.
        on_result: called once per submitted send, in submission order, with its ack or error.
    """

    def __init__(self, service: MessageService, *, max_in_flight: int, on_result: ResultSink):
        self._service = service
        self._max_in_flight = max_in_flight
        self._on_result = on_result
        self._entries: asyncio.Queue[_Entry] = asyncio.Queue()
        self._published: asyncio.Queue[_Answered | _Publishing] = asyncio.Queue()
        self._prepares: set[asyncio.Task[Ack | AcceptedMessage]] = set()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._sequence(), name="send-sequencer"),
            asyncio.create_task(self._acknowledge(), name="send-acker"),
        ]

    def submit(self, command: SendMessage) -> None:
        """Queue a validated send; its answer comes through `on_result`."""
        if self._in_flight >= self._max_in_flight:
            raise TooManyInFlight(self._max_in_flight)
        task = asyncio.create_task(self._service.prepare(command), name="send-prepare")
        self._prepares.add(task)
        task.add_done_callback(self._prepares.discard)
        self._in_flight += 1
        self._idle.clear()
        self._entries.put_nowait(_Entry(command, task))

    async def _sequence(self) -> None:
        while True:
            entry = await self._entries.get()
            try:
                outcome = await entry.prepare
                if isinstance(outcome, Ack):
                    self._published.put_nowait(_Answered(entry.command, outcome))
                    continue
                pending = await self._service.submit(outcome)
            except RtmError as exc:
                self._published.put_nowait(_Answered(entry.command, exc))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = internal_error(exc, "sending", client_msg_id=entry.command.client_msg_id)
                self._published.put_nowait(_Answered(entry.command, error))
            else:
                self._published.put_nowait(_Publishing(entry.command, outcome, pending))

    async def _acknowledge(self) -> None:
        while True:
            item = await self._published.get()
            result: Result
            if isinstance(item, _Answered):
                result = item.result
            else:
                try:
                    result = await self._service.complete(item.message, item.pending)
                except RtmError as exc:
                    result = exc
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    result = internal_error(
                        exc,
                        "waiting for a PubAck",
                        message_id=item.message.message_id,
                        client_msg_id=item.command.client_msg_id,
                    )
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
            try:
                self._on_result(item.command, result)
            except Exception as exc:  # a broken sink must not stop the pipeline
                internal_error(exc, "delivering a send result")

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
        tasks = [*self._tasks, *self._prepares]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
