"""The delivery entrypoint: sockets are served once the subscription is in place, closed when
deliveries may be lost, and stored messages and revocations reach the hub."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import SlowConsumerError
from nats.js.errors import BucketNotFoundError
from prometheus_client import REGISTRY

from rtm.consumer.domain.delivery import LiveDelivery, encode_delivery
from rtm.consumer.domain.model import StoredMessage
from rtm.consumer.entrypoints.deliveries import Deliveries
from rtm.consumer.entrypoints.hub import Hub, LiveConnection
from rtm.consumer.services import ReadService
from rtm.shared.contract import (
    DELIVER_SUBJECT_PREFIX,
    SESSION_REVOKED,
    SessionRevoked,
    deliver_subject,
)
from rtm.shared.revocation import REVOCATION_MEMORY_S, RevokedSessions
from rtm.shared.ws import CloseCode, Outbox
from tests.support.outbox import FakeOutbox


def revocations() -> RevokedSessions:
    return RevokedSessions(REVOCATION_MEMORY_S, time.monotonic)


class FakeJetStream:
    async def key_value(self, bucket: str) -> None:
        raise BucketNotFoundError()  # no revocations yet


class FakeNats:
    """Subscribes (nothing more) and counts flushes."""

    def __init__(self) -> None:
        self.subscriptions: list[Subscription] = []
        self.flushes = 0

    @property
    def subjects(self) -> list[str]:
        return [s.subject for s in self.subscriptions]

    async def subscribe(self, subject: str, **_: Any) -> Subscription:
        self.subscriptions.append(cast(Subscription, SimpleNamespace(subject=subject)))
        return self.subscriptions[-1]

    async def flush(self) -> None:
        self.flushes += 1

    def jetstream(self) -> FakeJetStream:
        return FakeJetStream()


def msg(data: bytes, subject: str = "rtm.deliver.x") -> Msg:
    return cast(Msg, SimpleNamespace(data=data, subject=subject))


def connection(closed: list[int]) -> tuple[LiveConnection, FakeOutbox]:
    outbox = FakeOutbox()
    conn = LiveConnection(
        uuid.uuid4(),
        uuid.uuid4(),
        cast(Outbox, outbox),
        cast(ReadService, None),
        lambda code, reason: closed.append(code),
        holding=False,
    )
    return conn, outbox


async def started() -> tuple[Deliveries, Hub, RevokedSessions, FakeNats]:
    hub, revoked, nc = Hub(), revocations(), FakeNats()
    deliveries = Deliveries(hub, revoked)
    await deliveries.start(cast(NatsClient, nc))
    return deliveries, hub, revoked, nc


async def test_sockets_are_served_once_the_subscription_is_flushed() -> None:
    hub = Hub()
    assert not hub.feed_live
    deliveries = Deliveries(hub, revocations())
    nc = FakeNats()
    await deliveries.start(cast(NatsClient, nc))
    assert (hub.feed_live, nc.flushes) == (True, 1)
    assert nc.subjects == [SESSION_REVOKED, f"{DELIVER_SUBJECT_PREFIX}.>"]


async def test_a_disconnect_closes_every_socket_until_reconnected() -> None:
    deliveries, hub, _, _ = await started()
    closed: list[int] = []
    hub.add(connection(closed)[0])
    deliveries.disconnected()
    assert (closed, hub.feed_live) == ([CloseCode.RESTARTING], False)
    deliveries.reconnected()
    assert hub.feed_live


async def test_a_reconnect_before_the_subscription_exists_serves_nothing() -> None:
    hub = Hub()
    deliveries = Deliveries(hub, revocations())
    deliveries.reconnected()
    assert not hub.feed_live


async def test_dropped_deliveries_close_the_sockets_but_not_other_slow_subscriptions() -> None:
    deliveries, hub, _, nc = await started()
    closed: list[int] = []
    hub.add(connection(closed)[0])
    other = cast(Subscription, SimpleNamespace(subject="rtm.events.typing"))
    deliveries.slow_consumer(SlowConsumerError("rtm.events.typing", "", 1, other))
    assert closed == []
    (own,) = [s for s in nc.subscriptions if s.subject.startswith(DELIVER_SUBJECT_PREFIX)]
    deliveries.slow_consumer(SlowConsumerError("rtm.deliver.x", "", 2, own))
    assert closed == [CloseCode.RESTARTING]
    assert hub.feed_live  # new sockets resume from PostgreSQL: served again at once


async def test_a_delivery_reaches_the_member_sockets_and_a_malformed_one_is_dropped() -> None:
    deliveries, hub, _, _ = await started()
    conn, outbox = connection([])
    hub.add(conn)
    message = StoredMessage(
        uuid.uuid4(), uuid.uuid4(), 1, uuid.uuid4(), uuid.uuid4(), "hi", datetime.now(UTC)
    )
    await deliveries.on_delivery(msg(b"not a delivery"))
    await deliveries.on_delivery(msg(encode_delivery(message, [conn.user_id])))
    assert outbox.seqs() == [1]


async def test_a_revocation_closes_the_session_and_is_remembered() -> None:
    deliveries, hub, revoked, _ = await started()
    closed: list[int] = []
    conn, _ = connection(closed)
    hub.add(conn)
    await deliveries.on_revoked(msg(b"{", SESSION_REVOKED))
    event = SessionRevoked(conn.session_id, conn.user_id)
    await deliveries.on_revoked(msg(event.encode(), SESSION_REVOKED))
    assert closed == [CloseCode.SESSION_REVOKED]
    assert revoked.is_revoked(conn.session_id)


def delivery_of(conversation: uuid.UUID, seq: int, members: list[uuid.UUID]) -> bytes:
    """A stored message's delivery payload, as a partition worker encodes it."""
    message = StoredMessage(
        uuid.uuid4(), conversation, seq, uuid.uuid4(), uuid.uuid4(), "hi", datetime.now(UTC)
    )
    return encode_delivery(message, members)


def frames_out(kind: str) -> float:
    return REGISTRY.get_sample_value("rtm_consumer_frames_out_total", {"type": kind}) or 0.0


async def test_message_frames_are_counted_once_each_per_socket_that_got_one() -> None:
    """Counted per delivery (one `inc` for all the sockets), but still one per frame queued: a
    duplicate dropped by a socket's order is not counted."""
    deliveries, hub, _, _ = await started()
    first, first_out = connection([])
    second, second_out = connection([])
    hub.add(first)
    hub.add(second)
    conversation = uuid.uuid4()

    before = frames_out("message")
    await deliveries.on_delivery(msg(delivery_of(conversation, 1, [first.user_id, second.user_id])))
    await deliveries.on_delivery(msg(delivery_of(conversation, 2, [first.user_id, second.user_id])))
    first.keep_from(conversation, 3)  # the first socket has up to 3: 3 is a duplicate for it
    await deliveries.on_delivery(msg(delivery_of(conversation, 3, [first.user_id, second.user_id])))

    assert (first_out.seqs(), second_out.seqs()) == ([1, 2], [1, 2, 3])
    assert frames_out("message") == before + 5


async def test_own_fan_out_is_delivered_locally_and_its_echo_from_the_bus_skipped() -> None:
    """A partition worker of this instance hands its batch to the local sockets at once (no
    round trip through nats-server); the copy the bus sends back is recognised by its subject
    and skipped, while other instances' deliveries, and the older subject without an origin
    (an instance not yet upgraded), are delivered."""
    deliveries, hub, _, _ = await started()
    conn, outbox = connection([])
    hub.add(conn)
    conversation = uuid.uuid4()

    await deliveries.deliver_local(delivery_of(conversation, 1, [conn.user_id]))
    await deliveries.on_delivery(
        msg(
            delivery_of(conversation, 2, [conn.user_id]),
            deliver_subject(conversation, deliveries.origin),
        )
    )
    assert outbox.seqs() == [1]
    await deliveries.on_delivery(
        msg(delivery_of(conversation, 2, [conn.user_id]), deliver_subject(conversation, "other"))
    )
    await deliveries.on_delivery(
        msg(
            delivery_of(conversation, 3, [conn.user_id]), f"{DELIVER_SUBJECT_PREFIX}.{conversation}"
        )
    )
    assert outbox.seqs() == [1, 2, 3]


async def test_the_origin_is_one_subject_token_and_differs_between_instances() -> None:
    first, second = Deliveries(Hub(), revocations()), Deliveries(Hub(), revocations())
    assert first.origin != second.origin
    assert first.origin.isalnum()


async def test_a_bug_while_delivering_is_logged_and_does_not_reach_the_partition_worker(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local fan-out runs in a partition worker: a bug in handing a delivery to the sockets
    must not fail the batch (the worker would restart from its offset, fan out again and meet
    the same bug: storing would stall). It is logged with its traceback, and the next delivery
    goes out."""
    deliveries, hub, _, _ = await started()
    conn, outbox = connection([])
    hub.add(conn)
    conversation = uuid.uuid4()

    real = hub.deliver

    def broken_once(delivery: LiveDelivery) -> None:
        monkeypatch.setattr(hub, "deliver", real)
        raise RuntimeError("a bug")

    monkeypatch.setattr(hub, "deliver", broken_once)
    await deliveries.deliver_local(delivery_of(conversation, 1, [conn.user_id]))
    await deliveries.deliver_local(delivery_of(conversation, 2, [conn.user_id]))
    [line] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert line.exc_info is not None
    assert outbox.seqs() == [2]
