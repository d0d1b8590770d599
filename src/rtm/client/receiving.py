"""`ReceivingMixin`: the part of `Client` that reads the consumer socket and yields events.

Ordering, duplicates and gap filling are `rtm.client.receiver.Receiver`'s (over
`rtm.client.ordering.Sequencer`); what is here is the socket's side of them: every consumer
connection starts from this moment's cursors (`?cursors=`, or `resume` frames for many), a
resume the server could not do (`unavailable`, PostgreSQL down) is sent again when it says,
and each frame goes to the receiver or out as an event. After each connection the user's
conversations are listed over HTTP, so that one created or joined while the socket was down
(its `conversation` event went to no socket) is followed too (`Receiver.on_listed`).
`events()` is the one queue all of the client's events come through, the other parts'
included.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from rtm.client.backoff import Backoff
from rtm.client.base import ClientBase, frame_error
from rtm.client.errors import RtmError
from rtm.client.events import (
    ConversationEvent,
    ErrorEvent,
    Event,
    MessageEvent,
    consumer_event,
)
from rtm.client.models import Conversation, Message
from rtm.client.protocol import Frame

logger = logging.getLogger(__name__)

#: Retries of the conversation list after a consumer connection (while the socket is open).
_LIST_BACKOFF = Backoff(base_s=0.5, cap_s=10.0)


class ReceivingMixin(ClientBase):
    """Events, cursors, and the consumer socket's callbacks."""

    async def events(self) -> AsyncIterator[Event]:
        """Every event from `connect()` on (buffered until read), until `close()`.

        Meant for one reader: two iterators would share the events, not each get them all.
        A message counts as handled when the next event is asked for (or the iteration ends):
        only then may its cursor be stored, so a process that dies while handling it gets it
        again from the next one.
        """
        while True:
            event = await self._events.get()
            if event is None:
                return
            try:
                yield event
            finally:
                if isinstance(event, MessageEvent) and self._receiver is not None:
                    self._receiver.consumed(event.message)

    async def messages(self) -> AsyncIterator[Message]:
        """Only the messages of `events()` (the others are dropped)."""
        async for event in self.events():
            if isinstance(event, MessageEvent):
                yield event.message

    def cursors(self) -> dict[str, int]:
        """The last delivered `seq` per conversation: what the next connection resumes."""
        return self._receiver.sequencer.cursors() if self._receiver is not None else {}

    @property
    def duplicates_dropped(self) -> int:
        """Messages dropped because they had been delivered (resends at reconnect seams)."""
        return self._receiver.sequencer.duplicates if self._receiver is not None else 0

    # -- the consumer socket ---------------------------------------------------------------

    def _consumer_url(self, ws_url: str) -> str:
        """The consumer URL with this moment's cursors (`?cursors=`, or `?resume=1` and
        `resume` frames for many: `rtm.client.resumes`)."""
        assert self._receiver is not None
        return self._resumes.url(ws_url, self._receiver.sequencer.cursors())

    async def _on_consumer_open(self) -> None:
        if self._listing is not None:
            self._listing.cancel()
        self._listing = self._spawn(self._list_conversations())
        await self._write_resumes(self._resumes.opened())

    async def _write_resumes(self, frames: list[Frame]) -> None:
        for frame in frames:
            if self._consumer is not None:
                await self._consumer.send(frame)

    async def _list_conversations(self) -> None:
        """Follow the conversations the client has no cursor for (`Receiver.on_listed`): asked
        after every consumer connection, retried with backoff until the socket goes down (a
        refusal other than 429 is not retried: it would be refused again)."""
        attempt = 0
        while True:
            try:
                answer = await self._call("consumer", "GET", "/v1/conversations")
                listed = [Conversation.from_json(c) for c in answer["conversations"]]
            except RtmError as exc:
                if exc.status is not None and exc.status < 500 and exc.status != 429:
                    logger.warning("could not list conversations (%s); not asked again", exc)
                    return
                delay = _LIST_BACKOFF.delay(attempt)
                logger.warning("could not list conversations (%s); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if self._receiver is not None:
                self._receiver.on_listed((c.id, c.last_seq) for c in listed)
            return

    def _on_consumer_down(self) -> None:
        if self._listing is not None:
            self._listing.cancel()
            self._listing = None
        if self._resume_retry is not None:
            self._resume_retry.cancel()
            self._resume_retry = None
        self._resumes.down()

    def _on_consumer_frame(self, frame: dict[str, Any]) -> None:
        receiver = self._receiver
        assert receiver is not None
        kind = frame.get("type")
        if kind == "message":
            receiver.on_message(frame)
        elif kind == "resumed":
            following = self._resumes.resumed()
            if following:
                self._spawn(self._write_resumes(following))
            conversations = frame.get("conversations")
            if isinstance(conversations, dict):
                receiver.on_resumed(conversations)
        elif kind == "conversation":
            conversation = Conversation.from_json(frame["conversation"])
            event = str(frame.get("event", ""))
            receiver.on_conversation(event, conversation.id, conversation.last_seq)
            self._emit(ConversationEvent(event, conversation))
        elif kind == "error":
            self._on_consumer_error(frame)
        else:
            event_out = consumer_event(frame)
            if event_out is not None:
                self._emit(event_out)

    def _on_consumer_error(self, frame: dict[str, Any]) -> None:
        """An error frame: the answer to the resume asked (`rtm.client.resumes`), or an event."""
        if frame.get("code") == "unavailable" and self._resumes.asking:
            # PostgreSQL is down and the resume was not done: send it again when told
            # (docs/protocol.md, "Consumer"), one retry at a time.
            if self._resumes.unavailable():
                self._resume_retry = self._spawn(self._resend_resume(frame.get("retry_after_ms")))
            return
        handled, frames = self._resumes.refused(frame)
        if frames:
            self._spawn(self._write_resumes(frames))
        if not handled:
            self._emit(ErrorEvent(frame_error(frame)))

    async def _resend_resume(self, retry_after_ms: object) -> None:
        await asyncio.sleep(retry_after_ms / 1000 if isinstance(retry_after_ms, int) else 1.0)
        await self._write_resumes(self._resumes.retry())
