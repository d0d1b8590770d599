"""Typing indicators and read markers: membership-checked events for the consumer."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from rtm.producer.domain.exceptions import Forbidden
from rtm.producer.domain.ports import EventPublisher
from rtm.producer.domain.rules import validate_read_seq
from rtm.producer.services.membership import MembershipService
from rtm.shared.limits import Throttle


class TypingAndReadService:
    """`typing` is ephemeral and throttled per (user, conversation): extra typing frames within
    the interval are dropped silently, since clients send one per keystroke. `read` is published
    for the consumer to store (monotonically) and fan out.

    Args:
        membership: membership (cached; a known conversation still works while PostgreSQL is
            unreachable).
        events: the core NATS event publisher.
        typing_throttle: at most one typing event per key per interval.
        now: the clock (`at` of events).
    """

    def __init__(
        self,
        membership: MembershipService,
        events: EventPublisher,
        *,
        typing_throttle: Throttle[tuple[uuid.UUID, uuid.UUID]],
        now: Callable[[], datetime],
    ) -> None:
        self._membership = membership
        self._events = events
        self._typing = typing_throttle
        self._now = now

    async def typing(self, user_id: uuid.UUID, conversation_id: uuid.UUID) -> bool:
        """Announce that `user_id` is typing; False when throttled (nothing published)."""
        key = (user_id, conversation_id)
        if not self._typing.ready(key):
            return False
        self._typing.mark(key)  # before awaiting: concurrent frames must not all pass
        if not await self._membership.is_member(conversation_id, user_id):
            self._typing.forget(key)
            raise Forbidden()
        await self._events.typing(conversation_id, user_id, self._now())
        return True

    async def read(self, user_id: uuid.UUID, conversation_id: uuid.UUID, seq: int) -> None:
        """Announce that `user_id` has read up to `seq` (the consumer keeps the highest)."""
        validate_read_seq(seq)
        if not await self._membership.is_member(conversation_id, user_id):
            raise Forbidden()
        await self._events.read(conversation_id, user_id, seq, self._now())
