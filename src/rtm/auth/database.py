"""The PostgreSQL connection pool of one auth process, and its failure translation.

The pool may not exist yet (PostgreSQL was down when auth started: the composition root keeps
retrying) or may lose its server; either way callers get `Unavailable` (503 / UNAVAILABLE), never
a driver exception. asyncpg replaces broken connections by itself once the server is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from rtm.auth.exceptions import Unavailable

logger = logging.getLogger(__name__)

# What asyncpg raises when the server is gone, restarting or refusing connections.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


class Database:
    """A lazily connected asyncpg pool.

    Args:
        url: libpq DSN.
        pool_size: the most connections this process opens.
        command_timeout: seconds a statement may take before it counts as unavailable.
    """

    def __init__(self, url: str, *, pool_size: int = 10, command_timeout: float = 10.0) -> None:
        self._url = url
        self._pool_size = pool_size
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None

    @property
    def connected(self) -> bool:
        return self._pool is not None

    async def connect(self) -> None:
        """Open the pool (one attempt; raises the driver's error when the server is not there)."""
        if self._pool is not None:
            return
        self._pool = await asyncpg.create_pool(
            self._url,
            min_size=1,
            max_size=self._pool_size,
            command_timeout=self._command_timeout,
            timeout=5.0,
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 5.0)
            except TimeoutError:
                pool.terminate()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; `Unavailable` when PostgreSQL cannot be reached."""
        if self._pool is None:
            raise Unavailable("database not connected yet")
        try:
            async with self._pool.acquire(timeout=5.0) as conn:
                yield conn
        except CONNECTION_ERRORS as exc:
            logger.warning("PostgreSQL unavailable: %s: %s", type(exc).__name__, exc)
            raise Unavailable("database unavailable") from exc

    async def ping(self) -> str | None:
        """Readiness check: None when a trivial query answers, else why not."""
        try:
            async with self.connection() as conn:
                await conn.fetchval("SELECT 1", timeout=2.0)
        except Unavailable as exc:
            cause = exc.__cause__
            return f"{type(cause).__name__}: {cause}" if cause else exc.message
        return None
