"""Live delivery to this instance's sockets.

The `Hub` maps users to their open connections. Each `LiveConnection` keeps, per conversation,
the last seq it delivered, so a client sees a conversation's messages with strictly increasing
seq and no gap: a duplicate is dropped, and a gap (a fan-out lost, or a resume seam) is filled
from PostgreSQL before later live messages, which wait in a buffer meanwhile.

A new connection holds its live messages until its first `resume` has been handled (or
`resume_grace_s` has passed without one): a message pushed before the resume would set the
connection's position past the client's cursor, and the messages in between could then never be
sent without breaking "strictly increasing seq". Held messages are merged into the resume's
catch-up, or delivered in order when the hold ends.

While PostgreSQL cannot answer (`Unavailable`), nothing is sent past a gap either: a gap fill is
tried again, backing off, with the conversation's later live messages waiting behind it, and a
resume that failed leaves the connection at the client's cursor (`keep_from`), so the next live
message of that conversation starts a fill from there. The socket stays open.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable

import orjson

from rtm.consumer.domain.delivery import LiveDelivery, message_frame
from rtm.consumer.domain.exceptions import Unavailable
from rtm.consumer.entrypoints import metrics
from rtm.consumer.services import ReadService, Recovery
from rtm.shared.ws import CloseCode, Outbox

logger = logging.getLogger(__name__)

Closer = Callable[[int, str], None]

RETRY_FIRST_S = 0.5  # a read PostgreSQL could not answer is tried again after this, doubling...
RETRY_MAX_S = 5.0  # ...up to this
# Live messages one conversation's gap fill may hold while it waits for PostgreSQL; past it the
# connection is closed 4008 (reconnect, then resume) rather than hold more.
FILL_MAX_WAITING = 1000


class LiveConnection:
    """One authenticated consumer WebSocket, as the hub sees it."""

    __slots__ = (
        "_cut_off",
        "_filling",
        "_held",
        "_last",
        "_outbox",
        "_reads",
        "_resuming",
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
    ) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self._outbox = outbox
        self._reads = reads
        self.close = close
        self._last: dict[uuid.UUID, int] = {}
        self._filling: dict[uuid.UUID, list[tuple[int, str]]] = {}
        # Live messages held until the first resume (None once the hold has ended).
        self._held: dict[uuid.UUID, list[tuple[int, str]]] | None = {}
        self._resuming = False  # the first resume is being handled: it ends the hold itself
        self._tasks: set[asyncio.Task[None]] = set()
        self._cut_off = False

    def push(self, frame: str, kind: str = "message") -> None:
        """Queue one frame of type `kind` (counted by type in rtm_consumer_frames_out_total)."""
        metrics.frames_out(kind).inc()
        if not self._outbox.put(frame) and self._outbox.overflowed and not self._cut_off:
            self._cut_off = True  # count and close once; later pushes just find it closed
            metrics.SLOW_CONSUMER_CLOSES.inc()
            self.close(CloseCode.SLOW_CONSUMER, "send queue full: reconnect and resume")

    def offer(self, conversation_id: uuid.UUID, seq: int, frame: str) -> None:
        """A live message; delivered now, dropped as a duplicate, or held behind a gap fill."""
        buffer = self._filling.get(conversation_id)
        if buffer is not None:
            buffer.append((seq, frame))
            return
        last = self._last.get(conversation_id)
        if self._held is not None and last is None:
            self._held.setdefault(conversation_id, []).append((seq, frame))
            return
        if last is not None and seq <= last:
            return
        if last is not None and seq > last + 1:
            self._filling[conversation_id] = [(seq, frame)]
            task = asyncio.create_task(self._fill(conversation_id, last))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._last[conversation_id] = seq
        self.push(frame)

    async def _fill(self, conversation_id: uuid.UUID, after: int) -> None:
        """Fill a gap, trying again while PostgreSQL is unavailable: the conversation's later
        live messages wait behind it, and are sent late but in order."""
        pause = RETRY_FIRST_S
        while True:
            try:
                await self.catch_up(conversation_id, after, already_filling=True)
                return
            except Unavailable as exc:
                if len(self._filling.get(conversation_id, ())) > FILL_MAX_WAITING:
                    self._filling.pop(conversation_id, None)
                    self.close(CloseCode.SLOW_CONSUMER, "gap recovery waits for the database")
                    return
                if pause == RETRY_FIRST_S:
                    logger.warning(
                        "gap fill of conversation %s waits for PostgreSQL (%s); retrying",
                        conversation_id,
                        exc.message,
                    )
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)
            except Exception:  # last line of defence of the fill's task: log it, close
                logger.exception("gap fill failed for conversation %s", conversation_id)
                self.close(CloseCode.INTERNAL, "gap recovery failed: reconnect and resume")
                return

    async def catch_up(
        self,
        conversation_id: uuid.UUID,
        after: int,
        *,
        already_filling: bool = False,
        head: int | None = None,
    ) -> Recovery:
        """Send everything after `after` from the store, then what arrived live meanwhile.
        `head`: the conversation's head as a resume looked it up (membership checked), so
        nothing is read again when nothing is missing.

        Raises `Unavailable` when PostgreSQL cannot answer. A gap fill's live messages then keep
        waiting for its next try; a resume's are offered again with the connection kept at
        `after` (`keep_from`), so none of them is sent past a gap.
        """
        shared = False  # a gap fill of the conversation is running: its buffer is ours too
        if not already_filling:
            held = self._held.pop(conversation_id, []) if self._held is not None else []
            shared = conversation_id in self._filling
            self._filling.setdefault(conversation_id, []).extend(held)
        try:
            recovery = await self._reads.recover(self.user_id, conversation_id, after, head=head)
        except Unavailable:
            if not already_filling and not shared:
                self._resume_failed(conversation_id, after)
            raise
        except BaseException:
            self._filling.pop(conversation_id, None)
            raise
        try:
            last = max(after, self._last.get(conversation_id, after))
            if not recovery.recovered:
                last = recovery.last_seq
            for message in recovery.messages:
                if message.seq > last:
                    last = message.seq
                    self.push(message_frame(message).decode())
            later: list[tuple[int, str]] = []
            for seq, frame in sorted(self._filling.get(conversation_id, [])):
                if seq == last + 1:
                    last = seq
                    self.push(frame)
                elif seq > last:
                    later.append((seq, frame))
            self._last[conversation_id] = last
        finally:
            self._filling.pop(conversation_id, None)
        for seq, frame in later:  # still behind a gap: offer() fills it again
            self.offer(conversation_id, seq, frame)
        return recovery

    def _resume_failed(self, conversation_id: uuid.UUID, cursor: int) -> None:
        """The connection stays at the client's cursor; what waited for the resume is offered
        again: sent if it follows on, else held behind a gap fill."""
        waiting = self._filling.pop(conversation_id, [])
        self.keep_from(conversation_id, cursor)
        for seq, frame in sorted(waiting):
            self.offer(conversation_id, seq, frame)

    def keep_from(self, conversation_id: uuid.UUID, cursor: int) -> None:
        """The client has the conversation up to `cursor` (its resume could not be served):
        from now on a live message past `cursor + 1` waits for a gap fill instead of being
        sent past the gap."""
        self._last[conversation_id] = max(self._last.get(conversation_id, cursor), cursor)

    def last_sent(self, conversation_id: uuid.UUID) -> int:
        """The last seq of the conversation this connection has been sent (0: none)."""
        return self._last.get(conversation_id, 0)

    def begin_resume(self) -> None:
        """A resume is being handled: the hold, if any, now lasts until it is done (`end_hold`),
        whatever the grace period says."""
        self._resuming = True

    def grace_over(self) -> None:
        """The grace period for the first resume has passed: stop holding, unless a resume is
        being handled. Ending the hold halfway through one would deliver a held message of a
        conversation it has not caught up yet, and its catch-up would then start past that
        message: everything between the cursor and it would be skipped (found by C1 when
        PostgreSQL answered the resume slower than the grace)."""
        if not self._resuming:
            self.end_hold()

    def end_hold(self) -> None:
        """Stop holding live messages (after the first resume, or its grace period): deliver
        the held ones of conversations the resume did not cover, in seq order."""
        held, self._held = self._held, None
        for conversation_id, frames in (held or {}).items():
            for seq, frame in sorted(frames):
                self.offer(conversation_id, seq, frame)

    def cancel(self) -> None:
        for task in list(self._tasks):
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
        """Push a stored message to local members' sockets; returns how many got it."""
        text: str | None = None
        delivered = 0
        for member in delivery.members:
            for connection in self._by_user.get(member, ()):
                if text is None:
                    text = delivery.frame.decode()
                connection.offer(delivery.conversation_id, delivery.seq, text)
                delivered += 1
        if delivered:
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
