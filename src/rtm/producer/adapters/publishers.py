"""Publishers on NATS: accepted sends to JetStream, and events on core NATS."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import orjson
from nats.aio.msg import Msg
from nats.js.api import Header

from rtm.producer.adapters.nats import NatsBus
from rtm.producer.domain.exceptions import Unavailable
from rtm.producer.domain.model import ConversationChanged, Receipt
from rtm.shared.connect import NATS_FAILURES
from rtm.shared.contract import (
    CONVERSATION_EVENTS,
    READ_EVENTS,
    STREAM,
    TYPING_EVENTS,
    AcceptedMessage,
    ConversationEvent,
    ConversationSnapshot,
    ReadEvent,
    TypingEvent,
    message_subject,
    msg_id_header,
    partition_of,
)


def _receipt(reply: Msg) -> Receipt:
    """A PubAck reply: the receipt, or `Unavailable` when JetStream did not store the message
    (no stream for the subject, stream full under DiscardNew, ...)."""
    if reply.headers and reply.headers.get(Header.STATUS) == "503":
        raise Unavailable("the message stream is not available (no responders)")
    try:
        answer = orjson.loads(reply.data)
    except orjson.JSONDecodeError as exc:
        raise Unavailable("the message bus sent an unreadable PubAck") from exc
    error = answer.get("error")
    if error is not None:
        raise Unavailable(f"the message bus refused the message: {error.get('description')}")
    return Receipt(stream_seq=int(answer["seq"]), duplicate=bool(answer.get("duplicate")))


class _PendingPubAck:
    """A JetStream publish already written to the connection, waiting for its PubAck."""

    def __init__(self, future: asyncio.Future[Msg], deadline: float) -> None:
        self._future = future
        self._deadline = deadline

    async def receipt(self) -> Receipt:
        """The PubAck, once it came; `Unavailable` past the deadline.

        `asyncio.timeout_at`, not `wait_for`: on Python 3.11, `wait_for` returns the result of a
        future that completes just as the waiting task is cancelled and drops the cancellation,
        so a task that closing a connection cancelled went on waiting for the next send, and
        the close waited for ever (`test_producer_ws_stream_integrity.py`).
        """
        if self._future.cancelled():
            # The bus stopped waiting for the reply (`NatsBus.request_async`'s expiry) before
            # this was awaited: awaiting it would raise CancelledError in the caller.
            raise Unavailable("the message bus did not confirm the message in time")
        try:
            async with asyncio.timeout_at(self._deadline):
                reply = await self._future
        except TimeoutError as exc:
            raise Unavailable("the message bus did not confirm the message in time") from exc
        return _receipt(reply)


class JetStreamMessagePublisher:
    """`MessagePublisher` on JetStream: subject `rtm.msg.<partition>.<conversation>`, header
    `Nats-Msg-Id: <sender>:<client_msg_id>`, PubAck awaited within `timeout` seconds."""

    def __init__(self, bus: NatsBus, *, partitions: int, timeout: float) -> None:
        self._bus = bus
        self._partitions = partitions
        self._timeout = timeout

    async def submit(self, message: AcceptedMessage) -> _PendingPubAck:
        deadline = asyncio.get_running_loop().time() + self._timeout
        subject = message_subject(
            partition_of(message.conversation_id, self._partitions), message.conversation_id
        )
        headers = {"Nats-Msg-Id": msg_id_header(message.sender_id, message.client_msg_id)}
        future = await self._bus.request_async(subject, message.encode(), headers)
        return _PendingPubAck(future, deadline)

    async def original(self, stream_seq: int) -> AcceptedMessage:
        try:
            raw = await self._bus.js.get_msg(STREAM, seq=stream_seq, direct=True)
        except NATS_FAILURES as exc:
            raise Unavailable("the message bus is unavailable") from exc
        if raw.data is None:
            raise Unavailable(f"stream message {stream_seq} has no payload")
        return AcceptedMessage.decode(raw.data)


class NatsEventPublisher:
    """`EventPublisher` on core NATS with the shared contract's codecs."""

    def __init__(self, bus: NatsBus) -> None:
        self._bus = bus

    async def conversation_changed(self, event: ConversationChanged) -> None:
        c = event.conversation
        snapshot = ConversationSnapshot(
            id=c.id,
            kind=c.kind.value,
            title=c.title,
            members=c.members,
            created_at=c.created_at,
            last_seq=c.last_seq,
        )
        payload = ConversationEvent(event.change.value, snapshot, event.user_ids).encode()
        await self._bus.publish(CONVERSATION_EVENTS, payload)

    async def typing(self, conversation_id: uuid.UUID, user_id: uuid.UUID, at: datetime) -> None:
        await self._bus.publish(TYPING_EVENTS, TypingEvent(conversation_id, user_id, at).encode())

    async def read(
        self, conversation_id: uuid.UUID, user_id: uuid.UUID, seq: int, at: datetime
    ) -> None:
        await self._bus.publish(READ_EVENTS, ReadEvent(conversation_id, user_id, seq, at).encode())
