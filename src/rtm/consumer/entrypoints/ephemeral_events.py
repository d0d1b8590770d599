"""Ephemeral live events: conversation changes, typing, read markers and presence.

They arrive on core NATS (docs/protocol.md, "6. Consumer" lists the frames they become). Read
markers are also stored, by one instance per event (a queue group), monotonically.

Presence: every instance reports its users on connect/disconnect and, every heartbeat interval,
lists them all; `PresenceTracker` (pure) decides who is online from these events, counting time
in our own heartbeats as they come back from NATS (a late or saturated loop expires nobody). The
changes are announced at most every `presence_flush` seconds, coalesced: a user who left and came
back in between is not announced at all, and one contacts query serves every change of a flush.

While PostgreSQL cannot answer (`Unavailable`), a typing or read event for local sockets, or a
read marker to store, is dropped with a one-line warning (they are ephemeral, and markers only
move forward: the next one stores it), and presence changes wait for the next flush.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from rtm.consumer.domain.exceptions import Unavailable
from rtm.consumer.domain.ports import ConversationDirectory
from rtm.consumer.domain.presence import Change, PresenceTracker
from rtm.consumer.entrypoints import metrics
from rtm.consumer.entrypoints.hub import Hub
from rtm.consumer.entrypoints.schemas import (
    conversation_frame,
    presence_frame,
    read_frame,
    typing_frame,
)
from rtm.shared.clock import utcnow
from rtm.shared.contract import (
    CONVERSATION_EVENTS,
    PRESENCE_EVENTS,
    READ_EVENTS,
    TYPING_EVENTS,
    ConversationEvent,
    PresenceEvent,
    ReadEvent,
    TypingEvent,
)

logger = logging.getLogger(__name__)
READ_STORE_QUEUE = "rtm-read-store"
# Presence frames one flush queues before it lets other work run (live messages must not wait
# behind a million presence frames).
FLUSH_SLICE_FRAMES = 2_000
HEARTBEAT_CHUNK = 2000  # users per heartbeat event (~80 kB)
Handler = Callable[[Msg], Awaitable[None]]


class EphemeralEvents:
    """Subscribes to the event subjects and turns events into frames for local sockets."""

    def __init__(
        self,
        nc: NatsClient,
        hub: Hub,
        directory: ConversationDirectory,
        instance_id: str,
        *,
        presence_interval: float = 5.0,
        presence_flush: float = 0.25,
        flush_slice_frames: int = FLUSH_SLICE_FRAMES,
    ) -> None:
        self._nc = nc
        self._hub = hub
        self._directory = directory
        # Unique per process: a restarted instance starts a new beat count under a new name.
        self.source = f"{instance_id}/{uuid.uuid4().hex[:8]}"
        self._interval = presence_interval
        self._flush_interval = presence_flush
        self._flush_slice = flush_slice_frames
        self._beat = 0
        self._dirty = asyncio.Event()
        self._flush_failing = False
        self.presence = PresenceTracker(self.source, missed=3)

    async def start(self) -> asyncio.Task[None]:
        await self._nc.subscribe(CONVERSATION_EVENTS, cb=self._guard(self._on_conversation))
        await self._nc.subscribe(TYPING_EVENTS, cb=self._guard(self._on_typing))
        await self._nc.subscribe(READ_EVENTS, cb=self._guard(self._on_read))
        await self._nc.subscribe(
            READ_EVENTS, queue=READ_STORE_QUEUE, cb=self._guard(self._store_read)
        )
        await self._nc.subscribe(PRESENCE_EVENTS, cb=self._guard(self._on_presence))
        self._hub.on_first_connection = self._user_online
        self._hub.on_last_disconnect = self._user_offline
        flusher = asyncio.create_task(self._flusher(), name="presence-flush")
        heartbeat = asyncio.create_task(self._heartbeat(), name="presence-heartbeat")
        return asyncio.create_task(self._run_both(flusher, heartbeat), name="presence")

    @staticmethod
    async def _run_both(*tasks: asyncio.Task[None]) -> None:
        """One task for the caller to cancel: cancelling it cancels both."""
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    def _guard(self, handler: Handler) -> Handler:
        """A malformed or failing event is logged and dropped, never kills the subscription."""

        async def run(msg: Msg) -> None:
            try:
                await handler(msg)
            except (ValueError, KeyError, TypeError) as exc:
                logger.error("dropping malformed event on %s: %s", msg.subject, exc)
            except Unavailable as exc:
                logger.warning("dropping an event on %s: %s", msg.subject, exc.message)
            except Exception:  # last line of defence of a subscription: log it, keep it
                logger.exception("event handler failed on %s", msg.subject)

        return run

    async def _on_conversation(self, msg: Msg) -> None:
        event = ConversationEvent.decode(msg.data)
        audience = list(dict.fromkeys([*event.conversation.members, *event.user_ids]))
        self._hub.send_to_users(
            audience, conversation_frame(event.event, event.conversation.to_wire())
        )
        if event.event != "member_removed":
            await self._introduce(event.conversation.members, event.user_ids)

    async def _introduce(
        self, members: tuple[uuid.UUID, ...], joined: tuple[uuid.UUID, ...]
    ) -> None:
        """Members who just became contacts learn which of each other are online: a socket is
        told its contacts' presence when it connects and on changes, so without this a contact
        made by a new conversation (or member) would look offline until a reconnect. The members
        who `joined` (all of them for a new conversation) and the others learn of each other;
        the others already knew each other. Sliced as a flush is."""
        local = [member for member in members if self._hub.count_for(member)]
        if not local:
            return
        new = set(joined)
        await self._send_sliced(
            (
                [user for user in local if user != member and (member in new or user in new)],
                presence_frame(member, "online"),
            )
            for member in members
            if self.presence.announced_online(member)
        )

    async def _on_typing(self, msg: Msg) -> None:
        event = TypingEvent.decode(msg.data)
        members = await self._local_members(event.conversation_id, exclude=event.user_id)
        self._hub.send_to_users(members, typing_frame(event.conversation_id, event.user_id))

    async def _on_read(self, msg: Msg) -> None:
        event = ReadEvent.decode(msg.data)
        members = await self._local_members(event.conversation_id)
        self._hub.send_to_users(
            members, read_frame(event.conversation_id, event.user_id, event.seq)
        )

    async def announce_read(self, conversation_id: uuid.UUID, user_id: uuid.UUID, seq: int) -> None:
        """Tell every instance's sockets of a marker stored here (`POST .../read`), as the
        producer does for a `read` frame. Also stored again by the queue group: a no-op, since
        a marker only moves forward."""
        await self._nc.publish(
            READ_EVENTS, ReadEvent(conversation_id, user_id, seq, utcnow()).encode()
        )

    async def _store_read(self, msg: Msg) -> None:
        event = ReadEvent.decode(msg.data)
        await self._directory.store_read(event.conversation_id, event.user_id, event.seq)

    async def _local_members(
        self, conversation_id: uuid.UUID, exclude: uuid.UUID | None = None
    ) -> list[uuid.UUID]:
        if not self._hub.connection_count:
            return []
        members = await self._directory.members(conversation_id)
        return [m for m in members if m != exclude and self._hub.count_for(m)]

    async def _on_presence(self, msg: Msg) -> None:
        self.apply_presence(PresenceEvent.decode(msg.data))

    def apply_presence(self, event: PresenceEvent) -> None:
        """Update the tracker (no I/O); changes wait for the next flush."""
        tracker = self.presence
        if event.status == "heartbeat":
            expired = tracker.heartbeat(
                event.instance, event.beat, event.user_ids, event.chunk, event.chunks
            )
            if expired.unlisted:
                metrics.PRESENCE_EXPIRED.labels("unlisted").inc(expired.unlisted)
            if expired.silent:
                metrics.PRESENCE_EXPIRED.labels("silent").inc(expired.silent)
        elif event.status == "online":
            for user in event.user_ids:
                tracker.online(event.instance, user, event.beat)
        else:
            for user in event.user_ids:
                tracker.offline(event.instance, user, event.beat)
        if tracker.has_pending:
            self._dirty.set()

    async def _flusher(self) -> None:
        """Announce presence changes at most every `flush_interval`, coalesced."""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._flush_interval)
            self._dirty.clear()
            try:
                await self.flush()
                self._flush_failing = False
                continue
            except Unavailable as exc:
                if not self._flush_failing:
                    logger.warning("presence changes wait for PostgreSQL (%s)", exc.message)
            except Exception:  # last line of defence of the flusher: log once, keep flushing
                if not self._flush_failing:
                    logger.exception("announcing presence changes failed; retrying")
            self._flush_failing = True
            await asyncio.sleep(1.0)
            self._dirty.set()

    async def flush(self) -> None:
        """One contacts query for every change, then each frame encoded once for its local
        recipients. A failed query puts the changes back for the next flush."""
        changes = self.presence.take_changes()
        if not changes:
            return
        contacts: dict[uuid.UUID, set[uuid.UUID]] = {}
        if self._hub.connection_count:
            asked = False
            try:
                contacts = await self._directory.contacts_among(
                    [change.user_id for change in changes], self._hub.users()
                )
                asked = True
            finally:
                if not asked:  # whatever stopped the query, the changes wait for the next flush
                    self.presence.restore(changes)
        await self._send_sliced(self._change_sends(changes, contacts))

    @staticmethod
    def _change_sends(
        changes: list[Change], contacts: dict[uuid.UUID, set[uuid.UUID]]
    ) -> Iterator[tuple[list[uuid.UUID], dict[str, object]]]:
        """Each change counted, and its frame with its local recipients if it has any (lazily:
        a change is counted as `_send_sliced` reaches it)."""
        for change in changes:
            metrics.PRESENCE_CHANGES.labels(change.status).inc()
            recipients = contacts.get(change.user_id)
            if recipients:
                yield list(recipients), presence_frame(change.user_id, change.status)

    async def _send_sliced(
        self, sends: Iterable[tuple[list[uuid.UUID], dict[str, object]]]
    ) -> None:
        """Send each frame to its users, yielding to the loop every `flush_slice_frames` frames
        or so: a group of 1,000 coming online is ~1M frames; live messages go through between
        slices (a profile saw 75-85 ms stalls delay a fan-out's p99)."""
        sent = 0
        for users, frame in sends:
            self._hub.send_to_users(users, frame)
            sent += len(users)
            if sent >= self._flush_slice:
                sent = 0
                await asyncio.sleep(0)

    def _user_online(self, user: uuid.UUID) -> None:
        self._publish(PresenceEvent(self.source, "online", (user,), self._beat))

    def _user_offline(self, user: uuid.UUID) -> None:
        self._publish(PresenceEvent(self.source, "offline", (user,), self._beat))

    def _publish(self, event: PresenceEvent) -> None:
        if self._nc.is_connected:
            task = asyncio.create_task(self._nc.publish(PRESENCE_EVENTS, event.encode()))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            # Numbered before the users are listed, with nothing in between: a change event
            # carries the number of the last heartbeat listed before it (see PresenceTracker).
            self._beat += 1
            beat, users = self._beat, self._hub.users()
            parts = [users[i : i + HEARTBEAT_CHUNK] for i in range(0, len(users), HEARTBEAT_CHUNK)]
            parts = parts or [[]]
            for index, part in enumerate(parts):
                if self._nc.is_connected:
                    event = PresenceEvent(
                        self.source, "heartbeat", tuple(part), beat, index, len(parts)
                    )
                    await self._nc.publish(PRESENCE_EVENTS, event.encode())

    async def online_contacts(self, user: uuid.UUID) -> list[uuid.UUID]:
        """Contacts of `user` announced online (sent to a new connection after `ready`): the
        state the announcements after it start from."""
        contacts = await self._directory.contacts(user)
        return [c for c in contacts if self.presence.announced_online(c)]
