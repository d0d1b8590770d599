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

_STATUS = "Status"  # header of JetStream's status messages (404 no messages, 408, 409, 100)
_DESCRIPTION = "Description"
_PENDING_MESSAGES = "Nats-Pending-Messages"  # on a 408: what the expired request still asked
_HEARTBEAT = "100"
_NO_MESSAGES = "404"
_EXPIRED = "408"
_CONFLICT = "409"
_LEADERSHIP_CHANGE = "Leadership Change"  # a 409's description: the open requests are gone
_NO_RESPONDERS = "no responders: the consumer does not exist"  # what a bare 503 means here


def _next_subject(consumer: str) -> str:
    return f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{consumer}"


def _status(message: Msg) -> str | None:
    return message.headers.get(_STATUS) if message.headers else None


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


class PullRefused(Exception):
    """JetStream refused a standing pull's request: the consumer is gone (409 "Consumer
    Deleted", 503 no responders: a newer owner deleted it, or the stream went), or a server
    limit refuses it (409 "Exceeded MaxRequestBatch of 100", 400 ...). Asking again at once
    would be refused again: the caller stops."""


class StandingPull(_Inbox):
    """Keeps a request open on a consumer, so a message is handed over the moment it arrives.

    Credit is what the open requests still ask for: each message takes one, and a request
    that expires (408) gives back what it still asked for (`Nats-Pending-Messages`). Whenever
    it is below half of `next`'s `max_messages`, `next` asks for that many more, so the server
    always has a request to deliver into and a busy consumer never waits a round trip for the
    next one. The server serves open requests in turn, not oldest first, so only the total is
    counted; each request's expiry is kept to count it out a grace period after it, should no
    408 come (a request then counted out that was still open only makes the credit look
    smaller: one request more, never a stall). Messages that come are taken whichever request
    they answer, and never exceed what the requests of the last `expires + GRACE_S` seconds
    asked for.

    Args:
        nc: a connected client.
        consumer: the consumer's name on the stream.
        expires: seconds a request stays open on the server.
    """

    GRACE_S = 1.0  # after its expiry, a request neither filled nor ended counts as ended

    def __init__(self, nc: NatsClient, consumer: str, *, expires: float) -> None:
        super().__init__(nc, consumer)
        self._expires = expires
        self._credit = 0
        self._expiries: deque[tuple[int, float]] = deque()  # (asked, expiry), oldest first
        self._arrived: deque[Msg] = deque()
        self._ready = asyncio.Event()
        self._refused: str | None = None

    async def _collect(self, message: Msg) -> None:
        status = _status(message)
        if status is None:
            self._arrived.append(message)
            self._credit = max(0, self._credit - 1)
        elif status in (_EXPIRED, _NO_MESSAGES):
            self._request_ended(_still_asked(message))
        elif status == _CONFLICT and _description(message) == _LEADERSHIP_CHANGE:
            self._expiries.clear()  # every open request is gone with the old leader
            self._credit = 0
        elif status != _HEARTBEAT:
            self._refused = f"{status} {_description(message) or _NO_RESPONDERS}"
        self._ready.set()  # a message to take, or a request over: `next` asks again

    def _request_ended(self, still_asked: int | None) -> None:
        asked = self._expiries.popleft()[0] if self._expiries else 0
        remaining = asked if still_asked is None else still_asked
        self._credit = max(0, self._credit - remaining) if self._expiries else 0

    async def next(self, max_messages: int, timeout: float) -> list[Msg]:
        """Up to `max_messages` that have arrived, waiting up to `timeout` for the first (none:
        nothing came). Raises `PullRefused` once JetStream has refused a request."""
        deadline = time.monotonic() + timeout
        while not self._arrived and self._refused is None:
            self._ready.clear()
            wake = await self._top_up(max_messages)
            now = time.monotonic()
            if now >= deadline:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(deadline, wake) - now):
                    await self._ready.wait()
        if self._refused is not None:
            raise PullRefused(f"{self._refused} ({self._subject})")
        await self._top_up(max_messages)  # the next request is on its way while these are stored
        count = min(max_messages, len(self._arrived))
        return [self._arrived.popleft() for _ in range(count)]

    async def _top_up(self, batch: int) -> float:
        """Ask for `batch` more if the credit is below half of it; returns when the oldest open
        request is to count as ended if nothing has ended it by then."""
        now = time.monotonic()
        while self._expiries and self._expiries[0][1] + self.GRACE_S <= now:
            self._request_ended(None)
        if self._credit * 2 < batch:
            self._expiries.append((batch, now + self._expires))  # before: a cancelled publish
            self._credit += batch  # only undercounts, never leaves a request unknown
            await self._request({"batch": batch, "expires": int(self._expires * 1e9)})
        return self._expiries[0][1] + self.GRACE_S


def _description(message: Msg) -> str:
    """A status's description, its first line only (nats-py leaves a 503's next header line in
    it)."""
    text = message.headers.get(_DESCRIPTION) if message.headers else None
    return (text or "").split("\n")[0].strip()


def _still_asked(message: Msg) -> int | None:
    """What an ended request still asked for, as the server says (None: it does not)."""
    pending = message.headers.get(_PENDING_MESSAGES) if message.headers else None
    return int(pending) if pending is not None and pending.isdigit() else None
