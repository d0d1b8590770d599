"""The hub holds sockets only while deliveries arrive (see `Hub`): the rules, without I/O."""

from __future__ import annotations

import uuid

import pytest

from rtm.consumer.entrypoints.hub import FeedDown, Hub, LiveConnection
from rtm.consumer.services import ReadService
from rtm.shared.ws import CloseCode, Outbox


class Closes:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def __call__(self, code: int, reason: str) -> None:
        self.calls.append((code, reason))


def connection(closes: Closes) -> LiveConnection:
    outbox: Outbox = None  # type: ignore[assignment]  # never written to here
    reads: ReadService = None  # type: ignore[assignment]
    return LiveConnection(uuid.uuid4(), uuid.uuid4(), outbox, reads, closes)


def test_no_socket_is_held_before_the_subscription_is_in_place() -> None:
    hub = Hub()
    with pytest.raises(FeedDown, match="not subscribed"):
        hub.add(connection(Closes()))
    assert hub.connection_count == 0
    hub.feed_resumed()
    hub.add(connection(Closes()))
    assert hub.connection_count == 1


def test_an_interruption_closes_every_socket_and_refuses_new_ones_until_resumed() -> None:
    hub = Hub()
    hub.feed_resumed()
    first, second = Closes(), Closes()
    hub.add(connection(first))
    hub.add(connection(second))
    hub.feed_interrupted("lost the NATS connection")
    for closes in (first, second):
        assert closes.calls == [
            (CloseCode.RESTARTING, "lost the NATS connection: reconnect, then resume")
        ]
    with pytest.raises(FeedDown, match="lost the NATS connection"):
        hub.add(connection(Closes()))
    hub.feed_resumed()
    later = Closes()
    hub.add(connection(later))
    assert later.calls == []
