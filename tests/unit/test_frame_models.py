"""What the services put on the wire matches the models their AsyncAPI documents are made from.

Outbound frames are built as plain dicts (cheap, encoded once); each builder's output must pass
its model strictly and survive a round trip through it unchanged, so a field added, renamed or
retyped in a builder and not in its model (or the reverse) fails here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest
from pydantic import BaseModel

from rtm.consumer.domain.delivery import message_frame
from rtm.consumer.domain.model import StoredMessage
from rtm.consumer.entrypoints import schemas as consumer
from rtm.producer.domain.model import Ack
from rtm.producer.entrypoints import schemas as producer
from rtm.shared.asyncapi import frame_type
from rtm.shared.contract import CONVERSATION_EVENT_KINDS, ConversationSnapshot
from rtm.shared.errors import ErrorCode, RtmError
from rtm.shared.frames import PONG
from rtm.shared.tokens import AccessClaims
from rtm.shared.ws import auth_ok

USER = uuid.UUID("0195f3a0-7c1e-7b1a-9d0e-3a5b7c9d1e2f")
PEER = uuid.UUID("0195f3a0-7c1e-7b1a-9d0e-3a5b7c9d1e30")
CONVERSATION = uuid.UUID("0195f3a1-0a2b-7c3d-8e4f-5a6b7c8d9e0f")
OTHER = uuid.UUID("0195f3a1-0a2b-7c3d-8e4f-5a6b7c8d9e10")
AT = datetime(2026, 11, 24, 1, 34, 49, 123000, tzinfo=UTC)

Frame = dict[str, object] | str | bytes


def assert_conforms(model: type[BaseModel], frame: Frame) -> None:
    """`frame` passes `model` strictly as JSON, and the model gives back exactly the same object."""
    text = frame if isinstance(frame, str | bytes) else orjson.dumps(frame)
    sent = orjson.loads(text)
    parsed = model.model_validate_json(text, strict=True)
    assert parsed.model_dump(mode="json", exclude_unset=True) == sent
    assert sent["type"] == frame_type(model)


def _claims() -> AccessClaims:
    return AccessClaims(user_id=USER, session_id=PEER, expires_at=AT)


def _message(seq: int = 42, body: str = "Hello, 世界 <b>!</b>") -> StoredMessage:
    return StoredMessage(
        message_id=uuid.UUID("0195f3a2-5d6e-7f80-9a1b-2c3d4e5f6a7b"),
        conversation_id=CONVERSATION,
        seq=seq,
        sender_id=PEER,
        client_msg_id=uuid.UUID("5b0e8c2a-1f3d-4e5a-9b7c-2d4f6a8c0e1b"),
        body=body,
        sent_at=AT,
    )


def _snapshot(kind: str = "group", title: str | None = "Weekend") -> ConversationSnapshot:
    return ConversationSnapshot(
        id=CONVERSATION, kind=kind, title=title, members=(USER, PEER), created_at=AT, last_seq=3
    )


def _validation_error() -> RtmError:
    return RtmError(ErrorCode.VALIDATION_FAILED, "body must not be empty", field="body")


def _rate_limited() -> RtmError:
    return RtmError(ErrorCode.RATE_LIMITED, "too many frames", retry_after_ms=50)


PRODUCER_FRAMES: dict[str, tuple[type[BaseModel], Frame]] = {
    "ack": (producer.AckOut, Ack(USER, PEER, 7, False, AT).to_wire()),
    "ack duplicate": (producer.AckOut, Ack(USER, PEER, 7, True, AT).to_wire()),
    "ack stored": (producer.AckOut, Ack(USER, PEER, 7, False, AT, seq=3).to_wire()),
    "error with field": (producer.ErrorFrame, producer.error_frame(_validation_error(), "x")),
    "error with retry": (producer.ErrorFrame, producer.error_frame(_rate_limited(), None)),
    "error plain": (
        producer.ErrorFrame,
        producer.error_frame(RtmError(ErrorCode.FORBIDDEN, "not a member"), str(USER)),
    ),
    "read_ok": (producer.ReadOkFrame, producer.read_ok(PEER, 42)),
    "auth_ok": (producer.AuthOkFrame, auth_ok(_claims())),
    "pong": (producer.PongFrame, PONG),
}

CONSUMER_FRAMES: dict[str, tuple[type[BaseModel], Frame]] = {
    "ready": (consumer.ReadyFrame, consumer.ready_frame(USER, AT)),
    "message": (consumer.MessageFrame, message_frame(_message())),
    "message first": (consumer.MessageFrame, message_frame(_message(seq=1, body="a"))),
    "resumed": (
        consumer.ResumedFrame,
        consumer.resumed_frame(
            {
                str(CONVERSATION): consumer.resumed_entry(42, True),
                str(OTHER): consumer.resumed_entry(5, False, error=ErrorCode.FORBIDDEN),
            }
        ),
    ),
    "resumed nothing": (consumer.ResumedFrame, consumer.resumed_frame({})),
    "typing": (consumer.TypingFrame, consumer.typing_frame(CONVERSATION, PEER)),
    "read": (consumer.ReadFrame, consumer.read_frame(CONVERSATION, PEER, 0)),
    "presence online": (consumer.PresenceFrame, consumer.presence_frame(PEER, "online")),
    "presence offline": (consumer.PresenceFrame, consumer.presence_frame(PEER, "offline")),
    **{
        f"conversation {event}": (
            consumer.ConversationFrame,
            consumer.conversation_frame(event, _snapshot().to_wire()),
        )
        for event in CONVERSATION_EVENT_KINDS
    },
    "conversation direct": (
        consumer.ConversationFrame,
        consumer.conversation_frame("created", _snapshot("direct", None).to_wire()),
    ),
    "error with field": (consumer.ErrorFrame, consumer.error_frame(_validation_error())),
    "error with retry": (consumer.ErrorFrame, consumer.error_frame(_rate_limited(), "r")),
    "auth_ok": (consumer.AuthOkFrame, auth_ok(_claims())),
    "pong": (consumer.PongFrame, PONG),
}


@pytest.mark.parametrize("case", PRODUCER_FRAMES)
def test_producer_frames_match_their_models(case: str) -> None:
    """Each frame the producer sends is what its model (and so the AsyncAPI document) says."""
    assert_conforms(*PRODUCER_FRAMES[case])


@pytest.mark.parametrize("case", CONSUMER_FRAMES)
def test_consumer_frames_match_their_models(case: str) -> None:
    """Each frame the consumer sends is what its model (and so the AsyncAPI document) says."""
    assert_conforms(*CONSUMER_FRAMES[case])


def test_a_builder_drifting_from_its_model_is_caught() -> None:
    """An extra field, a missing one or a wrong type in a frame fails the check above."""
    frame = consumer.typing_frame(CONVERSATION, PEER)
    for drifted in (
        {**frame, "at": "2026-11-24T01:34:49.123Z"},
        {key: value for key, value in frame.items() if key != "user_id"},
        {**frame, "user_id": 7},
    ):
        with pytest.raises((AssertionError, ValueError)):
            assert_conforms(consumer.TypingFrame, drifted)


def test_frames_keep_their_wire_form() -> None:
    """The builders emit exactly the bytes the services sent before they existed."""
    assert PONG == '{"type":"pong"}'
    assert orjson.dumps(consumer.presence_frame(PEER, "online")) == (
        b'{"type":"presence","user_id":"' + str(PEER).encode() + b'","status":"online"}'
    )
    assert orjson.dumps(producer.error_frame(_rate_limited(), None)) == (
        b'{"type":"error","code":"rate_limited","ref":null,"message":"too many frames",'
        b'"retry_after_ms":50}'
    )
    assert consumer.error_frame(_validation_error()) == (
        '{"type":"error","ref":null,"code":"validation_failed",'
        '"message":"body must not be empty","field":"body"}'
    )
