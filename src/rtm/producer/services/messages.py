"""Sending a message: validate, check membership and duplicates, publish, ack after the PubAck."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import datetime

from rtm.producer.domain.exceptions import Forbidden
from rtm.producer.domain.model import Ack, Receipt, SendMessage, StoredSend
from rtm.producer.domain.ports import MessagePublisher, PendingPublish
from rtm.producer.domain.rules import validate_body
from rtm.producer.services.membership import MembershipService
from rtm.shared.contract import AcceptedMessage
from rtm.shared.errors import RtmError

logger = logging.getLogger(__name__)

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

    Args:
        membership: membership and stored sends.
        publisher: the JetStream publisher.
        max_body_chars: the body limit after trimming.
        now: the clock (`accepted_at`).
        new_id: the message id generator (UUIDv7).
    """

    def __init__(
        self,
        membership: MembershipService,
        publisher: MessagePublisher,
        *,
        max_body_chars: int,
        now: Callable[[], datetime],
        new_id: Callable[[], uuid.UUID],
    ) -> None:
        self._membership = membership
        self._publisher = publisher
        self._max_body_chars = max_body_chars
        self._now = now
        self._new_id = new_id

    def validate(self, command: SendMessage) -> SendMessage:
        """The command with its body trimmed; raises `ValidationFailed`. Pure and synchronous,
        so that a bad frame is answered at once."""
        body = validate_body(command.body, self._max_body_chars)
        if body == command.body:
            return command
        return SendMessage(command.sender_id, command.client_msg_id, command.conversation_id, body)

    async def send(
        self, command: SendMessage, turn: AbstractAsyncContextManager[object] = _ANY_TIME
    ) -> Ack:
        """Validate, check, publish (within `turn`) and wait for the PubAck.

        Raises:
            ValidationFailed: a bad body.
            Forbidden: not a member, or no such conversation.
            Unavailable: PostgreSQL (without cached membership) or JetStream is unreachable,
                or the PubAck did not come in time; the client resends.
        """
        command = self.validate(command)
        check = await self._membership.check_send(command)
        if check.stored is not None:
            return _ack_of_stored(command, check.stored)
        if not check.is_member(command.sender_id):
            raise Forbidden()
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
    )
