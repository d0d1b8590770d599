"""Exactly once and in order per conversation: the SDK's cursor rules, with no I/O.

Messages come from three sources: the live stream, a resume, and history paging. The cursor of
a conversation is the last `seq` delivered to the application. The rules (the same as
clients/js/src/receiver.ts):

- a message at or below the cursor is a duplicate (a resend at a reconnect seam): dropped;
- `cursor + 1`, with no fill running: delivered, the cursor moves;
- past `cursor + 1` (a gap): held, and the conversation is *filling*: the caller pages history
  after the cursor (`fill_from`) and hands each page to `on_history`, which delivers what
  continues the cursor and then the held messages that now do; a `resumed` with
  `recovered: false` starts a fill the same way;
- a conversation never seen before is followed from 0 for a `created` event and from
  `last_seq` for `member_added` (older messages are history). Without its event (created, or the
  user added, while the client was down: the event went to no socket), it depends on whether
  this user's client has connected before (`from_start`): if so it is followed from 0, the
  messages before the first one seen filled from history, since the application may have
  missed them; on a first-ever connection it is followed from its first message seen, or from
  the `last_seq` the conversation list gives (`on_listed`): older messages are history.

Inputs in (`on_message`, `on_resumed`, `on_conversation`, `on_history`), messages to deliver
out; the async loop that fetches history lives in `rtm.client.receiver`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rtm.client.models import Message


@dataclass(slots=True)
class _Fill:
    held: dict[int, Message] = field(default_factory=dict)


class Sequencer:
    """Cursors, duplicates and gaps of every conversation of one user."""

    def __init__(self, cursors: Mapping[str, int] | None = None) -> None:
        self._cursors: dict[str, int] = dict(cursors or {})
        self._filling: dict[str, _Fill] = {}
        #: Cursors moved since `take_dirty` (to persist).
        self._dirty: set[str] = set()
        #: Messages dropped as already delivered (for diagnostics and tests).
        self.duplicates = 0
        #: This user's client has connected before: a conversation without a cursor may have
        #: started while it was down, so it is followed from 0, not from what comes first.
        self.from_start = False

    # -- reading ---------------------------------------------------------------------------

    def cursors(self) -> dict[str, int]:
        """Every cursor: what the next connection resumes from."""
        return dict(self._cursors)

    def cursor(self, conversation_id: str) -> int | None:
        return self._cursors.get(conversation_id)

    def filling(self) -> set[str]:
        """Conversations whose gap is being filled from history."""
        return set(self._filling)

    def is_filling(self, conversation_id: str) -> bool:
        return conversation_id in self._filling

    def fill_from(self, conversation_id: str) -> int:
        """The `after_seq` of the next history page of a filling conversation."""
        return self._cursors.get(conversation_id, 0)

    def take_dirty(self) -> dict[str, int]:
        """The cursors that moved since the last call (to persist), forgetting them."""
        moved = {c: self._cursors[c] for c in self._dirty if c in self._cursors}
        self._dirty.clear()
        return moved

    # -- inputs ----------------------------------------------------------------------------

    def restore(self, cursors: Mapping[str, int]) -> None:
        """Merge persisted cursors (the higher one wins)."""
        for conversation, seq in cursors.items():
            if seq > self._cursors.get(conversation, -1):
                self._cursors[conversation] = seq

    def follow(self, conversation_id: str, seq: int) -> None:
        """Deliver the messages after `seq` of a conversation not followed yet."""
        if conversation_id not in self._cursors:
            self._set(conversation_id, seq)

    def forget(self, conversation_id: str) -> None:
        """Stop following (the user is no member any more)."""
        self._cursors.pop(conversation_id, None)
        self._filling.pop(conversation_id, None)
        self._dirty.discard(conversation_id)

    def start_fill(self, conversation_id: str) -> bool:
        """Fill a conversation from history; False if a fill runs already."""
        if conversation_id in self._filling:
            return False
        self._filling[conversation_id] = _Fill()
        return True

    def on_message(self, message: Message) -> list[Message]:
        """A live or resumed message: what to deliver now (it, or nothing)."""
        conversation = message.conversation_id
        cursor = self._cursors.get(conversation)
        if cursor is None and not self.from_start:
            self._set(conversation, message.seq)
            return [message]
        if cursor is None:
            cursor = 0
            self._set(conversation, cursor)
        if message.seq <= cursor:
            self.duplicates += 1
            return []
        fill = self._filling.get(conversation)
        if fill is None and message.seq == cursor + 1:
            self._set(conversation, message.seq)
            return [message]
        if fill is None:
            fill = self._filling[conversation] = _Fill()
        fill.held[message.seq] = message
        return []

    def on_resumed(self, conversations: Mapping[str, Mapping[str, object]]) -> list[str]:
        """A `resumed` frame's `conversations`: returns those that now need a fill."""
        started: list[str] = []
        for conversation, state in conversations.items():
            if state.get("error") == "forbidden":
                self.forget(conversation)
            elif state.get("recovered") is False and self.start_fill(conversation):
                started.append(conversation)
        return started

    def on_conversation(self, event: str, conversation_id: str, last_seq: int) -> bool:
        """A `conversation` event; True when the conversation now needs a fill."""
        if event == "created":
            self.follow(conversation_id, 0)
            if last_seq > self._cursors.get(conversation_id, 0):
                return self.start_fill(conversation_id)
        elif event == "member_added":
            self.follow(conversation_id, last_seq)
        return False

    def on_listed(self, conversation_id: str, last_seq: int) -> bool:
        """A conversation of the user's list (`GET /v1/conversations`, read at each connection):
        one without a cursor is followed from 0 when the client has connected before (True: it
        now needs a fill), from `last_seq` on a first-ever connection."""
        if conversation_id in self._cursors:
            return False
        if not self.from_start:
            self._set(conversation_id, last_seq)
            return False
        self._set(conversation_id, 0)
        return last_seq > 0 and self.start_fill(conversation_id)

    def on_history(
        self, conversation_id: str, messages: Iterable[Message], has_more: bool
    ) -> tuple[list[Message], bool]:
        """A history page after `fill_from`: the messages to deliver, and whether the fill is
        done (nothing held and nothing more in history)."""
        fill = self._filling.get(conversation_id)
        if fill is None:
            return [], True
        out: list[Message] = []
        for message in messages:
            self._advance(conversation_id, message, out)
        while True:
            cursor = self._cursors.get(conversation_id, 0)
            for seq in [s for s in fill.held if s <= cursor]:
                del fill.held[seq]
                self.duplicates += 1
            following = fill.held.pop(cursor + 1, None)
            if following is None:
                break
            self._advance(conversation_id, following, out)
        done = not fill.held and not has_more
        if done:
            del self._filling[conversation_id]
        return out, done

    # -- internals -------------------------------------------------------------------------

    def _advance(self, conversation_id: str, message: Message, out: list[Message]) -> None:
        cursor = self._cursors.get(conversation_id, 0)
        if message.seq == cursor + 1:
            self._set(conversation_id, message.seq)
            out.append(message)
        elif message.seq <= cursor:
            self.duplicates += 1

    def _set(self, conversation_id: str, seq: int) -> None:
        self._cursors[conversation_id] = seq
        self._dirty.add(conversation_id)
