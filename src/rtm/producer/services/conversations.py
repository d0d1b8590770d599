"""Conversations and membership: the producer's synchronous commands (docs/protocol.md,
"4. Conversations", "5. Producer")."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from rtm.producer.domain.exceptions import (
    Forbidden,
    Unavailable,
    UnknownUsers,
    ValidationFailed,
)
from rtm.producer.domain.model import (
    ChangeKind,
    Conversation,
    ConversationChanged,
    ConversationKind,
    CreateConversation,
    CreateOutcome,
)
from rtm.producer.domain.ports import ConversationRepository, EventPublisher
from rtm.producer.domain.rules import direct_key, plan_members, validate_title
from rtm.producer.services.membership import MembershipService

logger = logging.getLogger(__name__)


class ConversationService:
    """Creates conversations and changes membership; announces every change on NATS.

    The database is the source of truth and is written first: a conversation is usable as soon
    as a command returns. The event that follows is best effort (core NATS): if NATS is down the
    change stands and a warning is logged. Every write also updates this producer's membership
    cache at once (other producers learn it from the event, or from their cache's TTL).

    Rules: the creator is always a member; a direct conversation has exactly two members and is
    unique per pair (creating it again returns it, re-adding whichever of the pair had left);
    only members may change a conversation; only groups take new members or have members
    removed by others; anyone may leave. Members are users auth knows (not deleted): anything
    else is `UnknownUsers`, naming them, and nothing is written (the repository decides it in
    the same transaction as its writes).
    """

    def __init__(
        self,
        repository: ConversationRepository,
        events: EventPublisher,
        membership: MembershipService,
        *,
        max_group_members: int,
        max_title_chars: int,
        now: Callable[[], datetime],
        new_id: Callable[[], uuid.UUID],
    ) -> None:
        self._repository = repository
        self._events = events
        self._membership = membership
        self._max_group_members = max_group_members
        self._max_title_chars = max_title_chars
        self._now = now
        self._new_id = new_id

    async def create(self, command: CreateConversation) -> CreateOutcome:
        """Create a conversation; for an existing direct pair, return it (`created` False)."""
        members = plan_members(command, self._max_group_members)
        title = validate_title(command.title, self._max_title_chars)
        conversation = Conversation(
            id=self._new_id(),
            kind=command.kind,
            title=title,
            members=members,
            created_by=command.creator_id,
            created_at=self._now(),
        )
        key = direct_key(members) if command.kind is ConversationKind.DIRECT else None
        token = self._membership.token()
        outcome = await self._repository.create(conversation, key)
        created = outcome.conversation
        self._membership.remember(created.id, frozenset(created.members), token)
        if outcome.created:
            await self._announce(ChangeKind.CREATED, outcome.conversation, members)
        elif outcome.restored:
            await self._announce(ChangeKind.MEMBER_ADDED, outcome.conversation, outcome.restored)
        return outcome

    async def _member_view(self, actor: uuid.UUID, conversation_id: uuid.UUID) -> Conversation:
        conversation = await self._repository.get(conversation_id)
        if conversation is None or not conversation.has_member(actor):
            raise Forbidden()
        return conversation

    async def add_member(
        self, actor: uuid.UUID, conversation_id: uuid.UUID, user_id: uuid.UUID
    ) -> None:
        """A member adds `user_id` to a group; adding a member again changes nothing."""
        conversation = await self._member_view(actor, conversation_id)
        if conversation.kind is not ConversationKind.GROUP:
            raise Forbidden("only group conversations take new members")
        if conversation.has_member(user_id):
            return
        if len(conversation.members) >= self._max_group_members:
            raise ValidationFailed(
                "user_id", f"a group has at most {self._max_group_members} members"
            )
        try:
            added = await self._repository.add_member(conversation_id, user_id)
        except UnknownUsers as exc:
            raise UnknownUsers(exc.user_ids, field="user_id") from exc
        if added:
            self._membership.invalidate(conversation_id)
            await self._announce_current(ChangeKind.MEMBER_ADDED, conversation, user_id)

    async def remove_member(
        self, actor: uuid.UUID, conversation_id: uuid.UUID, user_id: uuid.UUID
    ) -> None:
        """A member leaves (`user_id` is the actor) or removes another member of a group;
        removing a non-member changes nothing."""
        conversation = await self._member_view(actor, conversation_id)
        if user_id != actor and conversation.kind is not ConversationKind.GROUP:
            raise Forbidden("members are removed from group conversations only; leave instead")
        if not conversation.has_member(user_id):
            return
        if await self._repository.remove_member(conversation_id, user_id):
            self._membership.invalidate(conversation_id)
            await self._announce_current(ChangeKind.MEMBER_REMOVED, conversation, user_id)

    async def _announce_current(
        self, change: ChangeKind, before: Conversation, user_id: uuid.UUID
    ) -> None:
        current = await self._repository.get(before.id)
        if current is None:  # conversations are never deleted; be safe anyway
            return
        await self._announce(change, current, (user_id,))

    async def _announce(
        self, change: ChangeKind, conversation: Conversation, user_ids: tuple[uuid.UUID, ...]
    ) -> None:
        try:
            await self._events.conversation_changed(
                ConversationChanged(change, conversation, tuple(user_ids))
            )
        except Unavailable:
            logger.warning(
                "conversation %s: %s event not published (NATS unavailable)",
                conversation.id,
                change.value,
            )
