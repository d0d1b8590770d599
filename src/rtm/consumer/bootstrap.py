"""The consumer's one composition root: settings in, a running service out.

`build(settings)` wires adapters into services and services into the entrypoints, without I/O,
and returns a `Consumer`: the ASGI app, the `ConsumerContext` its entrypoints share, and the
`ConsumerRuntime` its lifespan starts and stops. The runtime connects to PostgreSQL and NATS in
the background (retrying for ever), applies migrations, and then starts the partition manager
and the NATS subscriptions; until then `/health/ready` answers 503 and the API answers
`unavailable`, but the process is up and serving (WebSockets from when the delivery
subscription is in place: `rtm.consumer.entrypoints.deliveries`). PostgreSQL is reached through one
`rtm.shared.postgres.PostgresDatabase`: every use of a connection is bounded by
`RTM_DB_TIMEOUT_S`, and an outage is the consumer's `Unavailable`. `serve(settings)` runs it
under uvicorn, `/v1/ws` on picows, until SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import FrameType

import uvicorn
from fastapi import FastAPI
from nats.aio.client import Client as NatsClient

from rtm.consumer.adapters.fanout import NatsFanout
from rtm.consumer.adapters.jetstream_source import JetStreamPartitionSources
from rtm.consumer.adapters.leases import KvPartitionLeases
from rtm.consumer.adapters.postgres_queries import (
    PostgresConversationDirectory,
    PostgresMessageQueries,
)
from rtm.consumer.adapters.postgres_store import PostgresMessageStore
from rtm.consumer.domain.exceptions import Unavailable
from rtm.consumer.domain.ports import MessageQueries
from rtm.consumer.entrypoints import asyncapi, http, ws
from rtm.consumer.entrypoints.auditor import ContinuityAuditor
from rtm.consumer.entrypoints.deliveries import Deliveries
from rtm.consumer.entrypoints.deps import ConsumerContext
from rtm.consumer.entrypoints.ephemeral_events import EphemeralEvents
from rtm.consumer.entrypoints.hub import DB_RETRY, Hub
from rtm.consumer.entrypoints.workers import PartitionManager
from rtm.consumer.services import ReadService
from rtm.consumer.settings import ConsumerSettings
from rtm.consumer.verify import continuity_service
from rtm.shared.connect import NATS_FAILURES, connect_nats, retry_forever
from rtm.shared.contract import STREAM
from rtm.shared.gc_tuning import tune_gc
from rtm.shared.health import Readiness
from rtm.shared.http import create_http_app
from rtm.shared.jetstream import ensure_stream
from rtm.shared.postgres import PostgresDatabase
from rtm.shared.revocation import REVOCATION_MEMORY_S, RevokedSessions
from rtm.shared.serving import uvicorn_edge_options
from rtm.shared.tokens import TokenVerifier
from rtm.shared.ws import CloseCode

logger = logging.getLogger(__name__)

VERSION = "1.0.0"
DESCRIPTION = (
    "Receive side of rtm: live delivery over WebSocket (`/v1/ws`), history and "
    "the conversation list over HTTP."
)


class ConsumerRuntime:
    """The consumer's connections and background work, started after the app is up."""

    def __init__(
        self,
        settings: ConsumerSettings,
        context: ConsumerContext,
        database: PostgresDatabase,
        deliveries: Deliveries,
    ) -> None:
        self.settings = settings
        self.context = context
        self.database = database
        self.deliveries = deliveries
        self.nc: NatsClient | None = None
        self.manager: PartitionManager | None = None
        self.started = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        settings, context = self.settings, self.context
        self.database.start()  # migrations, then the pool; retried until they succeed
        self.nc = await connect_nats(
            settings.nats_url, f"rtm-consumer-{settings.instance_id}", watcher=self.deliveries
        )
        js = self.nc.jetstream()
        await self.deliveries.start(self.nc)  # sockets are served from here on
        await retry_forever("JetStream stream", lambda: ensure_stream(js))
        await self.database.ready.wait()
        events = EphemeralEvents(
            self.nc,
            context.hub,
            PostgresConversationDirectory(self.database),
            settings.instance_id,
            presence_interval=settings.presence_interval_s,
            presence_flush=settings.presence_flush_s,
        )
        self._tasks.append(await events.start())
        context.events = events
        self.manager = PartitionManager(
            partitions=settings.partitions,
            leases=KvPartitionLeases(js, settings.instance_id, settings.lease_ttl_s),
            sources=JetStreamPartitionSources(self.nc, ack_wait=settings.ack_wait_s),
            store=PostgresMessageStore(self.database),
            fanout=NatsFanout(self.nc, self.deliveries.origin, self.deliveries.deliver_local),
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

    async def readiness_nats(self) -> str | None:
        if self.nc is None or not self.nc.is_connected:
            return "not connected"
        return None

    async def readiness_stream(self) -> str | None:
        if self.nc is None or not self.nc.is_connected:
            return "NATS not connected"
        try:
            await self.nc.jetstream().stream_info(STREAM)
        except NATS_FAILURES as exc:
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
                with contextlib.suppress(*NATS_FAILURES):
                    await asyncio.wait_for(self.nc.close(), 1.0)
            self.database.terminate()

    async def _stop_gracefully(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.manager is not None:
            with contextlib.suppress(*NATS_FAILURES):
                await self.manager.stop()
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(*NATS_FAILURES):
                await self.nc.drain()
        await self.database.close()


def _report_start_failure(task: asyncio.Task[None]) -> None:
    """Start-up retries what it waits for; anything else it raises would otherwise vanish with
    the task, leaving an instance that is up, never ready, and silent about why."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.critical("consumer start-up failed; not ready until restarted", exc_info=exc)


@dataclass
class Consumer:
    """A wired consumer: the ASGI app, the context its entrypoints share, and the runtime its
    lifespan starts and stops."""

    app: FastAPI
    context: ConsumerContext
    runtime: ConsumerRuntime


def build(settings: ConsumerSettings, *, queries: MessageQueries | None = None) -> Consumer:
    """Wire the consumer from `settings` (no I/O until the app's lifespan starts).

    `queries`: what reads go through (PostgreSQL's, on the consumer's pool, unless given).
    """
    database = PostgresDatabase(
        settings.database_url,
        pool_size=settings.db_pool_size,
        timeout=settings.db_timeout_s,
        unavailable=Unavailable,
        migrations_dir=settings.migrations_dir if settings.migrate_on_start else None,
    )
    verifier = TokenVerifier(
        settings.jwks_url, settings.token_issuer, max_lifetime=settings.access_token_ttl_seconds
    )
    monotonic = time.monotonic
    context = ConsumerContext(
        settings=settings,
        hub=Hub(),
        reads=ReadService(
            queries or PostgresMessageQueries(database), max_recovery=settings.max_recovery
        ),
        verifier=verifier,
        revoked=RevokedSessions(REVOCATION_MEMORY_S, monotonic),
        monotonic=monotonic,
        backoff=DB_RETRY,
    )
    runtime = ConsumerRuntime(settings, context, database, Deliveries(context.hub, context.revoked))
    readiness = Readiness()
    readiness.add("nats", runtime.readiness_nats)
    readiness.add("jetstream", runtime.readiness_stream)
    readiness.add("postgres", runtime.readiness_postgres)
    readiness.add("startup", lambda: None if runtime.started else "still starting")
    readiness.add("partitions", runtime.readiness_partitions)
    readiness.add("jwks", lambda: None if verifier.has_keys else "no keys fetched yet")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        starting = asyncio.create_task(runtime.start(), name="consumer-start")
        starting.add_done_callback(_report_start_failure)
        jwks = asyncio.create_task(retry_forever("auth JWKS", verifier.refresh, cap=3.0))
        try:
            yield
        finally:
            context.hub.close_all(CloseCode.RESTARTING, "service restarting")
            for task in (starting, jwks):
                task.cancel()
            await runtime.stop()

    app = create_http_app(
        title="rtm consumer",
        version=VERSION,
        description=DESCRIPTION,
        settings=settings,
        readiness=readiness,
        lifespan=lifespan,
    )
    app.state.consumer = context
    app.include_router(http.create_router(settings))
    app.include_router(ws.router)
    app.include_router(asyncapi.router)
    return Consumer(app, context, runtime)


def create_app(settings: ConsumerSettings, *, queries: MessageQueries | None = None) -> FastAPI:
    """The consumer's ASGI app (for uvicorn, tests, or any ASGI server)."""
    return build(settings, queries=queries).app


def server(settings: ConsumerSettings) -> uvicorn.Server:
    """A uvicorn server for the consumer on `host:consumer_port`: its app, `/v1/ws` on picows,
    the edge limits of `rtm.shared.serving`."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.consumer_port,
        ws=ws.ws_protocol(app, settings),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
        **uvicorn_edge_options(settings),
    )
    return uvicorn.Server(config)


def _exit_ok(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve(settings: ConsumerSettings) -> None:
    """Run the consumer until SIGTERM/SIGINT; returns after a graceful stop.

    uvicorn shuts down gracefully on SIGTERM, then re-raises it; the handler installed here
    turns that re-raise into a clean exit code 0.
    """
    logger.info("consumer starting on http://%s:%d", settings.host, settings.consumer_port)
    signal.signal(signal.SIGTERM, _exit_ok)
    consumer_server = server(settings)
    tune_gc(settings.gc_young_threshold)
    consumer_server.run()
