"""Live delivery to this instance's sockets.

The `Hub` maps users to their open connections. Each `LiveConnection` carries out what its
`DeliveryOrder` (`rtm.consumer.domain.ordering`, where the rules and their reasons are) decides:
it pushes frames to the socket's outbox, reads gap fills from PostgreSQL in tasks of its own, and
tries a fill again, backing off, while PostgreSQL cannot answer (`Unavailable`). The socket stays
open meanwhile; the conversation's later live messages wait behind the fill.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable

import orjson

from rtm.consumer.domain.delivery import LiveDelivery, message_frame
from rtm.consumer.domain.exceptions import Unavailable
from rtm.consumer.domain.ordering import (
    Action,
    DeliveryOrder,
    RetryFill,
    Send,
    StartFill,
    TooFarBehind,
)
from rtm.consumer.entrypoints import metrics
from rtm.consumer.services import ReadService, Recovery
from rtm.shared.backoff import ExponentialBackoff
from rtm.shared.ws import CloseCode, Outbox

logger = logging.getLogger(__name__)

Closer = Callable[[int, str], None]

# Live messages one conversation's gap fill may hold while it waits for PostgreSQL; past it the
# connection is closed 4008 (reconnect, then resume) rather than hold more.
FILL_MAX_WAITING = 1000


# A read PostgreSQL could not answer is tried again after 0.5 s, doubling up to 5 s.
DB_RETRY = ExponentialBackoff(base=0.5, cap=5.0)


class LiveConnection:
    """One authenticated consumer WebSocket, as the hub sees it.

    Args:
        outbox: the socket's send queue.
        reads: gap fills and resume catch-ups are read through it.
        close: closes the socket (code, reason) without awaiting.
        backoff: how a fill PostgreSQL could not answer is tried again.
        max_waiting: see `FILL_MAX_WAITING`.
        holding: hold live messages until the first resume or its grace period (False: none).
    """

    __slots__ = (
        "_backoff",
        "_cut_off",
        "_order",
        "_outbox",
        "_reads",
        "_tasks",
        "close",
        "session_id",
        "user_id",
    )

    def __init__(
        self,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        outbox: Outbox,
        reads: ReadService,
        close: Closer,
        *,
        backoff: ExponentialBackoff = DB_RETRY,
        max_waiting: int = FILL_MAX_WAITING,
        holding: bool = True,
    ) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self._outbox = outbox
        self._reads = reads
        self.close = close
        self._backoff = backoff
        self._order = DeliveryOrder(max_waiting=max_waiting, holding=holding)
        # Gap fills running: made on the first (an empty set is 216 bytes of every idle socket).
        self._tasks: set[asyncio.Task[None]] | None = None
        self._cut_off = False

    def push(self, frame: str, kind: str = "message") -> None:
        """Queue one frame of type `kind` (counted by type in rtm_consumer_frames_out_total)."""
        metrics.frames_out(kind).inc()
        self._put(frame)

    def _put(self, frame: str | bytes) -> None:
        """Queue a frame, uncounted: message frames are counted by whoever ran the actions,
        once per delivery or fill rather than once per socket (a counter's `inc` takes a lock:
        a message to a room of ten would take it ten times)."""
        if not self._outbox.put(frame) and self._outbox.overflowed and not self._cut_off:
            self._cut_off = True  # count and close once; later pushes just find it closed
            metrics.SLOW_CONSUMER_CLOSES.inc()
            self.close(CloseCode.SLOW_CONSUMER, "send queue full: reconnect and resume")

    def offer(self, conversation_id: uuid.UUID, seq: int, frame: bytes) -> int:
        """A live message; delivered now, dropped as a duplicate, or held behind a gap fill.
        Returns how many message frames were queued (0 or more: a fill's waiting ones may go
        out with it); the caller counts them in rtm_consumer_frames_out_total.

        The common case (it follows on) is written at once, without building actions: this
        runs once per member socket of every message."""
        if self._order.follows_on(conversation_id, seq):
            self._put(frame)
            return 1
        return self._run(self._order.offer(conversation_id, seq, frame))

    def _run(self, actions: list[Action]) -> int:
        """Carry out the actions; returns how many message frames were queued (uncounted)."""
        sent = 0
        for action in actions:
            if isinstance(action, Send):
                self._put(action.frame)
                sent += 1
            elif isinstance(action, StartFill):
                task = asyncio.create_task(self._fill(action.conversation_id, action.after))
                if self._tasks is None:
                    self._tasks = set()
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif isinstance(action, TooFarBehind):
                self.close(CloseCode.SLOW_CONSUMER, action.reason)
        return sent

    def _run_counted(self, actions: list[Action]) -> None:
        sent = self._run(actions)
        if sent:
            metrics.frames_out("message").inc(sent)

    async def _fill(self, conversation_id: uuid.UUID, after: int) -> None:
        """Fill a gap, trying again while PostgreSQL is unavailable: the conversation's later
        live messages wait behind it, and are sent late but in order."""
        attempt = 0
        while True:
            attempt += 1
            try:
                recovery = await self._reads.recover(self.user_id, conversation_id, after)
            except Unavailable as exc:
                actions = self._order.fill_unavailable(conversation_id)
                if not isinstance(actions[0], RetryFill):
                    self._run_counted(actions)
                    return
                if attempt == 1:
                    logger.warning(
                        "gap fill of conversation %s waits for PostgreSQL (%s); retrying",
                        conversation_id,
                        exc.message,
                    )
                await asyncio.sleep(self._backoff.delay(attempt, random.random))
                continue
            except asyncio.CancelledError:
                self._order.catch_up_abandoned(conversation_id)
                raise
            except Exception:  # last line of defence of the fill's task: log it, close
                self._order.catch_up_abandoned(conversation_id)
                logger.exception("gap fill failed for conversation %s", conversation_id)
                self.close(CloseCode.INTERNAL, "gap recovery failed: reconnect and resume")
                return
            self._caught_up(conversation_id, after, recovery)
            return

    async def catch_up(
        self, conversation_id: uuid.UUID, after: int, *, head: int | None = None
    ) -> Recovery:
        """A resume's catch-up: send everything after `after` from the store, then what arrived
        live meanwhile. `head`: the conversation's head as the resume looked it up (membership
        checked), so nothing is read again when nothing is missing.

        Raises `Unavailable` when PostgreSQL cannot answer: the connection then stays at
        `after` (`keep_from`), so no live message of the conversation is sent past a gap.
        """
        shared = self._order.begin_catch_up(conversation_id)
        answered = False  # by the store, or by its being unavailable
        try:
            recovery = await self._reads.recover(self.user_id, conversation_id, after, head=head)
            answered = True
        except Unavailable:
            answered = True
            self._run_counted(self._order.resume_unavailable(conversation_id, after, shared=shared))
            raise
        finally:
            if not answered:  # not a member, cancelled, or a bug: nothing to send for it
                self._order.catch_up_abandoned(conversation_id)
        self._caught_up(conversation_id, after, recovery)
        return recovery

    def _caught_up(self, conversation_id: uuid.UUID, after: int, recovery: Recovery) -> None:
        messages = [(m.seq, message_frame(m)) for m in recovery.messages]
        self._run_counted(
            self._order.caught_up(
                conversation_id,
                after,
                messages,
                last_seq=recovery.last_seq,
                recovered=recovery.recovered,
            )
        )

    def keep_from(self, conversation_id: uuid.UUID, cursor: int) -> None:
        """See `DeliveryOrder.keep_from`: a resume could not reach this conversation."""
        self._order.keep_from(conversation_id, cursor)

    def last_sent(self, conversation_id: uuid.UUID) -> int:
        """The last seq of the conversation this connection has been sent (0: none)."""
        return self._order.last_sent(conversation_id)

    def missed_before(self, conversation_id: uuid.UUID, cursor: int) -> bool:
        """See `DeliveryOrder.missed_before`: a resume from `cursor` cannot be complete."""
        return self._order.missed_before(conversation_id, cursor)

    def begin_resume(self) -> None:
        """A resume is being handled: the hold lasts until it is done (`end_hold`)."""
        self._order.begin_resume()

    def grace_over(self) -> None:
        """The grace period for the first resume has passed (see `DeliveryOrder.grace_over`)."""
        self._run_counted(self._order.grace_over())

    def end_hold(self) -> None:
        """Stop holding live messages (after the first resume, or its grace period)."""
        self._run_counted(self._order.end_hold())

    def cancel(self) -> None:
        for task in list(self._tasks or ()):
            task.cancel()


class FeedDown(Exception):
    """This instance is not receiving deliveries: a socket served now could miss messages."""


class Hub:
    """This instance's live connections, by user and by session.

    Live messages reach this instance over core NATS, which keeps nothing for a subscriber that
    is not there. A gap is filled when a later message of the conversation arrives, but the last
    messages of a conversation have none after them: a socket served while the delivery
    subscription was missing would miss them for good, and its client could not know. So the
    hub holds connections only while the feed is live: none before the subscription is in
    place (`feed_resumed`), and all of them are closed (1012: reconnect, then resume) the
    moment it is interrupted (`feed_interrupted`). A connection that exists has been subscribed
    for all of its life; what it missed before, its `resume` reads from PostgreSQL.
    """

    def __init__(self) -> None:
        self._by_user: dict[uuid.UUID, set[LiveConnection]] = defaultdict(set)
        self._feed_down = "not subscribed to deliveries yet"
        self.on_first_connection: Callable[[uuid.UUID], None] | None = None
        self.on_last_disconnect: Callable[[uuid.UUID], None] | None = None

    @property
    def feed_live(self) -> bool:
        return not self._feed_down

    def feed_resumed(self) -> None:
        """The delivery subscription is in place on the server (subscribed and flushed)."""
        if self._feed_down:
            logger.info("delivery feed live (was: %s)", self._feed_down)
        self._feed_down = ""

    def feed_interrupted(self, reason: str) -> None:
        """Deliveries may be lost from now on: end every connection, refuse new ones."""
        if not self._feed_down:
            count = self.connection_count
            logger.warning("delivery feed interrupted (%s): closing %s sockets", reason, count)
        self._feed_down = reason
        self.close_all(CloseCode.RESTARTING, f"{reason}: reconnect, then resume")

    def add(self, connection: LiveConnection) -> None:
        """Raises `FeedDown` unless deliveries are arriving."""
        if self._feed_down:
            raise FeedDown(f"{self._feed_down}: reconnect, then resume")
        connections = self._by_user[connection.user_id]
        connections.add(connection)
        if len(connections) == 1 and self.on_first_connection is not None:
            self.on_first_connection(connection.user_id)

    def remove(self, connection: LiveConnection) -> None:
        connections = self._by_user.get(connection.user_id)
        if connections is not None and connection in connections:
            connections.discard(connection)
            if not connections:
                del self._by_user[connection.user_id]
                if self.on_last_disconnect is not None:
                    self.on_last_disconnect(connection.user_id)

    def users(self) -> list[uuid.UUID]:
        return list(self._by_user)

    def count_for(self, user_id: uuid.UUID) -> int:
        return len(self._by_user.get(user_id, ()))

    @property
    def connection_count(self) -> int:
        return sum(len(c) for c in self._by_user.values())

    def deliver(self, delivery: LiveDelivery) -> int:
        """Push a stored message to local members' sockets; returns how many got it. Every
        socket is written the same bytes (as they came from the store's worker), and the
        delivery is counted once."""
        frame, conversation_id, seq = delivery.frame, delivery.conversation_id, delivery.seq
        by_user = self._by_user
        delivered = 0
        sent = 0
        for member in delivery.members:
            connections = by_user.get(member)
            if connections:
                for connection in connections:
                    sent += connection.offer(conversation_id, seq, frame)
                delivered += len(connections)
        if delivered:
            if sent:
                metrics.frames_out("message").inc(sent)
            metrics.MESSAGES_DELIVERED.inc(delivered)
            metrics.DELIVERY_LATENCY.observe(max(0.0, time.time() - delivery.sent_at_ms / 1000))
        return delivered

    def send_to_users(self, user_ids: list[uuid.UUID], payload: dict[str, object]) -> None:
        """An ephemeral event (typing, read, presence, conversation) to local sockets."""
        text: str | None = None
        for user_id in user_ids:
            for connection in self._by_user.get(user_id, ()):
                if text is None:
                    text = orjson.dumps(payload).decode()
                connection.push(text, str(payload["type"]))

    def close_session(self, session_id: uuid.UUID, code: int, reason: str) -> int:
        closed = 0
        for connections in list(self._by_user.values()):
            for connection in list(connections):
                if connection.session_id == session_id:
                    connection.close(code, reason)
                    closed += 1
        return closed

    def close_all(self, code: int, reason: str) -> None:
        for connections in list(self._by_user.values()):
            for connection in list(connections):
                connection.close(code, reason)
