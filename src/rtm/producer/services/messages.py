"""Sending a message: validate, check membership and duplicates, publish, ack after the PubAck."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import replace
from datetime import datetime

from rtm.producer.domain.exceptions import Forbidden, NotStoredYet, Unavailable
from rtm.producer.domain.model import Ack, Receipt, SendCheck, SendMessage, StoredSend
from rtm.producer.domain.ports import MessagePublisher, PendingPublish
from rtm.producer.domain.rules import validate_body
from rtm.producer.services.membership import MembershipService
from rtm.shared.contract import AcceptedMessage
from rtm.shared.errors import RtmError

logger = logging.getLogger(__name__)

# How often a `"wait":"stored"` send asks PostgreSQL: soon at first (a batch is stored within
# milliseconds), then less often. The asks of all waiting sends go out as one query
# (`ConversationRepository.stored_send` is batched).
_FIRST_POLL_S = 0.005
_MAX_POLL_S = 0.1

# The turn of a send that waits for no other (HTTP): publish at once.
_ANY_TIME: AbstractAsyncContextManager[object] = nullcontext()


def _publish_failed(message: AcceptedMessage, error: RtmError, level: int) -> None:
    """One line per send JetStream did not confirm (the client is answered `unavailable` and
    resends with the same `client_msg_id`); ids only, never the body. A send refused before it
    reached the bus is DEBUG: while NATS is down that is every send, and the outage is logged
    once already; one handed over and never confirmed is INFO (it may be stored after all)."""
    logger.log(
        level,
        "publish failed: %s",
        error.message,
        extra={
            "code": error.code.value,
            "message_id": message.message_id,
            "client_msg_id": message.client_msg_id,
        },
    )


def _to_millis(moment: datetime) -> datetime:
    """The wire carries milliseconds: keep no more, so every ack of a send says the same."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class MessageService:
    """The send path, one straight line (`send`): validate, check membership and duplicates,
    publish to JetStream, wait for the PubAck, ack.

    - The check is at most one database round trip: membership (cached, see
      `MembershipService`) and the stored-duplicate lookup. A send already stored is answered
      with the `Ack` of the original (PostgreSQL decides duplicates after the JetStream
      window). While PostgreSQL is unreachable, a conversation with cached membership is still
      served and duplicates rest on JetStream's `Nats-Msg-Id` window.
    - The publish happens inside `turn`: a connection's pipeline (`SendPipeline`) passes one
      that waits for the sends it received earlier to be published first, so that its sends
      keep their order while their checks and PubAcks overlap. HTTP sends need no turn.
    - For a duplicate `Nats-Msg-Id` the original is fetched, to ack with its `message_id`.
    - A send with `wait_stored` (`"wait":"stored"`) is acked only once PostgreSQL holds it, with
      its `seq`: after the PubAck, its stored copy is looked up (batched with every other
      waiting send's) until it is there or `stored_wait_s` has passed (`NotStoredYet`: it is
      in JetStream, so the consumer stores it; a resend is acked `duplicate` with the seq).

    Args:
        membership: membership and stored sends.
        publisher: the JetStream publisher.
        max_body_chars: the body limit after trimming.
        now: the clock (`accepted_at`).
        new_id: the message id generator (UUIDv7).
        stored_wait_s: how long a `wait_stored` send waits for PostgreSQL after the PubAck.
        monotonic, sleep: the clock of that wait.
    """

    def __init__(
        self,
        membership: MembershipService,
        publisher: MessagePublisher,
        *,
        max_body_chars: int,
        now: Callable[[], datetime],
        new_id: Callable[[], uuid.UUID],
        stored_wait_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._membership = membership
        self._publisher = publisher
        self._max_body_chars = max_body_chars
        self._now = now
        self._new_id = new_id
        self._stored_wait_s = stored_wait_s
        self._monotonic = monotonic
        self._sleep = sleep

    def validate(self, command: SendMessage) -> SendMessage:
        """The command with its body trimmed; raises `ValidationFailed`. Pure and synchronous,
        so that a bad frame is answered at once."""
        body = validate_body(command.body, self._max_body_chars)
        if body == command.body:
            return command
        return SendMessage(
            command.sender_id,
            command.client_msg_id,
            command.conversation_id,
            body,
            command.wait_stored,
        )

    async def send(
        self, command: SendMessage, turn: AbstractAsyncContextManager[object] = _ANY_TIME
    ) -> Ack:
        """Validate, check, publish (within `turn`) and wait for the PubAck (and, for a
        `wait_stored` send, until PostgreSQL holds it).

        Raises:
            ValidationFailed: a bad body.
            Forbidden: not a member, or no such conversation.
            Unavailable: PostgreSQL (without cached membership) or JetStream is unreachable,
                or the PubAck did not come in time; the client resends.
            NotStoredYet: a `wait_stored` send in JetStream but not seen in PostgreSQL in time.
        """
        command = self.validate(command)
        members = self._membership.fresh_members(command.conversation_id)
        if members is not None and command.sender_id in members:
            ack = await self._accept_overlapped(command, turn)
        else:
            if members is None:
                check = await self._membership.check_send(command)
            else:  # a cached non-member: only a stored copy (sent before leaving) is answered
                check = SendCheck(members, await self._membership.stored_copy(command))
            if check.stored is not None:
                return _ack_of_stored(command, check.stored)
            if not check.is_member(command.sender_id):
                raise Forbidden()
            ack = await self._accept(command, turn)
        if command.wait_stored and ack.seq is None:
            return await self._when_stored(command, ack)
        return ack

    async def _accept_overlapped(
        self, command: SendMessage, turn: AbstractAsyncContextManager[object]
    ) -> Ack:
        """A member's send (membership cached): the stored-copy lookup runs while the send is
        published, and a stored copy, if there is one, answers (the second copy published
        is skipped by the consumer: PostgreSQL's unique key). One PostgreSQL round trip off
        every send's latency, for a rare extra stream message when a resend comes after
        JetStream's duplicate window."""
        lookup = asyncio.ensure_future(self._membership.stored_copy(command))
        try:
            accepted = await self._accept_or_refusal(command, turn)
            stored = await lookup
        finally:
            lookup.cancel()  # nothing once it is done; stops it if this send is cancelled
        if stored is not None:
            if isinstance(accepted, Ack) and accepted.message_id == stored.message_id:
                return accepted
            return _ack_of_stored(command, stored)
        if isinstance(accepted, RtmError):
            raise accepted
        return accepted

    async def _accept_or_refusal(
        self, command: SendMessage, turn: AbstractAsyncContextManager[object]
    ) -> Ack | RtmError:
        try:
            return await self._accept(command, turn)
        except RtmError as exc:
            return exc

    async def _accept(self, command: SendMessage, turn: AbstractAsyncContextManager[object]) -> Ack:
        """Publish (within `turn`) and ack after the PubAck."""
        message = AcceptedMessage(
            message_id=self._new_id(),
            conversation_id=command.conversation_id,
            sender_id=command.sender_id,
            client_msg_id=command.client_msg_id,
            body=command.body,
            accepted_at=_to_millis(self._now()),
        )
        async with turn:
            pending = await self._publish(message)
        receipt = await self._receipt(message, pending)
        if receipt.duplicate:
            return await self._ack_of_original(message, receipt.stream_seq)
        return Ack(
            client_msg_id=message.client_msg_id,
            message_id=message.message_id,
            stream_seq=receipt.stream_seq,
            duplicate=False,
            accepted_at=message.accepted_at,
        )

    async def _when_stored(self, command: SendMessage, ack: Ack) -> Ack:
        """`ack` with the seq, once PostgreSQL holds the send (or `NotStoredYet`)."""
        deadline = self._monotonic() + self._stored_wait_s
        pause = _FIRST_POLL_S
        while True:
            try:
                stored = await self._membership.stored_send(command)
            except Unavailable:
                stored = None  # PostgreSQL down: ask again until the deadline
            if stored is not None and stored.message_id == ack.message_id:
                return replace(ack, seq=stored.seq)
            if stored is not None:  # an older copy, stored before (the check could not say)
                return _ack_of_stored(command, stored)
            left = deadline - self._monotonic()
            if left <= 0:
                logger.info(
                    "send not confirmed stored in time",
                    extra={"message_id": ack.message_id, "client_msg_id": command.client_msg_id},
                )
                raise NotStoredYet(self._stored_wait_s)
            await self._sleep(min(pause, left))
            pause = min(pause * 2, _MAX_POLL_S)

    async def _publish(self, message: AcceptedMessage) -> PendingPublish:
        try:
            return await self._publisher.submit(message)
        except RtmError as exc:
            _publish_failed(message, exc, logging.DEBUG)
            raise

    async def _receipt(self, message: AcceptedMessage, pending: PendingPublish) -> Receipt:
        try:
            return await pending.receipt()
        except RtmError as exc:
            _publish_failed(message, exc, logging.INFO)
            raise

    async def _ack_of_original(self, message: AcceptedMessage, stream_seq: int) -> Ack:
        """JetStream had this send already (same `Nats-Msg-Id`): ack with the original."""
        original = await self._publisher.original(stream_seq)
        logger.debug(
            "duplicate send: JetStream had it",
            extra={"message_id": original.message_id, "client_msg_id": message.client_msg_id},
        )
        return Ack(
            client_msg_id=message.client_msg_id,
            message_id=original.message_id,
            stream_seq=stream_seq,
            duplicate=True,
            accepted_at=original.accepted_at,
        )


def _ack_of_stored(command: SendMessage, stored: StoredSend) -> Ack:
    """PostgreSQL has this send already (same sender and `client_msg_id`): ack with it."""
    logger.debug(
        "duplicate send: already stored",
        extra={"message_id": stored.message_id, "client_msg_id": command.client_msg_id},
    )
    return Ack(
        client_msg_id=command.client_msg_id,
        message_id=stored.message_id,
        stream_seq=stored.stream_seq,
        duplicate=True,
        accepted_at=stored.accepted_at,
        seq=stored.seq if command.wait_stored else None,
    )
