"""The auth process's one composition root: settings in, a running service out.

`build(settings)` wires adapters into services and services into both entrypoints (gRPC and
HTTP), without I/O. `Auth.start` listens at once (answering UNAVAILABLE / 503 and reporting not
ready) while background tasks connect to PostgreSQL (applying migrations, loading or creating
the signing key) and to NATS, retrying with capped backoff (`rtm.shared.connect.retry_forever`),
so auth never dies of a missing dependency. Once up, background loops keep the signing keys
fresh, relay revocation events NATS missed, purge old rows, and keep gRPC health in line with
readiness. `create_app(settings)` is the HTTP front alone (its lifespan runs the rest);
`serve(settings, stop)` runs everything until `stop` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

import grpc
from fastapi import FastAPI
from grpc_health.v1._async import HealthServicer

from rtm.auth.adapters.argon2 import Argon2Parameters, Argon2PasswordHasher
from rtm.auth.adapters.common_passwords import common_passwords
from rtm.auth.adapters.key_store import PostgresKeyStore
from rtm.auth.adapters.nats import NatsBus
from rtm.auth.adapters.postgres import PostgresAuthStore
from rtm.auth.adapters.publishers import RevocationPublisher
from rtm.auth.adapters.throttle_store import PostgresThrottleStore
from rtm.auth.domain.exceptions import Unavailable
from rtm.auth.domain.keys import KeyCipher
from rtm.auth.domain.policy import AuthPolicy
from rtm.auth.domain.ports import (
    AuthStore,
    PasswordHasher,
    RevocationNotifier,
    ThrottleStore,
)
from rtm.auth.domain.throttle import ThrottlePolicy
from rtm.auth.entrypoints.deps import AuthContext
from rtm.auth.entrypoints.grpc_server import HealthReporter, bind, create_grpc_server
from rtm.auth.entrypoints.http import create_app as create_http_front
from rtm.auth.entrypoints.http_server import HttpServer
from rtm.auth.entrypoints.servicer import AuthServicer
from rtm.auth.services import (
    AccountService,
    Authenticator,
    GrantIssuer,
    KeyRing,
    LoginService,
    SessionService,
)
from rtm.auth.settings import AuthSettings
from rtm.shared.clock import utcnow
from rtm.shared.connect import retry_forever
from rtm.shared.health import Readiness
from rtm.shared.migrate import apply_migrations
from rtm.shared.postgres import PostgresDatabase

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[object]]
PURGE_INTERVAL_S = 3600.0


def policy_from(settings: AuthSettings) -> AuthPolicy:
    window = timedelta(seconds=settings.throttle_window_seconds)
    base = timedelta(milliseconds=settings.throttle_base_delay_ms)
    longest = timedelta(seconds=settings.throttle_max_delay_seconds)
    slowest = settings.throttle_account_max_slowdown_ms
    return AuthPolicy(
        issuer=settings.token_issuer,
        access_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
        leeway=timedelta(seconds=settings.token_leeway_seconds),
        account_throttle=ThrottlePolicy(settings.throttle_account_free_failures, base,
                                        timedelta(milliseconds=slowest), window),
        address_throttle=ThrottlePolicy(settings.throttle_address_free_failures, base, longest,
                                        window),
        pair_throttle=ThrottlePolicy(settings.throttle_pair_free_failures, base, longest, window),
        search_default_limit=settings.search_default_limit,
        search_max_limit=settings.search_max_limit,
        common_passwords=common_passwords(),
        register_burst=settings.register_burst,
        register_per_minute=settings.register_per_minute,
    )  # fmt: skip


class Auth:
    """Every long-lived part of one auth process, started and stopped together (built by
    `build`; tests and `rtm-auth` read the handles: ports, `context`, `keys`, `store`...)."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        db: PostgresDatabase,
        store: PostgresAuthStore,
        key_store: PostgresKeyStore,
        keys: KeyRing,
        hasher: Argon2PasswordHasher,
        bus: NatsBus,
        publisher: RevocationPublisher,
        context: AuthContext,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.key_store = key_store
        self.keys = keys
        self.hasher = hasher
        self.bus = bus
        self.publisher = publisher
        self.context = context
        self.readiness = Readiness()
        self.readiness.add("postgres", db.check)
        self.readiness.add("signing_keys", self._keys_check)
        self.readiness.add("nats", self._nats_check)
        self.http_app: FastAPI = create_http_front(
            context, settings=settings, readiness=self.readiness, lifespan=self._lifespan
        )
        self.grpc_port = 0
        self._http = HttpServer(self.http_app, settings)
        self._clock = clock
        self._grpc_server: grpc.aio.Server | None = None
        self._health: HealthServicer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._db_ready = asyncio.Event()

    async def start(self, *, serve_http: bool = True) -> None:
        """Listen on both ports and start connecting; returns once the servers listen."""
        # Made here, not in __init__: gRPC's aio server belongs to the running event loop.
        server, self._health = create_grpc_server(
            AuthServicer(self.context),
            max_message_bytes=self.settings.grpc_max_message_bytes,
            handshake_timeout_s=self.settings.http_header_timeout_s,
        )
        self._grpc_server = server
        health = HealthReporter(self._health, self._serving)
        self.grpc_port = bind(server, self.settings.host, self.settings.grpc_port)
        await health.check_once()
        await server.start()
        logger.info("gRPC listening on %s:%s", self.settings.host, self.grpc_port)
        backoff = self.settings.reconnect_max_backoff_seconds
        self._spawn(self._connect_database(health), "postgres")
        self._spawn(self.bus.connect_forever(max_backoff=backoff), "nats")
        self._spawn(self._loop(health.check_once, self.settings.health_interval_seconds,
                               needs_db=False), "health")  # fmt: skip
        self._spawn(self._loop(self.keys.maintain, self.settings.key_reload_seconds), "keys")
        self._spawn(self._loop(self.publisher.relay_once, self.settings.relay_interval_seconds),
                    "relay")  # fmt: skip
        self._spawn(self._loop(self._purge, PURGE_INTERVAL_S), "purge")
        if serve_http:
            await self._http.start()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until PostgreSQL is connected and a signing key loaded (tests, the runner)."""
        await asyncio.wait_for(self._db_ready.wait(), timeout)

    async def stop(self) -> None:
        """Stop taking requests, finish in-flight ones, then close connections."""
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        self._http.begin_shutdown()
        if self._grpc_server is not None:
            await self._grpc_server.stop(grace=5.0)
        await self._http.wait_closed()  # uvicorn finishes its in-flight requests first
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.publisher.drain()
        await self.bus.close()
        await self.db.close()
        self.hasher.close()
        logger.info("auth stopped")

    @property
    def http_port(self) -> int:
        """The HTTP port bound (the configured one, or the free one port 0 got)."""
        return self._http.port

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        """The HTTP app run by an outside ASGI server (`create_app`): gRPC and the background
        work start and stop with it. `serve` runs uvicorn itself, with the lifespan off."""
        await self.start(serve_http=False)
        try:
            yield
        finally:
            await self.stop()

    async def _connect_database(self, health: HealthReporter) -> None:
        """Migrations (when configured), the pool, the signing keys and the dummy hash, retried
        together until they all succeed (a failed migration or a bad key secret is logged with
        its cause at every attempt, and tried again)."""

        async def attempt() -> None:
            if self.settings.migrate_on_start:  # here, not in the pool: admin commands skip it
                await asyncio.to_thread(
                    apply_migrations, self.settings.database_url, self.settings.migrations_dir
                )
            await self.db.open()
            await self.keys.ensure()
            await self.hasher.warm_up()

        await retry_forever(
            "PostgreSQL (migrations, signing keys)",
            attempt,
            cap=self.settings.reconnect_max_backoff_seconds,
        )
        self._db_ready.set()
        await health.check_once()
        logger.info("PostgreSQL connected; signing key %s", self.keys.signing_key().kid)

    async def _loop(
        self, step: Callable[[], Awaitable[object]], interval: float, *, needs_db: bool = True
    ) -> None:
        if needs_db:
            await self._db_ready.wait()
        name = getattr(step, "__name__", step)
        while True:
            await asyncio.sleep(interval)
            try:
                await step()
            except Unavailable as exc:
                logger.warning("%s skipped: %s", name, exc)
            except Exception:  # last line of defence: a background loop outlives one bad pass
                logger.exception("background step %s failed", name)

    async def _purge(self) -> None:
        now = self._clock()
        await self.store.purge(now=now, throttle_window_s=self.settings.throttle_window_seconds)
        await self.key_store.purge(now=now)

    async def _serving(self) -> bool:
        return self.keys.loaded and await self.db.check() is None

    def _keys_check(self) -> str | None:
        return None if self.keys.loaded else "no signing key loaded"

    def _nats_check(self) -> str | None:
        return None if self.bus.connected else "not connected to NATS"

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        self._tasks.append(asyncio.ensure_future(work))
        self._tasks[-1].set_name(f"auth-{name}")


def wire_services(
    *,
    store: AuthStore,
    throttle: ThrottleStore,
    keys: KeyRing,
    hasher: PasswordHasher,
    notifier: RevocationNotifier,
    policy: AuthPolicy,
    clock: Clock,
    sleep: Sleep = asyncio.sleep,
) -> AuthContext:
    """The services both entrypoints drive, on any implementation of the ports (`build` passes
    the PostgreSQL, NATS and argon2 adapters; unit tests pass in-memory fakes)."""
    grants = GrantIssuer(keys, policy)
    authenticator = Authenticator(store, keys, policy, clock)
    return AuthContext(
        accounts=AccountService(
            store=store, hasher=hasher, notifier=notifier, policy=policy, clock=clock
        ),
        logins=LoginService(
            store=store,
            throttle=throttle,
            hasher=hasher,
            grants=grants,
            policy=policy,
            clock=clock,
            sleep=sleep,
        ),
        sessions=SessionService(
            store=store,
            authenticator=authenticator,
            grants=grants,
            notifier=notifier,
            policy=policy,
            clock=clock,
        ),
        authenticator=authenticator,
    )


def build(settings: AuthSettings, *, clock: Clock = utcnow, sleep: Sleep = asyncio.sleep) -> Auth:
    """Wire auth from `settings` (no I/O until `Auth.start`).

    Args:
        settings: the configuration.
        clock: the current time (tests move it).
        sleep: how the login slowdown waits (tests pass one that moves `clock` instead).
    """
    db = PostgresDatabase(
        settings.database_url,
        pool_size=settings.db_pool_size,
        timeout=settings.db_timeout_s,
        unavailable=Unavailable,
    )
    store = PostgresAuthStore(db)
    key_store = PostgresKeyStore(db)
    keys = KeyRing(
        key_store,
        KeyCipher(settings.key_secret.get_secret_value()),
        clock,
        access_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        leeway=timedelta(seconds=settings.token_leeway_seconds),
        publish_lead=timedelta(seconds=settings.key_publish_lead_seconds),
        rotation_interval=(
            timedelta(days=settings.key_rotation_days) if settings.key_rotation_days else None
        ),
    )
    hasher = Argon2PasswordHasher(
        Argon2Parameters(
            settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism
        ),
        workers=settings.hash_workers,
    )
    bus = NatsBus(
        [url.strip() for url in settings.nats_url.split(",") if url.strip()],
        bucket=settings.revoked_sessions_bucket,
        bucket_ttl_s=settings.access_token_ttl_seconds + settings.token_leeway_seconds,
    )
    publisher = RevocationPublisher(bus, store)
    context = wire_services(
        store=store,
        throttle=PostgresThrottleStore(db),
        keys=keys,
        hasher=hasher,
        notifier=publisher,
        policy=policy_from(settings),
        clock=clock,
        sleep=sleep,
    )
    return Auth(
        settings,
        db=db,
        store=store,
        key_store=key_store,
        keys=keys,
        hasher=hasher,
        bus=bus,
        publisher=publisher,
        context=context,
        clock=clock,
    )


def create_app(settings: AuthSettings) -> FastAPI:
    """Auth's HTTP front as an ASGI app (for any ASGI server, or tests); its lifespan starts
    gRPC and the background work, too."""
    return build(settings).http_app


async def serve(settings: AuthSettings, stop: asyncio.Event) -> None:
    """Run auth (gRPC and HTTP) until `stop` is set, then shut down cleanly."""
    auth = build(settings)
    try:
        await auth.start()  # OSError when a port is taken: still stop what did start
        await stop.wait()
    finally:
        await auth.stop()
