"""The consumer's composition root: the one place that knows every concrete class.

`create_app(settings)` returns the ASGI app. Its lifespan starts a background task that connects
to PostgreSQL and NATS (retrying for ever), applies migrations, and then starts the partition
manager and the fan-out subscriptions; until then `/health/ready` answers 503 and the API answers
`unavailable`, but the process is up and serving. PostgreSQL is reached through one
`rtm.shared.postgres.PostgresDatabase`: every use of a connection is bounded by
`RTM_DB_TIMEOUT_S`, and an outage is the consumer's `Unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import SlowConsumerError

from rtm.consumer.adapters.fanout import NatsFanout
from rtm.consumer.adapters.jetstream_source import JetStreamPartitionSources
from rtm.consumer.adapters.leases import KvPartitionLeases
from rtm.consumer.adapters.postgres_queries import (
    PostgresConversationDirectory,
    PostgresMessageQueries,
)
from rtm.consumer.adapters.postgres_store import PostgresMessageStore
from rtm.consumer.domain.delivery import decode_delivery
from rtm.consumer.domain.exceptions import Unavailable
from rtm.consumer.entrypoints import asyncapi, http, ws
from rtm.consumer.entrypoints.auditor import ContinuityAuditor
from rtm.consumer.entrypoints.events import LiveEvents
from rtm.consumer.entrypoints.hub import Hub
from rtm.consumer.entrypoints.workers import PartitionManager
from rtm.consumer.services import ReadService
from rtm.consumer.settings import ConsumerSettings
from rtm.consumer.verify import continuity_service
from rtm.shared.connect import connect_nats, retry_forever
from rtm.shared.contract import DELIVER_SUBJECT_PREFIX, SESSION_REVOKED, STREAM, SessionRevoked
from rtm.shared.health import Readiness
from rtm.shared.http import create_http_app
from rtm.shared.jetstream import ensure_stream
from rtm.shared.postgres import PostgresDatabase
from rtm.shared.revocation import REVOCATION_MEMORY_S, RevokedSessions, load_revoked
from rtm.shared.tokens import TokenVerifier
from rtm.shared.ws import CloseCode

logger = logging.getLogger(__name__)


class ConsumerRuntime:
    """The consumer's connections and background work, started after the app is up."""

    def __init__(self, settings: ConsumerSettings, hub: Hub, app: FastAPI) -> None:
        self.settings = settings
        self.hub = hub
        self.app = app
        self.database = PostgresDatabase(
            settings.database_url,
            pool_size=settings.db_pool_size,
            timeout=settings.db_timeout_s,
            unavailable=Unavailable,
            migrations_dir=settings.migrations_dir if settings.migrate_on_start else None,
        )
        # Reads exist from the start: WebSockets are served before PostgreSQL answers, and
        # until it does each read is `Unavailable`, as in any outage (a session that found no
        # read service kept none, and its `resume` failed with an AttributeError).
        app.state.reads = ReadService(
            PostgresMessageQueries(self.database), max_recovery=settings.max_recovery
        )
        self.nc: NatsClient | None = None
        self.manager: PartitionManager | None = None
        self.stream_ok = False
        self.started = False
        self._deliveries: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        settings = self.settings
        self.database.start()  # migrations, then the pool; retried until they succeed
        self.nc = await connect_nats(
            settings.nats_url, f"rtm-consumer-{settings.instance_id}", watcher=self
        )
        js = self.nc.jetstream()
        revoked = self.app.state.revoked
        await self.nc.subscribe(SESSION_REVOKED, cb=self._on_revoked)
        known = await retry_forever("revoked sessions", lambda: load_revoked(js, revoked))
        logger.info("%s revoked sessions known at start", known)
        self._deliveries = await self.nc.subscribe(
            f"{DELIVER_SUBJECT_PREFIX}.>", cb=self._on_delivery
        )
        # Sockets are served once the server has the subscription (and the revocations are
        # known), see `Hub`; PostgreSQL may still be down, as in any outage (a `resume` is then
        # `unavailable`). A reconnect meanwhile replays the subscription: `reconnected`.
        await retry_forever("NATS delivery subscription", self.nc.flush)
        self.hub.feed_resumed()
        await retry_forever("JetStream stream", lambda: ensure_stream(js))
        self.stream_ok = True
        await self.database.ready.wait()
        events = LiveEvents(
            self.nc,
            self.hub,
            PostgresConversationDirectory(self.database),
            settings.instance_id,
            presence_interval=settings.presence_interval_s,
            presence_flush=settings.presence_flush_s,
        )
        self._tasks.append(await events.start())
        self.app.state.events = events
        self.manager = PartitionManager(
            partitions=settings.partitions,
            leases=KvPartitionLeases(js, settings.instance_id, settings.lease_ttl_s),
            sources=JetStreamPartitionSources(js, ack_wait=settings.ack_wait_s, nc=self.nc),
            store=PostgresMessageStore(self.database),
            fanout=NatsFanout(self.nc),
            lease_ttl=settings.lease_ttl_s,
            batch_size=settings.batch_size,
            fetch_timeout=settings.fetch_timeout_s,
        )
        self.manager.start()
        if settings.continuity_audit_interval_s > 0:
            manager = self.manager
            auditor = ContinuityAuditor(
                continuity_service(self.nc, self.database),
                lambda: manager.owned,
                interval=settings.continuity_audit_interval_s,
                max_messages=settings.continuity_audit_max,
            )
            self._tasks.append(asyncio.create_task(auditor.run(), name="continuity-auditor"))
        self.started = True
        logger.info("consumer %s ready", settings.instance_id)

    def disconnected(self) -> None:
        self.hub.feed_interrupted("lost the NATS connection")

    def reconnected(self) -> None:
        if self._deliveries is not None:
            self.hub.feed_resumed()

    def slow_consumer(self, error: SlowConsumerError) -> None:
        if error.sub is self._deliveries:
            self.hub.feed_interrupted("deliveries dropped (slow consumer)")
            self.hub.feed_resumed()

    async def _on_delivery(self, msg: Msg) -> None:
        try:
            delivery = decode_delivery(msg.data)
        except (ValueError, UnicodeDecodeError):
            logger.error("dropping malformed delivery on %s", msg.subject)
            return
        self.hub.deliver(delivery)
        # Let the sockets' writers run: a burst of deliveries arrives without any suspension
        # point in between, and would otherwise pile up in fast readers' queues too (4008).
        await asyncio.sleep(0)

    async def _on_revoked(self, msg: Msg) -> None:
        try:
            event = SessionRevoked.decode(msg.data)
        except (ValueError, KeyError, TypeError):
            logger.error("dropping malformed session-revoked event")
            return
        self.app.state.revoked.add(event.session_id)
        self.hub.close_session(event.session_id, CloseCode.SESSION_REVOKED, "session revoked")

    async def readiness_nats(self) -> str | None:
        if self.nc is None or not self.nc.is_connected:
            return "not connected"
        return None

    async def readiness_stream(self) -> str | None:
        if self.nc is None or not self.nc.is_connected:
            return "NATS not connected"
        try:
            await self.nc.jetstream().stream_info(STREAM)
        except Exception as exc:
            return f"stream {STREAM}: {exc}"
        return None

    async def readiness_partitions(self) -> str | None:
        if self.manager is None:
            return "not started"
        return self.manager.health()

    async def readiness_postgres(self) -> str | None:
        return await self.database.check()

    async def stop(self) -> None:
        """Graceful within `shutdown_timeout_s`: stop workers (the current batch commits or rolls
        back as a whole; leases are released), drain NATS, close the pool. A dependency that is
        down cannot hold the exit up: past the bound, connections are closed hard."""
        try:
            await asyncio.wait_for(self._stop_gracefully(), self.settings.shutdown_timeout_s)
        except TimeoutError:
            logger.warning(
                "graceful stop took over %.0fs; closing connections",
                self.settings.shutdown_timeout_s,
            )
            if self.manager is not None:
                self.manager.abort()
            if self.nc is not None and not self.nc.is_closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.nc.close(), 1.0)
            self.database.terminate()

    async def _stop_gracefully(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.manager is not None:
            with contextlib.suppress(Exception):
                await self.manager.stop()
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.drain()
        await self.database.close()


def _report_start_failure(task: asyncio.Task[None]) -> None:
    """Start-up retries what it waits for; anything else it raises would otherwise vanish with
    the task, leaving an instance that is up, never ready, and silent about why."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.critical("consumer start-up failed; not ready until restarted", exc_info=exc)


def create_app(settings: ConsumerSettings) -> FastAPI:
    readiness = Readiness()
    hub = Hub()
    verifier = TokenVerifier(
        settings.jwks_url, settings.token_issuer, max_lifetime=settings.access_token_ttl_seconds
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ConsumerRuntime(settings, hub, app)
        readiness.add("nats", runtime.readiness_nats)
        readiness.add("jetstream", runtime.readiness_stream)
        readiness.add("postgres", runtime.readiness_postgres)
        readiness.add("startup", lambda: None if runtime.started else "still starting")
        readiness.add("partitions", runtime.readiness_partitions)
        readiness.add("jwks", lambda: None if verifier.has_keys else "no keys fetched yet")
        starting = asyncio.create_task(runtime.start(), name="consumer-start")
        starting.add_done_callback(_report_start_failure)
        jwks = asyncio.create_task(retry_forever("auth JWKS", verifier.refresh, cap=3.0))
        app.state.runtime = runtime
        try:
            yield
        finally:
            hub.close_all(CloseCode.RESTARTING, "service restarting")
            for task in (starting, jwks):
                task.cancel()
            await runtime.stop()

    app = create_http_app(
        title="rtm consumer",
        version="1.0.0",
        description="Receive side of rtm: live delivery over WebSocket (`/v1/ws`), history and "
        "the conversation list over HTTP.",
        settings=settings,
        readiness=readiness,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.hub = hub
    app.state.verifier = verifier
    app.state.reads = None
    app.state.events = None
    app.state.revoked = RevokedSessions(REVOCATION_MEMORY_S, time.monotonic)
    app.state.monotonic = time.monotonic  # the clock of the inbound rate limits
    app.include_router(http.create_router(settings))
    app.include_router(ws.router)
    app.include_router(asyncapi.router)
    return app
