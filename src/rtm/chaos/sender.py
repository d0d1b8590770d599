"""The sending client of a chaos run: an app with an outbox, over the producer's WebSocket.

A message joins the user's outbox when it is due (whether or not a connection is up) and leaves
it only when acked. The sender pipelines up to `window` sends, always in outbox order, and
resends every unacked one with the same `client_msg_id`:

* after a reconnect: everything still in the outbox, from the oldest;
* after an error frame naming it (`unavailable`, `rate_limited`, …): it goes back into the
  outbox in order, and nothing is sent until `retry_after_ms` has passed (a default pause when
  the frame has none);
* after silence: sends in flight and no answer for `answer_timeout` s, it drops the connection
  and reconnects (the producer acks within its 2 s PubAck timeout or says `unavailable`).

What it records is what the checker needs: for each acked message its ack (`message_id`,
`stream_seq`), its attempts (more than one: retried, exempt from sender order) and the order of
its first send; and the anomalies a client can see by itself (a first send acked as a
duplicate; an error code other than the retryable ones).
"""

from __future__ import annotations

import asyncio
import heapq
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import websockets

from rtm.chaos.clients import (
    CONNECT_ERRORS,
    OPEN_TIMEOUT_S,
    Backoff,
    Credentials,
    RunClock,
    close_code,
    parse_frame,
    require,
)
from rtm.chaos.errors import MalformedFrame

ACK_FIELDS = ("client_msg_id", "message_id")
RETRYABLE = frozenset({"unavailable", "rate_limited", "too_many_in_flight"})
MAX_NOTED = 20  # anomalies kept word for word per sender
DEFAULT_PAUSE_S = 0.25  # an error without retry_after_ms: wait this long before sending again


@dataclass(slots=True)
class Outgoing:
    """One message of the run, from due to acked."""

    index: int  # position in the run's plan: outbox order
    due: float  # run time when the app wrote it (its creation time)
    conversation_id: str
    client_msg_id: str
    body: str
    attempts: int = 0
    first_send: int = -1  # order of its first send among the sender's messages
    acked_at: float | None = None
    message_id: str | None = None
    stream_seq: int | None = None
    duplicate: bool = False

    @property
    def retried(self) -> bool:
        return self.attempts > 1

    def frame(self) -> bytes:
        return orjson.dumps(
            {
                "type": "send",
                "client_msg_id": self.client_msg_id,
                "conversation_id": self.conversation_id,
                "body": self.body,
            }
        )


class OutboxSender:
    """One user's sending client; `run` returns once every message is due and acked."""

    def __init__(
        self,
        name: str,
        credentials: Credentials,
        url: str,
        messages: Sequence[Outgoing],
        clock: RunClock,
        *,
        window: int = 32,
        answer_timeout: float = 6.0,
    ) -> None:
        self.name = name
        self.credentials = credentials
        self.url = url
        self.clock = clock
        self.window = window
        self.answer_timeout = answer_timeout
        self.messages = sorted(messages, key=lambda m: m.index)
        self._next = 0  # the first message not yet due
        self.outbox: dict[str, Outgoing] = {}  # due and not acked
        self._pending: list[tuple[int, str]] = []  # heap of (index, client_msg_id) to send
        self._first_sends = 0
        self.acked: list[Outgoing] = []
        self.connections = 0
        self.errors: Counter[str] = Counter()  # error codes, and "silence" reconnects
        self.close_codes: Counter[int] = Counter()
        self.anomalies: list[str] = []
        self.duplicate_first_sends: list[Outgoing] = []
        self.malformed: list[str] = []  # frames that broke the protocol (then: reconnect)
        self._backoff = Backoff(random.Random())  # noqa: S311 - jitter, not a secret

    @property
    def finished(self) -> bool:
        return self._next == len(self.messages) and not self.outbox

    @property
    def sender_id(self) -> uuid.UUID:
        return uuid.UUID(self.credentials.user_id)

    async def run(self) -> None:
        """Send everything, reconnecting as often as it takes (cancel to give up)."""
        while not self.finished:
            try:
                headers = await self.credentials.headers()
                async with websockets.connect(
                    self.url, additional_headers=headers, open_timeout=OPEN_TIMEOUT_S
                ) as ws:
                    self.connections += 1
                    await self._session(ws)
            except MalformedFrame as exc:
                self.malformed.append(str(exc))
            except CONNECT_ERRORS as exc:
                code = close_code(exc)
                if code is not None:
                    self.close_codes[code] += 1
            if not self.finished:
                await self._backoff.wait()

    def _make_due(self, now: float) -> None:
        """Messages whose time has come join the outbox (also while disconnected: on the next
        connection they go out in order, after older unacked ones)."""
        while self._next < len(self.messages) and self.messages[self._next].due <= now:
            message = self.messages[self._next]
            self._next += 1
            self.outbox[message.client_msg_id] = message
            heapq.heappush(self._pending, (message.index, message.client_msg_id))

    async def _session(self, ws: websockets.ClientConnection) -> None:
        # Everything unacked goes (again) first, in outbox order: a fresh connection has
        # nothing in flight.
        self._pending = [(m.index, m.client_msg_id) for m in self.outbox.values()]
        heapq.heapify(self._pending)
        in_flight: dict[str, Outgoing] = {}
        hold_until = 0.0
        last_answer = self.clock.now()
        while not self.finished:
            now = self.clock.now()
            self._make_due(now)
            while len(in_flight) < self.window and now >= hold_until and self._pending:
                _, client_msg_id = heapq.heappop(self._pending)
                message = self.outbox.get(client_msg_id)
                if message is None or client_msg_id in in_flight:
                    continue  # acked meanwhile (a late ack after an error)
                if message.attempts == 0:
                    message.first_send = self._first_sends
                    self._first_sends += 1
                message.attempts += 1
                in_flight[client_msg_id] = message
                await ws.send(message.frame(), text=True)
            if not in_flight:
                last_answer = now
            wait = 0.05
            if self._next < len(self.messages):
                wait = min(wait, self.messages[self._next].due - now)
            if hold_until > now:
                wait = min(wait, hold_until - now)
            try:
                raw = await asyncio.wait_for(ws.recv(), max(0.001, wait))
            except TimeoutError:
                if in_flight and self.clock.now() - last_answer > self.answer_timeout:
                    self.errors["silence"] += 1
                    return  # reconnect; the outbox is sent again in order
                continue
            now = self.clock.now()
            last_answer = now
            frame = parse_frame(raw)
            kind = frame["type"]
            if kind == "ack":
                self._acked(require(frame, ACK_FIELDS), in_flight, now)
            elif kind == "error":
                hold_until = max(hold_until, self._refused(frame, in_flight, now))

    def _acked(self, frame: dict[str, object], in_flight: dict[str, Outgoing], now: float) -> None:
        client_msg_id = str(frame.get("client_msg_id"))
        in_flight.pop(client_msg_id, None)
        message = self.outbox.pop(client_msg_id, None)
        if message is None:
            self._note(f"an ack for {client_msg_id}, which was not awaiting one")
            return
        self._backoff.reset()  # a connection that acks works: reconnect quickly after it
        message.acked_at = now
        message.message_id = str(frame.get("message_id"))
        stream_seq = frame.get("stream_seq")
        message.stream_seq = stream_seq if isinstance(stream_seq, int) else None
        message.duplicate = bool(frame.get("duplicate"))
        self.acked.append(message)
        if message.duplicate and message.attempts == 1:
            self.duplicate_first_sends.append(message)

    def _note(self, anomaly: str) -> None:
        """Keep the first few anomalies' words (`errors` counts them all)."""
        if len(self.anomalies) < MAX_NOTED:
            self.anomalies.append(f"{self.name}: {anomaly}")

    def _refused(
        self, frame: dict[str, object], in_flight: dict[str, Outgoing], now: float
    ) -> float:
        """Put the refused send back in the outbox order; returns until when to hold off."""
        code = str(frame.get("code"))
        self.errors[code] += 1
        if code not in RETRYABLE:
            self._note(f"error {code}: {frame.get('message')}")
        ref = frame.get("ref")
        message = in_flight.pop(ref, None) if isinstance(ref, str) else None
        if message is not None:
            heapq.heappush(self._pending, (message.index, message.client_msg_id))
        retry_after = frame.get("retry_after_ms")
        pause = retry_after / 1000 if isinstance(retry_after, int | float) else DEFAULT_PAUSE_S
        return now + pause
