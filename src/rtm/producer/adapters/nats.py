"""The process's NATS connection, shared by the publishers and subscriptions.

The connection is made by a background task (nats-py retries forever), so a NATS down at start
makes the service not ready instead of dead; nats-py then reconnects by itself, and the stream is
ensured again after every reconnect (a nats-server restarted on an empty data folder lost it).
While disconnected, publishes fail fast with `Unavailable` instead of queueing in nats-py's
reconnect buffer: an answer of `unavailable` must never be followed by a silent store.

The connection is made with `no_echo`: our subscriptions never receive what this process
published (our own conversation events would otherwise invalidate the membership cache entries
our writes just filled).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from rtm.producer.domain.exceptions import Unavailable
from rtm.shared.connect import MAX_OUTSTANDING_PINGS, NATS_FAILURES, PING_INTERVAL_S, retry_forever
from rtm.shared.contract import STREAM
from rtm.shared.jetstream import ensure_stream

logger = logging.getLogger(__name__)

Handler = Callable[[Msg], Awaitable[None]]


class NatsBus:
    """One NATS connection per process, shared by the publishers and subscriptions.

    Args:
        servers: NATS URLs.
        stream: the JetStream stream to ensure once connected.
        timeout: JetStream API timeout (stream checks, direct gets).
        max_pending_publishes: requests awaiting their reply (PubAcks), process-wide.
        name: the client name the server shows.
    """

    def __init__(
        self,
        servers: list[str],
        *,
        stream: StreamConfig,
        timeout: float,
        max_pending_publishes: int,
        name: str = "rtm-producer",
    ) -> None:
        self._servers = servers
        self._stream = stream
        self.timeout = timeout
        self._max_pending = max_pending_publishes
        self._name = name
        self.nc = Client()
        self._js: JetStreamContext | None = None
        self._inbox = ""
        self._replies: dict[str, asyncio.Future[Msg]] = {}
        self._next_token = 0
        self._subscriptions: list[tuple[str, Handler]] = []
        self._on_reconnect: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._connecting = False  # nats-py's close() fails on a client never asked to connect
        self._last_error_log = 0.0
        self.ready = asyncio.Event()

    def subscribe(self, subject: str, handler: Handler) -> None:
        """Register a core NATS subscription, made once connected (and kept across reconnects)."""
        self._subscriptions.append((subject, handler))

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every reconnect (core NATS events sent meanwhile are lost)."""
        self._on_reconnect.append(callback)

    def start(self) -> None:
        self._spawn(self._connect(), "nats-connect")

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_error(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= 10.0:  # an outage must not flood the log
            self._last_error_log = now
            logger.warning("NATS: %s: %s", type(exc).__name__, exc)

    async def _on_disconnected(self) -> None:
        if not self._closing:
            logger.warning("disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        logger.info("reconnected to NATS")
        for callback in self._on_reconnect:
            try:
                callback()
            except Exception:  # last line of defence of nats-py's callback: the stream check next
                logger.exception("reconnect hook failed")
        self._spawn(self._ensure_stream(), "nats-ensure-stream")

    async def _connect(self) -> None:
        self._connecting = True
        await self.nc.connect(
            servers=self._servers,
            name=self._name,
            allow_reconnect=True,
            no_echo=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            connect_timeout=2,
            # A connection whose reading died is stale within seconds (rtm.shared.connect).
            ping_interval=PING_INTERVAL_S,
            max_outstanding_pings=MAX_OUTSTANDING_PINGS,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        logger.info(
            "connected to NATS at %s",
            self.nc.connected_url.netloc if self.nc.connected_url else self._servers,
        )
        self._js = self.nc.jetstream(timeout=self.timeout)
        self._inbox = self.nc.new_inbox()
        await self.nc.subscribe(f"{self._inbox}.*", cb=self._on_reply)
        for subject, handler in self._subscriptions:
            await self.nc.subscribe(subject, cb=handler)
        await self._ensure_stream()

    async def _ensure_stream(self) -> None:
        """Create or update the stream, retrying a bus hiccup or a stream refusing the config."""
        await retry_forever(
            f"JetStream stream {STREAM}", lambda: ensure_stream(self.js, self._stream)
        )
        self.ready.set()

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    @property
    def js(self) -> JetStreamContext:
        if self._js is None or not self.nc.is_connected:
            raise Unavailable("the message bus is not connected")
        return self._js

    def check_connection(self) -> str | None:
        """Readiness of the connection."""
        return None if self.nc.is_connected else "not connected to NATS"

    async def check_stream(self) -> str | None:
        """Readiness of the JetStream stream (it answers `stream_info`)."""
        try:
            await self.js.stream_info(STREAM)
        except Unavailable as exc:
            return exc.message
        except NATS_FAILURES as exc:
            return f"stream {STREAM}: {type(exc).__name__}: {exc}"[:300]
        return None

    async def publish(self, subject: str, payload: bytes) -> None:
        """Core NATS publish; `Unavailable` rather than buffering while disconnected."""
        if not self.nc.is_connected:
            raise Unavailable("the message bus is not connected")
        try:
            await self.nc.publish(subject, payload)
        except NATS_FAILURES as exc:
            raise Unavailable("the message bus is unavailable") from exc

    async def request_async(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[Msg]:
        """Publish with a reply subject and return a future of the reply, without waiting.

        Requests awaited one after another reach the server in that order. (nats-py's own
        `publish_async` never completes the future of a JetStream error reply, such as a full
        stream's: its handler raises instead; this one hands every reply to the caller.)
        """
        if not self.nc.is_connected or not self._inbox:
            raise Unavailable("the message bus is not connected")
        if len(self._replies) >= self._max_pending:
            raise Unavailable("too many messages are waiting for the message bus")
        self._next_token += 1
        token = str(self._next_token)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Msg] = loop.create_future()
        self._replies[token] = future
        # A reply that never comes (the caller gave up, the server lost it) must not leak.
        expiry = loop.call_later(self.timeout + 1.0, future.cancel)

        def forget(_: asyncio.Future[Msg]) -> None:
            expiry.cancel()
            self._replies.pop(token, None)

        future.add_done_callback(forget)
        try:
            await self.nc.publish(subject, payload, reply=f"{self._inbox}.{token}", headers=headers)
        except NATS_FAILURES as exc:
            future.cancel()
            raise Unavailable("the message bus is unavailable") from exc
        return future

    async def _on_reply(self, msg: Msg) -> None:
        future = self._replies.get(msg.subject.rpartition(".")[2])
        if future is not None and not future.done():
            future.set_result(msg)

    async def _replies_settled(self) -> None:
        while self._replies:
            await asyncio.gather(*self._replies.values(), return_exceptions=True)

    async def close(self) -> None:
        """Finish what is in flight (pending PubAcks) and drain the connection."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.nc.is_connected:
            try:
                await asyncio.wait_for(self._replies_settled(), self.timeout)
                await asyncio.wait_for(self.nc.drain(), self.timeout + 3)
            except NATS_FAILURES as exc:  # shutting down anyway
                logger.warning("NATS drain incomplete: %s", exc)
        if self._connecting and not self.nc.is_closed:
            try:
                await self.nc.close()
            except NATS_FAILURES as exc:  # already torn down
                logger.debug("NATS close: %s", exc)
