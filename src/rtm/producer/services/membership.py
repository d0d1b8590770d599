"""Who may send to a conversation: cached membership first, PostgreSQL when it answers.

The rules (docs/architecture.md, "The message path"):

- A fresh cached membership is used as is; the send still asks PostgreSQL whether it is already
  stored, within `lookup_timeout` (a member's send asks while it is being published:
  `MessageService`). When PostgreSQL cannot answer that in time, the send goes on
  with JetStream's `Nats-Msg-Id` dedup alone (PostgreSQL's unique constraint still keeps one
  stored copy).
- Without a fresh entry, membership and the stored copy are read together and the entry is
  refilled. If PostgreSQL is unreachable, a stale entry (within `stale_for`) answers instead; a
  conversation with no entry at all is `Unavailable`: never accepted blindly.
- After a failure, reads that have a fallback skip PostgreSQL for a short cooldown, so an outage
  costs one timeout, not one per send; reads without a fallback always try.
- Our own conversation writes and other producers' conversation events invalidate entries; a
  bus reconnect (events may have been missed) makes every entry stale; the TTL heals the rest.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from rtm.producer.domain.exceptions import Unavailable
from rtm.producer.domain.membership import CheckEvent, Cooldown, MembershipCache
from rtm.producer.domain.model import SendCheck, SendMessage, StoredSend
from rtm.producer.domain.ports import ConversationRepository

logger = logging.getLogger(__name__)

T = TypeVar("T")
Observer = Callable[[CheckEvent], None]


def _ignore(_: CheckEvent) -> None:
    return None


class MembershipService:
    """Membership checks over the cache and PostgreSQL (see the module docstring).

    Args:
        repository: PostgreSQL's conversations, members and stored messages.
        cache: the membership cache.
        cooldown: how long reads with a fallback skip PostgreSQL after a failure.
        lookup_timeout: how long a read with a fallback waits for PostgreSQL (seconds).
        observe: told what each check did (metrics).
    """

    def __init__(
        self,
        repository: ConversationRepository,
        cache: MembershipCache,
        cooldown: Cooldown,
        *,
        lookup_timeout: float,
        observe: Observer = _ignore,
    ) -> None:
        self._repository = repository
        self._cache = cache
        self._cooldown = cooldown
        self._lookup_timeout = lookup_timeout
        self._observe = observe
        self._degraded = False

    # -- checks ----------------------------------------------------------------------------

    async def check_send(self, command: SendMessage) -> SendCheck:
        """Members of the conversation and any stored copy of the send (`stored` None also
        when PostgreSQL could not be asked). Raises `Unavailable` only when membership cannot
        be known at all."""
        conversation_id = command.conversation_id
        members = self.fresh_members(conversation_id)
        if members is not None:
            return SendCheck(members, await self.stored_copy(command))
        cached = self._cache.lookup(conversation_id)
        token = self._cache.token()
        try:
            check = await self._read(
                lambda timeout: self._repository.check_send(
                    conversation_id, command.sender_id, command.client_msg_id, timeout=timeout
                ),
                fallback=cached is not None,
            )
        except Unavailable:
            if cached is None:
                self._observe(CheckEvent.CACHE_MISS)
                raise
            self._observe(CheckEvent.CACHE_STALE)
            self._observe(CheckEvent.STORED_CHECK_SKIPPED)
            return SendCheck(cached.members, None)
        self._observe(CheckEvent.CACHE_MISS)
        if check.members is not None:
            self._cache.fill(conversation_id, check.members, token)
        return check

    def fresh_members(self, conversation_id: uuid.UUID) -> frozenset[uuid.UUID] | None:
        """The conversation's members from a fresh cache entry, without I/O (None: no fresh
        entry; `check_send` reads them)."""
        cached = self._cache.lookup(conversation_id)
        if cached is None or not cached.fresh:
            return None
        self._observe(CheckEvent.CACHE_HIT)
        return cached.members

    async def stored_copy(self, command: SendMessage) -> StoredSend | None:
        """Any stored copy of the send, within `lookup_timeout` and not during the cooldown:
        None also when PostgreSQL could not say (JetStream's `Nats-Msg-Id` window and
        PostgreSQL's unique key still keep one stored copy). Never raises `Unavailable`."""
        try:
            return await self._read(
                lambda timeout: self._repository.stored_send(
                    command.sender_id, command.client_msg_id, timeout=timeout
                ),
                fallback=True,
            )
        except Unavailable:
            self._observe(CheckEvent.STORED_CHECK_SKIPPED)
            return None

    async def stored_send(self, command: SendMessage) -> StoredSend | None:
        """The stored copy of the send, from PostgreSQL now (no cache, no cooldown: a send
        waiting until stored asks until it is there). Raises `Unavailable`."""
        return await self._repository.stored_send(
            command.sender_id, command.client_msg_id, timeout=self._lookup_timeout
        )

    async def members(self, conversation_id: uuid.UUID) -> frozenset[uuid.UUID] | None:
        """The conversation's members (None: no such conversation), by the same rules."""
        members = self.fresh_members(conversation_id)
        if members is not None:
            return members
        cached = self._cache.lookup(conversation_id)
        token = self._cache.token()
        try:
            members = await self._read(
                lambda timeout: self._repository.members(conversation_id, timeout=timeout),
                fallback=cached is not None,
            )
        except Unavailable:
            if cached is None:
                self._observe(CheckEvent.CACHE_MISS)
                raise
            self._observe(CheckEvent.CACHE_STALE)
            return cached.members
        self._observe(CheckEvent.CACHE_MISS)
        if members is not None:
            self._cache.fill(conversation_id, members, token)
        return members

    async def is_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        members = await self.members(conversation_id)
        return members is not None and user_id in members

    async def _read(self, read: Callable[[float | None], Awaitable[T]], *, fallback: bool) -> T:
        """One PostgreSQL read: short and skipped during the cooldown when there is a
        fallback, the adapter's own timeout otherwise."""
        if fallback and self._cooldown.blocked:
            raise Unavailable("the database was unreachable moments ago")
        try:
            result = await read(self._lookup_timeout if fallback else None)
        except Unavailable as exc:
            self._cooldown.failed()
            if not self._degraded:
                self._degraded = True
                logger.warning(
                    "PostgreSQL unreachable (%s): sends to known conversations go on with cached"
                    " membership and JetStream's dedup only",
                    exc.message,
                )
            raise
        self._cooldown.succeeded()
        if self._degraded:
            self._degraded = False
            logger.info("PostgreSQL answers again: duplicate lookups resumed")
        return result

    # -- what changes the cache ---------------------------------------------------------------

    def token(self) -> int:
        """Take before a write whose result will `remember` a membership."""
        return self._cache.token()

    def remember(
        self, conversation_id: uuid.UUID, members: frozenset[uuid.UUID], token: int
    ) -> None:
        """A membership we just wrote (or read inside the write's transaction)."""
        self._cache.fill(conversation_id, members, token)

    def invalidate(self, conversation_id: uuid.UUID) -> None:
        """The conversation's membership changed: here, or on another producer (its event)."""
        self._cache.invalidate(conversation_id)

    def expire_all(self) -> None:
        """Events may have been missed (the bus reconnected): re-read before trusting."""
        self._cache.expire_all()
