"""The NATS side of session revocations: the event producers and consumers act on within seconds.

Each ended session is announced twice:

* core NATS `rtm.events.session.revoked` (`SessionRevoked`): live processes close the session's
  WebSockets (4503) and refuse its tokens;
* JetStream key-value bucket `rtm_revoked_sessions` (key: session id, value: the same event,
  max age: the access-token lifetime): a process that starts later, or missed the core message
  while disconnected, reads the still-relevant revocations from there.

The revocation itself is committed in PostgreSQL first; the event is best effort at that moment
and the row stays `revocation_published = false` until both sends succeed. A relay loop
(`rtm.auth.adapters.publishers.RevocationPublisher`) retries those rows, so a NATS outage delays
revocation events but never loses them.
"""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client as NatsClient
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from rtm.auth.domain.exceptions import Unavailable
from rtm.shared.connect import (
    MAX_OUTSTANDING_PINGS,
    NATS_FAILURES,
    PING_INTERVAL_S,
    flush_within,
    retry_forever,
)
from rtm.shared.contract import SESSION_REVOKED, SessionRevoked

logger = logging.getLogger(__name__)

DELIVERY_ERRORS: tuple[type[BaseException], ...] = (Unavailable, *NATS_FAILURES)


class NatsBus:
    """The process's NATS connection. `connect_forever` returns once connected; from then on
    nats-py reconnects by itself (forever), buffering publishes meanwhile.

    Args:
        servers: NATS URLs.
        bucket: the revoked-sessions KV bucket.
        bucket_ttl_s: how long a revocation stays in the bucket (the access-token lifetime).
    """

    def __init__(self, servers: list[str], *, bucket: str, bucket_ttl_s: float) -> None:
        self._servers = servers
        self._bucket = bucket
        self._bucket_ttl_s = bucket_ttl_s
        self._nc: NatsClient | None = None
        self._kv: KeyValue | None = None

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def connect_forever(self, *, max_backoff: float = 5.0) -> None:
        """Connect, retrying with capped backoff (`rtm.shared.connect.retry_forever`)."""
        if self._nc is None:
            self._nc = await retry_forever(
                f"NATS at {','.join(self._servers)}",
                lambda: self._connect(max_reconnect_attempts=-1),
                cap=max_backoff,
            )
        logger.info("connected to NATS")

    async def connect_briefly(self) -> bool:
        """Two quick attempts, for a short-lived command that must not wait for NATS (the
        connection it makes gives up soon after a disconnect, too): whether it connected."""
        if self._nc is None:
            try:
                self._nc = await self._connect(max_reconnect_attempts=1)
            except DELIVERY_ERRORS as exc:
                logger.warning("NATS not reachable (%s)", exc)
                return False
        return True

    async def _connect(self, *, max_reconnect_attempts: int) -> NatsClient:
        return await nats.connect(
            servers=self._servers,
            name="rtm-auth",
            max_reconnect_attempts=max_reconnect_attempts,
            reconnect_time_wait=1,
            connect_timeout=2,
            # A connection whose reading died is stale within seconds (rtm.shared.connect).
            ping_interval=PING_INTERVAL_S,
            max_outstanding_pings=MAX_OUTSTANDING_PINGS,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )

    async def publish_revocation(self, event: SessionRevoked) -> None:
        """Core publish (flushed: the server has it) then the KV entry. Raises on failure."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise Unavailable("NATS not connected")
        payload = event.encode()
        await nc.publish(SESSION_REVOKED, payload)
        await flush_within(nc, 2)
        kv = await self._bucket_handle(nc)
        await kv.put(str(event.session_id), payload)

    async def _bucket_handle(self, nc: NatsClient) -> KeyValue:
        if self._kv is None:
            js = nc.jetstream(timeout=2)
            try:
                self._kv = await js.key_value(self._bucket)
            except BucketNotFoundError:
                self._kv = await js.create_key_value(
                    KeyValueConfig(bucket=self._bucket, history=1, ttl=self._bucket_ttl_s)
                )
        return self._kv

    async def close(self) -> None:
        if self._nc is not None:
            nc, self._nc = self._nc, None
            try:
                await asyncio.wait_for(nc.close(), 5.0)
            except DELIVERY_ERRORS as exc:
                logger.warning("closing NATS: %s", exc)

    async def _on_error(self, exc: Exception) -> None:
        logger.warning("NATS error: %s", exc)

    async def _on_disconnected(self) -> None:
        if self._nc is not None:  # not our own close()
            logger.warning("NATS disconnected; reconnecting")

    async def _on_reconnected(self) -> None:
        logger.info("NATS reconnected")
