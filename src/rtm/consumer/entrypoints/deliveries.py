"""The consumer's core-NATS subscriptions that reach local sockets: stored messages on
`rtm.deliver.>` (from the partition workers of every instance), and session revocations.

A malformed message is logged and dropped: it was not written by rtm, and the subscription
lives on.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from rtm.consumer.domain.delivery import decode_delivery
from rtm.consumer.entrypoints.hub import Hub
from rtm.shared.contract import DELIVER_SUBJECT_PREFIX, SESSION_REVOKED, SessionRevoked
from rtm.shared.revocation import RevokedSessions
from rtm.shared.ws import CloseCode

logger = logging.getLogger(__name__)


class Deliveries:
    """Hands stored messages to the hub, and closes the sockets of revoked sessions."""

    def __init__(self, hub: Hub, revoked: RevokedSessions) -> None:
        self._hub = hub
        self._revoked = revoked

    async def subscribe(self, nc: NatsClient) -> None:
        """Subscribe on `nc` (once it is connected; nats-py resubscribes after a reconnect)."""
        await nc.subscribe(f"{DELIVER_SUBJECT_PREFIX}.>", cb=self.on_delivery)
        await nc.subscribe(SESSION_REVOKED, cb=self.on_revoked)

    async def on_delivery(self, msg: Msg) -> None:
        try:
            delivery = decode_delivery(msg.data)
        except (ValueError, UnicodeDecodeError):
            logger.error("dropping malformed delivery on %s", msg.subject)
            return
        self._hub.deliver(delivery)
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
