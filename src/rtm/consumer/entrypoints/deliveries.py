"""The consumer's core-NATS subscriptions that reach local sockets: stored messages on
`rtm.deliver.>` (from the partition workers of every other instance; this instance's own reach
its sockets directly, `deliver_local`), and session revocations.

Core NATS keeps nothing for a subscriber that is not there, so the hub serves sockets only
while the delivery subscription is in place (see `Hub`): `start` tells it so once the revoked
sessions are known and the subscription is on the server, and as the connection's watcher
(`rtm.shared.connect.ConnectionWatcher`) `Deliveries` tells it when deliveries may be lost (a
disconnect, or messages dropped for a slow subscription) and when they arrive again.

A malformed message is logged and dropped: it was not written by rtm, and the subscription
lives on.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import SlowConsumerError

from rtm.consumer.domain.delivery import decode_delivery
from rtm.consumer.entrypoints.hub import Hub
from rtm.shared.connect import retry_forever
from rtm.shared.contract import DELIVER_SUBJECT_PREFIX, SESSION_REVOKED, SessionRevoked
from rtm.shared.revocation import RevokedSessions, load_revoked
from rtm.shared.ws import CloseCode

logger = logging.getLogger(__name__)


class Deliveries:
    """Hands stored messages to the hub, closes the sockets of revoked sessions, and tells the
    hub whether deliveries are arriving."""

    def __init__(self, hub: Hub, revoked: RevokedSessions) -> None:
        self._hub = hub
        self._revoked = revoked
        self._subscription: Subscription | None = None
        # Names this instance's fan-out (`NatsFanout`): its own batches reach the local sockets
        # through `deliver_local`, and their echo from the bus is skipped.
        self.origin = uuid.uuid4().hex
        self._own_suffix = "." + self.origin

    async def start(self, nc: NatsClient) -> None:
        """Subscribe on `nc` (connected, with this object as its watcher): revocations first,
        then learn the earlier ones, then the deliveries; sockets are served once the server
        has the subscription (flushed). PostgreSQL may still be down, as in any outage (a
        `resume` is then `unavailable`). A reconnect meanwhile replays the subscriptions:
        `reconnected`."""
        await nc.subscribe(SESSION_REVOKED, cb=self.on_revoked)
        known = await retry_forever(
            "revoked sessions", lambda: load_revoked(nc.jetstream(), self._revoked)
        )
        logger.info("%s revoked sessions known at start", known)
        self._subscription = await nc.subscribe(f"{DELIVER_SUBJECT_PREFIX}.>", cb=self.on_delivery)
        await retry_forever("NATS delivery subscription", nc.flush)
        self._hub.feed_resumed()

    def disconnected(self) -> None:
        self._hub.feed_interrupted("lost the NATS connection")

    def reconnected(self) -> None:
        if self._subscription is not None:
            self._hub.feed_resumed()

    def slow_consumer(self, error: SlowConsumerError) -> None:
        if error.sub is self._subscription:
            self._hub.feed_interrupted("deliveries dropped (slow consumer)")
            self._hub.feed_resumed()

    async def on_delivery(self, msg: Msg) -> None:
        if msg.subject.endswith(self._own_suffix):
            return  # our own partition worker's: handed to the local sockets already
        await self.deliver_local(msg.data, msg.subject)

    async def deliver_local(self, data: bytes, subject: str = "the local fan-out") -> None:
        """A delivery (`encode_delivery`) to this instance's sockets: from the bus, or straight
        from a local partition worker, which saves the round trip through nats-server."""
        try:
            delivery = decode_delivery(data)
        except (ValueError, UnicodeDecodeError):
            logger.error("dropping malformed delivery on %s", subject)
            return
        try:
            self._hub.deliver(delivery)
        except Exception:  # last line of defence: a partition worker runs this (local fan-out)
            # and would otherwise fail its batch, restart and meet the same bug: storing stalls.
            # The sockets concerned fill the gap from PostgreSQL at their next delivery.
            logger.exception(
                "delivering seq %s of %s to local sockets failed",
                delivery.seq,
                delivery.conversation_id,
            )
        # Let the sockets' writers run: a burst of deliveries arrives without any suspension
        # point in between, and would otherwise pile up in fast readers' queues too (4008).
        await asyncio.sleep(0)

    async def on_revoked(self, msg: Msg) -> None:
        try:
            event = SessionRevoked.decode(msg.data)
        except (ValueError, KeyError, TypeError):
            logger.error("dropping malformed session-revoked event")
            return
        self._revoked.add(event.session_id)
        self._hub.close_session(event.session_id, CloseCode.SESSION_REVOKED, "session revoked")
