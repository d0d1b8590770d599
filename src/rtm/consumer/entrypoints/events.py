"""Ephemeral live events: conversation changes, typing, read markers and presence.

They arrive on core NATS (PROTOCOL.md §6 lists the frames they become). Read markers are also
stored, by one instance per event (a queue group), monotonically. Presence is reported by every
instance on connect/disconnect and in a heartbeat, so users of a dead instance go offline within
one TTL.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from rtm.consumer.domain.ports import ConversationDirectory
from rtm.consumer.domain.presence import PresenceTracker
from rtm.consumer.entrypoints.hub import Hub
from rtm.consumer.entrypoints.schemas import (
    conversation_frame,
    presence_frame,
    read_frame,
    typing_frame,
)
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
Handler = Callable[[Msg], Awaitable[None]]


class LiveEvents:
    """Subscribes to the event subjects and turns events into frames for local sockets."""

    def __init__(
        self,
        nc: NatsClient,
        hub: Hub,
        directory: ConversationDirectory,
        instance_id: str,
        *,
        presence_interval: float = 5.0,
    ) -> None:
        self._nc = nc
        self._hub = hub
        self._directory = directory
        self._instance = instance_id
        self._interval = presence_interval
        self.presence = PresenceTracker(ttl=presence_interval * 3)

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
        return asyncio.create_task(self._heartbeat(), name="presence-heartbeat")

    def _guard(self, handler: Handler) -> Handler:
        """A malformed or failing event is logged and dropped, never kills the subscription."""

        async def run(msg: Msg) -> None:
            try:
                await handler(msg)
            except (ValueError, KeyError, TypeError) as exc:
                logger.error("dropping malformed event on %s: %s", msg.subject, exc)
            except Exception:
                logger.exception("event handler failed on %s", msg.subject)

        return run

    async def _on_conversation(self, msg: Msg) -> None:
        event = ConversationEvent.decode(msg.data)
        audience = list(dict.fromkeys([*event.conversation.members, *event.user_ids]))
        self._hub.send_to_users(
            audience, conversation_frame(event.event, event.conversation.to_dict())
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
        event = PresenceEvent.decode(msg.data)
        now = time.monotonic()
        if event.status in ("online", "heartbeat"):
            changed = self.presence.online(event.instance, list(event.user_ids), now)
            status = "online"
        else:
            changed = [u for u in event.user_ids if self.presence.offline(event.instance, u, now)]
            status = "offline"
        for user in changed:
            await self._announce(user, status)

    async def _announce(self, user: uuid.UUID, status: str) -> None:
        if not self._hub.connection_count:
            return
        contacts = [c for c in await self._directory.contacts(user) if self._hub.count_for(c)]
        self._hub.send_to_users(contacts, presence_frame(user, status))

    def _user_online(self, user: uuid.UUID) -> None:
        self._publish(PresenceEvent(self._instance, "online", (user,)))

    def _user_offline(self, user: uuid.UUID) -> None:
        self._publish(PresenceEvent(self._instance, "offline", (user,)))

    def _publish(self, event: PresenceEvent) -> None:
        if self._nc.is_connected:
            task = asyncio.create_task(self._nc.publish(PRESENCE_EVENTS, event.encode()))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            users = self._hub.users()
            for start in range(0, len(users), 2000):
                chunk = tuple(users[start : start + 2000])
                if self._nc.is_connected:
                    await self._nc.publish(
                        PRESENCE_EVENTS, PresenceEvent(self._instance, "heartbeat", chunk).encode()
                    )
            for user in self.presence.expire(time.monotonic()):
                await self._announce(user, "offline")

    async def online_contacts(self, user: uuid.UUID) -> list[uuid.UUID]:
        """Contacts of `user` online now (sent to a new connection after `ready`)."""
        now = time.monotonic()
        return [c for c in await self._directory.contacts(user) if self.presence.is_online(c, now)]
