"""The receiving half: `Sequencer`'s rules driven by frames, history pages and time.

Gaps and `recovered: false` are filled by paging history over HTTP after the cursor (one task
per conversation) before later messages are delivered; moved cursors are written to the store
in batches (one write per burst, not per message). Mirrors clients/js/src/receiver.ts.

Conversations the client has no cursor for are found in the user's conversation list, read at
every consumer connection (`on_listed`): one created, or joined, while the client was down got
its `conversation` event on no socket. Whether this is the user's first-ever connection (older
messages are then history, not events) or a later one (they are delivered from seq 1) is told
by what the store holds: any cursor, or `CONNECTED_MARKER`, written with the cursors once a
list was read (a user with no conversation has no cursor to tell it).

Delivered messages wait in the client's event queue until the application takes them, so the
cursor written to the store stops before the first one not yet `consumed`: a process that ends
with messages queued gets them again from the next one instead of resuming past them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from rtm.client.backoff import Backoff
from rtm.client.errors import RtmError
from rtm.client.models import Message, MessagePage
from rtm.client.ordering import Sequencer
from rtm.client.store import Store

logger = logging.getLogger(__name__)

HistoryFetch = Callable[[str, int, int], Awaitable[MessagePage]]

_FILL_BACKOFF = Backoff(base_s=0.2, cap_s=5.0)
#: How often moved cursors are written to the store.
FLUSH_EVERY_S = 0.05
#: Stored among a user's cursors (no conversation id looks like it) once a conversation list
#: was read: the user's next client knows it has connected before, even with no cursor.
CONNECTED_MARKER = "~connected"


class Receiver:
    """Delivers each conversation's messages once, in `seq` order, through `deliver`."""

    def __init__(
        self,
        store: Store,
        user_id: str,
        history: HistoryFetch,
        deliver: Callable[[Message], None],
        page_size: int = 200,
    ) -> None:
        self.sequencer = Sequencer()
        self._store, self._user_id = store, user_id
        self._history, self._deliver, self._page_size = history, deliver, page_size
        self._fills: dict[str, asyncio.Task[None]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._running = False
        #: Per conversation, the seqs delivered but not yet consumed by the application.
        self._unconsumed: dict[str, deque[int]] = {}
        #: Conversations whose storable cursor moved by a consumption since the last flush.
        self._consumed: set[str] = set()
        #: `CONNECTED_MARKER` is to be written with the next cursors.
        self._mark_connected = False

    async def restore(self) -> None:
        cursors = await self._store.load_cursors(self._user_id)
        marker = cursors.pop(CONNECTED_MARKER, None)
        self.sequencer.restore(cursors)
        if marker is not None or cursors:
            self.sequencer.from_start = True

    def start(self) -> None:
        """Run (again): fills that were under way go on."""
        self._running = True
        for conversation in self.sequencer.filling():
            self._spawn_fill(conversation)

    async def stop(self) -> None:
        self._running = False
        tasks = [*self._fills.values(), *([self._flusher] if self._flusher else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fills.clear()
        self._flusher = None
        await self.flush()

    def on_message(self, frame: Mapping[str, Any]) -> None:
        message = Message.from_json(frame)
        self._emit(self.sequencer.on_message(message))
        if self.sequencer.is_filling(message.conversation_id):
            self._spawn_fill(message.conversation_id)

    def on_resumed(self, conversations: Mapping[str, Mapping[str, object]]) -> None:
        for conversation in self.sequencer.on_resumed(conversations):
            self._spawn_fill(conversation)
        for conversation, state in conversations.items():
            if state.get("error") == "forbidden":
                self._forget_stored(conversation)

    def on_conversation(self, event: str, conversation_id: str, last_seq: int) -> None:
        if self.sequencer.on_conversation(event, conversation_id, last_seq):
            self._spawn_fill(conversation_id)
        self._schedule_flush()

    def on_listed(self, conversations: Iterable[tuple[str, int]]) -> None:
        """The user's conversations (id, `last_seq`), listed after a consumer connection."""
        for conversation_id, last_seq in conversations:
            if self.sequencer.on_listed(conversation_id, last_seq):
                self._spawn_fill(conversation_id)
        if not self.sequencer.from_start:
            self.sequencer.from_start = True
            self._mark_connected = True
        self._schedule_flush()

    def follow(self, conversation_id: str, seq: int) -> None:
        self.sequencer.follow(conversation_id, seq)
        self._schedule_flush()

    def consumed(self, message: Message) -> None:
        """The application is done with a delivered message: its cursor may be stored."""
        waiting = self._unconsumed.get(message.conversation_id)
        if not waiting or waiting[0] != message.seq:
            return
        waiting.popleft()
        if not waiting:
            del self._unconsumed[message.conversation_id]
        if self._running:
            self._consumed.add(message.conversation_id)
            self._schedule_flush()

    async def flush(self) -> None:
        """Write the cursors that moved since the last flush, each short of the messages the
        application has not consumed yet."""
        moved = self.sequencer.take_dirty()
        for conversation in self._consumed:
            cursor = self.sequencer.cursor(conversation)
            if cursor is not None:
                moved[conversation] = cursor
        self._consumed.clear()
        for conversation in moved:
            waiting = self._unconsumed.get(conversation)
            if waiting:
                moved[conversation] = waiting[0] - 1
        marking = self._mark_connected
        if marking:
            moved[CONNECTED_MARKER] = 1
        if moved:
            try:
                await self._store.put_cursors(self._user_id, moved)
            except OSError as exc:
                logger.warning("could not store cursors: %s", exc)
                return
        if marking:
            self._mark_connected = False

    def _emit(self, messages: list[Message]) -> None:
        for message in messages:
            self._unconsumed.setdefault(message.conversation_id, deque()).append(message.seq)
            self._deliver(message)
        if messages:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon(), name="rtm-client-cursors")

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_EVERY_S)
        await self.flush()

    def _forget_stored(self, conversation_id: str) -> None:
        task = asyncio.create_task(self._store.delete_cursor(self._user_id, conversation_id))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _spawn_fill(self, conversation_id: str) -> None:
        if not self._running:
            return
        running = self._fills.get(conversation_id)
        if running is None or running.done():
            self._fills[conversation_id] = asyncio.create_task(
                self._fill(conversation_id), name=f"rtm-client-fill-{conversation_id}"
            )

    async def _fill(self, conversation_id: str) -> None:
        """Page history after the cursor until the gap is closed."""
        failures = idle = 0
        sequencer = self.sequencer
        while sequencer.is_filling(conversation_id):
            before = sequencer.fill_from(conversation_id)
            try:
                page = await self._history(conversation_id, before, self._page_size)
                failures = 0
            except RtmError as exc:
                if exc.code == "forbidden":
                    sequencer.forget(conversation_id)
                    return
                await asyncio.sleep(_FILL_BACKOFF.delay(failures))
                failures += 1
                continue
            delivered, done = sequencer.on_history(conversation_id, page.messages, page.has_more)
            self._emit(delivered)
            if done:
                return
            if not page.has_more and sequencer.fill_from(conversation_id) == before:
                # The live message ahead is not in history yet (stored a moment ago): wait.
                await asyncio.sleep(min(2.0, 0.05 * 2**idle))
                idle += 1
            else:
                idle = 0
