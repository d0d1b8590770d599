"""PostgreSQL adapters: the connection pool (started in the background) and the conversation
repository over `messaging.conversations` / `messaging.members` (the producer's tables), reading
`messaging.messages` and `messaging.conversation_heads` (the consumer's) for duplicates and
`last_seq`.

Outages are translated here, once, into `Unavailable`; every use of a connection is bounded by
`timeout`, acquiring included.

**A connection goes back to the pool only in a known-good state.** Two ways asyncpg can leave one
unusable while it still looks open, both seen when PostgreSQL was frozen or its postmaster was
killed under load (issue #10, `tests/integration/producer/test_producer_outages_under_load.py`):

- A timed-out statement is still running. asyncpg's `timeout=` (and a cancelled task) sends a
  CancelRequest over a new connection, through the postmaster, which a freeze stops too, and
  keeps the connection "cancelling" until the server confirms; the pool's release then waits
  for that with the acquire timeout as budget and raises `TimeoutError` when it runs out (that
  escaped as `internal`). We pass no `timeout=`: `connection` bounds the whole use with
  `asyncio.timeout` and then terminates the connection instead of waiting for the server.
- The FATAL error a backend sends an idle connection when it is terminated (its postmaster
  killed, `pg_terminate_backend`, shutdown) puts asyncpg's protocol into its "consume an error"
  state while the socket is still open; the next statement on that connection raises
  `InternalClientError: cannot switch to state 11 (or 12); another operation (2) is in
  progress`. That is the server going away: `Unavailable`, and the connection is terminated.

So a connection whose use ended with any exception (an outage, the deadline, a cancelled task,
a bug) is terminated, never released: a statement may still run on it, or its protocol be in a
state no caller can see, and it must not reach another task. The server rolls back whatever
that connection had open. A connection is only ever used by the task that acquired it (inside
`connection`); the coalesced duplicate lookups run as one task with one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from rtm.producer.domain.exceptions import Unavailable
from rtm.producer.domain.model import (
    Conversation,
    ConversationKind,
    CreateOutcome,
    SendCheck,
    StoredSend,
)
from rtm.shared.coalesce import Coalescer
from rtm.shared.connect import keep_session
from rtm.shared.migrate import apply_migrations

logger = logging.getLogger(__name__)

_OUTAGES: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # incl. "connection was closed in the middle of operation"
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.InterfaceError,  # connection closed under us
    asyncpg.exceptions.InternalClientError,  # protocol upset by a FATAL error it did not expect
)


def _terminate(conn: asyncpg.Connection) -> None:
    """Close a pooled connection for good, unless it is closed already: a connection that died
    (or was terminated) has gone back to the pool by itself, and its proxy then refuses every
    call with `InterfaceError`."""
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


class PostgresDatabase:
    """The process's asyncpg pool, created by a background task that retries with capped
    backoff, so that a database down at start makes the service not ready instead of dead.

    Args:
        dsn: libpq connection string.
        pool_size: most connections.
        timeout: the default bound of one use of a connection (acquire and statements), and
            the connect timeout, in seconds.
        migrations_dir: when given, pending migrations are applied before the pool opens.
    """

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int,
        timeout: float,
        migrations_dir: Path | None = None,
        max_backoff: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self.timeout = timeout
        self._migrations_dir = migrations_dir
        self._max_backoff = max_backoff
        self._pool: asyncpg.Pool | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_error = "not connected yet"
        self.ready = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="postgres-connect")

    async def _connect(self) -> None:
        delay = 0.2
        while True:
            try:
                if self._migrations_dir is not None:
                    await asyncio.to_thread(apply_migrations, self._dsn, self._migrations_dir)
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    timeout=self.timeout,
                    command_timeout=None,  # `connection` bounds every use (module docstring)
                    reset=keep_session,
                )
            except Exception as exc:  # any failure here means "not yet": retry
                self._last_error = f"{type(exc).__name__}: {exc}"[:300]
                logger.warning(
                    "PostgreSQL not available (%s); retrying in %.1fs", self._last_error, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
                continue
            logger.info("connected to PostgreSQL")
            self.ready.set()
            return

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for the statements of one task, all of them within `timeout`
        seconds from now, acquiring included (default: the database timeout).

        At the deadline the block is cancelled. The connection goes back to the pool only when
        the block ends normally; after any exception it is terminated (see the module
        docstring). Outages and the deadline raise `Unavailable`.
        """
        pool = self._pool
        if pool is None:
            raise Unavailable("the database is not connected yet")
        budget = timeout or self.timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        try:
            conn = await pool.acquire(timeout=budget)
        except Exception as exc:  # whatever stops us connecting (down, refusing, misconfigured)
            raise Unavailable("the database is unavailable") from exc
        reusable = False
        try:
            async with asyncio.timeout_at(deadline):
                yield conn
            reusable = True
        except TimeoutError as exc:
            raise Unavailable(f"the database did not answer within {budget:g}s") from exc
        except _OUTAGES as exc:
            raise Unavailable("the database is unavailable") from exc
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
        """Readiness: None when a trivial query answers."""
        if self._pool is None:
            return self._last_error
        try:
            async with self.connection() as conn:
                await conn.fetchval("SELECT 1")
        except Unavailable as exc:
            return f"{exc.message}: {exc.__cause__!r}"[:300]
        return None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), self.timeout)
            except TimeoutError:
                self._pool.terminate()


_CHECK_SEND = """
SELECT c.id IS NOT NULL AS found,
       ARRAY(SELECT user_id FROM messaging.members WHERE conversation_id = $1) AS members,
       m.message_id, m.stream_seq, m.sent_at
FROM (SELECT 1) AS one
LEFT JOIN messaging.conversations AS c ON c.id = $1
LEFT JOIN messaging.messages AS m ON m.sender_id = $2 AND m.client_msg_id = $3
"""

_STORED_SENDS = """
SELECT m.sender_id, m.client_msg_id, m.message_id, m.stream_seq, m.sent_at
FROM unnest($1::uuid[], $2::uuid[]) AS k(sender_id, client_msg_id)
JOIN messaging.messages AS m USING (sender_id, client_msg_id)
"""

_MEMBERS = """
SELECT c.id IS NOT NULL AS found,
       ARRAY(SELECT user_id FROM messaging.members WHERE conversation_id = $1) AS members
FROM (SELECT 1) AS one
LEFT JOIN messaging.conversations AS c ON c.id = $1
"""

_GET = """
SELECT c.id, c.kind, c.title, c.created_by, c.created_at,
       COALESCE(h.last_seq, 0) AS last_seq,
       ARRAY(SELECT user_id FROM messaging.members AS mb
             WHERE mb.conversation_id = c.id ORDER BY user_id::text) AS members
FROM messaging.conversations AS c
LEFT JOIN messaging.conversation_heads AS h ON h.conversation_id = c.id
WHERE c.id = $1
"""

_INSERT_CONVERSATION = """
INSERT INTO messaging.conversations (id, kind, title, direct_key, created_by, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (direct_key) DO NOTHING
RETURNING id
"""

_INSERT_MEMBERS = """
INSERT INTO messaging.members (conversation_id, user_id, joined_at)
SELECT $1, member, $3 FROM unnest($2::uuid[]) AS member
ON CONFLICT DO NOTHING
RETURNING user_id
"""


def _members(row: asyncpg.Record) -> frozenset[uuid.UUID] | None:
    return frozenset(row["members"]) if row["found"] else None


def _conversation(row: asyncpg.Record) -> Conversation:
    return Conversation(
        id=row["id"],
        kind=ConversationKind(row["kind"]),
        title=row["title"],
        members=tuple(row["members"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        last_seq=row["last_seq"],
    )


class PostgresConversationRepository:
    """`ConversationRepository` on PostgreSQL. Writes commit before returning, so a created
    conversation is visible to every service at once (read-your-writes)."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database
        self._stored_sends: Coalescer[tuple[uuid.UUID, uuid.UUID], StoredSend] = Coalescer(
            self._stored_sends_now
        )

    async def check_send(
        self,
        conversation_id: uuid.UUID,
        sender_id: uuid.UUID,
        client_msg_id: uuid.UUID,
        *,
        timeout: float | None = None,
    ) -> SendCheck:
        async with self._db.connection(timeout) as conn:
            row = await conn.fetchrow(_CHECK_SEND, conversation_id, sender_id, client_msg_id)
        assert row is not None  # SELECT FROM (SELECT 1) always yields one row
        stored = None
        if row["message_id"] is not None:
            stored = StoredSend(row["message_id"], row["stream_seq"], row["sent_at"])
        return SendCheck(members=_members(row), stored=stored)

    async def stored_send(
        self, sender_id: uuid.UUID, client_msg_id: uuid.UUID, *, timeout: float | None = None
    ) -> StoredSend | None:
        """Every send asks this: the lookups of one loop turn share one query (`Coalescer`)."""
        return await self._stored_sends.get((sender_id, client_msg_id), timeout)

    async def _stored_sends_now(
        self, keys: Sequence[tuple[uuid.UUID, uuid.UUID]], timeout: float | None
    ) -> dict[tuple[uuid.UUID, uuid.UUID], StoredSend]:
        async with self._db.connection(timeout) as conn:
            rows = await conn.fetch(
                _STORED_SENDS,
                [sender for sender, _ in keys],
                [client_msg_id for _, client_msg_id in keys],
            )
        return {
            (row["sender_id"], row["client_msg_id"]): StoredSend(
                row["message_id"], row["stream_seq"], row["sent_at"]
            )
            for row in rows
        }

    async def members(
        self, conversation_id: uuid.UUID, *, timeout: float | None = None
    ) -> frozenset[uuid.UUID] | None:
        async with self._db.connection(timeout) as conn:
            row = await conn.fetchrow(_MEMBERS, conversation_id)
        assert row is not None
        return _members(row)

    async def get(self, conversation_id: uuid.UUID) -> Conversation | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(_GET, conversation_id)
        return None if row is None else _conversation(row)

    async def create(self, conversation: Conversation, direct_key: str | None) -> CreateOutcome:
        c = conversation
        async with self._db.transaction() as conn:
            inserted = await conn.fetchval(
                _INSERT_CONVERSATION,
                c.id,
                c.kind.value,
                c.title,
                direct_key,
                c.created_by,
                c.created_at,
            )
            if inserted is not None:
                await conn.fetch(_INSERT_MEMBERS, c.id, list(c.members), c.created_at)
                return CreateOutcome(conversation, created=True)
            # The pair already has its direct conversation (the unique key waited for any
            # concurrent creator to commit): return it, with whoever had left it back in.
            existing = await conn.fetchval(
                "SELECT id FROM messaging.conversations WHERE direct_key = $1", direct_key
            )
            rows = await conn.fetch(_INSERT_MEMBERS, existing, list(c.members), c.created_at)
            restored = tuple(sorted((row["user_id"] for row in rows), key=str))
            row = await conn.fetchrow(_GET, existing)
        assert row is not None
        return CreateOutcome(_conversation(row), created=False, restored=restored)

    async def add_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        async with self._db.connection() as conn:
            added = await conn.fetchval(
                "INSERT INTO messaging.members (conversation_id, user_id) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING RETURNING user_id",
                conversation_id,
                user_id,
            )
        return added is not None

    async def remove_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        async with self._db.connection() as conn:
            removed = await conn.fetchval(
                "DELETE FROM messaging.members WHERE conversation_id = $1 AND user_id = $2"
                " RETURNING user_id",
                conversation_id,
                user_id,
            )
        return removed is not None
