"""Hand-written fakes of the producer's ports, for unit tests (no mocks, no I/O)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from rtm.producer.domain.exceptions import Unavailable, UnknownUsers
from rtm.producer.domain.membership import CheckEvent, Cooldown, MembershipCache
from rtm.producer.domain.model import (
    Conversation,
    ConversationChanged,
    CreateOutcome,
    Receipt,
    SendCheck,
    StoredSend,
)
from rtm.producer.services.membership import MembershipService
from rtm.shared.contract import AcceptedMessage, msg_id_header
from tests.support.clock import FakeClock


class InMemoryConversationRepository:
    """`ConversationRepository` in dicts, with the stored messages the consumer would write.

    `down` makes every call raise `Unavailable`; a `gate` makes reads wait for it, and a read
    given a `timeout` raises `Unavailable` past it (as the adapter does). `reads` names the
    read methods called, in order."""

    def __init__(self) -> None:
        self.conversations: dict[uuid.UUID, Conversation] = {}
        self.direct_keys: dict[str, uuid.UUID] = {}
        self.stored: dict[tuple[uuid.UUID, uuid.UUID], StoredSend] = {}
        self.down = False
        self.calls = 0
        self.reads: list[str] = []
        self.timeouts: list[float | None] = []
        self.gate: asyncio.Event | None = None  # when set, reads wait for it
        self.unknown_users: set[uuid.UUID] = set()  # ids that are no users (auth knows not)

    def _refuse_unknown(self, user_ids: Iterable[uuid.UUID]) -> None:
        unknown = [user_id for user_id in user_ids if user_id in self.unknown_users]
        if unknown:
            raise UnknownUsers(unknown)

    def _touch(self) -> None:
        self.calls += 1
        if self.down:
            raise Unavailable("the database is unavailable")

    async def _read(self, name: str, timeout: float | None) -> None:
        self.reads.append(name)
        self.timeouts.append(timeout)
        self._touch()
        if self.gate is not None:
            try:
                await asyncio.wait_for(self.gate.wait(), timeout)
            except TimeoutError as exc:
                raise Unavailable("the database did not answer in time") from exc

    def _members(self, conversation_id: uuid.UUID) -> frozenset[uuid.UUID] | None:
        conversation = self.conversations.get(conversation_id)
        return None if conversation is None else frozenset(conversation.members)

    def add(self, conversation: Conversation) -> Conversation:
        self.conversations[conversation.id] = conversation
        return conversation

    async def check_send(
        self,
        conversation_id: uuid.UUID,
        sender_id: uuid.UUID,
        client_msg_id: uuid.UUID,
        *,
        timeout: float | None = None,
    ) -> SendCheck:
        await self._read("check_send", timeout)
        members = self._members(conversation_id)
        return SendCheck(members, self.stored.get((sender_id, client_msg_id)))

    async def stored_send(
        self, sender_id: uuid.UUID, client_msg_id: uuid.UUID, *, timeout: float | None = None
    ) -> StoredSend | None:
        await self._read("stored_send", timeout)
        return self.stored.get((sender_id, client_msg_id))

    async def members(
        self, conversation_id: uuid.UUID, *, timeout: float | None = None
    ) -> frozenset[uuid.UUID] | None:
        await self._read("members", timeout)
        return self._members(conversation_id)

    async def get(self, conversation_id: uuid.UUID) -> Conversation | None:
        self._touch()
        return self.conversations.get(conversation_id)

    async def create(self, conversation: Conversation, direct_key: str | None) -> CreateOutcome:
        self._touch()
        self._refuse_unknown(conversation.members)
        if direct_key is not None and direct_key in self.direct_keys:
            existing = self.conversations[self.direct_keys[direct_key]]
            restored = tuple(m for m in conversation.members if m not in existing.members)
            if restored:
                members = tuple(sorted({*existing.members, *restored}, key=str))
                existing = self.add(replace(existing, members=members))
            return CreateOutcome(existing, created=False, restored=restored)
        if direct_key is not None:
            self.direct_keys[direct_key] = conversation.id
        self.add(conversation)
        return CreateOutcome(conversation, created=True)

    async def add_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        self._touch()
        self._refuse_unknown((user_id,))
        conversation = self.conversations[conversation_id]
        if conversation.has_member(user_id):
            return False
        members = tuple(sorted({*conversation.members, user_id}, key=str))
        self.add(replace(conversation, members=members))
        return True

    async def remove_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        self._touch()
        conversation = self.conversations[conversation_id]
        if not conversation.has_member(user_id):
            return False
        members = tuple(m for m in conversation.members if m != user_id)
        self.add(replace(conversation, members=members))
        return True


class Observed(list[CheckEvent]):
    """What a `MembershipService` observed, in order (it is its `observe` callback)."""

    def __call__(self, event: CheckEvent) -> None:
        self.append(event)


def membership_for(
    repository: InMemoryConversationRepository,
    clock: FakeClock,
    *,
    ttl: float = 30.0,
    stale_for: float = 900.0,
    max_members: int = 100_000,
    cooldown: float = 1.0,
    lookup_timeout: float = 0.5,
    observed: Observed | None = None,
) -> MembershipService:
    """A `MembershipService` over `repository`, on `clock`, with the production defaults."""
    return MembershipService(
        repository,
        MembershipCache(ttl=ttl, stale_for=stale_for, max_members=max_members, now=clock.monotonic),
        Cooldown(cooldown, clock.monotonic),
        lookup_timeout=lookup_timeout,
        observe=observed if observed is not None else Observed(),
    )


class FakePending:
    def __init__(self, future: asyncio.Future[Receipt]) -> None:
        self._future = future

    async def receipt(self) -> Receipt:
        return await self._future


class FakeMessagePublisher:
    """`MessagePublisher` that behaves like a JetStream stream with an unbounded duplicate
    window: it records submissions in order and dedupes by `Nats-Msg-Id`. With `hold` set,
    PubAcks wait until `release()` (to test pipelining and ordering)."""

    def __init__(self) -> None:
        self.stream: list[AcceptedMessage] = []  # stream_seq = index + 1
        self.msg_ids: dict[str, int] = {}
        self.submitted: list[AcceptedMessage] = []
        self.down = False
        self.fail_receipts = False
        self.hold = False
        self._held: list[tuple[asyncio.Future[Receipt], Receipt]] = []

    async def submit(self, message: AcceptedMessage) -> FakePending:
        if self.down:
            raise Unavailable("the message bus is not connected")
        self.submitted.append(message)
        msg_id = msg_id_header(message.sender_id, message.client_msg_id)
        if msg_id in self.msg_ids:
            receipt = Receipt(self.msg_ids[msg_id], duplicate=True)
        else:
            self.stream.append(message)
            self.msg_ids[msg_id] = len(self.stream)
            receipt = Receipt(len(self.stream), duplicate=False)
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        if self.fail_receipts:
            future.set_exception(Unavailable("the message bus did not confirm in time"))
        elif self.hold:
            self._held.append((future, receipt))
        else:
            future.set_result(receipt)
        return FakePending(future)

    def release(self) -> None:
        held, self._held = self._held, []
        for future, receipt in held:
            if not future.done():
                future.set_result(receipt)

    async def original(self, stream_seq: int) -> AcceptedMessage:
        if self.down:
            raise Unavailable("the message bus is not connected")
        return self.stream[stream_seq - 1]


@dataclass(frozen=True)
class Published:
    kind: str
    conversation_id: uuid.UUID
    user_id: uuid.UUID | None = None
    seq: int | None = None


class FakeEventPublisher:
    """`EventPublisher` that records what it was asked to publish."""

    def __init__(self) -> None:
        self.changes: list[ConversationChanged] = []
        self.signals: list[Published] = []
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise Unavailable("the message bus is not connected")

    async def conversation_changed(self, event: ConversationChanged) -> None:
        self._check()
        self.changes.append(event)

    async def typing(self, conversation_id: uuid.UUID, user_id: uuid.UUID, at: datetime) -> None:
        self._check()
        self.signals.append(Published("typing", conversation_id, user_id))

    async def read(
        self, conversation_id: uuid.UUID, user_id: uuid.UUID, seq: int, at: datetime
    ) -> None:
        self._check()
        self.signals.append(Published("read", conversation_id, user_id, seq))
