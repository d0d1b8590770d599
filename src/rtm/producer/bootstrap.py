"""The producer's one composition root: settings in, a running service out.

`build(settings)` wires adapters into services and services into the entrypoints, without I/O;
the app's lifespan starts the background connectors (PostgreSQL, NATS, JWKS), which retry with
capped backoff, so the process serves `/health/ready` (503, naming what is missing) while a
dependency is down instead of crashing. PostgreSQL counts for readiness only until it has been
reached once: after that, an outage leaves the producer ready, serving sends to the
conversations its membership cache knows (docs/architecture.md, "The message path").
`serve(settings)` runs it under uvicorn and, on SIGTERM, closes WebSockets with 1012 after
acking their in-flight sends, then drains NATS.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import FrameType

import uvicorn
from fastapi import FastAPI
from nats.aio.msg import Msg

from rtm.producer.adapters.nats import NatsBus
from rtm.producer.adapters.postgres import PostgresConversationRepository
from rtm.producer.adapters.publishers import JetStreamMessagePublisher, NatsEventPublisher
from rtm.producer.domain.exceptions import Unavailable
from rtm.producer.domain.membership import Cooldown, MembershipCache
from rtm.producer.entrypoints import asyncapi, http, ws
from rtm.producer.entrypoints.connections import ConnectionRegistry
from rtm.producer.entrypoints.deps import ProducerContext
from rtm.producer.entrypoints.metrics import observe_check
from rtm.producer.services import (
    ConversationService,
    MembershipService,
    MessageService,
    TypingAndReadService,
)
from rtm.producer.settings import ProducerSettings
from rtm.shared.clock import utcnow
from rtm.shared.connect import retry_forever
from rtm.shared.contract import (
    CONVERSATION_EVENTS,
    SESSION_REVOKED,
    ConversationEvent,
    SessionRevoked,
)
from rtm.shared.gc_tuning import tune_gc
from rtm.shared.health import Readiness
from rtm.shared.http import create_http_app
from rtm.shared.ids import new_id
from rtm.shared.jetstream import stream_config
from rtm.shared.limits import KeyedBuckets, Throttle
from rtm.shared.postgres import PostgresDatabase
from rtm.shared.revocation import REVOCATION_MEMORY_S, RevokedSessions, load_revoked
from rtm.shared.serving import uvicorn_edge_options
from rtm.shared.tokens import JwksUnavailable, TokenVerifier
from rtm.shared.ws import CloseCode

logger = logging.getLogger(__name__)

VERSION = "1.0.0"

DESCRIPTION = """Everything a client **sends** (docs/protocol.md, "5. Producer").

* `POST /v1/messages`, conversations and membership below (bearer access token from auth).
* WebSocket `GET /v1/ws`: frames `send`, `typing`, `read`, `auth`, `ping`; answers `ack`,
  `error` (with `ref`), `auth_ok`, `pong`. Authenticate with `Authorization: Bearer` on the
  upgrade or a first `{"type":"auth","token":...}` frame within 10 s.
"""


@dataclass
class Producer:
    """A wired producer: the ASGI app plus the handles `serve` needs for a graceful stop."""

    app: FastAPI
    context: ProducerContext
    bus: NatsBus
    database: PostgresDatabase
    verifier: TokenVerifier


async def _fetch_jwks(verifier: TokenVerifier, max_backoff: float = 10.0) -> None:
    """Fetch auth's keys until it answers with at least one (auth may start after us)."""

    async def attempt() -> None:
        await verifier.refresh()
        if not verifier.has_keys:
            raise JwksUnavailable("auth's JWKS holds no usable key yet")

    await retry_forever("JWKS", attempt, cap=max_backoff)
    logger.info("JWKS fetched")


def build(settings: ProducerSettings, *, verifier: TokenVerifier | None = None) -> Producer:
    """Wire the producer from `settings` (no I/O until the app's lifespan starts)."""
    verifier = verifier or TokenVerifier(
        settings.jwks_url, settings.token_issuer, max_lifetime=settings.access_token_ttl_seconds
    )
    database = PostgresDatabase(
        settings.database_url,
        pool_size=settings.db_pool_size,
        timeout=settings.db_timeout_s,
        unavailable=Unavailable,
        migrations_dir=settings.migrations_dir if settings.migrate_on_start else None,
    )
    bus = NatsBus(
        [url.strip() for url in settings.nats_url.split(",") if url.strip()],
        stream=stream_config(),
        timeout=settings.publish_timeout_s,
        max_pending_publishes=settings.max_pending_publishes,
        name=f"rtm-producer@{socket.gethostname()}",
    )
    repository = PostgresConversationRepository(database)
    events = NatsEventPublisher(bus)
    monotonic = time.monotonic
    membership = MembershipService(
        repository,
        MembershipCache(
            ttl=settings.membership_cache_ttl_s,
            stale_for=settings.membership_stale_s,
            max_members=settings.membership_cache_members,
            now=monotonic,
        ),
        Cooldown(settings.db_outage_cooldown_s, monotonic),
        lookup_timeout=settings.db_lookup_timeout_s,
        observe=observe_check,
    )
    context = ProducerContext(
        settings=settings,
        messages=MessageService(
            membership,
            JetStreamMessagePublisher(
                bus, partitions=settings.partitions, timeout=settings.publish_timeout_s
            ),
            max_body_chars=settings.max_body_chars,
            now=utcnow,
            new_id=new_id,
            stored_wait_s=settings.stored_wait_s,
        ),
        conversations=ConversationService(
            repository,
            events,
            membership,
            max_group_members=settings.max_group_members,
            max_title_chars=settings.max_title_chars,
            now=utcnow,
            new_id=new_id,
        ),
        typing_and_reads=TypingAndReadService(
            membership,
            events,
            typing_throttle=Throttle(settings.typing_interval_s, monotonic),
            now=utcnow,
        ),
        verifier=verifier,
        connections=ConnectionRegistry(settings.max_connections_per_user),
        revoked=RevokedSessions(REVOCATION_MEMORY_S, monotonic),
        http_sends=KeyedBuckets(settings.rate_per_second, settings.rate_burst, monotonic),
        conversation_commands=KeyedBuckets(
            settings.conversation_rate_per_second, settings.conversation_burst, monotonic
        ),
        monotonic=monotonic,
    )

    async def on_session_revoked(msg: Msg) -> None:
        try:
            event = SessionRevoked.decode(msg.data)
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed %s event", SESSION_REVOKED)
            return
        context.revoked.add(event.session_id)
        context.connections.revoke_session(event.session_id)

    async def on_conversation_changed(msg: Msg) -> None:
        try:
            event = ConversationEvent.decode(msg.data)
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed %s event", CONVERSATION_EVENTS)
            return
        membership.invalidate(event.conversation.id)

    bus.subscribe(SESSION_REVOKED, on_session_revoked)
    bus.subscribe(CONVERSATION_EVENTS, on_conversation_changed)
    bus.on_reconnect(membership.expire_all)

    async def check_postgres() -> str | None:
        # Once reached, an outage no longer makes us unready: sends to known conversations go
        # on (the reason is logged, and counted by rtm_producer_membership_checks_total).
        return None if database.ready.is_set() else await database.check()

    readiness = Readiness()
    readiness.add("nats", bus.check_connection)
    readiness.add("jetstream", bus.check_stream)
    readiness.add("postgres", check_postgres)
    readiness.add("jwks", lambda: None if verifier.has_keys else "auth's signing keys not fetched")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        database.start()
        bus.start()
        jwks = asyncio.create_task(_start_up(bus, verifier, context.revoked), name="start-up")
        try:
            yield
        finally:
            await context.connections.close_all(
                CloseCode.RESTARTING, "service restarting", settings.shutdown_timeout_s
            )
            jwks.cancel()
            await asyncio.gather(jwks, return_exceptions=True)
            await bus.close()
            await database.close()

    app = create_http_app(
        title="rtm producer",
        version=VERSION,
        description=DESCRIPTION,
        settings=settings,
        readiness=readiness,
        lifespan=lifespan,
    )
    app.state.producer = context
    app.include_router(http.router)
    app.include_router(ws.router)
    app.include_router(asyncapi.router)
    return Producer(app, context, bus, database, verifier)


def create_app(settings: ProducerSettings, *, verifier: TokenVerifier | None = None) -> FastAPI:
    """The producer's ASGI app (for uvicorn, tests, or any ASGI server)."""
    return build(settings, verifier=verifier).app


class _GracefulServer(uvicorn.Server):
    """uvicorn, but on shutdown our WebSockets are closed first, with 1012, after their
    in-flight sends are acked (uvicorn alone would cut them with 1012 at once)."""

    def __init__(self, config: uvicorn.Config, producer: Producer) -> None:
        super().__init__(config)
        self._producer = producer

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting new connections first
        settings = self._producer.context.settings
        closed = await self._producer.context.connections.close_all(
            CloseCode.RESTARTING, "service restarting", settings.shutdown_timeout_s
        )
        if not closed:
            logger.warning(
                "some WebSockets did not close within %.0fs", settings.shutdown_timeout_s
            )
        await super().shutdown(sockets)


def server(settings: ProducerSettings) -> uvicorn.Server:
    """A uvicorn server for the producer on `host:producer_port`: its app, `/v1/ws` on picows
    with the frame limit of docs/protocol.md, "5. Producer" (larger frames close 1009), the edge
    limits of `rtm.shared.serving`."""
    producer = build(settings)
    config = uvicorn.Config(
        producer.app,
        host=settings.host,
        port=settings.producer_port,
        ws=ws.ws_protocol(producer.app, settings),
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s) + 5,
        server_header=False,
        **uvicorn_edge_options(settings),
    )
    return _GracefulServer(config, producer)


def _exit_ok(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve(settings: ProducerSettings) -> None:
    """Run the producer until SIGTERM/SIGINT; returns after a graceful stop.

    uvicorn handles SIGTERM itself while it runs, and re-raises it once it has shut down; the
    handler installed here turns that (and a SIGTERM during start-up) into exit code 0.
    """
    logger.info("producer starting on http://%s:%d", settings.host, settings.producer_port)
    signal.signal(signal.SIGTERM, _exit_ok)
    producer_server = server(settings)
    tune_gc(settings.gc_young_threshold)
    producer_server.run()


async def _start_up(bus: NatsBus, verifier: TokenVerifier, revoked: RevokedSessions) -> None:
    """Background start-up work that waits for auth and NATS: JWKS, then known revocations."""
    await asyncio.gather(_fetch_jwks(verifier), _load_revocations(bus, revoked))


async def _load_revocations(bus: NatsBus, revoked: RevokedSessions) -> None:
    """Learn the revocations auth made before we started (its KV bucket keeps them for one
    access-token lifetime); later ones arrive as events."""

    async def attempt() -> int:
        if not bus.connected:
            raise ConnectionError("NATS not connected yet")
        return await load_revoked(bus.js, revoked)

    # The bus connects by itself (and reports its own trouble): asking before it has would
    # only log a warning about a connection that is on its way.
    await bus.ready.wait()
    known = await retry_forever("revoked sessions", attempt)
    logger.info("%s revoked sessions known at start", known)
