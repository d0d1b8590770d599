"""The presence event's codec: beats and chunks round-trip, and events without them decode."""

from __future__ import annotations

import uuid

import orjson
import pytest

from rtm.shared.contract import PresenceEvent


def test_a_heartbeat_round_trips_with_its_beat_and_chunk() -> None:
    event = PresenceEvent("c1/ab", "heartbeat", (uuid.uuid4(),), beat=7, chunk=1, chunks=3)
    assert PresenceEvent.decode(event.encode()) == event


def test_a_change_round_trips_with_its_beat() -> None:
    event = PresenceEvent("c1/ab", "offline", (uuid.uuid4(),), beat=0)
    assert PresenceEvent.decode(event.encode()) == event


def test_an_event_of_an_older_version_has_no_beat() -> None:
    user = uuid.uuid4()
    raw = orjson.dumps({"instance": "c1", "status": "heartbeat", "user_ids": [str(user)]})
    assert PresenceEvent.decode(raw) == PresenceEvent("c1", "heartbeat", (user,), None, 0, 1)


@pytest.mark.parametrize(
    "extra",
    [{"beat": -1}, {"beat": "3"}, {"beat": True}, {"chunk": 2, "chunks": 2}, {"chunks": 0}],
)
def test_bad_beats_and_chunks_are_refused(extra: dict[str, object]) -> None:
    raw = orjson.dumps({"instance": "c1", "status": "heartbeat", "user_ids": [], **extra})
    with pytest.raises(ValueError, match="presence"):
        PresenceEvent.decode(raw)
