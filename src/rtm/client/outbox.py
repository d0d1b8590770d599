"""Sends kept until they are acked.

Every send is stored (`Store`) before it is ever written, keyed by its `client_msg_id`, and
written again with the same id after every reconnect until its ack comes; a client over the
same store (a restarted process) resends what the last one left. The server acks a resent id as
`duplicate` with the original message id, so nothing is stored twice. Entries are written in
the order `send()` was called, at most `max_in_flight` unacked (the server allows 64), paced
by a token bucket below the producer's frame rate (20/s, bursts of 40) instead of drawing
`rate_limited` answers. A transient error (`TRANSIENT_CODES`, e.g. `not_stored_yet`) writes
the same send again after `retry_after_ms`; any other error rejects it for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rtm.client.errors import TRANSIENT_CODES, RtmError
from rtm.client.models import Ack
from rtm.client.protocol import Frame, send_frame
from rtm.client.store import OutboxEntry, Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxOptions:
    """Window and pacing. Raise the rate only for a server whose `RTM_RATE_PER_SECOND` and
    `RTM_RATE_BURST` are raised too."""

    max_in_flight: int = 32
    rate_per_second: float = 18.0
    rate_burst: float = 36.0


@dataclass(slots=True)
class _Pending:
    entry: OutboxEntry
    future: asyncio.Future[Ack]
    sent: bool = False
    #: False while `add` is still storing it: it must not be written before.
    stored: bool = True
    writes: int = 0
    not_before: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Outbox:
    """The sends of one user, written through `write` (False: the socket is not usable)."""

    def __init__(
        self,
        store: Store,
        user_id: str,
        write: Callable[[Frame], Awaitable[bool]],
        on_ack: Callable[[Ack, OutboxEntry], None],
        options: OutboxOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self._user_id, self._write, self._on_ack = store, user_id, write, on_ack
        self._options = options or OutboxOptions()
        self._clock = clock
        self._pending: dict[str, _Pending] = {}
        self._open = False
        self._tokens = self._options.rate_burst
        self._refilled = clock()
        self._order = int(time.time() * 1000) * 1000
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Sends written again (after a reconnect or a transient error).
        self.resent = 0

    # -- the application's side ------------------------------------------------------------

    async def restore(self) -> None:
        """Take the entries a previous client left in the store: resent first, in order."""
        for entry in await self._store.load_outbox(self._user_id):
            if entry.client_msg_id not in self._pending:
                self._track(entry)
            self._order = max(self._order, entry.order + 1)
        self._pending = dict(sorted(self._pending.items(), key=lambda kv: kv[1].entry.order))
        self._wake.set()

    async def add(self, conversation_id: str, body: str, client_msg_id: str) -> Ack:
        """Store the send, then write it (now or after reconnects) until its ack comes."""
        existing = self._pending.get(client_msg_id)
        if existing is not None:
            return await asyncio.shield(existing.future)
        entry = OutboxEntry(client_msg_id, conversation_id, body, self._order)
        self._order += 1
        pending = self._track(entry)
        pending.stored = False
        try:
            await self._store.put_outbox(self._user_id, entry)
        except OSError as exc:
            del self._pending[client_msg_id]  # not kept, so never written: the caller hears why
            self._wake.set()  # the sends after it may go
            raise RtmError("store_failed", f"the outbox could not store the send: {exc}") from exc
        pending.stored = True
        self._wake.set()
        return await asyncio.shield(pending.future)

    def entries(self) -> list[OutboxEntry]:
        """What waits for an ack, in order."""
        return [p.entry for p in self._pending.values()]

    def __len__(self) -> int:
        return len(self._pending)

    # -- the connection's side -------------------------------------------------------------

    def connected(self) -> None:
        self._open = True
        self._wake.set()

    def disconnected(self) -> None:
        """Everything written on the lost socket is written again on the next one."""
        self._open = False
        for pending in self._pending.values():
            pending.sent = False

    def spend(self) -> None:
        """Take a token for a frame written outside the outbox (typing, read, ping)."""
        self._refill()
        self._tokens = max(-self._options.rate_burst, self._tokens - 1)

    def handle_ack(self, frame: Mapping[str, Any]) -> None:
        ack = Ack.from_json(frame)
        pending = self._pending.pop(ack.client_msg_id, None)
        if pending is None:
            return  # the ack of a resend already acked
        self._forget(ack.client_msg_id)
        if not pending.future.done():
            pending.future.set_result(ack)
        self._on_ack(ack, pending.entry)
        self._wake.set()

    def handle_error(self, frame: Mapping[str, Any]) -> bool:
        """An error frame; True if it was about one of the outbox's sends."""
        ref = frame.get("ref")
        pending = self._pending.get(ref) if isinstance(ref, str) else None
        if pending is None:
            return False
        code = str(frame.get("code", ""))
        if code in TRANSIENT_CODES:
            retry_ms = frame.get("retry_after_ms")
            delay = retry_ms / 1000 if isinstance(retry_ms, int | float) else 1.0
            pending.sent = False
            pending.not_before = self._clock() + delay
            self._wake.set()
            return True
        del self._pending[pending.entry.client_msg_id]  # refused for good: resending cannot help
        self._forget(pending.entry.client_msg_id)
        if not pending.future.done():
            pending.future.set_exception(
                RtmError(
                    code,
                    str(frame.get("message", "")),
                    field=frame.get("field"),
                    retry_after_ms=frame.get("retry_after_ms"),
                )
            )
        self._wake.set()
        return True

    def fail_waiting(self, error: RtmError) -> None:
        """Answer every `add` still waiting with `error` (the client is closed for good); the
        entries stay in the store for the next client."""
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(error)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="rtm-client-outbox")

    async def stop(self) -> None:
        """Stop writing; the entries stay in the store (and their futures pending) for later."""
        self._open = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- internals -------------------------------------------------------------------------

    def _track(self, entry: OutboxEntry) -> _Pending:
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        # Restored entries have nobody awaiting them: no "exception never retrieved" warning.
        future.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        pending = self._pending[entry.client_msg_id] = _Pending(entry, future)
        return pending

    def _forget(self, client_msg_id: str) -> None:
        task = asyncio.create_task(self._store.delete_outbox(self._user_id, client_msg_id))
        task.add_done_callback(_log_failure)

    def _refill(self) -> None:
        now = self._clock()
        rate, burst = self._options.rate_per_second, self._options.rate_burst
        self._tokens = min(burst, self._tokens + (now - self._refilled) * rate)
        self._refilled = now

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before pumping: a wake-up during the pump is not lost
            wait = await self._pump()
            if wait is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def _pump(self) -> float | None:
        """Write what may be written now; returns when to look again (None: when woken)."""
        while self._open:
            in_flight = sum(1 for p in self._pending.values() if p.sent)
            if in_flight >= self._options.max_in_flight:
                return None  # the next ack wakes us
            following = next((p for p in self._pending.values() if not p.sent), None)
            if following is None or not following.stored:
                return None  # `add` wakes us once it is stored (nothing overtakes it)
            now = self._clock()
            if following.not_before > now:
                return following.not_before - now  # nothing overtakes an entry to be retried
            self._refill()
            if self._tokens < 1:
                return (1 - self._tokens) / self._options.rate_per_second
            following.sent = True  # before the await: a disconnect meanwhile resets it
            entry = following.entry
            if not await self._write(
                send_frame(entry.client_msg_id, entry.conversation_id, entry.body)
            ):
                following.sent = False
                return None  # `connected()` wakes us
            self._tokens -= 1
            if following.writes > 0:
                self.resent += 1
            following.writes += 1
        return None


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("the outbox store failed: %s", task.exception())
