"""Pull requests to a JetStream consumer, answered into an inbox of our own.

nats-py's `PullSubscription.fetch(n, timeout)` returns only when its request is over: n messages
have come, the server says it has no more, or the request expires. A message that arrives while
a request lingers therefore waits for the request to end. On a partition at a few messages a
second that was most messages: in `rtm bench rooms` at 125 msgs/s (8 partitions) a message
waited in the consumer's fetch for up to its 0.5 s timeout, which was the whole p99 (170 ms) and
p99.9 (440 ms) of delivery. Both pulls here hand over what has arrived as soon as it has, and
collect messages in a subscription callback rather than awaiting each with a timeout of its own
(a task per message, most of the continuity auditor's CPU with `fetch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections import deque

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from rtm.shared.connect import NATS_FAILURES
from rtm.shared.contract import STREAM

STATUS = "Status"  # header of JetStream's status messages (404 no messages, 408, 409, 100)
_DESCRIPTION = "Description"
_HEARTBEAT = "100"
CONSUMER_DELETED = "Consumer Deleted"  # a 409's description when the consumer is gone


def _next_subject(consumer: str) -> str:
    return f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{consumer}"


def _status(message: Msg) -> str | None:
    return message.headers.get(STATUS) if message.headers else None


class _Inbox(ABC):
    """A subscription on a fresh inbox: where a consumer's answers to our requests arrive."""

    def __init__(self, nc: NatsClient, consumer: str) -> None:
        self._nc = nc
        self._subject = _next_subject(consumer)
        self._inbox = nc.new_inbox()
        self._subscription: Subscription | None = None

    async def subscribe(self) -> None:
        self._subscription = await self._nc.subscribe(self._inbox, cb=self._collect)

    @abstractmethod
    async def _collect(self, message: Msg) -> None:
        """Takes one message or status from the inbox (a subscription callback)."""

    async def _request(self, request: dict[str, object]) -> None:
        await self._nc.publish(self._subject, orjson.dumps(request), reply=self._inbox)

    async def close(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(*NATS_FAILURES):
                await self._subscription.unsubscribe()


class NoWaitPull(_Inbox):
    """One request at a time for messages the consumer has now (`no_wait`): for reading a
    known range, where waiting for more would only wait out a timeout."""

    def __init__(self, nc: NatsClient, consumer: str) -> None:
        super().__init__(nc, consumer)
        self._messages: list[Msg] = []
        self._wanted = 0
        self._answered = asyncio.Event()

    async def _collect(self, message: Msg) -> None:
        status = _status(message)
        if status is not None:
            if status != _HEARTBEAT:  # 404, 408, 409: the request is over
                self._answered.set()
            return
        self._messages.append(message)
        if len(self._messages) >= self._wanted:
            self._answered.set()

    async def next(self, count: int, timeout: float) -> list[Msg]:
        """Up to `count` messages (fewer only when the consumer has no more)."""
        self._messages, self._wanted = [], count
        self._answered.clear()
        await self._request({"batch": count, "no_wait": True})
        await asyncio.wait_for(self._answered.wait(), timeout)
        return self._messages


class ConsumerDeleted(Exception):
    """The server deleted the consumer a standing pull reads (a newer owner took it over)."""


class StandingPull(_Inbox):
    """Keeps a request open on a consumer, so a message is handed over the moment it arrives.

    Credit is what the open requests still ask for, oldest request first (the server fills them
    in order). Whenever it is below half of `next`'s `max_messages`, `next` asks for that many
    more, so the server
    always has a request to deliver into and a busy consumer never waits a round trip for the
    next one. A request ends when its messages have come, with a status (408 when it expires,
    409), or, failing both, a grace period after it expired. Credit only decides when to ask
    again: a message that comes for a request counted out is taken all the same, and the
    messages waiting here never exceed what the live requests asked for.

    Args:
        nc: a connected client.
        consumer: the consumer's name on the stream.
        expires: seconds a request stays open on the server.
    """

    GRACE_S = 1.0  # after its expiry, a request neither filled nor ended counts as ended

    def __init__(self, nc: NatsClient, consumer: str, *, expires: float) -> None:
        super().__init__(nc, consumer)
        self._expires = expires
        self._open: deque[list[float]] = deque()  # [messages still asked for, expiry]
        self._arrived: deque[Msg] = deque()
        self._ready = asyncio.Event()
        self._deleted = False

    async def _collect(self, message: Msg) -> None:
        status = _status(message)
        if status is None:
            self._arrived.append(message)
            if self._open:
                self._open[0][0] -= 1
                if self._open[0][0] <= 0:
                    self._open.popleft()
        elif status != _HEARTBEAT:
            assert message.headers is not None
            if message.headers.get(_DESCRIPTION) == CONSUMER_DELETED:
                self._deleted = True
            if self._open:
                self._open.popleft()
        self._ready.set()  # a message to take, or a request over: `next` asks again

    async def next(self, max_messages: int, timeout: float) -> list[Msg]:
        """Up to `max_messages` that have arrived, waiting up to `timeout` for the first (none:
        nothing came). Raises `ConsumerDeleted` once the server has said so."""
        deadline = time.monotonic() + timeout
        while not self._arrived and not self._deleted:
            self._ready.clear()
            wake = await self._top_up(max_messages)
            now = time.monotonic()
            if now >= deadline:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(deadline, wake) - now):
                    await self._ready.wait()
        if self._deleted:
            raise ConsumerDeleted(self._subject)
        count = min(max_messages, len(self._arrived))
        messages = [self._arrived.popleft() for _ in range(count)]
        await self._top_up(max_messages)  # the next request is on its way while these are stored
        return messages

    async def _top_up(self, batch: int) -> float:
        """Ask for `batch` more if the open requests ask for less than half of it; returns when
        the oldest open request is to count as ended if nothing has ended it by then."""
        now = time.monotonic()
        while self._open and self._open[0][1] + self.GRACE_S <= now:
            self._open.popleft()
        if sum(asked for asked, _ in self._open) * 2 < batch:
            await self._request({"batch": batch, "expires": int(self._expires * 1e9)})
            self._open.append([float(batch), now + self._expires])
        return self._open[0][1] + self.GRACE_S
