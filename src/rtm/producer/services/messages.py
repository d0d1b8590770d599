"""Sending a message: validate, check membership and duplicates, publish, ack after the PubAck."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from rtm.producer.domain.exceptions import Forbidden
from rtm.producer.domain.model import Ack, SendMessage
from rtm.producer.domain.ports import MessagePublisher, PendingPublish
from rtm.producer.domain.rules import validate_body
from rtm.producer.services.membership import MembershipService
from rtm.shared.contract import AcceptedMessage
from rtm.shared.errors import RtmError

logger = logging.getLogger(__name__)


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
    """The send path, in three steps so that a connection can pipeline its sends:

    1. `prepare` (concurrent): membership (cached, see `MembershipService`) and the
       stored-duplicate lookup, at most one database round trip. Returns the `Ack` of an earlier
       identical send (PostgreSQL decides duplicates after the JetStream window), or the
       `AcceptedMessage` to publish. While PostgreSQL is unreachable, a conversation with cached
       membership is still served and duplicates rest on JetStream's `Nats-Msg-Id` window.
    2. `submit` (in the connection's order): hand it to JetStream.
    3. `complete`: wait for the PubAck; for a duplicate `Nats-Msg-Id`, fetch the original to ack
       with its `message_id`.

    `send` runs the three in a row (HTTP).

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

    async def prepare(self, command: SendMessage) -> Ack | AcceptedMessage:
        """Check a validated command: an `Ack` for a send already stored, else the message to
        publish. Raises `Forbidden` (not a member, or no such conversation) or `Unavailable`."""
        check = await self._membership.check_send(command)
        if check.stored is not None:
            stored = check.stored
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
        if not check.is_member(command.sender_id):
            raise Forbidden()
        return AcceptedMessage(
            message_id=self._new_id(),
            conversation_id=command.conversation_id,
            sender_id=command.sender_id,
            client_msg_id=command.client_msg_id,
            body=command.body,
            accepted_at=_to_millis(self._now()),
        )

    async def submit(self, message: AcceptedMessage) -> PendingPublish:
        try:
            return await self._publisher.submit(message)
        except RtmError as exc:
            _publish_failed(message, exc, logging.DEBUG)
            raise

    async def complete(self, message: AcceptedMessage, pending: PendingPublish) -> Ack:
        """The ack once JetStream has stored `message` (or had stored the same send before)."""
        try:
            receipt = await pending.receipt()
        except RtmError as exc:
            _publish_failed(message, exc, logging.INFO)
            raise
        if not receipt.duplicate:
            return Ack(
                client_msg_id=message.client_msg_id,
                message_id=message.message_id,
                stream_seq=receipt.stream_seq,
                duplicate=False,
                accepted_at=message.accepted_at,
            )
        original = await self._publisher.original(receipt.stream_seq)
        logger.debug(
            "duplicate send: JetStream had it",
            extra={"message_id": original.message_id, "client_msg_id": message.client_msg_id},
        )
        return Ack(
            client_msg_id=message.client_msg_id,
            message_id=original.message_id,
            stream_seq=receipt.stream_seq,
            duplicate=True,
            accepted_at=original.accepted_at,
        )

    async def send(self, command: SendMessage) -> Ack:
        """Validate, check, publish and wait for the PubAck."""
        outcome = await self.prepare(self.validate(command))
        if isinstance(outcome, Ack):
            return outcome
        pending = await self.submit(outcome)
        return await self.complete(outcome, pending)
