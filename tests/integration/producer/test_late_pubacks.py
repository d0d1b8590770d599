"""A PubAck awaited after the bus stopped waiting for it, on a real (frozen) nats-server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from rtm.local.nats import EmbeddedNats
from rtm.producer.adapters.nats import NatsBus
from rtm.producer.adapters.publishers import JetStreamMessagePublisher
from rtm.producer.domain.exceptions import Unavailable
from rtm.shared.contract import AcceptedMessage
from rtm.shared.jetstream import stream_config
from tests.support.processes import Freeze, frozen

TIMEOUT_S = 0.2


async def test_a_receipt_awaited_after_its_reply_expired_is_unavailable(
    nats_server: EmbeddedNats,
) -> None:
    """A connection's acker awaits PubAcks in order, so it can reach one after the bus gave up on
    its reply (publish timeout + 1 s: an earlier send took that long to complete). That send is
    `unavailable`; a CancelledError instead would end the acker, and the connection would never
    answer a send again."""
    bus = NatsBus(
        [nats_server.url], stream=stream_config(), timeout=TIMEOUT_S, max_pending_publishes=10
    )
    bus.start()
    await asyncio.wait_for(bus.ready.wait(), 10)
    assert nats_server.proc is not None
    try:
        publisher = JetStreamMessagePublisher(bus, partitions=4, timeout=TIMEOUT_S)
        now = datetime.now(UTC)
        message = AcceptedMessage(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "x", now)
        with frozen(nats_server.proc.pid, Freeze.SERVER):
            pending = await publisher.submit(message)
            await asyncio.sleep(TIMEOUT_S + 1.5)  # the bus's expiry timer (+1 s) fires first
            with pytest.raises(Unavailable):
                await pending.receipt()
    finally:
        await bus.close()
