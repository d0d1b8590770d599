"""Connecting to NATS (and anything else) without ever giving up; PostgreSQL's pool retries the
same way in `rtm.shared.postgres`.

A dependency that is down at start, or goes away later, makes a service *not ready*, never dead:
these helpers retry with capped exponential backoff and jitter until they succeed (or are
cancelled), logging each failure once per attempt with the delay before the next one.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import nats
import nats.errors
from nats.aio.client import Client as NatsClient

from rtm.shared.backoff import ExponentialBackoff
from rtm.shared.errors import RtmError

logger = logging.getLogger(__name__)
T = TypeVar("T")

# What a NATS operation raises when the server or the connection fails: nats-py's own errors
# (timeouts, no responders, JetStream API errors, a closed connection) and the socket's.
NATS_FAILURES: tuple[type[BaseException], ...] = (nats.errors.Error, TimeoutError, OSError)
# What an attempt raises when its dependency is down: logged in one line. Anything else (a failed
# migration, a refused login, a bug) is retried too, but logged with its traceback.
_OUTAGES: tuple[type[BaseException], ...] = (*NATS_FAILURES, RtmError)


def backoff_delays(base: float = 0.2, cap: float = 5.0) -> Callable[[int], float]:
    """Delay before attempt `n` (1-based): base·2ⁿ⁻¹ capped at `cap`, with ±25 % jitter."""
    backoff = ExponentialBackoff(base, cap, jitter=(0.75, 1.25))

    def delay(attempt: int) -> float:
        return backoff.delay(attempt, random.random)

    return delay


async def retry_forever(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    cap: float = 5.0,
    on_failure: Callable[[str], None] | None = None,
) -> T:
    """Run `attempt` until it succeeds; log why it failed (the underlying error when one was
    translated) and when it will retry, and tell `on_failure` the same reason."""
    delay = backoff_delays(cap=cap)
    tries = 0
    while True:
        tries += 1
        try:
            result = await attempt()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # last line of defence of a start-up task: logged, tried again
            wait = delay(tries)
            cause = exc.__cause__ or exc
            # One line: httpx's status errors add a second one, pointing at MDN.
            first_line = next(iter(str(cause).splitlines()), "")
            reason = f"{type(cause).__name__}: {first_line}"[:300]
            if on_failure is not None:
                on_failure(reason)
            logger.warning(
                "%s unavailable (%s); retrying in %.1fs",
                what,
                reason,
                wait,
                exc_info=None if isinstance(exc, _OUTAGES) else exc,
            )
            await asyncio.sleep(wait)
        else:
            if tries > 1:
                logger.info("%s connected after %s attempts", what, tries)
            return result


class ConnectionWatcher(Protocol):
    """Told when a NATS connection can lose messages, and when it is whole again.

    Core NATS keeps nothing for a subscriber that is not there: from `disconnected` (or a
    `slow_consumer` error, where the client dropped messages) until `reconnected` (called once
    the subscriptions are replayed and flushed), messages to this client may be lost.
    """

    def disconnected(self) -> None: ...

    def reconnected(self) -> None: ...

    def slow_consumer(self, error: nats.errors.SlowConsumerError) -> None: ...


# A connection that reads nothing is made again within about 8 s (a ping every 2 s; the 4th
# without a PONG is stale). A PONG late past that (a saturated loop) costs a reconnect, no more.
PING_INTERVAL_S = 2
MAX_OUTSTANDING_PINGS = 3


async def connect_nats(url: str, name: str, watcher: ConnectionWatcher | None = None) -> NatsClient:
    """A NATS connection that reconnects by itself for ever once established."""

    async def disconnected() -> None:
        logger.warning("NATS disconnected; reconnecting")
        if watcher is not None:
            watcher.disconnected()

    async def reconnected() -> None:
        logger.info("NATS reconnected")
        if watcher is not None:
            watcher.reconnected()

    async def error(exc: Exception) -> None:
        if isinstance(exc, nats.errors.SlowConsumerError):
            logger.warning("NATS dropped messages for a slow subscription: %s", exc)
            if watcher is not None:
                watcher.slow_consumer(exc)
            return
        logger.debug("NATS error: %s", exc)

    async def attempt() -> NatsClient:
        return await nats.connect(
            servers=[part.strip() for part in url.split(",")],
            name=name,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=2,
            # nats-py stops reading, for good and without reconnecting, when handling a message
            # raises in its read loop ("nats: encountered error"); only unanswered pings notice
            # (then it reconnects, and `disconnected` closes what depended on the connection).
            # Its default, 2 pings 120 s apart, left a consumer deaf for minutes in a chaos run.
            ping_interval=PING_INTERVAL_S,
            max_outstanding_pings=MAX_OUTSTANDING_PINGS,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )

    return await retry_forever(f"NATS at {url}", attempt)


# How long a flush given up on by `flush_within` may still wait for its PONG (in the background).
FLUSH_BACKGROUND_S = 60


async def flush_within(nc: NatsClient, timeout: float) -> None:
    """`nc.flush()` (everything published before it reached the server), given up on after
    `timeout` with `FlushTimeoutError`, as `nc.flush(timeout)` would, but without its bug: it
    cancels its PONG future when it gives up and leaves it queued, so the late PONG raises in
    nats-py's read loop, which then ends for good. Here the flush goes on in the background and
    only the caller stops waiting."""
    flushing = asyncio.ensure_future(nc.flush(timeout=FLUSH_BACKGROUND_S))
    flushing.add_done_callback(_forget_outcome)
    try:
        await asyncio.wait_for(asyncio.shield(flushing), timeout)
    except TimeoutError:
        raise nats.errors.FlushTimeoutError from None


def _forget_outcome(task: asyncio.Future[None]) -> None:
    """A background flush's failure is the connection's (its own callbacks report that)."""
    if not task.cancelled():
        task.exception()
