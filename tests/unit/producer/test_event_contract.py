"""The NATS event codecs the producer writes and the consumer reads (rtm.shared.contract)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from rtm.shared.contract import (
    ConversationEvent,
    ConversationSnapshot,
    ReadEvent,
    TypingEvent,
)

AT = datetime(2026, 11, 24, 1, 34, 49, 123000, tzinfo=UTC)


def test_conversation_event_has_the_documented_shape_and_round_trips() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    snapshot = ConversationSnapshot(uuid.uuid4(), "group", "Team", (a, b), AT, 0)
    event = ConversationEvent("member_added", snapshot, (b,))
    raw = orjson.loads(event.encode())
    assert raw == {
        "event": "member_added",
        "conversation": {
            "id": str(snapshot.id),
            "kind": "group",
            "title": "Team",
            "members": [str(a), str(b)],
            "created_at": "2026-11-24T01:34:49.123Z",
            "last_seq": 0,
        },
        "user_ids": [str(b)],
    }
    assert ConversationEvent.decode(event.encode()) == event


def test_unknown_conversation_events_are_refused() -> None:
    snapshot = ConversationSnapshot(uuid.uuid4(), "direct", None, (), AT, 0)
    raw = orjson.loads(ConversationEvent("created", snapshot, ()).encode())
    raw["event"] = "deleted"
    with pytest.raises(ValueError, match="unknown"):
        ConversationEvent.decode(orjson.dumps(raw))


def test_typing_and_read_events_round_trip() -> None:
    conversation, user = uuid.uuid4(), uuid.uuid4()
    typing = TypingEvent(conversation, user, AT)
    assert orjson.loads(typing.encode()) == {
        "conversation_id": str(conversation),
        "user_id": str(user),
        "at": "2026-11-24T01:34:49.123Z",
    }
    assert TypingEvent.decode(typing.encode()) == typing
    read = ReadEvent(conversation, user, 42, AT)
    assert orjson.loads(read.encode())["seq"] == 42
    assert ReadEvent.decode(read.encode()) == read


@pytest.mark.parametrize("seq", [-1, True, 1.5, "3"])
def test_read_events_with_a_bad_seq_are_refused(seq: object) -> None:
    raw = {
        "conversation_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "seq": seq,
        "at": "2026-11-24T01:34:49.123Z",
    }
    with pytest.raises(ValueError, match="seq"):
        ReadEvent.decode(orjson.dumps(raw))
