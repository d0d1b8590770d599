"""The order in which one connection is sent a conversation's messages. Pure: no I/O, no clock.

Rules (docs/protocol.md, "6. Consumer": a client sees each conversation's messages with strictly
increasing seq and no gap):

- **Strictly increasing.** Per conversation the connection remembers the last seq it sent; a
  live message at or below it is a duplicate and is dropped.
- **No gap.** A live message past `last + 1` (a fan-out was lost, or a resume's seam) starts a
  *fill* from PostgreSQL after `last`; the conversation's later live messages wait behind it and
  go out once the fill has sent what was missing. A duplicate that arrives meanwhile waits too,
  and is dropped when the fill is done.
- **Hold until the first resume.** A new connection holds its live messages until its first
  `resume` has been handled (or its grace period passed without one): a message sent before the
  resume would put the connection past the client's cursor, and the messages in between could
  then never be sent. Held messages join the resume's catch-up of their conversation, or go out
  in order when the hold ends. Once a resume has begun, the grace period no longer ends the hold:
  a held message of a conversation not caught up yet would go out first, and the catch-up would
  then start past it (found by C1 when PostgreSQL answered slower than the grace).
- **A resume behind what went out.** A connection that does not hold (the client gave its
  cursors with the connection, or said it would not resume: docs/protocol.md, "6. Consumer"),
  or whose hold ended by its grace period, sends a conversation's live messages from the first
  one that comes. A later `resume` from a cursor below that first one cannot send the messages
  in between (they would follow later ones): the catch-up sends only what follows what went out, and
  `missed_before` tells the connection to report the conversation not recovered (the client
  pages history), never a silent gap and never out of order.
- **Unavailable.** A fill PostgreSQL cannot answer is tried again (the executor backs off), its
  waiting messages kept, unless more than `max_waiting` wait: then the connection is closed as
  too far behind (the client reconnects and resumes). A resume's catch-up that PostgreSQL cannot
  answer leaves the connection at the client's cursor (`keep_from`): what waited is offered
  again, sent if it follows on, else held behind a fill.

`DeliveryOrder` takes these events and answers with actions for the connection to carry out:
`Send` a frame, `StartFill` after a seq, `RetryFill`, or close as `TooFarBehind`. Frames are
opaque here: the UTF-8 bytes the connection writes as they are, to every member's socket alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Waiting = list[tuple[int, bytes]]  # (seq, frame) of live messages that wait, in arrival order


@dataclass(frozen=True, slots=True)
class Send:
    """Send this message frame now."""

    frame: bytes


@dataclass(frozen=True, slots=True)
class StartFill:
    """Read the conversation's messages after `after` from the store, then report the result
    (`filled`, `fill_unavailable`, or `catch_up_abandoned` on anything else)."""

    conversation_id: uuid.UUID
    after: int


@dataclass(frozen=True, slots=True)
class RetryFill:
    """The fill could not be read: try it again later (the waiting messages keep waiting)."""

    conversation_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class TooFarBehind:
    """Close the connection: too much waits behind a fill the store cannot serve."""

    conversation_id: uuid.UUID
    reason: str = "gap recovery waits for the database"


Action = Send | StartFill | RetryFill | TooFarBehind


class DeliveryOrder:
    """One connection's ordering state (see the module docstring for the rules).

    Args:
        max_waiting: live messages one conversation's failing fill may hold; past it, a failed
            try answers `TooFarBehind` instead of `RetryFill`.
        holding: whether live messages are held until the first resume (False: no grace).
    """

    __slots__ = ("_held", "_last", "_max_waiting", "_resuming", "_start", "_waiting")

    def __init__(self, *, max_waiting: int, holding: bool = True) -> None:
        self._max_waiting = max_waiting
        self._last: dict[uuid.UUID, int] = {}
        # Per conversation, the seq the client is known to hold everything up to when the
        # connection began sending it: its resume cursor, or one below the first live message
        # sent without one. Written once per conversation (the hot path reads `_last` only);
        # made on first use, so an idle connection carries no empty dict.
        self._start: dict[uuid.UUID, int] | None = None
        # Live messages behind a catch-up (a fill, or a resume's) of their conversation.
        self._waiting: dict[uuid.UUID, Waiting] = {}
        # Live messages held until the first resume (None once the hold has ended).
        self._held: dict[uuid.UUID, Waiting] | None = {} if holding else None
        self._resuming = False  # the first resume is being handled: it ends the hold itself

    def last_sent(self, conversation_id: uuid.UUID) -> int:
        """The last seq of the conversation this connection has been sent (0: none)."""
        return self._last.get(conversation_id, 0)

    def follows_on(self, conversation_id: uuid.UUID, seq: int) -> bool:
        """The common case of `offer`, answered without building actions: True when a live
        message goes out now (nothing of its conversation waits, nothing is held, and it is the
        next seq, or the conversation's first), and it is then recorded as sent. False: call
        `offer`, which decides the rest. A message to a room of 1,000 asks this 1,000 times."""
        last = self._last.get(conversation_id)
        if last is None:
            if self._held is not None or conversation_id in self._waiting:
                return False
            self._started(conversation_id, seq - 1)  # once per conversation and connection
        elif seq != last + 1 or conversation_id in self._waiting:
            return False
        self._last[conversation_id] = seq
        return True

    def offer(self, conversation_id: uuid.UUID, seq: int, frame: bytes) -> list[Action]:
        """A live message: sent now, dropped as a duplicate, held, or waiting behind a fill."""
        if self.follows_on(conversation_id, seq):
            return [Send(frame)]
        waiting = self._waiting.get(conversation_id)
        if waiting is not None:
            waiting.append((seq, frame))
            return []
        last = self._last.get(conversation_id)
        if last is None and self._held is not None:
            self._held.setdefault(conversation_id, []).append((seq, frame))
            return []
        if last is not None and seq <= last:
            return []
        if last is not None and seq > last + 1:
            self._waiting[conversation_id] = [(seq, frame)]
            return [StartFill(conversation_id, last)]
        self._last[conversation_id] = seq
        return [Send(frame)]

    def missed_before(self, conversation_id: uuid.UUID, cursor: int) -> bool:
        """Whether the connection began sending the conversation past `cursor + 1` (live, with
        no cursor to go by): a client at `cursor` then lacks messages it can no longer be sent
        in order, and its resume of the conversation is not complete (`recovered: false`)."""
        start = self._start.get(conversation_id) if self._start is not None else None
        return start is not None and start > cursor

    def _started(self, conversation_id: uuid.UUID, known: int) -> None:
        """The connection begins the conversation with the client holding up to `known`."""
        if self._start is None:
            self._start = {}
        self._start.setdefault(conversation_id, known)

    def begin_catch_up(self, conversation_id: uuid.UUID) -> bool:
        """A resume starts catching the conversation up: its held messages, and the live ones
        from now on, wait for the result. Returns whether a fill of it is running already (its
        waiting messages are then shared: the fill's result sends them)."""
        held = self._held.pop(conversation_id, []) if self._held is not None else []
        shared = conversation_id in self._waiting
        self._waiting.setdefault(conversation_id, []).extend(held)
        return shared

    def caught_up(
        self,
        conversation_id: uuid.UUID,
        after: int,
        messages: Sequence[tuple[int, bytes]],
        *,
        last_seq: int,
        recovered: bool,
    ) -> list[Action]:
        """The store answered a fill or a resume's catch-up after `after`: `messages` (seq,
        frame) in seq order, up to the head `last_seq`; `recovered=False` when too many were
        missing to send (the client pages history): the connection moves to the head.

        Sends what the connection lacks, then what waited and now follows on; what waited past
        a new gap is offered again (and starts another fill)."""
        self._started(conversation_id, after)
        last = max(after, self._last.get(conversation_id, after))
        if not recovered:
            last = last_seq
        actions: list[Action] = []
        for seq, frame in messages:
            if seq > last:
                last = seq
                actions.append(Send(frame))
        later: Waiting = []
        for seq, frame in sorted(self._waiting.pop(conversation_id, [])):
            if seq == last + 1:
                last = seq
                actions.append(Send(frame))
            elif seq > last:
                later.append((seq, frame))
        self._last[conversation_id] = last
        actions.extend(self._offer_all(conversation_id, later))
        return actions

    def fill_unavailable(self, conversation_id: uuid.UUID) -> list[Action]:
        """A fill could not be read now: try again, unless too many messages wait behind it."""
        if len(self._waiting.get(conversation_id, ())) > self._max_waiting:
            self._waiting.pop(conversation_id, None)
            return [TooFarBehind(conversation_id)]
        return [RetryFill(conversation_id)]

    def resume_unavailable(
        self, conversation_id: uuid.UUID, cursor: int, *, shared: bool
    ) -> list[Action]:
        """A resume's catch-up could not be read: the connection stays at the client's cursor,
        and what waited for it is offered again (sent if it follows on, else behind a fill).
        When a fill was running already (`shared`), its messages keep waiting for it."""
        if shared:
            return []
        waiting = self._waiting.pop(conversation_id, [])
        self.keep_from(conversation_id, cursor)
        return self._offer_all(conversation_id, sorted(waiting))

    def catch_up_abandoned(self, conversation_id: uuid.UUID) -> None:
        """A catch-up ended without an answer (cancelled, or failed for a reason the connection
        closes for): what waited for it is dropped."""
        self._waiting.pop(conversation_id, None)

    def keep_from(self, conversation_id: uuid.UUID, cursor: int) -> None:
        """The client has the conversation up to `cursor` (its resume could not be served):
        from now on a live message past `cursor + 1` waits for a fill instead of being sent past
        the gap."""
        self._started(conversation_id, cursor)
        self._last[conversation_id] = max(self._last.get(conversation_id, cursor), cursor)

    def begin_resume(self) -> None:
        """A resume is being handled: the hold, if any, now lasts until it is done
        (`end_hold`), whatever the grace period says."""
        self._resuming = True

    def grace_over(self) -> list[Action]:
        """The grace period for the first resume has passed: stop holding, unless a resume is
        being handled (see the module docstring)."""
        return [] if self._resuming else self.end_hold()

    def end_hold(self) -> list[Action]:
        """Stop holding (after the first resume, or its grace period): the held messages of
        conversations the resume did not cover are offered, in seq order. Idempotent."""
        held, self._held = self._held, None
        actions: list[Action] = []
        for conversation_id, frames in (held or {}).items():
            actions.extend(self._offer_all(conversation_id, sorted(frames)))
        return actions

    def _offer_all(
        self, conversation_id: uuid.UUID, frames: Iterable[tuple[int, bytes]]
    ) -> list[Action]:
        actions: list[Action] = []
        for seq, frame in frames:
            actions.extend(self.offer(conversation_id, seq, frame))
        return actions
