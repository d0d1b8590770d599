"""`RevocationNotifier` over NATS, with the outbox relay that retries what NATS missed (see
`rtm.auth.adapters.nats` for what is sent where)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rtm.auth.adapters.nats import DELIVERY_ERRORS, NatsBus
from rtm.auth.domain.ports import RevocationOutbox
from rtm.shared.contract import SessionRevoked

logger = logging.getLogger(__name__)


class RevocationPublisher:
    """`RevocationNotifier` that sends in the background and marks delivered rows.

    Args:
        bus: where events go.
        outbox: where undelivered revocations are found and marked delivered.
    """

    def __init__(self, bus: NatsBus, outbox: RevocationOutbox) -> None:
        self._bus = bus
        self._outbox = outbox
        self._tasks: set[asyncio.Task[Any]] = set()

    def notify(self, event: SessionRevoked) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def relay_once(self) -> int:
        """Deliver what earlier attempts could not; returns how many were delivered."""
        delivered = 0
        for event in await self._outbox.unpublished_revocations():
            if not await self._deliver(event):
                break
            delivered += 1
        return delivered

    async def drain(self) -> None:
        """Wait for in-flight sends (shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)

    async def _deliver(self, event: SessionRevoked) -> bool:
        try:
            await self._bus.publish_revocation(event)
            await self._outbox.mark_revocation_published(event.session_id)
        except DELIVERY_ERRORS as exc:
            logger.warning(
                "revocation of session %s not delivered yet (%s); will retry",
                event.session_id,
                exc,
            )
            return False
        return True
