"""Ports: what the producer's services need from the outside world, as `Protocol`s.

Adapters implement them on PostgreSQL (`PostgresConversationRepository`) and NATS
(`JetStreamMessagePublisher`, `NatsEventPublisher`); unit tests use hand-written fakes. Every port
raises `Unavailable` when its dependency cannot serve now, and nothing else for outages.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from rtm.producer.domain.model import (
    Conversation,
    ConversationChanged,
    CreateOutcome,
    Receipt,
    SendCheck,
    StoredSend,
)
from rtm.shared.contract import AcceptedMessage


class ConversationRepository(Protocol):
    """Conversations and membership (the producer owns these writes)."""

    async def check_send(
        self,
        conversation_id: uuid.UUID,
        sender_id: uuid.UUID,
        client_msg_id: uuid.UUID,
        *,
        timeout: float | None = None,
    ) -> SendCheck:
        """The conversation's members, and any stored message with the same
        (sender, client_msg_id) in any conversation; one round trip.

        Every read here takes `timeout` (seconds; None: the adapter's own database timeout)
        and raises `Unavailable` past it."""
        ...

    async def stored_send(
        self, sender_id: uuid.UUID, client_msg_id: uuid.UUID, *, timeout: float | None = None
    ) -> StoredSend | None:
        """The stored message with this (sender, client_msg_id), in any conversation."""
        ...

    async def members(
        self, conversation_id: uuid.UUID, *, timeout: float | None = None
    ) -> frozenset[uuid.UUID] | None:
        """The conversation's current members; None for a missing conversation."""
        ...

    async def get(self, conversation_id: uuid.UUID) -> Conversation | None:
        """The conversation with its current members and `last_seq`, or None."""
        ...

    async def create(self, conversation: Conversation, direct_key: str | None) -> CreateOutcome:
        """Store a new conversation with its members, atomically. With a `direct_key` that
        already exists, store nothing new but return that conversation, re-adding any of the
        pair who had left it (`restored`). Visible to every reader once this returns.
        `UnknownUsers` (nothing stored) when a member is not a user auth knows, or a deleted
        one; the check is part of the same transaction."""
        ...

    async def add_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Add a member; False when already one. `UnknownUsers` (nothing stored) when
        `user_id` is not a user auth knows, or a deleted one."""
        ...

    async def remove_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Remove a member; False when not one."""
        ...


class PendingPublish(Protocol):
    """A publish already handed to the bus, in order; its PubAck may not have arrived yet."""

    async def receipt(self) -> Receipt:
        """Wait for the PubAck (bounded by the publish timeout); raises `Unavailable`."""
        ...


class MessagePublisher(Protocol):
    """Publishes accepted sends to the JetStream stream, deduplicated by `Nats-Msg-Id`."""

    async def submit(self, message: AcceptedMessage) -> PendingPublish:
        """Hand the message to the bus now. Calls made one after another (each awaited) reach
        JetStream in that order: that is how one connection's sends keep their order while
        their PubAcks are awaited concurrently. Raises `Unavailable` when the bus is down."""
        ...

    async def original(self, stream_seq: int) -> AcceptedMessage:
        """The message stored at `stream_seq` (the original of a duplicate); `Unavailable`."""
        ...


class EventPublisher(Protocol):
    """Core NATS events for the consumer: at most once, not stored by the bus."""

    async def conversation_changed(self, event: ConversationChanged) -> None: ...

    async def typing(
        self, conversation_id: uuid.UUID, user_id: uuid.UUID, at: datetime
    ) -> None: ...

    async def read(
        self, conversation_id: uuid.UUID, user_id: uuid.UUID, seq: int, at: datetime
    ) -> None: ...
