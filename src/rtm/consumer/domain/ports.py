"""Ports of the consumer: what its services need from the outside world.

Implementations live in `rtm.consumer.adapters` (PostgreSQL, JetStream, core NATS); unit tests
use hand-written fakes. The PostgreSQL ports (`MessageStore`, `MessageQueries`,
`ConversationDirectory`) raise `rtm.consumer.domain.exceptions.Unavailable` when PostgreSQL
cannot answer in time, never a driver error.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rtm.consumer.domain.model import (
    Claim,
    ConversationView,
    FenceToken,
    Lease,
    MessagePage,
    Pending,
    ReadMark,
    StoredBatch,
    StoredMessage,
    StreamPosition,
)


class MessageStore(Protocol):
    """Durable, exactly-once storage of batches, fenced by each partition's owner token."""

    async def claim(self, partition: int, token: FenceToken) -> Claim:
        """Make `token` the partition's fence, unless a newer token holds it (raise `Fenced`);
        returns where the last commit ended (stream seq 0 when none) and what it stored. Waits
        for a batch in flight: the claim sees its result."""
        ...

    async def rewind(self, partition: int, token: FenceToken) -> Claim:
        """Start the partition over from the stream's beginning (the stream no longer holds
        what its offset says); `Fenced` unless `token` holds it."""
        ...

    async def store_batch(
        self,
        partition: int,
        token: FenceToken,
        expected_offset: int,
        end: StreamPosition,
        pending: Sequence[Pending],
    ) -> StoredBatch:
        """In one transaction: check the partition is still fenced by `token` (else raise
        `Fenced`) and its offset is still `expected_offset` (else raise `OffsetMoved`), store the
        new messages with dense seqs, move the offset to `end` and remember the ids stored."""
        ...

    async def load_batch(self, message_ids: Sequence[uuid.UUID]) -> StoredBatch:
        """Stored messages by id, with their conversations' members: a batch to fan out again."""
        ...


class MessageQueries(Protocol):
    """Reads for history, recovery and the conversation list."""

    async def is_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool: ...

    async def page(
        self,
        conversation_id: uuid.UUID,
        *,
        before_seq: int | None,
        after_seq: int | None,
        limit: int,
    ) -> MessagePage:
        """Up to `limit` messages, ascending: the newest ones (no cursor), the ones just before
        `before_seq`, or the ones just after `after_seq` (below `before_seq` when both are
        given). `has_more` looks the way paged: older, or newer with `after_seq`."""
        ...

    async def visible_heads(
        self, user_id: uuid.UUID, conversation_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, int]:
        """In one query: the head (0 when nothing stored yet) of each of `conversation_ids`
        that `user_id` is a member of; the others are absent."""
        ...

    async def conversations_of(self, user_id: uuid.UUID) -> list[ConversationView]: ...

    async def conversation(
        self, conversation_id: uuid.UUID, user_id: uuid.UUID
    ) -> ConversationView | None: ...

    async def member_conversation_ids(self, user_id: uuid.UUID) -> list[uuid.UUID]: ...

    async def mark_read(
        self, conversation_id: uuid.UUID, user_id: uuid.UUID, seq: int
    ) -> ReadMark | None:
        """In one statement: move `user_id`'s read marker to `seq` (at most the head) unless it
        is higher already, and return it with the head. None: not a member (or no such
        conversation)."""
        ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message of a batch as the source handed it over, to ack once stored."""

    stream_seq: int
    payload: bytes
    token: object


class PartitionSource(Protocol):
    """The messages of one partition in JetStream order, from a starting point."""

    async def next_batch(self, max_messages: int, timeout: float) -> list[Delivery]:
        """Up to `max_messages` deliveries, or none after `timeout` seconds."""
        ...

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge `deliveries`, the whole of one or more batches in delivery order (an
        implementation may ack them all by acking the last)."""
        ...

    async def lag(self) -> tuple[int, int]:
        """(messages not yet delivered, messages redelivered) — for metrics."""
        ...

    async def close(self) -> None: ...


class PartitionSources(Protocol):
    async def holds(self, position: StreamPosition) -> bool:
        """Whether the stream still holds the message `position` names (True for the start of
        the stream, and when the stream has since dropped it by age with everything before)."""
        ...

    async def open(
        self, partition: int, after_stream_seq: int, token: FenceToken
    ) -> PartitionSource:
        """A source yielding the partition's messages with stream seq > `after_stream_seq`,
        starting with the first of them, for the owner holding `token` alone: no other worker,
        stale or not, can take deliveries from it."""
        ...


class Fanout(Protocol):
    """Tells every consumer instance about stored messages (at most once; resume fills gaps)."""

    async def publish(self, batch: StoredBatch) -> None: ...

    async def flush(self) -> None:
        """Return once everything published so far has reached the message bus."""
        ...


__all__ = [
    "Delivery",
    "Fanout",
    "MessageQueries",
    "MessageStore",
    "PartitionSource",
    "PartitionSources",
    "StoredMessage",
]


class ConversationDirectory(Protocol):
    """Membership reads the live side needs (typing, read and presence fan-out)."""

    async def members(self, conversation_id: uuid.UUID) -> list[uuid.UUID]: ...

    async def contacts(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        """Users who share at least one conversation with `user_id`."""
        ...

    async def contacts_among(
        self, user_ids: Sequence[uuid.UUID], among: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, set[uuid.UUID]]:
        """For each of `user_ids`, its contacts that are in `among` (one query for all)."""
        ...

    async def store_read(self, conversation_id: uuid.UUID, user_id: uuid.UUID, seq: int) -> int:
        """Move the read marker forward (never back); returns the marker now stored."""
        ...


class PartitionLeases(Protocol):
    """Leases on partitions: at most one live holder each, expiring unless renewed.

    A lease is a liveness mechanism, not a safety one: a holder may not notice in time that its
    lease expired. Safety comes from the fencing token each acquisition hands out (see
    `MessageStore.claim`).
    """

    async def setup(self) -> None: ...

    async def try_acquire(self, partition: int) -> Lease | None:
        """The lease when we got it, None when someone else holds it."""
        ...

    async def renew(self, partition: int, revision: int) -> int | None:
        """The new revision, or None when the lease is no longer ours."""
        ...

    async def release(self, partition: int, revision: int) -> None:
        """Best effort, never raises for a NATS failure: the lease then expires by itself."""
        ...

    async def heartbeat(self) -> int:
        """Say we are alive; returns how many instances are alive."""
        ...

    async def leave(self) -> None:
        """Best effort, like `release`: our heartbeat then expires by itself."""
        ...
