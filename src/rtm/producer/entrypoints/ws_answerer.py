"""`SendAnswerer`: the `answerer` task of a producer `/v1/ws` connection (see
`rtm.producer.entrypoints.ws_connection`).

It writes each send's ack (or error) as the connection's `SendPipeline` yields it, in send order,
and observes each ack's latency from when its frame was read. It lives apart from
`ProducerConnection` because it is the outbound half of a send, with state of its own (when each
send in the pipeline was read) that the connection's reading and lifecycle never look at.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from rtm.producer.domain.model import Ack, SendMessage
from rtm.producer.entrypoints.deps import ProducerContext
from rtm.producer.entrypoints.metrics import (
    PER_TURN,
    SENDS,
    WS_ACCEPTED,
    WS_ACK_LATENCY,
    WS_DUPLICATE,
    WS_PUBLISHED,
)
from rtm.producer.services import Result, SendPipeline, internal_error
from rtm.shared.errors import RtmError


class SendAnswerer:
    """Answers one connection's sends; `emit` and `error` are the connection's own writers (its
    outbox, its frame counts, its close on overflow)."""

    def __init__(
        self,
        pipeline: SendPipeline,
        context: ProducerContext,
        emit: Callable[[dict[str, object]], None],
        error: Callable[[RtmError, str | None], None],
    ) -> None:
        self._pipeline = pipeline
        self._ctx = context
        self._emit = emit
        self._error = error
        # When each send still in the pipeline was read: its answers come in the same order.
        self._received: deque[float] = deque()

    def submitted(self, received: float) -> None:
        """A send read at `received` went into the pipeline: its answer's latency counts from
        then."""
        self._received.append(received)

    async def run(self) -> None:
        async for command, result in self._pipeline.answers():
            try:
                self._answer_send(command, result)
            except Exception as exc:  # last line of defence: the next sends are answered still
                internal_error(exc, "answering a send")

    def _answer_send(self, command: SendMessage, result: Result) -> None:
        received = self._received.popleft() if self._received else None
        if isinstance(result, Ack):
            if result.duplicate:
                PER_TURN.inc(WS_DUPLICATE)
            else:
                PER_TURN.inc(WS_ACCEPTED)
                PER_TURN.inc(WS_PUBLISHED)
            self._emit(result.to_wire())
            if received is not None:
                PER_TURN.observe(WS_ACK_LATENCY, self._ctx.monotonic() - received)
        else:
            SENDS.labels("ws", result.code.value).inc()
            self._error(result, str(command.client_msg_id))
