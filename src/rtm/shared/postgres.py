"""The one way rtm's services use PostgreSQL: a pool started in the background and a bounded,
self-cleaning use of one connection (issue #10, #12).

`PostgresDatabase` turns an outage into the caller's own "unavailable" exception (each service
passes the class whose meaning it owns: `rtm.producer.domain.exceptions.Unavailable`, the
consumer's, auth's), once, here; every use of a connection is bounded by one deadline,
acquiring included.

**A connection goes back to the pool only in a known-good state.** Two ways asyncpg can leave one
unusable while it still looks open, both seen when PostgreSQL was frozen or its postmaster was
killed under load (`tests/integration/producer/test_producer_outages_under_load.py`,
`tests/integration/consumer/test_consumer_postgres_outages.py`):

- A timed-out statement is still running. asyncpg's `timeout=` (and a cancelled task) sends a
  CancelRequest over a new connection, through the postmaster, which a freeze stops too, and
  keeps the connection "cancelling" until the server confirms; the pool's release then waits
  for that with the acquire timeout as budget and raises `TimeoutError` when it runs out (that
  escaped as `internal`, after up to a minute). We pass no `timeout=`: `connection` bounds the
  whole use with `asyncio.timeout` and then terminates the connection instead of waiting for the
  server.
- The FATAL error a backend sends an idle connection when it is terminated (its postmaster
  killed, `pg_terminate_backend`, shutdown) puts asyncpg's protocol into its "consume an error"
  state while the socket is still open; the next statement on that connection raises
  `InternalClientError: cannot switch to state 11 (or 12); another operation (2) is in
  progress`. That is the server going away: unavailable, and the connection is terminated.

So a connection whose use ended with any exception (an outage, the deadline, a cancelled task, a
bug, a domain error raised inside the block) is terminated, never released: a statement may still
run on it, or its protocol be in a state no caller can see, and it must not reach another task.
The server rolls back whatever that connection had open. A connection is only ever used by the
task that acquired it (inside `connection`). For the same reason nobody uses asyncpg's
`Connection.transaction()` as a context manager around a block that can fail: its exit sends
ROLLBACK over the connection that just failed, with no bound; `transaction` commits on success
and leaves the rollback to the termination.

A COMMIT whose answer is lost (the deadline, or the server going away) may have committed or not;
callers that must know read the truth again (the consumer's partition workers re-claim their
partition and start from the committed offset).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg

from rtm.shared.connect import retry_forever
from rtm.shared.migrate import apply_migrations

logger = logging.getLogger(__name__)

# What the server going away, restarting, refusing or running out looks like to asyncpg.
OUTAGES: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # incl. "connection was closed in the middle of operation"
    asyncpg.exceptions.OperatorInterventionError,  # admin/crash shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.InterfaceError,  # connection closed under us
    asyncpg.exceptions.InternalClientError,  # protocol upset by a FATAL error it did not expect
)
# What a statement on a plain asyncpg connection raises when it cannot be answered: an outage,
# or any error the server answers (while it shuts down or starts, say).
POSTGRES_FAILURES: tuple[type[BaseException], ...] = (*OUTAGES, asyncpg.PostgresError)


async def keep_session(_: asyncpg.Connection) -> None:
    """Release a pooled connection without asyncpg's default reset query (a round trip per
    release, i.e. per batch the consumer stores): rtm never leaves session state behind (no
    LISTEN, SET, session advisory locks or cursors), and a connection is released only after a
    block that ended normally, so no transaction is open."""


def _terminate(conn: asyncpg.Connection) -> None:
    """Close a pooled connection for good, unless it is closed already: a connection that died
    (or was terminated) has gone back to the pool by itself, and its proxy then refuses every
    call with `InterfaceError`."""
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def tls_options(dsn: str) -> dict[str, bool]:
    """No TLS negotiation with a PostgreSQL on this machine, unless the URL or `PGSSLMODE` asks.

    asyncpg's default (`sslmode=prefer`) first asks the server for TLS and waits for its answer
    on a future of its own. An attempt cancelled at its timeout just after the TCP connection
    was made (a frozen or overloaded server) leaves that future behind; when the socket closes,
    asyncpg sets `ConnectionError('unexpected connection_lost() call')` on it and asyncio logs
    "Future exception was never retrieved" at ERROR (the flake of the frozen-PostgreSQL outage
    tests). Over loopback TLS protects nothing, so the negotiation is skipped there; any other
    host keeps the default.
    """
    if os.environ.get("PGSSLMODE"):
        return {}
    parts = urlsplit(dsn)
    if "sslmode" in parse_qs(parts.query) or "ssl" in parse_qs(parts.query):
        return {}
    return {"ssl": False} if parts.hostname in _LOOPBACK else {}


class PostgresDatabase:
    """A process's asyncpg pool, and the bounded use of its connections.

    The pool is opened by `open` (one attempt) or by `start`, a background task that retries
    with capped backoff, so that a database down at start makes the service not ready instead
    of dead; `ready` is set once it is open.

    Args:
        dsn: libpq connection string.
        pool_size: most connections.
        timeout: the default bound of one use of a connection (acquire and statements), and the
            connect timeout, in seconds.
        unavailable: the exception raised for an outage, the deadline, or a pool not open yet;
            called with one message. Each service passes its own (an `RtmError` with code
            `unavailable`, for the wire).
        migrations_dir: when given, pending migrations are applied before the pool opens.
        max_backoff: the longest pause between two attempts of `start`.
    """

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int,
        timeout: float,
        unavailable: type[Exception],
        migrations_dir: Path | None = None,
        max_backoff: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self.timeout = timeout
        self._unavailable = unavailable
        self._migrations_dir = migrations_dir
        self._max_backoff = max_backoff
        self._pool: asyncpg.Pool | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_error = "not connected yet"
        self.ready = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._pool is not None

    def start(self) -> None:
        """Open the pool in the background, retrying until it is open (or `close`)."""
        self._task = asyncio.create_task(self._connect(), name="postgres-connect")

    async def _connect(self) -> None:
        await retry_forever("PostgreSQL", self.open, self._max_backoff, self._failed)
        logger.info("connected to PostgreSQL")

    def _failed(self, reason: str) -> None:
        self._last_error = reason

    async def open(self) -> None:
        """Apply pending migrations (when asked to), open the pool and run a trivial query:
        one attempt. Raises `unavailable` when PostgreSQL cannot be reached, and whatever else
        went wrong (a failed migration, a refused login) as it is."""
        if self._pool is not None:
            return
        try:
            if self._migrations_dir is not None:
                await asyncio.to_thread(apply_migrations, self._dsn, self._migrations_dir)
            # No floor of idle connections (min_size=0): asyncpg restores a floor in the
            # background, logging a traceback on every failed attempt while the server is down;
            # a connection is made when a use needs one instead.
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=0,
                max_size=self._pool_size,
                timeout=self.timeout,
                command_timeout=None,  # `connection` bounds every use (module docstring)
                reset=keep_session,
                **tls_options(self._dsn),
            )
        except OUTAGES as exc:
            raise self._unavailable("the database is unavailable") from exc
        self._pool = pool
        answered = False
        try:
            async with self.connection() as conn:  # the pool alone connects to nothing
                await conn.fetchval("SELECT 1")
            answered = True
        finally:
            if not answered:  # whatever stopped it (an outage, a cancelled start): no pool
                self._pool = None
                pool.terminate()
        self.ready.set()

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for the statements of one task, all of them within `timeout`
        seconds from now, acquiring included (default: the database timeout).

        At the deadline the block is cancelled. The connection goes back to the pool only when
        the block ends normally; after any exception it is terminated (see the module
        docstring). Outages and the deadline raise `unavailable`; any other exception passes
        through unchanged.
        """
        pool = self._pool
        if pool is None:
            raise self._unavailable("the database is not connected yet")
        budget = timeout or self.timeout
        deadline = asyncio.get_running_loop().time() + budget
        try:
            conn = await pool.acquire(timeout=budget)
        except (*OUTAGES, asyncpg.PostgresError) as exc:  # down, refusing, or refused us
            raise self._unavailable("the database is unavailable") from exc
        reusable = False
        try:
            async with asyncio.timeout_at(deadline):
                yield conn
            reusable = True
        except TimeoutError as exc:
            raise self._unavailable(f"the database did not answer within {budget:g}s") from exc
        except OUTAGES as exc:
            raise self._unavailable("the database is unavailable") from exc
        finally:
            if reusable:
                await pool.release(conn)
            else:
                _terminate(conn)

    @asynccontextmanager
    async def transaction(self, timeout: float | None = None) -> AsyncIterator[asyncpg.Connection]:
        """`connection` inside a transaction, committed when the block ends normally. After an
        exception no ROLLBACK is sent (the connection may be stuck or broken): terminating it
        rolls the transaction back on the server."""
        async with self.connection(timeout) as conn:
            transaction = conn.transaction()
            await transaction.start()
            yield conn
            await transaction.commit()

    async def check(self) -> str | None:
        """Readiness: None when a trivial query answers, else why not."""
        if self._pool is None:
            return self._last_error[:300]
        try:
            async with self.connection() as conn:
                await conn.fetchval("SELECT 1")
        except self._unavailable as exc:
            return f"{exc}: {exc.__cause__!r}"[:300]
        return None

    def terminate(self) -> None:
        """Close every connection now, without waiting for the server (a stop out of time)."""
        if self._task is not None:
            self._task.cancel()
        if self._pool is not None:
            self._pool.terminate()

    async def close(self) -> None:
        """Stop connecting and close the pool, within the database timeout (then terminate)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), self.timeout)
            except TimeoutError:
                self._pool.terminate()
